"""pygrad.engine: micrograd's Value, with the graph and its kernels in C.

A Value is a handle to a node of the C arena (csrc/arena.h). Each op makes
its node with one C call (csrc/ops.c; the forward and backward kernels are
csrc/kernels.h's), and backward() sorts the graph and runs every node's
backward kernel in C. The op list is C's (csrc/ops.h): the unary methods
below are made from it.

The graph as Python sees it is micrograd's, object for object: a Value keeps
the Values it was made from (`_prev` gives them back), and a node that C made
without a Python object (the leaf of a number operand, the inner node of
`a - b`, every node of a one-call network forward or loss) gets one when a
walk over `_prev` first reaches it, the same one on every walk. That node's
operands are found through its Region: the Values the C call was given.
"""
from __future__ import annotations

import gc
import math
import numbers
import weakref
from typing import TYPE_CHECKING, Any, Iterable, Union

from . import _c, _signals

ADD, MUL, POW, POWK = (_c.OP[name].code for name in ("add", "mul", "pow", "powk"))
#: The unary ops, each a method of Value: v.relu(), v.tanh(), v.exp(), ...
UNARY_OPS = tuple(op.name for op in _c.OPS if op.arity == 1 and not op.takes_k)

_new = object.__new__


# ---- making nodes --------------------------------------------------------------
# Each op makes `out` before the C call that makes its node, so that no
# failure in Python (a MemoryError) can come between a node and its owner.

def _binary(op, symbol):
    """The method self <op> other, other a Value or a real number: a new
    Value. A number becomes a leaf node in C (micrograd's Value(other)),
    which gets a Value of its own when _prev first reaches it."""
    apply2, apply2n = _c.apply2, _c.apply2n

    def method(self, other):
        out = _new(Value)
        t = type(other)
        if t is Value:
            out._id = node = apply2(op, self._id, other._id)
            operand = other
        elif t is float or t is int:
            out._id = node = apply2n(op, self._id, other)
            operand = None
        elif isinstance(other, Value):
            out._id = node = apply2(op, self._id, other._id)
            operand = other
        else:
            number = _number(other)
            if number is None:
                return NotImplemented
            out._id = node = apply2n(op, self._id, number)
            operand = None
        if node < 0:
            raise _c.error(node, symbol, self, other)
        out._a = self
        out._b = operand
        out._r = None
        return out

    return method


class Watched(type):
    """The type of Value (and of pygrad.nn's modules): it counts assignments
    to a class's attributes (Value.tanh = my_tanh), so that the one-call
    forwards (pygrad/_fastpath.py) notice a replaced method and run it."""

    edits = 0
    on_edit: list[Any] = []  # functions called after each (pygrad/_fastpath.py's)

    def __setattr__(cls, name, value):
        super().__setattr__(name, value)
        Watched._edited()

    def __delattr__(cls, name):
        super().__delattr__(name)
        Watched._edited()

    @staticmethod
    def _edited():
        Watched.edits += 1
        for f in Watched.on_edit:
            f()


