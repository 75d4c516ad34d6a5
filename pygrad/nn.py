"""pygrad.nn: micrograd's Module, Neuron, Layer and MLP.

Defaults are micrograd's: ReLU neurons with bias 0, and an MLP whose last
layer is linear. The tutorials' networks are a keyword away:

    MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")

is tanh on every neuron with biases drawn from uniform(-1, 1), as in seed
000. Weights are drawn with Python's `random` in micrograd's order, so
`random.seed(s)` gives micrograd's (and the tutorials') initial weights.
"""
import random

from .engine import UNARY_OPS, Value

#: What `act` and `out_act` accept: "linear", or any unary op of Value.
ACTIVATIONS = ("linear",) + UNARY_OPS
_NAMES = {"relu": "ReLU"}  # repr names that are not act.capitalize()


class Module:

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        return []


class Neuron(Module):
    """act(b + w0*x0 + w1*x1 + ...), summed in micrograd's order."""

    Value = Value  # the engine it builds on (pygrad.reference swaps in its own)

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
        return self._forward(self._check(x))

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

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{_NAMES.get(self.act, self.act.capitalize())}Neuron({len(self.w)})"


class Layer(Module):
    """nout neurons over the same inputs; a single Value when nout == 1."""

    Neuron = Neuron

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [self.Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        if self.neurons:
            x = self.neurons[0]._check(x)  # once: the neurons share their inputs
        out = [n._forward(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers nin -> nouts[0] -> ... -> nouts[-1]; act on all but the last,
    out_act on the last (micrograd: ReLU, then linear)."""

    Layer = Layer

    def __init__(self, nin, nouts, act="relu", out_act="linear", bias="zero"):
        sz = [nin] + list(nouts)
        last = len(nouts) - 1
        self.layers = [self.Layer(sz[i], sz[i + 1], act=out_act if i == last else act, bias=bias)
                       for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
