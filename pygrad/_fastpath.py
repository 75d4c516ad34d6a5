"""pygrad._fastpath: when a Neuron, Layer or MLP forward is one C call, and what that call needs.

pygrad.nn's classes are micrograd's code. On pygrad's Value their forward
builds a graph that csrc/nn.c (pg_mlp) builds in one call, node for node
(act(((b + w0*x0) + w1*x1) + ...) per neuron). This module decides when the
call gives exactly what the Python code gives, and else says so (None), and
the Python code runs. It applies when the module and every part of it are
pygrad.nn's own Neuron, Layer and MLP (or subclasses that keep their
`__call__` and `parameters`), every parameter and input is an exact pygrad
Value or a number, every neuron of a layer is alike, and no op of Value that
the forward uses has been replaced (Value.tanh = my_tanh).

What a module's forward needs (its parameters, their handles, the layer
sizes and activations) is a Cache, kept until the module's structure
changes. Changes are seen through:
- Tracked.__setattr__ (every Module): an attribute assigned;
- TrackedList: a list of a module's parts (w, neurons, layers) changed;
- engine.Watched, the type of Value and Module: a class attribute assigned.
Each module counts its own changes in an edits cell; a Cache records the
count of every module it was built from, so a change to a Layer shared by
two MLPs rebuilds both their caches and no other. While the global counter
`changes` stands still, every cache is known to be current without a look.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from . import _c
from .engine import UNARY_OPS, Region, Value, Watched, _new, _number, made, type_name

changes = 0  # structure changes anywhere; a Cache is current while this stands still
_enabled = True  # off(): the Python code always runs (for tests)
#: The parameters() methods that cache what they collect (pygrad.nn's own)
CACHING: set[Any] = set()


def _edits(module):
    """The module's change counter: a one-element list, shared with its tracked lists."""
    cell = module.__dict__.get("_edits")
    if cell is None:
        cell = [0]
        object.__setattr__(module, "_edits", cell)  # not a structure change
    return cell


def _changed(cell):
    global changes
    cell[0] += 1
    changes += 1


def _class_changed():  # a class attribute of Value or of a module assigned
    global changes
    changes += 1


Watched.on_edit.append(_class_changed)


class TrackedList(list):
    """A list of a module's parts (weights, neurons, layers) that counts its
    changes in the module's edits cell."""

    def __init__(self, items, edits):
        super().__init__(items)
        self._edits = edits

    def __reduce_ex__(self, protocol):  # copy and pickle: the items, and the same cell
        return TrackedList, (list(self), self._edits)


def _counting(method):
    def wrapper(self, *args, **kwargs):
        _changed(self._edits)
        return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    return wrapper


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(TrackedList, _name, _counting(getattr(list, _name)))


class Tracked(metaclass=Watched):
    """What pygrad.nn's Module inherits: structure changes are counted, and
    the caches are left out of copies and pickles."""

    _TRACKED: tuple[str, ...] = ()  # the list attributes that hold a module's parts
    _cache: Any = None  # the module's Cache (set by remember())

    def __setattr__(self, name, value):
        edits = _edits(self)
        if isinstance(value, list) and name in self._TRACKED:
            value = TrackedList(value, edits)
        object.__setattr__(self, name, value)
        _changed(edits)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_cache", None)
        return state


class Cache:
    """A module's parameters as last collected, and its one-call forward."""

    __slots__ = ("stamp", "patches", "counts", "params", "handles", "net")

    def __init__(self, module, params):
        self.stamp, self.patches = changes, Watched.edits
        # (cell, count) of every module the cache was built from
        self.counts = tuple((cell, cell[0]) for cell in map(_edits, _modules(module)))
        self.params = params
        self.handles: Any = _UNBUILT  # Handles of the parameters, or None: not all Values
        self.net: Any = _UNBUILT      # the Net, or None: the Python code runs

    def current(self):
        if self.patches == Watched.edits and all(cell[0] == n for cell, n in self.counts):
            self.stamp = changes
            return True
        return False


_UNBUILT = object()