class Value(metaclass=Watched):
    """stores a single scalar value and its gradient (micrograd's Value; the
    numbers live in a node of the C arena).

    Its slots: `_id` the node's handle, owned by this object (released when
    it dies); `_a`, `_b` the Values it was made from, in operand order (kept
    alive, for `_prev`), or `_b` the exponent of `a ** k` as written, or, for a
    Value built by hand (`Value(data, children, op)`), the children (a tuple)
    and the op; `_r` the Region of a node that C made along with others.
    Any other attribute goes to its `__dict__`, as on micrograd's Values.
    """

    __slots__ = ("_id", "_a", "_b", "_r", "__dict__", "__weakref__")
    __array_ufunc__ = None  # numpy scalars defer to our reflected operators
    label = ""

    def __init__(self, data: float, _children: Iterable[Value] = (), _op: str = "",
                 label: str = "") -> None:
        data = real(data, "Value data")
        children = tuple(_children)
        old = self._id
        if old > 0 and not children and _c.op_of(old) == 0:  # again, on a live leaf:
            _c.check(_c.set_data(old, data), "Value", data)   # the same node (what a cache,
            _c.set_grad(old, 0.0)                               # an optimizer, a tape holds)
            _c.set_python_backward(old, 0)
        else:
            self._id = _node(data, children)
            if old > 0:
                _c.release(old)
                Watched._edited()  # (a new node: every cache of handles is built again)
        self._a = self._b = self._r = None
        if children or _op:  # micrograd's Value(data, children, op): a custom op (its
            self._a, self._b = children, _op  # _backward, if any, is assigned next)
            if children:
                _python_backwards[self._id] = self
        if old:  # (micrograd's __init__ sets _backward = lambda: None)
            self.__dict__.pop("_backward", None)
        if label:
            self.label = label

    def __new__(cls, *args: Any, **kwargs: Any) -> Value:
        self = _new(cls)
        self._id = 0  # no node yet (__init__ makes it)
        return self

    def __del__(self, _release: Any = _c.release) -> None:
        try:
            node = self._id
        except AttributeError:  # its node was never made
            return
        if _collecting:  # garbage in a cycle: see _on_gc
            _dying.append(node)
            return
        _release(node)
        self._id = -1  # (an explicit v.__del__(): v is dead, never read as a number)

    def __reduce__(self) -> Any:
        """copy.copy, copy.deepcopy and pickle give a new leaf Value with the
        same data, grad, label and other attributes (not the graph under it)."""
        state = {k: v for k, v in self.__dict__.items() if k != "_backward"}
        return _leaf_copy, (self.data, self.grad), state or None

    def __setstate__(self, state: Any) -> None:
        """Attributes of a copied Value: a dict of names, never its slots."""
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state) \
                or any(k in Value.__slots__ for k in state):
            raise TypeError(f"bad state for a pygrad Value: {type(state).__name__}")
        self.__dict__.update(state)

    # ---- the graph, as micrograd's ------------------------------------------

    @property
    def _op(self) -> str:
        """micrograd's op string: '+', '*', '**2', 'ReLU', ... ('' for a leaf)."""
        if type(self._a) is tuple:  # a Value built by hand
            return self._b
        op = _c.op_of(self._id)
        _c.check(op, "_op", self)
        if op == POWK:  # the exponent as written (**2, **2.0), or as C keeps it
            k = self._b if self._b is not None else _c.k_of(self._id)
            return f"**{int(k) if type(k) is float and k.is_integer() and self._b is None else k}"
        return _c.OPS[op].symbol

    @_op.setter
    def _op(self, op: str) -> None:  # (micrograd's Values take it: kept as a hand-built one's)
        self._a, self._b = tuple(self._prev), op

    @property
    def _prev(self) -> set[Value]:
        """The operands: the Value objects this one was made from."""
        if type(self._a) is tuple:
            return _Children(self._a)
        children = []
        for i in (0, 1):
            node = _c.child(self._id, i)
            _c.check(node, "_prev", self)
            if node == 0:
                break
            children.append(self._operand(i, node))
        return _Children(children)

    @_prev.setter
    def _prev(self, children: Iterable[Value]) -> None:
        """As on micrograd's Values, the graph under this one is now children:
        it becomes a custom op's node over them (same data, grad and _backward)."""
        children = tuple(children)
        node = _node(self.data, children)
        grad, op, old = self.grad, self._op, self._id
        self._id, self._a, self._b, self._r = node, children, op, None
        _c.release(old)
        self.grad = grad
        if "_backward" in self.__dict__:
            self._backward = self.__dict__["_backward"]
        Watched._edited()

    def _operand(self, i: int, node: int) -> Value:
        """The Value of operand i, whose node is `node`: the one this Value
        was made from, or else the one that stands for that node below this
        one's region (made now if it has none yet, and kept)."""
        known = self._a if i == 0 else self._b
        if not (isinstance(known, Value) and known._id == node):
            region = self._r
            if region is None:  # the operands' nodes are found among the operands
                region = self._r = Region((self._a, self._b))
            known = region.find(node)
            if i == 0:
                self._a = known
            else:
                self._b = known
        return known

    def backward(self) -> None:
        """Set self.grad = 1 and backpropagate through the whole graph (in C,
        in micrograd's topological order; no recursion limit). A node with a
        _backward of its own (a custom op) has it called in its turn."""
        status = _c.backward(self._id, _BUDGET)
        if status == _c.WALK:  # too big for one call, or Python's backwards in it
            _walk(self)
        else:
            _c.check(status, "backward", self)

    @property
    def _backward(self) -> Any:
        """This node's local backward: a function that, called, adds its
        contributions to its operands' grads once (micrograd's). Assignable,
        as in micrograd: a custom op's `out._backward = _backward`, which
        backward() then calls in its turn."""
        fn = self.__dict__.get("_backward")
        return fn if fn is not None else self._kernel_backward

    @_backward.setter
    def _backward(self, fn: Any) -> None:
        self.__dict__["_backward"] = fn
        _python_backwards[self._id] = self
        _c.set_python_backward(self._id, 1)

    @_backward.deleter
    def _backward(self) -> None:
        self.__dict__.pop("_backward", None)
        _python_backwards.pop(self._id, None)
        _c.set_python_backward(self._id, 0)

    def _kernel_backward(self) -> None:
        """The C kernel's local backward of this node, once."""
        _c.check(_c.backward_node(self._id), "_backward", self)

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    # ---- ops: each makes `out`, one node, with one C call ----------------------
    # (the unary methods, v.relu() ... v.cos(), are made from the C op table
    # below the class)

    if not TYPE_CHECKING:  # (declared for type checkers at the end of the class)
        __add__ = __radd__ = _binary(ADD, "+")  # self + other, other + self
        __mul__ = __rmul__ = _binary(MUL, "*")  # self * other, other * self

    def __pow__(self, other: Operand, modulo: None = None) -> Value:  # self ** other
        if modulo is not None:
            return NotImplemented
        if type(other) is int or type(other) is float:
            k = other
        elif isinstance(other, Value):
            return _pow_values(self, other)
        else:
            k = _number(other)
            if k is None:
                return NotImplemented
        out = _new(Value)
        out._id = node = _c.apply1k(POWK, self._id, k)
        if node < 0:
            raise _c.error(node, "**", self, other)
        out._a, out._b, out._r = self, other, None  # the exponent as written, for _op
        return out

    def __rpow__(self, other: float) -> Value:  # other ** self
        k = _number(other)
        return NotImplemented if k is None else Value(k) ** self

    def __neg__(self) -> Value:  # -self: self * -1
        return self * -1

    def __abs__(self) -> Value:  # abs(self)
        return self.abs()

    # -, / and their reflections are micrograd's compositions of +, * and **:
    # two nodes each, made by one C call.

    def __sub__(self, other: Operand) -> Value:  # self - other: self + (-other)
        if isinstance(other, Value):
            return _composed(ADD, self, MUL, other, -1.0, "-", self, other)
        number = _number(other)
        if number is None:
            return NotImplemented
        if number == 0.0 and isinstance(other, numbers.Rational):
            return self + 0.0  # micrograd's -other of an exact 0 (an int, a Fraction) is 0, not -0.0
        return self + (-number)

    def __rsub__(self, other: float) -> Value:  # other - self: (-self) + other
        number = other if type(other) is float else _number(other)
        if number is None:
            return NotImplemented
        return _composed(ADD, None, MUL, self, -1.0, "-", other, self, number)

    def __truediv__(self, other: Operand) -> Value:  # self / other: self * other**-1
        if isinstance(other, Value):
            return _composed(MUL, self, POWK, other, -1.0, "/", self, other)
        number = _number(other)
        if number is None:
            return NotImplemented
        if number == 0.0:
            raise ZeroDivisionError(f"division by zero: {_c._show(self)} / {other!r}")
        return self * number**-1

    def __rtruediv__(self, other: float) -> Value:  # other / self: self**-1 * other
        try:
            number = _number(other)
        except OverflowError:  # (an int past floats: micrograd's self**-1 comes first)
            return self**-1 * other
        if number is None:
            return NotImplemented
        return _composed(MUL, None, POWK, self, -1.0, "/", other, self, number)

    # ---- numbers where Python expects numbers (as PyTorch's tensors): each
    # reads .data and leaves the graph ------------------------------------------

    def __float__(self) -> float:  # float(v)
        return self.data

    def item(self) -> float:
        """The data, as a Python float (PyTorch's Tensor.item)."""
        return self.data

    def __int__(self) -> int:  # int(v): the data truncated, as int(float)
        return int(self.data)

    def __round__(self, ndigits: int | None = None) -> Any:  # round(v), round(v, n)
        return round(self.data, ndigits)

    def __trunc__(self) -> int:  # math.trunc(v) (math.floor and math.ceil use float(v))
        return math.trunc(self.data)

    def __format__(self, spec: str) -> str:  # f"{v:.4f}": the data; f"{v}": the repr
        return format(self.data, spec) if spec else str(self)

    # Ordering compares data with data (a Value's or a number's), so that max,
    # min, sorted and numpy's object-array reductions work; == and hash stay
    # identity, as in micrograd, so Values still go in sets and dicts.
    def __lt__(self, other: Operand) -> bool:  # self < other
        x = _compared(other)
        return NotImplemented if x is None else bool(self.data < x)

    def __le__(self, other: Operand) -> bool:  # self <= other
        x = _compared(other)
        return NotImplemented if x is None else bool(self.data <= x)

    def __gt__(self, other: Operand) -> bool:  # self > other
        x = _compared(other)
        return NotImplemented if x is None else bool(self.data > x)

    def __ge__(self, other: Operand) -> bool:  # self >= other
        x = _compared(other)
        return NotImplemented if x is None else bool(self.data >= x)

    if TYPE_CHECKING:  # what is attached below the class, for type checkers
        _id: int
        _a: Any
        _b: Any
        _r: Region | None

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


