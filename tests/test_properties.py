"""Property-based tests (hypothesis): random programs over every op.

A program is a few leaves and a list of steps, each an op on earlier results
(so subexpressions are shared, and one Value can be both operands: x * x).
It runs on pygrad, on the pure-Python reference engine and on PyTorch
(float64); every result and every gradient must agree: to the bit with the
reference, to 1e-12 relative with PyTorch. A step that raises must raise the
same exception on both engines; the program then goes on without it, so
later steps build on a graph that has seen an error.

The ops come from the C op table (pygrad.engine), so a new op is drawn here
without editing this file. The number of examples is the settings profile's
(tests/conftest.py); the run's total is in the "inputs run" summary.
"""
import gc
import math
import re

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine, invariant, precondition, rule)

import pygrad  # noqa: E402
from pygrad import reference  # noqa: E402
from pygrad.engine import UNARY_OPS  # noqa: E402

OPS = {op.name: op.code for op in pygrad._c.OPS}  # the C op table: name -> code

from forms import BINARY, FORMS, MATH_ERRORS, USES, same  # noqa: E402  (tests/forms.py)

SPECIAL = [0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 5e-324, -5e-324,
           2.2250738585072014e-308, 1e-308, 1e308, -1e308, 1.0, -1.0, 2.0, 0.5]


def test_programs_draw_every_op_of_the_table():
    assert set(BINARY) == {name for name, op in OPS.items() if pygrad._c.lib.pg_op_arity(op) == 2}
    # powk: "x ** c"; leaf: the leaves; custom and group: tests/test_custom_ops.py's programs
    drawn = set(UNARY_OPS) | set(BINARY) | {"powk", "leaf", "custom", "group"}
    assert drawn == set(OPS), f"ops no program draws: {set(OPS) - drawn}"


@st.composite
def programs(draw, numbers, max_leaves=4, max_steps=14):
    """(leaves, steps): step k is (form, i, j, c), with i, j < leaves + k."""
    leaves = draw(st.lists(numbers, min_size=1, max_size=max_leaves))
    steps = []
    for k in range(draw(st.integers(1, max_steps))):
        n = len(leaves) + k
        steps.append((draw(st.sampled_from(sorted(FORMS))), draw(st.integers(0, n - 1)),
                      draw(st.integers(0, n - 1)), draw(numbers)))
    return leaves, steps


def run(V, leaves, steps):
    """Run a program on engine V, then backward from its last result.
    Returns every result (leaves first; a step that raised gives its
    operand x again) and the exception type each step raised (or None)."""
    nodes = [V(x) for x in leaves]
    raised = []
    for form, i, j, c in steps:
        try:
            nodes.append(FORMS[form](nodes[i], nodes[j], c))
            raised.append(None)
        except MATH_ERRORS as e:
            nodes.append(nodes[i])
            raised.append(type(e))
    nodes[-1].backward()
    return nodes, raised


def _describe(leaves, steps):
    """The program as Python, for a failure message."""
    names = [f"v{i}" for i in range(len(leaves))]
    lines = [f"{n} = Value({x!r})" for n, x in zip(names, leaves)]
    for form, i, j, c in steps:
        names.append(f"v{len(names)}")
        operand = {"x": names[i], "y": names[j], "c": repr(c)}
        lines.append(f"{names[-1]} = " + re.sub(r"\b[xyc]\b", lambda m: operand[m[0]], form))
    return "\n".join(lines)


# ---- random programs against the reference engine, to the bit ----------------

ANY_NUMBER = st.one_of(st.floats(-4, 4), st.sampled_from(SPECIAL), st.floats(),
                       st.integers(-3, 3))


