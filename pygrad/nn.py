"""pygrad.nn: micrograd's Module, Neuron, Layer and MLP.

Defaults are micrograd's: ReLU neurons with bias 0, and an MLP whose last
layer is linear. The tutorials' networks are a keyword away:

    MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")

is tanh on every neuron with biases drawn from uniform(-1, 1), as in seed
000. Weights are drawn with Python's `random` in micrograd's order, so
`random.seed(s)` gives micrograd's (and the tutorials') initial weights.
"""
from __future__ import annotations

import random

import numpy
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

from . import _c, serialization
from ._c import Handles
from .engine import OPS, UNARY_OPS, Value, _as_float, _fail, _made, _new, _type_name

if TYPE_CHECKING:
    from . import engine  # engine.Value, where a class's own `Value` attribute hides it

#: What a module takes: Values or numbers (a list, tuple, iterator or 1-D
#: numpy array), or one Value (a 1-neuron layer's output).
Inputs = Union[Iterable[Union[Value, float]], Value]

#: What `act` and `out_act` accept: "linear", or any unary op of Value.
ACTIVATIONS = ("linear",) + UNARY_OPS
_NAMES = {"relu": "ReLU"}  # repr names that are not act.capitalize()

# ---- keeping the C networks in step with the Python objects ----------------
# A Neuron, Layer or MLP on pygrad's Value runs its forward as one C call
# (csrc/nn.c) over the parameters' handles, which it collects once and
# caches. Each module counts the changes to its own structure (assigning an
# attribute, or changing one of its lists: n.w[0] = Value(0.5),
# layer.neurons.append(...)) in its _edits cell. A cache records the count of
# every module it was built from, so a change to a module rebuilds the caches
# of the modules that contain it (both MLPs that share a Layer, say) and of
# no other. _changes counts every change anywhere: while it stands still, a
# cache is known to be current without looking at its modules.
_changes = 0


def _edits(module):
    """The module's change counter: a one-element list, shared with its tracked lists."""
    cell = module.__dict__.get("_edits")
    if cell is None:
        cell = [0]
        object.__setattr__(module, "_edits", cell)  # not a structure change
    return cell


def _changed(method):
    def wrapper(self, *args, **kwargs):
        global _changes
        self._edits[0] += 1
        _changes += 1
        return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    return wrapper


class _Tracked(list):
    """A list of a module's parts (weights, neurons, layers) that reports
    changes to the module's _edits cell."""

    def __init__(self, items, edits):
        super().__init__(items)
        self._edits = edits

    def __reduce_ex__(self, protocol):  # copy and pickle: the items and the same cell
        return _Tracked, (list(self), self._edits)


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(_Tracked, _name, _changed(getattr(list, _name)))


class Module:

    def __setattr__(self, name, value):
        global _changes
        edits = _edits(self)
        if isinstance(value, list) and name in self._TRACKED:
            value = _Tracked(value, edits)
        object.__setattr__(self, name, value)
        edits[0] += 1
        _changes += 1

    _TRACKED: tuple[str, ...] = ()

    def __getstate__(self):  # copy, deepcopy, pickle: not the caches
        state = dict(self.__dict__)
        state.pop("_cache", None)
        return state

    def _modules(self) -> list[Module]:
        """This module and every module inside it (an attribute, or in a list
        or tuple attribute), each once: the modules whose changes invalidate
        this one's caches. Any user Module may sit inside a Layer or MLP."""
        found: list[Module] = []
        stack, seen = [self], {id(self)}
        while stack:
            m = stack.pop()
            found.append(m)
            for name, v in m.__dict__.items():
                if name == "_cache":  # what it found last time, and its parameters
                    continue
                for part in v if isinstance(v, (list, tuple)) else (v,):
                    if isinstance(part, Module) and id(part) not in seen:
                        seen.add(id(part))
                        stack.append(part)
        return found

    def zero_grad(self) -> None:
        h = self._handles()
        if h is None:
            for p in self.parameters():
                p.grad = 0
        else:  # one C call
            _c.check(_c.scatter(h, _c.GRAD), "zero_grad")

    def parameters(self) -> list[Value]:
        return []

    def save(self, file: serialization.File) -> None:
        """Write the parameters' data to file, a path or a binary file object
        (the format: pygrad/serialization.py)."""
        serialization.save(self, file)

    def load(self, file: serialization.File) -> None:
        """Set the parameters from a file that save() wrote for a model of
        this shape; ValueError, changing nothing, if it does not fit."""
        serialization.load(self, file)

    def _handles(self):
        """The parameters as Handles for the C library, or None if they are
        not all pygrad Values (pygrad.reference's modules, say)."""
        params = self.parameters()
        return Handles(params) if all(isinstance(p, Value) for p in params) else None


