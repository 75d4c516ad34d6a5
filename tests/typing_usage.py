"""A user's typed program: checked by mypy against pygrad's annotations
(`python -m mypy`, configured in pyproject.toml; .ci/run runs it), and run
by tests/test_packaging.py, so every line here is working code.

assert_type fails the type check unless an expression's type is exactly
the one named: an Any where a Value is promised fails it too.
"""
from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

import pygrad
from pygrad import MLP, Layer, Module, Neuron, Tape, Value, losses
from pygrad.optim import SGD, Adam

if sys.version_info >= (3, 11):
    from typing import assert_type
elif TYPE_CHECKING:
    from typing_extensions import assert_type
else:  # run, not checked, where typing_extensions may be absent
    def assert_type(value, _type):
        return value


def quickstart() -> tuple[float, float, float]:
    """micrograd's README example: (g.data, a.grad, b.grad)."""
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    assert_type(g, Value)
    g.backward()
    return g.data, a.grad, b.grad


def every_operator(x: Value, y: Value) -> list[Value]:
    out = [x + y, x + 1, 1.5 + x, x - y, x - 1, 2 - x, x * y, x * 2, 2 * x,
           x / y, x / 2, 2 / x, x**2, x**y, 2**x, -x, abs(x)]
    out += [x.relu(), x.tanh(), x.sigmoid(), x.exp(), x.log(), x.sqrt(), x.abs(),
            x.sin(), x.cos()]
    for v in out:
        assert_type(v, Value)
    assert_type(x._prev, set[Value])
    assert_type(x._op, str)
    assert_type(x.label, str)
    x.label = "x"
    x.grad = 0.0
    return out


def train(steps: int = 20) -> tuple[float, float]:
    """The tutorials' loop with pygrad.nn and an optimizer; (first, last) loss."""
    random.seed(0)
    model = MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    params = model.parameters()
    assert_type(params, list[Value])
    opt = SGD(params, lr=0.05)
    history = []
    for _ in range(steps):
        loss = losses.mse([model(x) for x in xs], ys)
        assert_type(loss, Value)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.data)
    opt.lr = 0.01
    return history[0], history[-1]


def replay() -> npt.NDArray[np.float64]:
    """A Tape over one neuron's loss, trained in one C call with Adam."""
    random.seed(1)
    n = Neuron(2, act="tanh")
    x = [Value(0.0), Value(0.0)]
    out = n(x)
    assert_type(out, Value)
    loss = (out - 0.5) ** 2
    tape = Tape(loss)
    assert_type(tape.forward(), float)
    data = np.array([[1.0, 2.0], [-1.0, 0.5]])
    history = tape.train(50, Adam(n, lr=0.01), inputs=x, data=data)
    assert_type(history, npt.NDArray[np.float64])
    return history


def arrays(module: Module) -> npt.NDArray[np.float64]:
    w = pygrad.get_data(module)
    pygrad.set_data(module, w * 0.5)
    pygrad.set_grad(module.parameters(), 0.0)
    return pygrad.get_grad(module)


def main() -> None:
    print(quickstart())
    every_operator(Value(0.5), Value(1.5))
    print(train())
    print(replay()[[0, -1]])
    print(arrays(Layer(3, 2)))
    assert_type(pygrad.live_nodes(), int)


if __name__ == "__main__":
    main()
