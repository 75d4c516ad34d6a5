"""pygrad.reference: the pure-Python engine, micrograd's engine.py with pygrad's ops.

It is the oracle of the tests and the baseline of the benchmarks, with the
same API as pygrad.engine and pygrad.nn (whose Module, Neuron, Layer and MLP
are written out again below, in micrograd's code, so that each checks the
other). Each op does the same float
operations, in the same order, as its kernel in csrc/ops.c, so both engines
give the same bits on the same program. Where it departs from micrograd:
- children are kept in operand order (`_children`) and the topological sort
  follows it; micrograd sorts through the `_prev` set, whose order, and so
  the order in which gradients add up, changes with object ids;
- data is always a float, tanh is math.tanh, and the ops micrograd lacks
  (sigmoid, log, ...) and their gradients are PyTorch's.
Like micrograd, it recurses: graphs deeper than ~1,000 nodes need pygrad.

This file follows micrograd (Copyright (c) 2020 Andrej Karpathy, MIT licence;
the notice is in LICENSE).
"""
import math
import numbers
import random


def _real(x):
    if isinstance(x, numbers.Real):
        return float(x)
    raise TypeError(f"Value data must be a real number, not {type(x).__name__!r}")


def _pow(a, k):
    """a ** k under Python's rules; a non-real result is a ValueError."""
    if a < 0 and math.isfinite(a) and math.isfinite(k) and k != math.floor(k):
        raise ValueError(f"{a!r} ** {k!r}: math domain error")
    return a**k


def _div(a, b):
    """C's a / b: what the backward kernels use, never raising."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _ieee_pow(a, k):
    """C's pow(a, k): what the backward kernels use, never raising."""
    try:
        return _pow(a, k)
    except ValueError:
        return math.nan
    except (ZeroDivisionError, OverflowError):
        odd = k == math.floor(k) and k % 2 == 1
        return math.copysign(math.inf, a) if odd else math.inf


def _ieee(f, x):
    """C's f(x) for math.sin and math.cos: what the backward kernels use,
    never raising (an infinite x, set as data after the forward, gives NaN)."""
    return math.nan if math.isinf(x) else f(x)


def _dpow(a, k):
    return 0.0 if k == 0 else k * _ieee_pow(a, k - 1.0)


class Value:
    """stores a single scalar value and its gradient"""

    def __init__(self, data, _children=(), _op="", label=""):
        self.data = _real(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._children = tuple(_children)
        self._prev = set(_children)
        self._op = _op
        self.label = label

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += 1.0 * out.grad
            other.grad += 1.0 * out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, other):
        if isinstance(other, Value):
            out = Value(_pow(self.data, other.data), (self, other), "**")

            def _backward():
                a, b = self.data, other.data
                self.grad += _dpow(a, b) * out.grad
                log_a = math.log(a) if a > 0 else -math.inf if a == 0 else math.nan
                other.grad += (0.0 if a == 0 and b >= 0 else out.data * log_a) * out.grad
            out._backward = _backward
            return out
        k = _real(other)
        out = Value(_pow(self.data, k), (self,), f"**{other}")

        def _backward():
            self.grad += _dpow(self.data, k) * out.grad
        out._backward = _backward
        return out

    def _unary(self, data, op, local_grad):
        """out = op(self); backward adds local_grad(out) * out.grad."""
        out = Value(data, (self,), op)

        def _backward():
            self.grad += local_grad(out) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        x = self.data
        return self._unary(0.0 if x < 0 else x, "ReLU", lambda out: out.data > 0)

    def tanh(self):
        return self._unary(math.tanh(self.data), "tanh", lambda out: 1.0 - out.data * out.data)

    def sigmoid(self):
        x = self.data
        if x >= 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return self._unary(s, "sigmoid", lambda out: out.data * (1.0 - out.data))

    def exp(self):
        return self._unary(math.exp(self.data), "exp", lambda out: out.data)

    def log(self):
        out = Value(math.log(self.data), (self,), "log")

        def _backward():
            self.grad += _div(out.grad, self.data)
        out._backward = _backward
        return out

    def sqrt(self):
        out = Value(math.sqrt(self.data), (self,), "sqrt")

        def _backward():
            self.grad += _div(out.grad, 2.0 * out.data)
        out._backward = _backward
        return out

    # The local gradients below read the operand's data when backward runs
    # (as mul's does, and as the C kernels do), not a copy taken at forward.
    def abs(self):
        def sign(out):
            x = self.data
            return 1.0 if x > 0 else -1.0 if x < 0 else 0.0 if x == 0 else x
        return self._unary(abs(self.data), "abs", sign)

    def sin(self):
        return self._unary(math.sin(self.data), "sin", lambda out: _ieee(math.cos, self.data))

    def cos(self):
        return self._unary(math.cos(self.data), "cos", lambda out: -_ieee(math.sin, self.data))

    def backward(self):
        # topological order all of the children in the graph
        topo = []
        visited = set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._children:
                    build_topo(child)
                topo.append(v)
        build_topo(self)

        # go one variable at a time and apply the chain rule to get its gradient
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()

    def __abs__(self):  # abs(self)
        return self.abs()

    def __neg__(self):  # -self
        return self * -1

    def __radd__(self, other):  # other + self
        return self + other

    def __sub__(self, other):  # self - other
        return self + (-other)

    def __rsub__(self, other):  # other - self
        return other + (-self)

    def __rmul__(self, other):  # other * self
        return self * other

    def __truediv__(self, other):  # self / other
        return self * other**-1

    def __rtruediv__(self, other):  # other / self
        return other * self**-1

    def __rpow__(self, other):  # other ** self
        return Value(other) ** self

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


# ---- micrograd's nn.py, on this engine, with pygrad.nn's keywords ------------
# (its own code, so that it checks pygrad.nn rather than sharing it)

def _inputs(x):
    """pygrad's API beyond micrograd's: one Value (a 1-neuron layer's output)
    is an input too, and any iterable is read once."""
    return [x] if isinstance(x, Value) else list(x)


class Module:

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        return []

    def save(self, file):
        from . import serialization
        serialization.save(self, file)

    def load(self, file):
        from . import serialization
        serialization.load(self, file)


class Neuron(Module):

    def __init__(self, nin, nonlin=True, act="relu", bias="zero"):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(random.uniform(-1, 1) if bias == "uniform" else 0)
        self.act = act if nonlin else "linear"
        self.nonlin = self.act != "linear"

    def __call__(self, x):
        x = _inputs(x)  # (and a wrong number of inputs is an error)
        if len(x) != len(self.w):
            raise ValueError(f"{self!r} takes {len(self.w)} inputs, got {len(x)}")
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return getattr(act, self.act)() if self.nonlin else act

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        name = "ReLU" if self.act == "relu" else self.act.capitalize()
        return f"{name}Neuron({len(self.w)})"


class Layer(Module):

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        x = _inputs(x)  # (once: an iterator feeds every neuron)
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):

    def __init__(self, nin, nouts, act="relu", out_act="linear", bias="zero"):
        sz = [nin] + list(nouts)
        last = len(nouts) - 1
        self.layers = [Layer(sz[i], sz[i + 1], act=out_act if i == last else act, bias=bias)
                       for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