class _Dense(Module):
    """What Neuron, Layer and MLP share: a forward that is one C call when
    the module is built on pygrad's Value, and the handles it needs."""

    if TYPE_CHECKING:  # each subclass defines them
        def _layer_list(self) -> list[list[Neuron]]: ...
        def _collect(self) -> list[Value]: ...

    # [_changes when last checked, (edits cell, count) of each module it was
    # built from, the parameters, the _CNet (None: not pg_mlp's; _UNBUILT)]
    _cache: Any = None

    def _current(self):
        """The cache, checked against the modules it was built from, and
        rebuilt if one of them has changed since."""
        cache = self._cache
        if cache is not None and cache[0] == _changes:
            return cache
        if cache is not None and all(cell[0] == count for cell, count in cache[1]):
            cache[0] = _changes
            return cache
        counts = tuple((cell, cell[0]) for cell in map(_edits, self._modules()))
        cache = [_changes, counts, self._collect(), _UNBUILT]
        object.__setattr__(self, "_cache", cache)  # not a structure change
        return cache

    def _spec(self):
        """The forward as one C call (a _CNet), or None if pg_mlp cannot run it."""
        cache = self._current()
        if cache[3] is _UNBUILT:
            layers = self._layer_list()
            cache[3] = None
            if _uniform(layers):
                sizes = [len(layers[0][0].w)] + [len(layer) for layer in layers]
                acts = [OPS[layer[0].act] if layer[0].nonlin else 0 for layer in layers]
                cache[3] = _CNet(self, cache[2], sizes, acts)
        return cache[3]

    def _handles(self):
        net = self._spec()
        return net.params if net is not None else super()._handles()

    def parameters(self) -> list[Value]:
        """A new list of the parameters (collected once per structure change)."""
        cache = self._cache
        if cache is None or cache[0] != _changes:
            cache = self._current()
        return list(cache[2])


_UNBUILT = object()


def _uniform(layers):
    """Whether layers (lists of neurons) make a network pg_mlp can build:
    pygrad Values, each layer's neurons alike and fed by the layer before."""
    if not layers or not all(isinstance(layer, list) and layer for layer in layers):
        return False  # an empty layer, or a user's module standing in for one
    if not all(isinstance(n, Neuron) for layer in layers for n in layer):
        return False  # a user's module standing in for a neuron
    nin = len(layers[0][0].w)
    for layer in layers:
        for n in layer:
            if (n.Value is not Value or len(n.w) != nin or n.act != layer[0].act
                    or n.nonlin != layer[0].nonlin
                    or not all(isinstance(p, Value) for p in n.parameters())):
                return False
        nin = len(layer)
    return True


class _CNet:
    """A network's forward as one C call (csrc/nn.c: pg_mlp)."""

    __slots__ = ("name", "params", "sizes", "acts", "nlayers", "nin", "nout", "zeros")

    def __init__(self, module, params, sizes, acts):
        self.name = f"{type(module).__name__}({sizes[0]}, {sizes[1:]})"
        self.params = Handles(params)
        self.sizes = _c.int32s(sizes)
        self.acts = _c.int32s(acts)
        self.nlayers, self.nin, self.nout = len(acts), sizes[0], sizes[-1]
        self.zeros = _c.ids(sizes[0])  # the input handles when every input is a number

    def forward(self, x, _mlp=_c.mlp, _new=_new, Value=Value, NULL=_c.NULL):
        """x: nin inputs, Values or numbers. Returns micrograd's output: a
        Value if the last layer has one neuron, else a list of Values."""
        ids, nums = self.zeros, x  # numbers only (the common case): nothing to convert
        if type(x) is not list and type(x) is not tuple:
            ids, nums = self._inputs(x)
        else:
            for xi in x:
                if type(xi) is not float and type(xi) is not int:
                    ids, nums = self._inputs(x)
                    break
        one = self.nout == 1
        out = NULL if one else _c.ids(self.nout)
        node = _mlp(self.params.array, self.params.n, self.sizes, self.acts, self.nlayers, ids,
                    len(ids), nums, len(nums) if nums else 0, out, self.nout, _c.WHERE)
        if node < 0:
            raise _c.mlp_error(node, f"{self.name} forward")
        if one:  # (_made, written out: a hot path)
            y = _new(Value)
            y._id, y._a, y._b = node, None, None
            return y
        return [_made(out[j], None, None) for j in range(self.nout)]

    def _inputs(self, x):
        """The pg_mlp input arrays for x (not all numbers): node handles (0
        for a number), numbers."""
        if self.nin and type(x[0]) is Value:
            try:
                return [v._id for v in x], _c.NULL
            except AttributeError:  # not all Values: the general case
                pass
        ids, nums = [], []
        for xi in x:
            if isinstance(xi, Value):
                ids.append(xi._id)
                nums.append(0.0)
            else:
                number = _as_float(xi)
                if number is None:
                    raise TypeError(f"{self.name}: an input must be a Value or a real number, "
                                    f"not {_type_name(xi)!r}")
                ids.append(0)
                nums.append(number)
        return ids, nums


