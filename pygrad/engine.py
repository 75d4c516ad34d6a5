"""pygrad.engine: micrograd's Value, with the graph and its kernels in C.

A Value is a handle to a node of the C arena (csrc/). Making a Value, or
combining Values with an operator, makes a node; backward() sorts the graph
and runs every node's backward kernel in C. The Python object keeps its
operands alive (so `_prev` gives back the very objects that built it) and
releases its node when it dies.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Iterable, Union

from . import _c  # the binding: the only module that calls the C library

# ---- the op table, read from the C library (csrc/ops.h lists the ops once) --

OPS = {op.name: op.code for op in _c.OPS}
_SYMBOLS = [op.symbol for op in _c.OPS]
#: The ops that are methods of Value: v.relu(), v.tanh(), v.exp(), ...
UNARY_OPS = tuple(op.name for op in _c.OPS if op.arity == 1 and not op.takes_k)
_ADD, _MUL, _POW, _POWK = OPS["add"], OPS["mul"], OPS["pow"], OPS["powk"]

def _show(x):
    return repr(x.data) if isinstance(x, Value) else repr(x)


def _fail(status, op, *operands, note=""):
    """Raise the exception for a C status; op and operands name the call."""
    raise _c.error(status, op, *operands, note=note)


def _as_float(x):
    """x as a float if it is a real number (not a Value), else None."""
    if type(x) is float or type(x) is int or isinstance(x, numbers.Real):
        return float(x)
    return None


def _operand(x):
    """x itself if it is a Value, x as a float if it is a real number, else None."""
    return x if isinstance(x, Value) else _as_float(x)


def _type_name(x):
    """The name of x's type for a message: 'str', but 'numpy.bool' (not
    Python's bool) and 'decimal.Decimal'."""
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _real_or_raise(x, what):
    try:
        f = _as_float(x)
    except TypeError:  # a numbers.Real that float() refuses (numpy's timedelta64)
        f = None
    if f is None:
        raise TypeError(f"{what} must be a real number, not {_type_name(x)!r}")
    return f


_new = object.__new__


