"""Every op's value and gradient: against PyTorch (float64), finite
differences, and the pure-Python reference engine (to the bit).

The ops come from the C op table (pygrad.engine.UNARY_OPS), so a new op in
csrc/ops.h is tested here without editing this file, provided PyTorch has a
function of the same name."""
import math

import pytest

import pygrad
from pygrad import reference
from pygrad.engine import UNARY_OPS

OPS = {op.name: op.code for op in pygrad._c.OPS}  # the C op table: name -> code
from helpers import rel_diff  # tests/helpers.py


# Points where each unary op is smooth and real; ops not listed use ANY.
ANY = [-2.3, -0.7, 0.4, 1.9]
DOMAIN = {"log": [0.3, 1.0, 2.7], "sqrt": [0.3, 1.0, 2.7], "relu": [-1.2, 0.8, 3.0]}
# (a, b) pairs for ops of two Values; the exponent of pow needs a > 0.
BINARY = {"add": [(-1.5, 2.25), (0.1, 0.2)], "mul": [(-1.5, 2.25), (3.0, -0.5)],
          "pow": [(1.7, 2.5), (0.6, -1.3), (2.0, 3.0)]}
# Python operators over Values and numbers, as micrograd composes them.
EXPRESSIONS = {
    "a + b": lambda a, b: a + b, "a * b": lambda a, b: a * b, "a - b": lambda a, b: a - b,
    "a / b": lambda a, b: a / b, "-a": lambda a, b: -a + b, "a ** 3": lambda a, b: a**3 * b,
    "a ** -1.5": lambda a, b: a**-1.5 + b, "a ** b": lambda a, b: a**b,
    "2 ** a": lambda a, b: 2**a * b, "3 - a": lambda a, b: 3 - a * b,
    "2 / a": lambda a, b: 2 / a + b, "a + 1.5": lambda a, b: (a + 1.5) * b,
    "0.5 * a": lambda a, b: 0.5 * a * b, "a / 4": lambda a, b: a / 4 - b,
    "abs(a)": lambda a, b: abs(a - b),
}
AB = (1.3, 0.7)


def grads(engine_value, f, *xs):
    vs = [engine_value(x) for x in xs]
    out = f(*vs)
    out.backward()
    return out.data, [v.grad for v in vs]


def unary(name):
    return lambda v: getattr(v, name)()


def binary(name):
    return {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "pow": lambda a, b: a**b}[name]


def cases():
    for name in UNARY_OPS:
        for x in DOMAIN.get(name, ANY):
            yield f"{name}({x})", unary(name), (x,)
    for name, pairs in BINARY.items():
        for a, b in pairs:
            yield f"{name}({a}, {b})", binary(name), (a, b)
    for text, f in EXPRESSIONS.items():
        yield text, f, AB


CASES = list(cases())
IDS = [c[0] for c in CASES]


def test_every_op_in_the_table_is_covered():
    # custom and group: a user's op, tested in tests/test_custom_ops.py
    covered = set(UNARY_OPS) | set(BINARY) | {"powk", "leaf", "custom", "group"}
    assert covered == set(OPS), f"ops without a test: {set(OPS) - covered}"
    for name in UNARY_OPS:
        assert callable(getattr(pygrad.Value, name)) and callable(getattr(reference.Value, name))


@pytest.mark.parametrize("label,f,xs", CASES, ids=IDS)
def test_matches_reference_engine_to_the_bit(label, f, xs):
    got = grads(pygrad.Value, f, *xs)
    want = grads(reference.Value, f, *xs)
    assert got == want, f"{label}: pygrad {got} != reference {want}"


@pytest.mark.parametrize("label,f,xs", CASES, ids=IDS)
def test_matches_finite_differences(label, f, xs):
    value, analytic = grads(pygrad.Value, f, *xs)
    h = 1e-6
    for i in range(len(xs)):
        up, down = list(xs), list(xs)
        up[i] += h
        down[i] -= h
        numeric = (f(*map(pygrad.Value, up)).data - f(*map(pygrad.Value, down)).data) / (2 * h)
        assert abs(numeric - analytic[i]) <= 1e-6 * max(1.0, abs(numeric)), \
            f"{label}: d/dx{i} analytic {analytic[i]} vs numeric {numeric}"


@pytest.mark.parametrize("label,f,xs", CASES, ids=IDS)
def test_matches_pytorch_float64(label, f, xs):
    torch = pytest.importorskip("torch")

    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = f(*[_TorchValue(t) for t in ts]).t
    out.backward()
    value, analytic = grads(pygrad.Value, f, *xs)
    assert rel_diff(value, out.item()) <= 1e-12, f"{label}: value {value} vs torch {out.item()}"
    for i, t in enumerate(ts):
        assert rel_diff(analytic[i], t.grad.item()) <= 1e-12, \
            f"{label}: grad {i} {analytic[i]} vs torch {t.grad.item()}"