#: What an arithmetic operator takes besides a Value: a Value or a real number.
Operand = Union[Value, float]


def _unary(op, name):
    """The method v.name(): op of v, as a new Value."""
    apply1 = _c.apply1

    def method(self):
        out = _new(Value)
        out._id = node = apply1(op, self._id)
        if node < 0:
            raise _c.error(node, name, self)
        out._a = self
        out._b = out._r = None
        return out

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"{name}(self) as a new Value (its kernels: csrc/kernels.h, {name}_forward/_backward)."
    return method


def _composed(op, first, inner, a, x, symbol, left, right, number=0.0):
    """op(first, inner(a, x)), or op(inner(a, x), number) if first is None, as
    one new Value made by one C call; inner is mul by the number x or powk with
    exponent x. left and right are the user's operands, for errors."""
    out = _new(Value)
    out._id = node = _c.apply_composed(op, 0 if first is None else first._id, inner, a._id, x,
                                       number)
    if node < 0:
        if node == _c.EZERODIV:  # the ** -1 of a division: say what the user did
            raise ZeroDivisionError(f"division by zero: {_c._show(left)} / {_c._show(right)}")
        raise _c.error(node, symbol, left, right)
    out._a, out._b, out._r = first, a, None  # a: the inner node's operand, for _prev
    return out


