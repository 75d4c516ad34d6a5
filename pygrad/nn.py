"""pygrad.nn: micrograd's Module, Neuron, Layer and MLP.

Defaults are micrograd's: ReLU neurons with bias 0, and an MLP whose last
layer is linear. The tutorials' networks are a keyword away:

    MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")

is tanh on every neuron with biases drawn from uniform(-1, 1), as in seed
000. Weights are drawn with Python's `random` in micrograd's order, so
`random.seed(s)` gives micrograd's (and the tutorials') initial weights.

The code below is micrograd's (Copyright (c) 2020 Andrej Karpathy, MIT
licence; the notice is in LICENSE). On pygrad's Value, a forward runs as one C
call (csrc/nn.c) wherever that builds exactly what the code builds, node
for node, and the parameters are collected once per change of structure:
pygrad/_fastpath.py decides when, and keeps what those need. A subclass that
changes __call__, parameters() or the activation runs its own code.
"""
from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

from . import _fastpath
from .engine import UNARY_OPS, Value, type_name

if TYPE_CHECKING:
    from . import engine, serialization  # (engine.Value, where a class's own Value hides it)

#: What a module takes: Values or numbers (a list, tuple, iterator or 1-D
#: numpy array), or one Value (a 1-neuron layer's output).
Inputs = Union[Iterable[Union[Value, float]], Value]

#: What `act` and `out_act` name: "linear", or a unary method of Value.
ACTIVATIONS = ("linear",) + UNARY_OPS
_NAMES = {"relu": "ReLU"}  # repr names that are not act.capitalize()


class Module(_fastpath.Tracked):

    def zero_grad(self) -> None:
        if not _fastpath.zero_grad(self):  # (one C call for Values)
            for p in self.parameters():
                p.grad = 0

    def parameters(self) -> list[Value]:
        return []

    def save(self, file: serialization.File) -> None:
        """Write the parameters' data to file, a path or a binary file object
        (the format: pygrad/serialization.py)."""
        from . import serialization  # (imported here: `import pygrad` stays light)
        serialization.save(self, file)

    def load(self, file: serialization.File) -> None:
        """Set the parameters from a file that save() wrote for a model of
        this shape; ValueError, changing nothing, if it does not fit."""
        from . import serialization
        serialization.load(self, file)

    def _handles(self) -> Any:
        """The parameters as a C array of handles, or None if they are not
        all pygrad Values (pygrad.reference's, say)."""
        return _fastpath.handles(self)


class Neuron(Module):
    """act(b + w0*x0 + w1*x1 + ...), summed in micrograd's order."""

    _TRACKED = ("w",)

    def __init__(self, nin: int, nonlin: bool = True, act: str = "relu",
                 bias: str = "zero") -> None:
        if not isinstance(nin, int) or isinstance(nin, bool):
            raise TypeError(f"nin must be an int, not {type_name(nin)!r}")
        if nin < 0:
            raise ValueError(f"nin must be a non-negative int, not {nin!r}")
        if not isinstance(act, str) or act.startswith("_") or \
                (act != "linear" and not callable(getattr(Value, act, None))):
            raise ValueError(f"act must be one of {ACTIVATIONS} (or a method of Value), not {act!r}")
        if bias not in ("zero", "uniform"):
            raise ValueError(f"bias must be 'zero' or 'uniform', not {bias!r}")
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(random.uniform(-1, 1) if bias == "uniform" else 0)
        self.act = act if nonlin else "linear"
        self.nonlin = self.act != "linear"

    def __call__(self, x: Inputs) -> engine.Value:
        xs = _inputs(x)
        out = _fastpath.forward(self, xs)  # one C call, where it builds what the code below builds
        if out is not None:
            return out
        if len(xs) != len(self.w):
            raise ValueError(f"{self!r} takes {len(self.w)} inputs, got {len(xs)}")
        act = sum((wi * xi for wi, xi in zip(self.w, xs)), self.b)
        return getattr(act, self.act)() if self.nonlin else act

    def parameters(self) -> list[Value]:
        params = _fastpath.parameters(self)  # as collected after the last change, if any
        return params if params is not None else _fastpath.remember(self, self.w + [self.b])

    def __repr__(self) -> str:
        return f"{_NAMES.get(self.act, self.act.capitalize())}Neuron({len(self.w)})"


class Layer(Module):
    """nout neurons over the same inputs; a single Value when nout == 1."""

    _TRACKED = ("neurons",)

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        if not isinstance(nout, int) or isinstance(nout, bool):
            raise TypeError(f"nout must be an int, not {type_name(nout)!r}")
        if nout < 0:
            raise ValueError(f"nout must be a non-negative int, not {nout!r}")
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Inputs) -> Any:  # a Value if nout == 1, else a list of Values
        x = _inputs(x)
        out = _fastpath.forward(self, x)
        if out is not None:
            return out
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        params = _fastpath.parameters(self)
        return params if params is not None else \
            _fastpath.remember(self, [p for n in self.neurons for p in n.parameters()])

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers nin -> nouts[0] -> ... -> nouts[-1]; act on all but the last,
    out_act on the last (micrograd: ReLU, then linear)."""

    _TRACKED = ("layers",)

    def __init__(self, nin: int, nouts: Sequence[int], act: str = "relu", out_act: str = "linear",
                 bias: str = "zero") -> None:
        sz = [nin] + list(nouts)
        last = len(nouts) - 1
        self.layers = [Layer(sz[i], sz[i + 1], act=out_act if i == last else act, bias=bias)
                       for i in range(len(nouts))]

    def __call__(self, x: Inputs) -> Any:  # a Value if the last layer has one neuron, else a list
        x = _inputs(x)
        out = _fastpath.forward(self, x)
        if out is not None:
            return out
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Value]:
        params = _fastpath.parameters(self)
        return params if params is not None else \
            _fastpath.remember(self, [p for layer in self.layers for p in layer.parameters()])

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


_fastpath.CACHING.update({Neuron.parameters, Layer.parameters, MLP.parameters})


def _inputs(x: Inputs) -> list[Any]:
    """x as a new list of inputs: a Value (a 1-neuron layer's output) becomes
    [x]; any iterable (a list, tuple, numpy array, iterator, set, dict: its
    keys) is read as micrograd's zip reads it, once."""
    if type(x) is list or type(x) is tuple:
        return list(x)
    if isinstance(x, Value):
        return [x]
    np = sys.modules.get("numpy")  # (x is an array only if numpy is loaded)
    if np is not None and isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "biuf":
        return x.tolist()
    return list(x)
