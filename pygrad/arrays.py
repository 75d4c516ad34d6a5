"""pygrad.arrays: many Values' data and grads in one C call, as numpy arrays.

    params = mlp.parameters()
    w = pygrad.get_data(params)          # a numpy float64 copy, in that order
    pygrad.set_data(params, w * 0.5)     # write them all back
    pygrad.get_grad(params), pygrad.set_grad(params, 0.0)

Each takes a list of Values (or a Module: its parameters) and makes one C
call however many there are. The arrays are copies: a node's data lives in
the C arena, which moves when it grows, so no view of it could stay valid.
"""
from __future__ import annotations

from collections.abc import Iterable as _Iterable
from typing import TYPE_CHECKING, Iterable, Union

if TYPE_CHECKING:
    import numpy
else:  # (imported at its first use: `import pygrad` loads no numpy)
    from ._lazy import numpy

from . import _c
from .engine import Value, real, type_name

if TYPE_CHECKING:
    import numpy.typing as npt

    from .nn import Module

#: What these functions (and the optimizers) take: Values, or a Module for
#: its parameters.
Values = Union[Iterable[Value], "Module", "Handles"]


class Handles(_c.Handles):
    """Values as an array of C handles, kept alive with the Values."""

    __slots__ = ()

    def __init__(self, values):
        if not isinstance(values, _Iterable) or isinstance(values, (str, bytes, Value)):
            raise TypeError(f"expected pygrad Values (a list of them) or a Module, "
                            f"not {type_name(values)!r}")
        values = list(values)  # one snapshot: C sees this list and nothing else
        for v in values:
            if not isinstance(v, Value):
                raise TypeError(f"expected pygrad Values, got {type_name(v)!r}")
        super().__init__(values)


def handles(values):
    """Handles for values (a list of Values, a Module, or Handles); TypeError
    for anything else, a Module of another engine's Values included."""
    if isinstance(values, _c.Handles):
        return values
    if hasattr(values, "parameters") and not isinstance(values, _Iterable):  # a Module
        h = values._handles() if hasattr(values, "_handles") else None
        if h is None:
            raise TypeError(f"expected pygrad Values or a Module of them, not a "
                            f"{type_name(values)} whose parameters are not all pygrad Values "
                            "(a pygrad.reference model?)")
        return h
    return Handles(values)


def _get(values, field, what):
    h = handles(values)
    out = numpy.empty(h.n, dtype="float64")
    _c.check(_c.gather(h, field, out), what, *h.values[:1])
    return out


def float_array(src, what):
    """src, real numbers (a number, a sequence, an array), as a float64
    numpy array; TypeError for anything else (numpy itself would read the
    string '1.5' as 1.5 and None as NaN)."""
    a = numpy.asarray(src)
    if a.dtype.kind == "O":  # Python objects: numbers as Value takes them, or TypeError
        return numpy.array([real(x, what) for x in a.ravel()]).reshape(a.shape)
    if a.dtype.kind not in "biuf":  # bool, int, unsigned, float
        raise TypeError(f"{what} must be real numbers, not an array of {a.dtype}")
    return numpy.asarray(a, dtype="float64", order="C")


def _set(values, field, src, what):
    h = handles(values)
    a = float_array(src, what)
    if a.ndim == 0:
        status = _c.scatter(h, field, None, float(a))
    elif a.shape != (h.n,):
        raise ValueError(f"{what}: expected {h.n} values, got an array of shape {a.shape}")
    else:
        status = _c.scatter(h, field, a)
    if status:
        _c.check(status, what, *h.values[:1])


def get_data(values: Values) -> npt.NDArray[numpy.float64]:
    """The data of each Value, as a new float64 numpy array."""
    return _get(values, _c.DATA, "get_data")


def get_grad(values: Values) -> npt.NDArray[numpy.float64]:
    """The grad of each Value, as a new float64 numpy array."""
    return _get(values, _c.GRAD, "get_grad")


def set_data(values: Values, src: npt.ArrayLike) -> None:
    """Set each Value's data from src (one number per Value, or a scalar for all)."""
    _set(values, _c.DATA, src, "set_data")


def set_grad(values: Values, src: npt.ArrayLike) -> None:
    """Set each Value's grad from src (one number per Value, or a scalar for all)."""
    _set(values, _c.GRAD, src, "set_grad")