def _node(data, children):
    """A new node for Value(data, children): a leaf, or a custom op's node over
    the children's nodes (csrc/pygrad.h: pg_custom)."""
    if not children:
        node = _c.leaf(data)
    else:
        for c in children:
            if not isinstance(c, Value):
                raise TypeError(f"Value children must be Values, not {type_name(c)!r}")
        node = _c.custom(data, [c._id for c in children])
    _c.check(node, "Value", data)
    return node


#: Values whose _backward is a Python function (or that a custom op made), by
#: handle: backward() calls it.
_python_backwards: Any = weakref.WeakValueDictionary()
#: Nodes of work per C call of a backward (about 10 ms): between two calls
#: Python runs (Ctrl-C, other threads, the custom ops' _backward).
_BUDGET = 1 << 19


@_signals.interruptible
def _walk(root):
    """root's backward in steps (csrc/graph.c: the walk), calling the Python
    _backward of every node that has one in its turn."""
    walk, status = _c.walk_new(root._id)
    _c.check(status, "backward", root)
    node = _c.node_out()
    while True:
        status = _c.walk_step(walk, _BUDGET, node)
        if status == _c.PYTHON:
            v = _python_backwards.get(node[0])
            fn = v.__dict__.get("_backward") if v is not None else None
            if fn is not None:
                fn()
            else:  # (its Value is gone, and its _backward with it: the kernel's)
                _c.backward_node(node[0])
        elif status != _c.MORE:
            _c.check(status, "backward", root)
            return


def python_op(node: int) -> str:
    """What to call node's op in a message, naming a Python-defined one so."""
    v = _python_backwards.get(node)
    if v is not None:
        return f"{v._op!r}, whose backward is Python's"
    return repr(_c.OPS[_c.op_of(node)].name)


def made(node: int, region: Region | None) -> Value:
    """The Value owning `node`, a handle a C call just returned (checked by
    the caller), which made it along with others (region: their operands)."""
    out = _new(Value)
    out._id, out._a, out._b, out._r = node, None, None, region
    return out


_pow_values = _binary(POW, "**")  # self ** other, both Values
for _op in _c.OPS:  # v.relu(), v.tanh(), ...: one method per unary op in C
    if _op.name in UNARY_OPS:
        setattr(Value, _op.name, _unary(_op.code, _op.name))


class _Children(set):
    """A node's `_prev`: a set of its operand Values (micrograd's), iterated
    in operand order, so that every walk over the graph is the same walk."""

    __slots__ = ("_order",)

    def __init__(self, values):
        super().__init__(values)
        self._order = tuple(dict.fromkeys(values))

    def __iter__(self):
        return iter(self._order)