@given(programs(ANY_NUMBER))
def test_random_programs_match_the_reference_engine_to_the_bit(tally, program):
    tally["hypothesis examples: programs vs the reference engine"] += 1
    leaves, steps = program
    got, got_raised = run(pygrad.Value, leaves, steps)
    want, want_raised = run(reference.Value, leaves, steps)
    where = _describe(leaves, steps)
    assert got_raised == want_raised, where
    for k, (g, w) in enumerate(zip(got, want)):
        assert same(g.data, w.data), f"v{k}.data {g.data!r} != {w.data!r}\n{where}"
        assert same(g.grad, w.grad), f"v{k}.grad {g.grad!r} != {w.grad!r}\n{where}"


# ---- random programs against PyTorch, float64 ---------------------------------

def _agree(a, b, scale, slack):
    """a and b agree to 1e-12 relative to the larger of them and scale, give
    or take slack (an estimate of an error bound, so four times it). NaN
    matches NaN and inf the same inf; and where slack is as large as the
    finite one of them, the inputs' rounding does not determine the result
    (x / (1 - x/x)), so anything goes."""
    slack *= 4
    if abs(a - b) <= 1e-12 * max(abs(a), abs(b), scale) + slack:
        return True
    if math.isnan(a) and math.isnan(b) or (math.isinf(a) and a == b):
        return True
    finite = [abs(x) for x in (a, b) if math.isfinite(x)]
    return len(finite) == 1 and slack >= finite[0]


def _local_derivatives(v):
    """d(v)/d(operand) for each operand of a reference-engine node: v's own
    _backward, run with v.grad = 1 and its operands' grads zeroed (then put
    back)."""
    saved = [(v, v.grad)] + [(c, c.grad) for c in v._children]
    for c in v._children:
        c.grad = 0.0
    v.grad = 1.0
    v._backward()
    local = {c: c.grad for c in v._children}
    for node, grad in reversed(saved):
        node.grad = grad
    return local


TINY = 2.0**-1074  # the gap between subnormal numbers: what an underflow can be off by
ROUNDING = 4 * 2.0**-52  # what one op of another engine may differ by (a few ulps; its exp is not glibc's)


def _tolerances(nodes):
    """How closely another engine must agree with each node of a reference-
    engine program (nodes; backward ran from the last): for every node in
    the graph, ((scale, slack) of its value, (scale, slack) of its
    gradient), for _agree.

    A value's scale is the largest magnitude among it and the values it was
    computed from (x - y, for x close to y, keeps the rounding of x and y,
    not its own size). Its slack is its error bound: each op's own rounding
    (ROUNDING of its scale, or TINY where it underflows) plus its operands'
    errors times its local derivatives (x / (1 - x/x): the 1 - x/x may be
    1e-16 or 0).
    A gradient's scale is the gradient if no terms cancelled, the sum over
    paths to the root of the product of |local derivatives| (x / x: x's
    gradient is 1/x - x/x**2, two large terms and ~0). Its slack: what the
    values' errors do to the local derivatives (the 1 - tanh(x)**2 of tanh
    at x = -9 keeps 8 digits of 16; the -sin(x) of cos at x = 1e110 is
    anything), found by moving each value by up to its error bound and
    watching the derivatives, and underflow in each product, each grown
    through the local derivatives after it."""
    order, seen = [], set()

    def visit(v):
        if v not in seen:
            seen.add(v)
            for child in v._children:
                visit(child)
            order.append(v)

    for v in nodes:
        visit(v)
    local = {v: _local_derivatives(v) for v in order if v._children}

    def size(x):
        return abs(x) if math.isfinite(x) else 0.0

    data = {}
    for v in order:  # operands first
        d = local.get(v, {})
        scale = max([size(v.data)] + [data[c][0] for c in d])
        rounding = (ROUNDING * scale + TINY) if d else 0.0  # a leaf is exact
        data[v] = (scale, rounding + sum(abs(x) * data[c][1] for c, x in d.items()))
    root = nodes[-1]
    grad = {root: (1.0, 0.0)}
    for v in reversed(order):  # the root first
        if v not in local:
            continue
        moved = dict.fromkeys(local[v], 0.0)
        for node in {v, *v._children}:
            x, error = node.data, data[node][1]
            if not math.isfinite(x):
                continue
            for step in (-error, -error / 2, error / 2, error):
                y = x + step
                for _ in range(4):  # and 1 to 4 ulps off that (sin(1e110) has a period of ~4)
                    y = node.data = math.nextafter(y, math.inf)
                    for c, d in _local_derivatives(v).items():
                        moved[c] = max(moved[c], abs(d - local[v][c]))
                node.data = x
        scale, slack = grad.get(v, (0.0, 0.0))
        for c, d in local[v].items():
            c_scale, c_slack = grad.get(c, (0.0, 0.0))
            grad[c] = (c_scale + abs(d) * scale,
                       c_slack + abs(d) * slack + moved[c] * scale + TINY * (1.0 + scale))

    def sure(t):  # a NaN bound (a NaN derivative on the way) bounds nothing
        return tuple(math.inf if x != x else x for x in t)

    return {v: (sure(data[v]), sure(grad.get(v, (0.0, 0.0)))) for v in order}


