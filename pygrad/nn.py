"""pygrad.nn: micrograd's Module, Neuron, Layer and MLP.

Defaults are micrograd's: ReLU neurons with bias 0, and an MLP whose last
layer is linear. The tutorials' networks are a keyword away:

    MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")

is tanh on every neuron with biases drawn from uniform(-1, 1), as in seed
000. Weights are drawn with Python's `random` in micrograd's order, so
`random.seed(s)` gives micrograd's (and the tutorials') initial weights.
"""
import random

from _pygrad import ffi, lib

from .arrays import Handles
from .engine import OPS, UNARY_OPS, Value, _as_float, _fail, _made, _type_name

#: What `act` and `out_act` accept: "linear", or any unary op of Value.
ACTIVATIONS = ("linear",) + UNARY_OPS
_NAMES = {"relu": "ReLU"}  # repr names that are not act.capitalize()

# ---- keeping the C networks in step with the Python objects ----------------
# A Neuron, Layer or MLP on pygrad's Value runs its forward as one C call
# (csrc/nn.c) over the parameters' handles, which it collects once and
# caches. Any change to a module's structure (assigning an attribute, or
# changing one of its lists: n.w[0] = Value(0.5), layer.neurons.append(...))
# bumps _version, and every cache made before is rebuilt on its next use.
_version = [0]


def _changed(method):
    def wrapper(self, *args, **kwargs):
        _version[0] += 1
        return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    return wrapper


class _Tracked(list):
    """A list of a module's parts (weights, neurons, layers) that reports changes."""


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(_Tracked, _name, _changed(getattr(list, _name)))


class Module:

    def __setattr__(self, name, value):
        if isinstance(value, list) and name in self._TRACKED:
            value = _Tracked(value)
        object.__setattr__(self, name, value)
        _version[0] += 1

    _TRACKED = ()

    def __getstate__(self):  # copy, deepcopy, pickle: not the caches
        state = dict(self.__dict__)
        state.pop("_cached", None)
        state.pop("_params", None)
        return state

    def zero_grad(self):
        h = self._handles()
        if h is None:
            for p in self.parameters():
                p.grad = 0
        else:  # one C call
            status = lib.pg_scatter(h.array, h.n, lib.PG_GRAD, ffi.NULL, 0.0)
            if status:
                _fail(status, "zero_grad")

    def parameters(self):
        return []

    def _handles(self):
        """The parameters as Handles for the C library, or None if they are
        not all pygrad Values (pygrad.reference's modules, say)."""
        params = self.parameters()
        return Handles(params) if all(isinstance(p, Value) for p in params) else None


class _Dense(Module):
    """What Neuron, Layer and MLP share: a forward that is one C call when
    the module is built on pygrad's Value, and the handles it needs."""

    def _spec(self):
        spec = self.__dict__.get("_cached")
        if spec is None or spec[0] != _version[0]:
            layers = self._layer_list()
            spec = (_version[0], None)
            if _uniform(layers):
                sizes = [len(layers[0][0].w)] + [len(layer) for layer in layers]
                acts = [OPS[layer[0].act] if layer[0].nonlin else 0 for layer in layers]
                spec = (_version[0], _CNet(self, sizes, acts))
            object.__setattr__(self, "_cached", spec)  # not a structure change
        return spec[1]

    def _handles(self):
        net = self._spec()
        return net.params if net is not None else super()._handles()

    def parameters(self):
        """A new list of the parameters (collected once per structure change)."""
        cached = self.__dict__.get("_params")
        if cached is None or cached[0] != _version[0]:
            cached = (_version[0], self._collect())
            object.__setattr__(self, "_params", cached)
        return list(cached[1])