class Neuron(_Dense):
    """act(b + w0*x0 + w1*x1 + ...), summed in micrograd's order."""

    Value = Value  # the engine it builds on (pygrad.reference swaps in its own)
    _TRACKED = ("w",)

    def __init__(self, nin: int, nonlin: bool = True, act: str = "relu",
                 bias: str = "zero") -> None:
        if not isinstance(nin, int) or isinstance(nin, bool):
            raise TypeError(f"nin must be an int, not {_type_name(nin)!r}")
        if nin < 0:
            raise ValueError(f"nin must be a non-negative int, not {nin!r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {ACTIVATIONS}, not {act!r}")
        if bias not in ("zero", "uniform"):
            raise ValueError(f"bias must be 'zero' or 'uniform', not {bias!r}")
        self.w = [self.Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = self.Value(random.uniform(-1, 1) if bias == "uniform" else 0)
        self.act = act if nonlin else "linear"
        self.nonlin = self.act != "linear"

    def __call__(self, x: Inputs) -> engine.Value:
        x = self._check(x)
        dense = self._spec()
        return self._forward(x) if dense is None else dense.forward(x)

    def _layer_list(self):
        return [[self]]

    def _check(self, x):
        """x as a sized sequence of this neuron's input count, or ValueError.
        A Value (a 1-neuron layer's output) becomes [x]; any other iterable
        but a list, tuple or array (an iterator, a set, a dict: its keys) a
        list, in the order micrograd's zip would read it."""
        if isinstance(x, self.Value):
            x = [x]
        elif not isinstance(x, (list, tuple, numpy.ndarray)):
            x = list(x)
        if len(x) != len(self.w):
            raise ValueError(f"{self!r} takes {len(self.w)} inputs, got {len(x)}")
        return x

    def _forward(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return getattr(act, self.act)() if self.nonlin else act

    def _collect(self):
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{_NAMES.get(self.act, self.act.capitalize())}Neuron({len(self.w)})"


class Layer(_Dense):
    """nout neurons over the same inputs; a single Value when nout == 1."""

    Neuron = Neuron
    _TRACKED = ("neurons",)

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        if not isinstance(nout, int) or isinstance(nout, bool):
            raise TypeError(f"nout must be an int, not {_type_name(nout)!r}")
        if nout < 0:
            raise ValueError(f"nout must be a non-negative int, not {nout!r}")
        self.neurons = [self.Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Inputs) -> Any:  # a Value if nout == 1, else a list of Values
        if self.neurons:
            x = self.neurons[0]._check(x)  # once: the neurons share their inputs
        dense = self._spec()
        if dense is not None:
            return dense.forward(x)
        out = [n._forward(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def _layer_list(self):
        return [self.neurons]

    def _collect(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(_Dense):
    """Layers nin -> nouts[0] -> ... -> nouts[-1]; act on all but the last,
    out_act on the last (micrograd: ReLU, then linear).

    On pygrad's Value the whole forward is one C call, building the same
    graph as micrograd's layer-by-layer forward."""

    Layer = Layer
    _TRACKED = ("layers",)

    def __init__(self, nin: int, nouts: Sequence[int], act: str = "relu", out_act: str = "linear",
                 bias: str = "zero") -> None:
        sz = [nin] + list(nouts)
        last = len(nouts) - 1
        self.layers = [self.Layer(sz[i], sz[i + 1], act=out_act if i == last else act, bias=bias)
                       for i in range(len(nouts))]

    def __call__(self, x: Inputs) -> Any:  # a Value if the last layer has one neuron, else a list
        cache = self._cache  # (_spec(), without a call while nothing has changed)
        dense: Any = cache[3] if cache is not None and cache[0] == _changes else _UNBUILT
        if dense is _UNBUILT:
            dense = self._spec()
        if dense is not None:
            if type(x) is not list or len(x) != dense.nin:
                x = self.layers[0].neurons[0]._check(x)
            return dense.forward(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def _layer_list(self):
        return [getattr(layer, "neurons", None) for layer in self.layers]

    def _collect(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