SMALL_NUMBER = st.one_of(st.floats(-3, 3), st.integers(-3, 3))


@given(programs(SMALL_NUMBER))
def test_random_programs_match_pytorch(tally, program):
    torch = pytest.importorskip("torch")
    from test_ops import _TorchValue  # a torch scalar behind Value's operators

    def leaf(x):
        return _TorchValue(torch.tensor(float(x), dtype=torch.float64, requires_grad=True))

    tally["hypothesis examples: programs vs PyTorch"] += 1
    leaves, steps = program
    got, raised = run(pygrad.Value, leaves, steps)
    # PyTorch does not raise on math errors: the steps pygrad refused are
    # left out of its program too. Every other result keeps its grad.
    torch_nodes = [leaf(x) for x in leaves]
    for k, (form, i, j, c) in enumerate(steps):
        out = torch_nodes[i] if raised[k] else FORMS[form](torch_nodes[i], torch_nodes[j], c)
        if not out.t.is_leaf:
            out.t.retain_grad()
        torch_nodes.append(out)
    torch_nodes[-1].t.backward()
    where = _describe(leaves, steps)
    ref_nodes, _ = run(reference.Value, leaves, steps)
    tolerance = _tolerances(ref_nodes)
    # A NaN gradient reaching relu is micrograd's (out > 0) * NaN, NaN, in
    # pygrad and the reference engine; PyTorch masks it to 0. So gradients
    # are compared where pygrad's are all finite (the reference test above
    # checks every gradient, bit for bit).
    grads_too = all(math.isfinite(g.grad) for g in got)
    for k, (g, t, r) in enumerate(zip(got, torch_nodes, ref_nodes)):
        (data_scale, data_slack), (grad_scale, grad_slack) = tolerance[r]
        assert _agree(g.data, t.t.item(), data_scale, data_slack), \
            f"v{k}.data {g.data!r} vs torch {t.t.item()!r}\n{where}"
        tg = 0.0 if t.t.grad is None else t.t.grad.item()
        assert not grads_too or _agree(g.grad, tg, grad_scale, grad_slack), \
            f"v{k}.grad {g.grad!r} vs torch {tg!r} (scale {grad_scale!r}, slack {grad_slack!r})\n{where}"
    tally["of which: programs vs PyTorch with gradients compared too"] += grads_too


# ---- sessions mixing valid ops, math errors and invalid operands ---------------

# Operands no op accepts (docs/pages/api.md): the exception each must raise.
def _invalid_operands():
    from decimal import Decimal
    bad = ["1.5", b"1", None, 1j, [1.0], (1.0,), {1: 2}, {1.0}, object(), Decimal("1.5"), print]
    try:
        import numpy as np
        bad += [np.array([1.0, 2.0]), np.array(3.0), np.complex128(1.0), np.str_("1")]
    except ImportError:
        pass
    return [(x, TypeError) for x in bad] + [(10**400, OverflowError), (-(10**400), OverflowError)]


INVALID = _invalid_operands()