class Region:
    """The operand Values of one C call that made several nodes (an MLP
    forward, a loss, a - b), and the Values made since for its other nodes:
    for any node below its nodes, the one Value that stands for it."""

    __slots__ = ("operands", "values")

    def __init__(self, operands: tuple) -> None:
        self.operands = operands  # Values, or sequences of them (numbers skipped)
        self.values: Any = None   # node -> Value, made at the first walk

    def find(self, node: int) -> Value:
        values = self.values
        if values is None:
            values = self.values = weakref.WeakValueDictionary()
            for group in self.operands:
                for v in group if isinstance(group, (list, tuple)) else (group,):
                    if isinstance(v, Value):
                        values[v._id] = v
        v = values.get(node)
        if v is None:  # a node with no Python object yet: wrap it, with a reference of its own
            _c.check(_c.retain(node), "_prev", node)
            v = values[node] = made(node, self)
        return v


def _node_field(name, get, put):
    """A property reading and writing one double of the node (data or grad)."""

    def fget(self):
        x = get(self._id)
        if x != x and not _c.valid(self._id):  # NaN: a real NaN, or a dead handle
            raise _c.error(_c.EBADID, name, self._id)
        return x

    def fset(self, value):
        if type(value) is not float and type(value) is not int:
            value = real(value, name)
        if put(self._id, value):
            if self._id == 0:  # a subclass's __init__ that sets data without Value's
                Value.__init__(self, value)
                return
            raise _c.error(_c.EBADID, name, self._id)

    return property(fget, fset, doc=f"The node's {name} (a float; assignable).")


Value.data = _node_field("data", _c.data, _c.set_data)
Value.grad = _node_field("grad", _c.grad, _c.set_grad)


def _leaf_copy(data, grad):
    v = Value(data)
    v.grad = grad
    return v


# ---- when a Value dies ----------------------------------------------------------
# Its node is released at once, by C. Garbage in a reference cycle (a custom
# op's _backward closes over its Value, as in micrograd) is finalized as a
# whole before any of it is freed, and a finalizer of it may still read a
# Value of it: so while the collector runs, the nodes of the Values it
# finalizes are released when it is done. (A finalizer that saves such a
# Value saves a dead one: reading it raises ReferenceError.) Ctrl-C never
# lands in a finalizer or between a C call and its Value: pygrad/_signals.py.

_collecting = False  # the cyclic garbage collector is running
_dying: list[int] = []  # the nodes of the Values it finalized


def _on_gc(phase: str, info: Any) -> None:
    global _collecting
    _collecting = phase == "start"
    while not _collecting and _dying:
        _c.release(_dying.pop())


gc.callbacks.append(_on_gc)
_signals.install()


# ---- numbers -----------------------------------------------------------------------

def _number(x):
    """x as a float if it is a real number (not a Value), else None."""
    if type(x) is float or type(x) is int or isinstance(x, numbers.Real):
        try:
            return float(x)
        except TypeError:  # a numbers.Real that float() refuses (numpy's timedelta64)
            return None
    return None


def _compared(x):
    """What an ordering compares a Value's data with: a Value's data, a real
    number as it is (Python compares a float with an int or a Fraction exactly:
    1.5 < 10**400 is True, where float(10**400) would overflow), or None."""
    if isinstance(x, Value):
        return x.data
    if type(x) is float or type(x) is int or isinstance(x, numbers.Real):
        return x
    return None


def type_name(x: Any) -> str:
    """The name of x's type for a message: 'str', but 'numpy.bool' (not
    Python's bool) and 'decimal.Decimal'."""
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def real(x: Any, what: str) -> float:
    """x as a float, or TypeError naming what it was meant to be."""
    f = _number(x)
    if f is None:
        raise TypeError(f"{what} must be a real number, not {type_name(x)!r}")
    return f


# ---- the arena ------------------------------------------------------------------

def live_nodes() -> int:
    """The number of nodes alive in the C arena (for tests and leak checks)."""
    return _c.live_nodes()


def set_node_limit(n: int) -> None:
    """Cap the arena at n live nodes (0: no cap, the default). Making a node
    past the cap raises MemoryError and changes nothing, so a runaway graph
    stops with an exception instead of taking all the memory. A cap below
    the nodes already alive only stops new ones."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"node limit must be an int, not {type_name(n)!r}")
    limit = int(n)
    if not 0 <= limit < 2**63:
        raise ValueError(f"node limit must be 0 (no limit) or a positive int, not {n!r}")
    _c.set_node_limit(limit)


def node_limit() -> int:
    """The arena's cap on live nodes (0: none); see set_node_limit."""
    return _c.node_limit()