def _modules(module):
    """The module and every module inside it (an attribute, or in a list or
    tuple attribute), each once: the modules whose changes make its cache stale."""
    from .nn import Module

    found, stack, seen = [], [module], {id(module)}
    while stack:
        m = stack.pop()
        found.append(m)
        for name, v in m.__dict__.items():
            if name == "_cache":
                continue
            for part in v if isinstance(v, (list, tuple)) else (v,):
                if isinstance(part, Module) and id(part) not in seen:
                    seen.add(id(part))
                    stack.append(part)
    return found


def _cache(module):
    """module's Cache if it is current, else None."""
    cache = module._cache
    if cache is not None and (cache.stamp == changes or cache.current()):
        return cache
    return None


def parameters(module):
    """A new list of module's parameters as last collected, or None if its
    structure has changed since (the caller collects them: remember())."""
    cache = module._cache
    if cache is not None and (cache.stamp == changes or cache.current()):
        return list(cache.params)
    return None


def remember(module, params):
    """Keep params, the list module.parameters() just collected; return it."""
    object.__setattr__(module, "_cache", Cache(module, list(params)))
    return params


def handles(module):
    """The module's parameters as Handles, or None if they are not all pygrad Values."""
    cache = _cache(module) if type(module).parameters in CACHING else None
    if cache is None:
        params = module.parameters()  # its own (a subclass's, a user's module's)
        cache = _cache(module) if type(module).parameters in CACHING else None
        if cache is None:
            return _c.Handles(params) if all(isinstance(p, Value) for p in params) else None
    if cache.handles is _UNBUILT:
        ok = all(isinstance(p, Value) for p in cache.params)
        cache.handles = _c.Handles(cache.params) if ok else None
    return cache.handles


def zero_grad(module):
    """Every parameter's grad = 0 in one C call; False if the Python loop must run."""
    h = handles(module)
    if h is None:
        return False
    _c.check(_c.scatter(h, _c.GRAD), "zero_grad")
    return True


def forward(module, x):
    """module(x) as one C call, or None if the Python code must run."""
    if not _enabled:
        return None
    cache = module._cache
    if cache is None or not (cache.stamp == changes or cache.current()):
        module.parameters()  # collects them, and makes the cache
        cache = module._cache
        if cache is None:
            return None
    net = cache.net
    if net is _UNBUILT:
        net = cache.net = Net.of(module, cache.params)
    return None if net is None else net.forward(x)


@contextmanager
def off():
    """Within it, the Python code of every forward runs (tests compare the two)."""
    global _enabled
    _enabled = False
    try:
        yield
    finally:
        _enabled = True


# ---- the one-call forward ---------------------------------------------------

def _original_ops():
    """The methods of Value a dense forward uses, as pygrad defines them."""
    names = ("__add__", "__radd__", "__mul__", "__rmul__") + UNARY_OPS
    return {name: Value.__dict__[name] for name in names}


_ORIGINAL = _original_ops()


