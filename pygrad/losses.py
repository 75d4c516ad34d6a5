"""pygrad.losses: the tutorials' losses, each built by one C call.

Each function builds, node for node, the graph of the Python expression in
its docstring (the expression the tutorials write), so it gives the same
loss and the same gradients as that expression, only without one Python
object per node. On other engines (pygrad.reference) the expression itself
runs. `pred` is a list of Values; `target` a list of numbers.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable as _Iterable
from typing import Any, Iterable, Sequence, Union

from . import _c
from .engine import Region, Value, made, real, type_name


def _build(name, pred, target, nclass=1, params=(), alpha=0.0):
    ids = [p._id for p in pred]
    pids = [p._id for p in params]
    target = [real(t, f"{name} target") for t in target]
    node = _c.loss(name, ids, target, nclass, pids, real(alpha, f"{name} alpha"))
    return made(node, Region((pred, params)))


def _on_pygrad(*groups):
    return all(isinstance(v, Value) for group in groups for v in group)


def _items(xs: Any, name: str, what: str) -> list[Any]:
    """xs (an iterable) as a new list: what the checks and C see, whatever
    code a user's item runs later."""
    if (not isinstance(xs, _Iterable) or isinstance(xs, (str, bytes, dict, set, frozenset))
            or _is_value(xs)):  # (a set has no order to match the targets')
        raise TypeError(f"{name}: {what} must be a list, not {type_name(xs)!r}")
    return list(xs)


def _is_value(x: Any) -> bool:
    """A Value of pygrad or of another engine (pygrad.reference's, micrograd's)."""
    return isinstance(x, Value) or (hasattr(x, "data") and hasattr(x, "backward"))


def _values(xs: list[Any], name: str, what: str) -> None:
    """TypeError unless every x is a Value, all of pygrad or all of another engine."""
    for x in xs:
        if not _is_value(x):
            raise TypeError(f"{name}: {what} must be a Value, not {type_name(x)!r}")
    if len({isinstance(x, Value) for x in xs}) > 1:
        raise TypeError(f"{name}: Values of two engines, pygrad's and "
                        f"{type_name(next(x for x in xs if not isinstance(x, Value)))!r}")


def _check(pred: Iterable[Value], target: Iterable[float],
           name: str) -> tuple[list[Value], list[float]]:
    pred, target = _items(pred, name, "predictions"), _items(target, name, "targets")
    if not pred or len(pred) != len(target):
        raise ValueError(f"{name}: need as many targets as predictions (and at least one), "
                         f"got {len(pred)} predictions and {len(target)} targets")
    _values(pred, name, "a prediction")
    return pred, target


def sum_squares(pred: Iterable[Value], target: Iterable[float]) -> Value:
    """sum((y - p) ** 2 for y, p in zip(target, pred))"""
    pred, target = _check(pred, target, "sum_squares")
    if _on_pygrad(pred):
        return _build("sum_squares", pred, target)
    # (sum's 0 is never returned: pred is not empty)
    return sum((y - p) ** 2 for y, p in zip(target, pred))  # type: ignore[return-value]


def mse(pred: Iterable[Value], target: Iterable[float]) -> Value:
    """sum_squares(pred, target) * (1.0 / len(pred)): mean squared error."""
    pred, target = _check(pred, target, "mse")
    if _on_pygrad(pred):
        return _build("mse", pred, target)
    return sum_squares(pred, target) * (1.0 / len(pred))


def root_sum_squares(pred: Iterable[Value], target: Iterable[float]) -> Value:
    """sum_squares(pred, target) ** 0.5: seed 000's (W1's) loss."""
    pred, target = _check(pred, target, "root_sum_squares")
    if _on_pygrad(pred):
        return _build("root_sum_squares", pred, target)
    return sum_squares(pred, target) ** 0.5


def hinge(scores: Iterable[Value], target: Iterable[float], params: Iterable[Value] = (),
          alpha: float = 1e-4) -> Value:
    """micrograd's demo (W2): the max-margin loss with L2 regularization,
        sum((1 + -y * s).relu() for y, s in zip(target, scores)) * (1.0 / len(scores))
        + alpha * sum(p * p for p in params)
    with target in {-1, +1}; without params, no regularization term."""
    scores, target = _check(scores, target, "hinge")
    params = _items(params, "hinge", "params")
    _values(scores + params, "hinge", "a score or parameter")
    if _on_pygrad(scores, params):
        return _build("hinge", scores, target, params=params, alpha=alpha)
    losses = [(1 + -y * s).relu() for y, s in zip(target, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))  # (a Value: losses is not empty)
    if not params:
        return data_loss  # type: ignore[return-value]
    return data_loss + alpha * sum(p * p for p in params)


def cross_entropy(logits: Sequence[Any], target: Union[int, Iterable[int]]) -> Value:
    """Softmax cross-entropy, the mean over rows: logits is one row of class
    scores (Values) or a list of rows, target the class of each row (one
    int for one row). Per row, with m the row's largest logit's data (a
    constant that keeps exp from overflowing),
        sum((z - m).exp() for z in row).log() - (row[c] - m)
    and over rows, sum(row_losses) * (1.0 / len(rows))."""
    items = _items(logits, "cross_entropy", "logits")
    nested = [isinstance(z, (list, tuple)) for z in items]
    if any(nested) and not all(nested):
        raise TypeError("cross_entropy: logits must be one row of Values or a list of rows "
                        "(lists or tuples), not a mix of the two")
    rows = [list(r) for r in items] if items and all(nested) else [items]  # our own lists
    classes: list[Any] = ([target] if isinstance(target, (numbers.Integral, str))  # (a str: refused
                          else _items(target, "cross_entropy", "classes"))    # below, by name)
    if not rows or len(rows) != len(classes) or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ValueError("cross_entropy: need rows of logits of one length, one class per row")
    nclass = len(rows[0])
    for c in classes:  # ints of any kind: numpy's labels too
        if not isinstance(c, numbers.Integral) or not 0 <= int(c) < nclass:
            raise ValueError(f"cross_entropy: class {c!r} is not an int in [0, {nclass})")
    classes = [int(c) for c in classes]
    flat = [z for row in rows for z in row]
    _values(flat, "cross_entropy", "a logit")
    if _on_pygrad(flat):
        return _build("cross_entropy", flat, classes, nclass=nclass)
    losses = []
    for row, c in zip(rows, classes):
        m = max(z.data for z in row)
        losses.append(sum((z - m).exp() for z in row).log() - (row[c] - m))
    return sum(losses) * (1.0 / len(losses))