class _TorchValue:
    """A torch scalar behind Value's interface, so one expression runs on both."""

    def __init__(self, t):
        self.t = t

    def _wrap(self, other):
        return other.t if isinstance(other, _TorchValue) else other

    def __add__(self, o): return _TorchValue(self.t + self._wrap(o))
    def __radd__(self, o): return _TorchValue(self._wrap(o) + self.t)
    def __mul__(self, o): return _TorchValue(self.t * self._wrap(o))
    def __rmul__(self, o): return _TorchValue(self._wrap(o) * self.t)
    def __sub__(self, o): return _TorchValue(self.t - self._wrap(o))
    def __rsub__(self, o): return _TorchValue(self._wrap(o) - self.t)
    def __truediv__(self, o): return _TorchValue(self.t / self._wrap(o))
    def __rtruediv__(self, o): return _TorchValue(self._wrap(o) / self.t)
    def __pow__(self, o): return _TorchValue(self.t ** self._wrap(o))
    def __rpow__(self, o): return _TorchValue(self._wrap(o) ** self.t)
    def __neg__(self): return _TorchValue(-self.t)
    def __abs__(self): return _TorchValue(abs(self.t))

    def __getattr__(self, name):  # v.tanh() -> torch.tanh(t)
        import torch
        return lambda: _TorchValue(getattr(torch, name)(self.t))


# ---- micrograd's published tests (test/test_engine.py) -----------------------

def sanity_check(Value):
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    return y.data, x.grad


def more_ops(Value):
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
    g.backward()
    return g.data, a.grad, b.grad


def test_micrograd_sanity_check():
    assert sanity_check(pygrad.Value) == sanity_check(reference.Value)
    torch = pytest.importorskip("torch")
    x = torch.tensor([-4.0], dtype=torch.float64, requires_grad=True)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert sanity_check(pygrad.Value) == (y.item(), x.grad.item())


def test_micrograd_more_ops():
    got = more_ops(pygrad.Value)
    assert got == more_ops(reference.Value)
    # micrograd's README quotes these to 4 places.
    assert [round(v, 4) for v in got] == [24.7041, 138.8338, 645.5773]
    torch = pytest.importorskip("torch")
    a = torch.tensor([-4.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    want = (g.item(), a.grad.item(), b.grad.item())
    assert all(rel_diff(x, y) <= 1e-12 for x, y in zip(got, want)), (got, want)


# ---- special values propagate as IEEE floats do ------------------------------

@pytest.mark.parametrize("x", [math.inf, -math.inf, math.nan])
def test_inf_and_nan_propagate_through_add_and_mul(x):
    v = pygrad.Value(x)
    out = v * 2 + 1
    want = x * 2 + 1
    assert (math.isnan(out.data) and math.isnan(want)) or out.data == want


def test_sigmoid_never_overflows():
    for x in (-1000.0, -745.0, 745.0, 1000.0, -math.inf, math.inf):
        s = pygrad.Value(x).sigmoid()
        assert 0.0 <= s.data <= 1.0
        s.backward()


# ---- odd corners where the two engines must still agree to the bit ------------

def _bits(x):
    import struct
    return struct.pack("<d", x)


EDGE_PROGRAMS = {
    # Gradients through non-real powers and log of negatives are NaN; the NaN
    # must be the same one (x86's C library makes -NaN, Python's math.nan is +NaN).
    "(-2) ** Value(b)": lambda V: (V(-2.0), V(2.0), lambda a, b: a**b),
    "x ** 0.5 at x = 0": lambda V: (V(0.0), V(1.0), lambda a, b: a**0.5 * b),
    "sqrt at 0": lambda V: (V(0.0), V(1.0), lambda a, b: a.sqrt() * b),
    "0 ** Value(b)": lambda V: (V(0.0), V(2.0), lambda a, b: a**b),
}


@pytest.mark.parametrize("name", list(EDGE_PROGRAMS))
def test_edge_gradients_match_the_reference_to_the_bit(name):
    results = []
    for V in (pygrad.Value, reference.Value):
        a, b, f = EDGE_PROGRAMS[name](V)
        out = f(a, b)
        out.backward()
        results.append([_bits(x) for x in (out.data, a.grad, b.grad)])
    assert results[0] == results[1]


@pytest.mark.parametrize("op", UNARY_OPS + ("powk",))
def test_data_changed_before_backward_is_read_by_both_engines_alike(op):
    """Changing a leaf's data between forward and backward (a micrograd
    habit) must change the gradients the same way in both engines."""
    results = []
    for V in (pygrad.Value, reference.Value):
        x = V(0.7)
        out = x**2.5 if op == "powk" else getattr(x, op)()
        x.data = -1.3 if op not in ("log", "sqrt", "powk") else 2.9
        out.backward()
        results.append(_bits(x.grad))
    assert results[0] == results[1]