class Net:
    """A network's forward as one C call (csrc/nn.c: pg_mlp)."""

    __slots__ = ("name", "params", "handles", "sizes", "acts", "nlayers", "nin", "nout", "zeros",
                 "region", "where")

    @staticmethod
    def of(module, params):
        """The Net of module (whose parameters, collected, are params), or None
        where the C call would not build what module's own code builds."""
        from .nn import MLP, Layer, Neuron

        if any(Value.__dict__.get(name) is not f for name, f in _ORIGINAL.items()):
            return None  # an op of Value was replaced: the user's runs
        layers: list[Any]
        if isinstance(module, Neuron):
            layers = [[module]]
        elif isinstance(module, Layer):
            layers = [module.neurons]
        else:
            layers = [getattr(layer, "neurons", None) for layer in module.layers]
            if not all(_ours(layer, Layer) for layer in module.layers) or not _ours(module, MLP):
                return None
        if isinstance(module, Layer) and not _ours(module, Layer):
            return None
        if not layers or not all(type(layer) is list or isinstance(layer, list) for layer in layers):
            return None
        if not all(layer and all(_ours(n, Neuron) for n in layer) for layer in layers):
            return None
        nin = len(layers[0][0].w)
        sizes, acts = [nin], []
        for layer in layers:
            first = layer[0]
            for n in layer:
                if (type(n.w) is not TrackedList and type(n.w) is not list) or len(n.w) != nin \
                        or n.act != first.act or bool(n.nonlin) != (n.act != "linear") \
                        or not all(type(p) is Value for p in n.w) or type(n.b) is not Value:
                    return None
            if first.nonlin and first.act not in UNARY_OPS:
                return None
            acts.append(_c.OP[first.act].code if first.nonlin else 0)
            nin = len(layer)
            sizes.append(nin)
        expected = [p for layer in layers for n in layer for p in n.w + [n.b]]
        if len(expected) != len(params) or any(a is not b for a, b in zip(expected, params)):
            return None
        return Net(module, params, sizes, acts)

    def __init__(self, module, params, sizes, acts):
        self.name = f"{type(module).__name__}({sizes[0]}, {sizes[1:]})"
        self.params = params
        self.handles = _c.Handles(params)
        self.sizes = _c.int32s(sizes)
        self.acts = _c.int32s(acts)
        self.nlayers, self.nin, self.nout = len(acts), sizes[0], sizes[-1]
        self.zeros = _c.ids(sizes[0])  # the input handles when every input is a number
        self.region = Region((params,))  # of every forward whose inputs are all numbers
        self.where = _c.where()  # what a failed call blames

    def forward(self, x, _mlp=_c.mlp, NULL=_c.NULL):
        """x: nin inputs, Values or numbers, in a list of the caller's own.
        Returns what micrograd's forward returns: a Value if the last layer
        has one neuron, else a list of Values; or None if an input is
        neither an exact Value nor a real number (a Value subclass: its own
        ops run, in the Python code)."""
        if len(x) != self.nin:
            raise ValueError(f"{self.name} takes {self.nin} inputs, got {len(x)}")
        ids, nums, inputs = self.zeros, x, None  # numbers only (the common case)
        for xi in x:
            if type(xi) is not float and type(xi) is not int:
                ids = [v._id for v in x if type(v) is Value]
                if len(ids) == self.nin:  # Values only
                    nums, inputs = NULL, x
                else:
                    converted = self._mixed(x)
                    if converted is None:
                        return None
                    ids, nums, inputs = converted
                break
        one = self.nout == 1
        out = NULL if one else _c.ids(self.nout)
        node = _mlp(self.handles.array, self.handles.n, self.sizes, self.acts, self.nlayers, ids,
                    self.nin, nums, self.nin if nums else 0, out, self.nout, self.where)
        if node < 0:
            raise _c.mlp_error(node, f"{self.name} forward", self.where)
        if inputs is None:  # numbers only: the parameters are the only operands
            region = self.region
        else:
            region = _new(Region)  # (Region((self.params, inputs)), written out: hot)
            region.operands, region.values = (self.params, inputs), None
        if one:  # (made(), written out: hot)
            y = _new(Value)
            y._id, y._a, y._b, y._r = node, None, None, region
            return y
        return [made(out[j], region) for j in range(self.nout)]

    def _mixed(self, x):
        """The pg_mlp input arrays for x, Values and numbers: (handles, 0 for
        a number; the numbers; the Values), each converted once, into lists of
        our own; None if an input is a Value of another type (its own ops must
        run, in the Python code)."""
        ids, nums, values = [], [], []
        for xi in x:
            if type(xi) is Value:
                ids.append(xi._id)
                nums.append(0.0)
                values.append(xi)
            elif isinstance(xi, Value):
                return None
            else:
                number = _number(xi)
                if number is None:
                    raise TypeError(f"{self.name}: an input must be a Value or a real number, "
                                    f"not {type_name(xi)!r}")
                ids.append(0)
                nums.append(number)
        if len(ids) != self.nin:  # (an input's __float__ changed x while it was read)
            raise ValueError(f"{self.name} takes {self.nin} inputs, got {len(ids)}")
        return ids, nums, values


def _ours(module, cls):
    """Whether module runs cls's own forward and parameters() (a subclass may
    change anything else)."""
    t = type(module)
    return isinstance(module, cls) and t.__call__ is cls.__call__ and \
        t.parameters is cls.parameters and "parameters" not in module.__dict__