# Numbers that make math errors likely: zeros, negatives, big and tiny.
RISKY_NUMBER = st.one_of(st.sampled_from(SPECIAL + [-2.0, 3.0, 800.0, -800.0, 0, -1, 2]),
                         st.floats(-5, 5), st.floats())


class Session(RuleBasedStateMachine):
    """A user session, run on pygrad and the reference engine side by side:
    every step does the same thing to both, and after every step (errors
    included) every Value either engine holds must still read back the same
    data and grad, to the bit. At the end every node goes back to the arena."""

    def __init__(self):
        super().__init__()
        # No gc.collect() here (it would be most of the run time): pygrad
        # Values are freed by reference counting alone (the reference
        # engine's are in cycles, but hold no pygrad Value), and the test
        # collected before the first session.
        self.baseline = pygrad.live_nodes()
        self.pairs = []  # (pygrad Value, reference Value)
        TALLY_SESSION[0] += 1

    def _pick(self, i):
        return self.pairs[i % len(self.pairs)]

    @rule(x=RISKY_NUMBER)
    def leaf(self, x):
        self.pairs.append((pygrad.Value(x), reference.Value(x)))

    @precondition(lambda self: self.pairs)
    @rule(form=st.sampled_from(sorted(FORMS)), i=st.integers(0, 99), j=st.integers(0, 99),
          c=RISKY_NUMBER)
    def op(self, form, i, j, c):
        (x, rx), (y, ry) = self._pick(i), self._pick(j)
        results = []
        for args in ((x, y, c), (rx, ry, c)):
            try:
                results.append(FORMS[form](*args))
            except MATH_ERRORS as e:
                results.append(type(e))
        assert [r if isinstance(r, type) else None for r in results] == \
               [r if isinstance(r, type) else None for r in results[::-1]], (form, results)
        if not isinstance(results[0], type):
            self.pairs.append(tuple(results))

    @precondition(lambda self: self.pairs)
    @rule(use=st.sampled_from(sorted(USES)), bad=st.sampled_from(INVALID), i=st.integers(0, 99))
    def invalid_operand(self, use, bad, i):
        x, _ = self._pick(i)
        operand, exc = bad
        if use == "pow(x, 2, b)":  # no modulo for floats, whatever b is (b = None: no modulo)
            if operand is None:
                return
            exc = TypeError
        with pytest.raises(exc):
            USES[use](x, operand)

    @precondition(lambda self: self.pairs)
    @rule(i=st.integers(0, 99))
    def backward(self, i):
        for v in self._pick(i):
            v.backward()

    @precondition(lambda self: self.pairs)
    @rule(i=st.integers(0, 99))
    def local_backward(self, i):
        for v in self._pick(i):
            v._backward()

    @precondition(lambda self: self.pairs)
    @rule(i=st.integers(0, 99), x=RISKY_NUMBER, field=st.sampled_from(["data", "grad"]))
    def assign(self, i, x, field):
        for v in self._pick(i):
            setattr(v, field, x)

    @precondition(lambda self: self.pairs)
    @rule(i=st.integers(0, 99))
    def drop(self, i):
        del self.pairs[i % len(self.pairs)]

    @invariant()
    def every_value_still_agrees(self):
        TALLY_SESSION[1] += 1
        for k, (v, r) in enumerate(self.pairs):
            assert same(v.data, r.data), (k, v, r)
            assert same(v.grad, r.grad), (k, v, r)

    def teardown(self):
        self.pairs.clear()
        assert pygrad.live_nodes() == self.baseline, "nodes leaked"


TALLY_SESSION = [0, 0]  # sessions, steps


def test_sessions_with_errors_and_invalid_operands(tally):
    gc.collect()
    before = list(TALLY_SESSION)
    Session.TestCase().runTest()
    tally["hypothesis examples: sessions of valid, failing and invalid steps"] += TALLY_SESSION[0] - before[0]
    tally["of which: steps in those sessions"] += TALLY_SESSION[1] - before[1]