class Value:
    """A scalar and its gradient: micrograd's Value, computed in C."""

    __slots__ = ("_id", "_a", "_b", "_label", "_user", "__weakref__")
    __array_ufunc__ = None  # numpy scalars defer to our reflected operators

    def __init__(self, data: float, _children: Iterable[Value] = (), _op: str = "",
                 label: str = "") -> None:
        data = _real_or_raise(data, "Value data")
        node = _c.leaf(data)
        if node <= 0:
            _fail(node, "Value", data)
        old = getattr(self, "_id", 0)
        self._id, self._a, self._b = node, None, None
        if old:  # __init__ called again on a live Value: start afresh
            _c.release(old)
            for attr in ("_label", "_user"):
                if hasattr(self, attr):
                    delattr(self, attr)
        if label:
            self._label = label
        if _children or _op:  # kept for _prev and _op; the node is a leaf
            self._user = (tuple(_children), _op)

    def __del__(self, _release=_c.release):
        try:
            _release(self._id)
            self._id = 0  # an explicit second __del__() must not release again
        except AttributeError:  # __init__ raised before the node existed
            pass

    def __reduce__(self):
        """copy.copy, copy.deepcopy and pickle give a new leaf Value with the
        same data, grad and label (the graph under a result is not copied)."""
        return _leaf_copy, (self.data, self.grad, self.label)

    # ---- data, grad and the graph ------------------------------------------

    # .data and .grad: see _node_field below the class.

    @property
    def label(self) -> str:
        try:
            return self._label
        except AttributeError:
            return ""

    @label.setter
    def label(self, value: str) -> None:
        self._label = value

    @property
    def _op(self) -> str:
        try:
            return self._user[1]
        except AttributeError:
            pass
        op = _c.op_of(self._id)
        if op < 0:
            _fail(op, "_op", self._id)
        if op == _POWK:
            if self._b is not None:  # the exponent as the user wrote it: **2, **2.0
                return f"**{self._b}"
            k = _c.k_of(self._id)  # a node made in C: show 2.0 as 2
            return f"**{int(k) if k.is_integer() else k}"
        return _SYMBOLS[op]

    @property
    def _prev(self) -> set[Value]:
        """The operands: the same Value objects that built this one."""
        try:
            return set(self._user[0])
        except AttributeError:
            pass
        children = set()
        for i in (0, 1):
            child = _c.child(self._id, i)
            if child < 0:
                _fail(child, "_prev", self._id)
            if child == 0:
                break
            known = self._a if i == 0 else self._b
            if not (isinstance(known, Value) and known._id == child):
                # A node with no Python object yet (the leaf micrograd makes
                # for a number operand): wrap it once and keep the wrapper.
                known = _wrap(child)
                if i == 0:
                    self._a = known
                else:
                    self._b = known
            children.add(known)
        return children

    def backward(self) -> None:
        """Set self.grad = 1 and backpropagate through the whole graph."""
        status = _c.backward(self._id)
        if status:
            _fail(status, "backward", self)

    def _backward(self) -> None:
        """Run this node's local backward once (into its operands' grads)."""
        status = _c.backward_node(self._id)
        if status:
            _fail(status, "_backward", self)

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    # ---- operators (+, * and the unary methods are made from the C op table
    # at the end of this file) ------------------------------------------------

    if TYPE_CHECKING:  # what the end of this file attaches, for type checkers
        _id: int  # the node's handle (see __slots__)
        _a: Value | None  # the operands it was made from, kept alive
        _b: Value | float | None  # (or the exponent of a ** k, as written)

        @property  # data and grad: see _node_field
        def data(self) -> float: ...
        @data.setter
        def data(self, value: float) -> None: ...
        @property
        def grad(self) -> float: ...
        @grad.setter
        def grad(self, value: float) -> None: ...

        def __add__(self, other: Operand) -> Value: ...  # self + other
        def __radd__(self, other: float) -> Value: ...  # other + self
        def __mul__(self, other: Operand) -> Value: ...  # self * other
        def __rmul__(self, other: float) -> Value: ...  # other * self
        def __abs__(self) -> Value: ...  # abs(self)
        # one method per unary op of the C library (UNARY_OPS; a test checks the list)
        def relu(self) -> Value: ...
        def tanh(self) -> Value: ...
        def sigmoid(self) -> Value: ...
        def exp(self) -> Value: ...
        def log(self) -> Value: ...
        def sqrt(self) -> Value: ...
        def abs(self) -> Value: ...
        def sin(self) -> Value: ...
        def cos(self) -> Value: ...

    def __pow__(self, other: Operand, modulo: None = None,  # self ** other
                _apply1k: Any = _c.apply1k) -> Value:
        if modulo is not None:
            return NotImplemented
        if type(other) is int or type(other) is float:
            k = other
        elif isinstance(other, Value):
            return _pow_values(self, other)
        else:
            k = _as_float(other)
            if k is None:
                return NotImplemented
        node = _apply1k(_POWK, self._id, k)
        if node <= 0:
            _fail(node, "**", self, other)
        out = _new(Value)  # (_made, written out: a hot path)
        out._id = node
        out._a = self
        out._b = other  # the exponent as written, for _op
        return out

    def __rpow__(self, other: float) -> Value:  # other ** self
        base = _as_float(other)
        return NotImplemented if base is None else Value(base) ** self

    # -, / and their reflections are micrograd's compositions of *, + and
    # **, made here without a Python object for the intermediate node (which
    # no user could hold): the graph is the same node for node.

    def __neg__(self) -> Value:  # -self: self * -1
        return self * -1

    def __sub__(self, other: Operand) -> Value:  # self - other: self + (-other)
        if type(other) is float or type(other) is int:
            return self + (-other)
        if isinstance(other, Value):
            return _compose(_ADD, self, _MUL, other._id, -1.0, "-", self, other)
        other = _as_float(other)
        return NotImplemented if other is None else self + (-other)

    def __rsub__(self, other: float) -> Value:  # other - self: (-self) + other
        # float() first: an int too big for a float (10**400) raises here,
        # before _compose has made a node it could not release.
        number = other if type(other) is float else _as_float(other)
        if number is None:
            return NotImplemented
        return _compose(_ADD, None, _MUL, self._id, -1.0, "-", other, self, number)

    def __truediv__(self, other: Operand) -> Value:  # self / other: self * other**-1
        if isinstance(other, Value):
            return _compose(_MUL, self, _POWK, other._id, -1.0, "/", self, other)
        number = _as_float(other)
        if number is None:
            return NotImplemented
        if number == 0.0:
            raise ZeroDivisionError(f"division by zero: {_show(self)} / {_show(other)}")
        return self * number**-1

    def __rtruediv__(self, other: float) -> Value:  # other / self: self**-1 * other
        number = _as_float(other)
        if number is None:
            return NotImplemented
        return _compose(_MUL, None, _POWK, self._id, -1.0, "/", other, self, number)