def _uniform(layers):
    """Whether layers (lists of neurons) make a network pg_mlp can build:
    pygrad Values, each layer's neurons alike and fed by the layer before."""
    if not layers or not all(layers):
        return False
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

    def __init__(self, module, sizes, acts):
        self.name = f"{type(module).__name__}({sizes[0]}, {sizes[1:]})"
        self.params = Handles(module.parameters())
        self.sizes = ffi.new("int32_t[]", sizes)
        self.acts = ffi.new("int32_t[]", acts)
        self.nlayers, self.nin, self.nout = len(acts), sizes[0], sizes[-1]
        self.zeros = [0] * sizes[0]  # the input handles when every input is a number

    def __call__(self, x):
        """x: nin inputs, Values or numbers. Returns micrograd's output: a
        Value if the last layer has one neuron, else a list of Values."""
        ids, nums = self._inputs(x)
        out = ffi.NULL if self.nout == 1 else ffi.new("pg_id[]", self.nout)
        p = self.params
        node = lib.pg_mlp(p.array, self.sizes, self.acts, self.nlayers, ids, nums, out)
        if node < 0:
            _fail(node, f"{self.name} forward, an activation")
        if self.nout == 1:
            return _made(node, None, None)
        return [_made(out[j], None, None) for j in range(self.nout)]

    def _inputs(self, x):
        """The pg_mlp input arrays for x: node handles (0 for a number), numbers."""
        if self.nin and type(x[0]) is Value:
            try:
                return [v._id for v in x], ffi.NULL
            except AttributeError:  # not all Values: the general case
                pass
        elif type(x) is list or type(x) is tuple:
            for xi in x:
                if type(xi) is not float and type(xi) is not int:
                    break
            else:
                return self.zeros, x
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

    def __init__(self, nin, nonlin=True, act="relu", bias="zero"):
        if not isinstance(nin, int) or nin < 0:
            raise ValueError(f"nin must be a non-negative int, not {nin!r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {ACTIVATIONS}, not {act!r}")
        if bias not in ("zero", "uniform"):
            raise ValueError(f"bias must be 'zero' or 'uniform', not {bias!r}")
        self.w = [self.Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = self.Value(random.uniform(-1, 1) if bias == "uniform" else 0)
        self.act = act if nonlin else "linear"
        self.nonlin = self.act != "linear"

    def __call__(self, x):
        x = self._check(x)
        dense = self._spec()
        return self._forward(x) if dense is None else dense(x)

    def _layer_list(self):
        return [[self]]

    def _check(self, x):
        """x as a sized sequence of this neuron's input count, or ValueError.
        A Value (a 1-neuron layer's output) becomes [x]; an iterator a list."""
        if isinstance(x, self.Value):
            x = [x]
        elif not hasattr(x, "__len__"):
            x = list(x)
        if len(x) != len(self.w):
            raise ValueError(f"{self!r} takes {len(self.w)} inputs, got {len(x)}")
        return x

    def _forward(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return getattr(act, self.act)() if self.nonlin else act

    def _collect(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{_NAMES.get(self.act, self.act.capitalize())}Neuron({len(self.w)})"


class Layer(_Dense):
    """nout neurons over the same inputs; a single Value when nout == 1."""

    Neuron = Neuron
    _TRACKED = ("neurons",)

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [self.Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        if self.neurons:
            x = self.neurons[0]._check(x)  # once: the neurons share their inputs
        dense = self._spec()
        if dense is not None:
            return dense(x)
        out = [n._forward(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def _layer_list(self):
        return [self.neurons]

    def _collect(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(_Dense):
    """Layers nin -> nouts[0] -> ... -> nouts[-1]; act on all but the last,
    out_act on the last (micrograd: ReLU, then linear).

    On pygrad's Value the whole forward is one C call, building the same
    graph as micrograd's layer-by-layer forward."""

    Layer = Layer
    _TRACKED = ("layers",)

    def __init__(self, nin, nouts, act="relu", out_act="linear", bias="zero"):
        sz = [nin] + list(nouts)
        last = len(nouts) - 1
        self.layers = [self.Layer(sz[i], sz[i + 1], act=out_act if i == last else act, bias=bias)
                       for i in range(len(nouts))]

    def __call__(self, x):
        dense = self._spec()
        if dense is not None:
            if type(x) is not list or len(x) != dense.nin:
                x = self.layers[0].neurons[0]._check(x)
            return dense(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def _layer_list(self):
        return [layer.neurons for layer in self.layers]

    def _collect(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
