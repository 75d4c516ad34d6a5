"""pygrad.losses: the tutorials' losses, each built by one C call.

Each function builds, node for node, the graph of the Python expression in
its docstring (the expression the tutorials write), so it gives the same
loss and the same gradients as that expression, only without one Python
object per node. On other engines (pygrad.reference) the expression itself
runs. `pred` is a list of Values; `target` a list of numbers.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence, Union

from . import _c
from .engine import Region, Value, made, real


def _build(name, pred, target, nclass=1, params=(), alpha=0.0):
    ids = [p._id for p in pred]
    pids = [p._id for p in params]
    target = [real(t, f"{name} target") for t in target]
    node = _c.loss(name, ids, target, nclass, pids, real(alpha, f"{name} alpha"))
    _c.check(node, name)
    return made(node, Region((pred, params)))


def _on_pygrad(*groups):
    return all(isinstance(v, Value) for group in groups for v in group)


def _check(pred: Iterable[Value], target: Iterable[float],
           name: str) -> tuple[list[Value], list[float]]:
    pred, target = list(pred), list(target)
    if not pred or len(pred) != len(target):
        raise ValueError(f"{name}: need as many targets as predictions (and at least one), "
                         f"got {len(pred)} predictions and {len(target)} targets")
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
    params = list(params)
    if _on_pygrad(scores, params):
        return _build("hinge", scores, target, params=params, alpha=alpha)
    losses = [(1 + -y * s).relu() for y, s in zip(target, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))  # (a Value: losses is not empty)
    if not params:
        return data_loss  # type: ignore[return-value]
    return data_loss + alpha * sum(p * p for p in params)  # type: ignore[return-value]


def cross_entropy(logits: Sequence[Any], target: Union[int, Iterable[int]]) -> Value:
    """Softmax cross-entropy, the mean over rows: logits is one row of class
    scores (Values) or a list of rows, target the class of each row (one
    int for one row). Per row, with m the row's largest logit's data (a
    constant that keeps exp from overflowing),
        sum((z - m).exp() for z in row).log() - (row[c] - m)
    and over rows, sum(row_losses) * (1.0 / len(rows))."""
    rows = [logits] if logits and not isinstance(logits[0], (list, tuple)) else list(logits)
    classes: list[Any] = [target] if isinstance(target, (int, numbers.Integral)) else list(target)
    if not rows or len(rows) != len(classes) or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ValueError("cross_entropy: need rows of logits of one length, one class per row")
    nclass = len(rows[0])
    for c in classes:  # ints of any kind: numpy's labels too
        if not isinstance(c, numbers.Integral) or not 0 <= int(c) < nclass:
            raise ValueError(f"cross_entropy: class {c!r} is not an int in [0, {nclass})")
    classes = [int(c) for c in classes]
    flat = [z for row in rows for z in row]
    if _on_pygrad(flat):
        return _build("cross_entropy", flat, classes, nclass=nclass)
    losses = []
    for row, c in zip(rows, classes):
        m = max(z.data for z in row)
        losses.append(sum((z - m).exp() for z in row).log() - (row[c] - m))
    return sum(losses) * (1.0 / len(losses))