#: What an arithmetic operator takes besides a Value: a Value or a real number.
Operand = Union[Value, float]


def _compose(op, first, inner, a, x, symbol, left, right, number=0.0,
             _apply=_c.apply_composed):
    """The node op(first, inner(a, x)), or op(inner(a, x), number) when first
    is None, as one new Value (one C call). inner is mul by the number x or
    powk with exponent x; left and right name the user's operands in errors."""
    node = _apply(op, 0 if first is None else first._id, inner, a, x, number)
    if node <= 0:
        if node == _c.EZERODIV:  # the ** -1 of a division: say what the user did
            raise ZeroDivisionError(f"division by zero: {_show(left)} / {_show(right)}")
        _fail(node, symbol, left, right)
    out = _new(Value)
    out._id = node
    out._a = first
    out._b = None
    return out


def _node_field(name, get, put):
    """A property reading and writing one double of the node (data or grad)."""

    def fget(self):
        x = get(self._id)
        if x != x and not _c.valid(self._id):  # NaN: a real NaN or a stale handle
            _fail(_c.EBADID, name, self._id)
        return x

    def fset(self, value):
        if type(value) is not float and type(value) is not int:
            value = _real_or_raise(value, name)
        if put(self._id, value):
            _fail(_c.EBADID, name, self._id)

    return property(fget, fset, doc=f"The node's {name} (a float; assignable).")


Value.data = _node_field("data", _c.data, _c.set_data)
Value.grad = _node_field("grad", _c.grad, _c.set_grad)


def _leaf_copy(data, grad, label):
    v = Value(data, label=label)
    v.grad = grad
    return v


def _made(node, a, b):
    """A new Value for a node just built from operands a and b."""
    out = _new(Value)
    out._id = node
    out._a = a
    out._b = b
    return out


def _wrap(node):
    """A new Value for an existing node, holding a reference of its own."""
    status = _c.retain(node)
    if status:
        _fail(status, "_prev", node)
    return _made(node, None, None)


def _binary_method(op, symbol):
    """self <op> other, where other is a Value or a real number. A number
    operand becomes a leaf node in C (micrograd's Value(other)); _prev wraps
    it on demand. (Written out, not through _made: this is the hot path.)"""
    apply2, apply2n = _c.apply2, _c.apply2n

    def method(self, other):
        t = type(other)
        if t is Value:
            node, operand = apply2(op, self._id, other._id), other
        elif t is float or t is int:  # the number's leaf has no Python object yet
            node, operand = apply2n(op, self._id, other), None
        elif isinstance(other, Value):
            node, operand = apply2(op, self._id, other._id), other
        else:
            number = _as_float(other)
            if number is None:
                return NotImplemented
            node, operand = apply2n(op, self._id, number), None
        if node <= 0:
            _fail(node, symbol, self, other)
        out = _new(Value)
        out._id = node
        out._a = self
        out._b = operand
        return out

    return method


def _unary_method(name, op):
    apply1 = _c.apply1

    def method(self):
        node = apply1(op, self._id)
        if node <= 0:
            _fail(node, name, self)
        out = _new(Value)
        out._id = node
        out._a = self
        out._b = None
        return out

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"{name}(self), computed in C (csrc/ops.c)."
    return method


Value.__add__ = Value.__radd__ = _binary_method(_ADD, "+")  # self + other, other + self
Value.__mul__ = Value.__rmul__ = _binary_method(_MUL, "*")  # self * other, other * self
for _name in UNARY_OPS:  # v.relu(), v.tanh(), ...: one method per unary op in C
    setattr(Value, _name, _unary_method(_name, OPS[_name]))
Value.__abs__ = Value.abs  # abs(v)
_pow_values = _binary_method(_POW, "**")  # self ** other, both Values


def live_nodes() -> int:
    """The number of nodes alive in the C arena (for tests and leak checks)."""
    return _c.live_nodes()


def set_node_limit(n: int) -> None:
    """Cap the arena at n live nodes (0: no cap, the default). Making a node
    past the cap raises MemoryError and changes nothing, so a runaway graph
    stops with an exception instead of taking all the memory. A cap below
    the nodes already alive only stops new ones."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"node limit must be an int, not {_type_name(n)!r}")
    limit = int(n)
    if not 0 <= limit < 2**63:
        raise ValueError(f"node limit must be 0 (no limit) or a positive int, not {n!r}")
    _c.set_node_limit(limit)


def node_limit() -> int:
    """The arena's cap on live nodes (0: none); see set_node_limit."""
    return _c.node_limit()
