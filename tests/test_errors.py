"""Python's error rules (docs/pages/api.md): the same exception type as Python's
float and math module give, a message naming the op, and every existing
Value (and the arena) intact afterwards."""
import gc
import itertools
import math
import os
import subprocess
import sys

import pytest

import pygrad
from pygrad import Value, reference
from pygrad._c import lib

# (what the program does, the exception, a piece of its message)
MATH_ERRORS = [
    ("Value(1.0) / 0", ZeroDivisionError, "division by zero"),
    ("Value(1.0) / Value(0.0)", ZeroDivisionError, "division by zero"),
    ("2 / Value(0.0)", ZeroDivisionError, "division by zero"),
    ("Value(0.0) ** -1", ZeroDivisionError, "**"),
    ("Value(-0.0) ** -2.5", ZeroDivisionError, "**"),
    ("Value(0.0) ** Value(-1.0)", ZeroDivisionError, "**"),
    ("Value(1000.0).exp()", OverflowError, "exp(1000.0)"),
    ("Value(10.0) ** 400", OverflowError, "**"),
    ("Value(10.0) ** Value(400.0)", OverflowError, "**"),
    ("10.0 ** Value(400.0)", OverflowError, "**"),
    ("Value(-1.0).log()", ValueError, "log(-1.0)"),
    ("Value(0.0).log()", ValueError, "log(0.0)"),
    ("Value(-0.0).log()", ValueError, "log(-0.0)"),
    ("Value(-8.0) ** 0.5", ValueError, "**"),
    ("Value(-8.0) ** Value(1 / 3)", ValueError, "**"),
    ("Value(-1.0).sqrt()", ValueError, "sqrt(-1.0)"),
    ("Value(math.inf).sin()", ValueError, "sin(inf)"),
    ("Value(-math.inf).cos()", ValueError, "cos(-inf)"),
]

# Edge cases where Python gives a number, not an error: so must we.
NOT_ERRORS = [
    ("Value(0.0) ** -math.inf", math.inf), ("Value(-math.inf) ** 0.5", math.inf),
    ("Value(math.inf).exp()", math.inf), ("Value(-math.inf).exp()", 0.0),
    ("Value(math.inf).log()", math.inf), ("Value(2.0) ** -2000", 0.0),
    ("Value(0.0) ** 0", 1.0), ("Value(-8.0) ** 3", -512.0), ("Value(1e308) * 10", math.inf),
]

TYPE_ERRORS = [
    ("Value('1.5')", "str"), ("Value(None)", "NoneType"), ("Value(1j)", "complex"),
    ("Value([1.0])", "list"), ("Value(b'1')", "bytes"), ("Value(object())", "object"),
    ("Value(1.0) + 'a'", "+"), ("'a' * Value(1.0)", "multiply"), ("Value(1.0) - None", "-"),
    ("Value(1.0) / 'x'", "/"), ("[1] / Value(1.0)", "/"), ("Value(1.0) ** 'a'", "**"),
    ("'a' ** Value(1.0)", "**"), ("pow(Value(2.0), 2, 3)", "pow"), ("Value(1.0) ** 1j", "**"),
    ("Value(1.0) * {}", "*"), ("Value(1.0) + (1, 2)", "+"),
]


def run(program, engine=pygrad):
    return eval(program, {"Value": engine.Value, "math": math})


@pytest.mark.parametrize("program,exc,words", MATH_ERRORS, ids=[m[0] for m in MATH_ERRORS])
def test_math_errors_raise_pythons_exception_naming_the_op(program, exc, words, arena_baseline):
    keep = Value(3.5)
    keep.grad = 1.25
    with pytest.raises(exc) as info:
        run(program)
    assert words in str(info.value), str(info.value)
    # The pure-Python engine fails the same way on the same program.
    with pytest.raises(exc):
        run(program, reference)
    assert (keep.data, keep.grad) == (3.5, 1.25)


@pytest.mark.parametrize("program,want", NOT_ERRORS, ids=[m[0] for m in NOT_ERRORS])
def test_python_edge_cases_that_are_not_errors(program, want):
    assert run(program).data == want == run(program, reference).data


@pytest.mark.parametrize("program,words", TYPE_ERRORS, ids=[t[0] for t in TYPE_ERRORS])
def test_non_numbers_raise_type_error(program, words):
    with pytest.raises(TypeError) as info:
        run(program)
    assert words in str(info.value), str(info.value)


def test_numpy_arrays_are_not_scalars():
    np = pytest.importorskip("numpy")
    for bad in (np.array([1.0]), np.array(2.0), np.zeros(3)):
        with pytest.raises(TypeError, match="ndarray"):
            Value(bad)
        with pytest.raises(TypeError):
            Value(1.0) * bad


def test_real_numbers_of_every_kind_are_accepted():
    from fractions import Fraction
    np = pytest.importorskip("numpy")
    kinds = [3, 3.0, True, Fraction(3, 1), np.float64(3), np.float32(3), np.int64(3),
             np.int8(3), np.uint16(3), np.float16(3)]
    for x in kinds:
        v = Value(x)
        assert v.data == float(x) and type(v.data) is float, x
        assert (Value(2.0) * x).data == 2.0 * float(x), x
        assert (x * Value(2.0)).data == 2.0 * float(x), x
        assert (Value(2.0) + x).data == 2.0 + float(x), x
        assert (x - Value(2.0)).data == float(x) - 2.0, x
        v.data = x
        v.grad = x
        assert (v.data, v.grad) == (float(x), float(x))


def test_setting_data_or_grad_to_a_non_number_raises_and_keeps_the_old_value():
    v = Value(1.5)
    for bad in ("2", None, 1j, [1.0]):
        with pytest.raises(TypeError):
            v.data = bad
        with pytest.raises(TypeError):
            v.grad = bad
    assert (v.data, v.grad) == (1.5, 0.0)


def test_huge_int_overflows_like_float_does(arena_baseline):
    env = {"Value": Value, "x": Value(1.0)}
    for program in ("Value(10**400)", "x + 10**400", "10**400 + x", "x - 10**400", "10**400 - x",
                    "x * 10**400", "x / 10**400", "10**400 / x", "x ** 10**400", "10**400 ** x"):
        with pytest.raises(OverflowError):
            eval(program, env)
    del env
    gc.collect()  # the exceptions' tracebacks held Values
    assert pygrad.live_nodes() == arena_baseline  # no node made before an error is left over


def test_an_error_mid_graph_leaves_the_graph_usable(arena_baseline):
    a, b = Value(2.0), Value(-3.0)
    c = a * b
    for bad in ("c.log()", "c ** 0.5", "c / 0", "c + 'x'"):
        with pytest.raises((ValueError, ZeroDivisionError, TypeError)):
            eval(bad)
    c.backward()
    assert (c.data, a.grad, b.grad) == (-6.0, -3.0, 2.0)
    assert pygrad.live_nodes() == arena_baseline + 3  # a, b, c: nothing leaked


# ---- the arena's cap on its size ---------------------------------------------

def test_node_limit_is_a_setting_with_checked_values():
    assert pygrad.node_limit() == 0  # no cap by default
    for bad, exc in (("10", TypeError), (1.5, TypeError), (None, TypeError), (True, TypeError),
                     (-1, ValueError), (2**63, ValueError)):
        with pytest.raises(exc):
            pygrad.set_node_limit(bad)
    assert pygrad.node_limit() == 0
    try:
        pygrad.set_node_limit(10**6)
        assert pygrad.node_limit() == 10**6
    finally:
        pygrad.set_node_limit(0)


@pytest.fixture
def node_limit():
    """Set a node limit for the test; always lifted afterwards."""
    yield pygrad.set_node_limit
    pygrad.set_node_limit(0)


def test_node_limit_raises_memory_error_and_keeps_values(arena_baseline, node_limit):
    a = Value(1.0)
    node_limit(pygrad.live_nodes() + 10)
    kept = []
    with pytest.raises(MemoryError, match=r"1\.0 \* 2\.0: .*node limit"):
        for _ in range(20):
            kept.append(a * 2.0)  # two nodes each: the product and the leaf 2.0
    assert len(kept) == 5
    assert all(k.data == 2.0 for k in kept)
    kept[-1].backward()
    assert a.grad == 2.0
    assert lib.pg_debug_check() == 0


def test_node_limit_stops_every_way_of_making_nodes(arena_baseline, node_limit):
    """At the cap, every builder raises MemoryError and makes nothing; the
    Values made before work, and lifting the cap lets building go on."""
    import copy
    import pickle

    from forms import FORMS
    x, y = Value(0.5), Value(2.0)
    mlp = pygrad.MLP(3, [4, 1])
    logits = [Value(0.1), Value(-0.3)]
    builders = {f"form {form}": (lambda f: lambda: f(x, y, 2.0))(f) for form, f in FORMS.items()}
    builders.update({
        "Value(1.0)": lambda: Value(1.0), "MLP forward": lambda: mlp([1.0, -2.0, 0.5]),
        "mse": lambda: pygrad.losses.mse(logits, [1.0, 0.0]),
        "hinge": lambda: pygrad.losses.hinge(logits, [1, -1], mlp.parameters()),
        "cross_entropy": lambda: pygrad.losses.cross_entropy(logits, 1),
        "pickle": lambda: pickle.loads(pickle.dumps(x)), "deepcopy": lambda: copy.deepcopy(mlp),
    })
    live = pygrad.live_nodes()
    node_limit(live)
    for name, build in builders.items():
        with pytest.raises(MemoryError, match="node limit"):
            build()
        assert pygrad.live_nodes() == live, name
    node_limit(live - 1)  # a cap below the nodes alive: nothing new, nothing lost
    with pytest.raises(MemoryError):
        x * y
    assert (x.data, y.data, pygrad.live_nodes()) == (0.5, 2.0, live)
    node_limit(0)
    out = mlp([1.0, -2.0, 0.5]) + x * y
    out.backward()
    assert y.grad == 0.5 and lib.pg_debug_check() == 0


# ---- allocations that fail, every one in turn ----------------------------------
#
# pg_debug_fail_alloc(n) makes the C library's n-th allocation from now fail.
# Each operation below runs with its 1st, 2nd, ... allocation failing until
# it runs through: every failure must raise MemoryError and leave everything
# as it was (the live nodes, every Value, the arena's invariants as
# pg_debug_check sees them). Builders are also run at a full arena, where
# the arena itself must grow and cannot.
#
# What an operation allocates depends on what ran before it (the arena and
# the sort's and gather's scratch only grow), so each sweep runs in a fresh
# interpreter, where every buffer starts empty and every allocation site is
# reached, the same way on every run.

def _fail_each_allocation(action, check):
    """action() with its n-th allocation failing, for n = 1, 2, ... until
    it makes fewer than n. check() after each failure. Returns the number
    of failures and the result of the run that went through."""
    for n in itertools.count(1):
        lib.pg_debug_fail_alloc(n)
        try:
            result = action()
        except MemoryError:
            result = MemoryError
        finally:
            left = lib.pg_debug_fail_alloc(0)
        if result is not MemoryError:
            assert left > 0, f"allocation {n} failed, and no MemoryError came of it"
            return n - 1, result
        assert left == 0, "MemoryError, but no allocation failed"
        check()  # (not in the except block: the traceback would hold the Values made)


def _at_a_full_arena(build, check):
    """build() with the arena full: its allocations up to and including the
    arena's growth fail, one at a time. Returns the number of failures."""
    # The first run grows the arena's scratch to what build needs; the second
    # counts what build allocates with room, once the scratch is grown.
    grown, result = _fail_each_allocation(build, check)
    allocations, result = _fail_each_allocation(build, check)
    del result
    gc.collect()
    full = [Value(0.0) for _ in range(lib.pg_capacity() - pygrad.live_nodes())]
    assert pygrad.live_nodes() == lib.pg_capacity()
    for n in range(1, allocations + 2):  # the last one is the arena's growth
        lib.pg_debug_fail_alloc(n)
        try:
            with pytest.raises(MemoryError):
                build()
        finally:
            assert lib.pg_debug_fail_alloc(0) == 0, f"allocation {n} never happened"
        check(extra=len(full))
    del full
    return grown + 2 * allocations + 1


def _unchanged(values):
    """A check that the arena is consistent, has the nodes it has now (and
    extra more), and that each Value in values reads back its data and grad."""
    before = [(v, v.data, v.grad) for v in values]
    live = pygrad.live_nodes()

    def check(extra=0):
        gc.collect()
        assert lib.pg_debug_check() == 0, "the arena's invariants are broken"
        assert pygrad.live_nodes() == live + extra, "a failed operation left nodes behind"
        for v, data, grad in before:
            assert (v.data, v.grad) == (data, grad) or (data != data and v.data != v.data)
    return check


FRESH = []  # the sweeps, each run in a fresh interpreter


def fresh(sweep):
    FRESH.append(sweep.__name__)
    return sweep


@fresh
def sweep_building():
    """Every op form, the constructor and copies, at a full arena."""
    import copy
    import pickle

    from forms import FORMS
    x, y = Value(0.5), Value(2.0)
    check = _unchanged([x, y])
    builders = [(lambda f: lambda: f(x, y, 2.0))(f) for f in FORMS.values()]
    builders += [lambda: Value(1.0), lambda: pickle.loads(pickle.dumps(x)),
                 lambda: copy.deepcopy(y)]
    return sum(_at_a_full_arena(build, check) for build in builders)


@fresh
def sweep_networks_and_losses():
    """pg_mlp's forward (micrograd's MLP, Layer, Neuron) and every loss."""
    mlp = pygrad.MLP(3, [4, 4, 1])
    layer = pygrad.Layer(3, 2, act="tanh")
    preds = [Value(0.3), Value(-0.8), Value(1.1), Value(0.2)]
    params = mlp.parameters() + layer.parameters() + preds
    check = _unchanged(params)
    losses = pygrad.losses
    builders = [lambda: mlp([1.0, -2.0, 0.5]), lambda: layer([Value(1.0), 2.0, -1.0]),
                lambda: layer.neurons[0]([1.0, 2.0, 3.0]),
                lambda: losses.sum_squares(preds, [1, 0, 1, 0]), lambda: losses.mse(preds, [1, 0, 1, 0]),
                lambda: losses.root_sum_squares(preds, [1, 0, 1, 0]),
                lambda: losses.hinge(preds, [1, -1, 1, -1], mlp.parameters()),
                lambda: losses.cross_entropy([preds[:2], preds[2:]], [0, 1])]
    return sum(_at_a_full_arena(build, check) for build in builders)


@fresh
def sweep_backward():
    """backward's topological sort grows its stack and order as it goes."""
    x = Value(0.5)
    y = x
    for _ in range(3000):
        y = y * 1.0 + 0.001
    check = _unchanged([x, y])
    failures, _ = _fail_each_allocation(y.backward, check)
    assert failures > 0 and x.grad == 1.0 and lib.pg_debug_check() == 0
    return failures


@fresh
def sweep_replay_and_optimizers():
    """Tape (recording, forward, backward, train) and SGD and Adam."""
    mlp = pygrad.MLP(2, [3, 1], act="tanh")
    xs = [Value(0.5), Value(-1.0)]
    loss = pygrad.losses.mse([mlp(xs)], [0.25])
    held = mlp.parameters() + xs + [loss]
    count, tape = _fail_each_allocation(lambda: pygrad.Tape(loss), _unchanged(held))
    for make in (lambda: pygrad.optim.SGD(mlp.parameters(), lr=0.1, momentum=0.9),
                 lambda: pygrad.optim.Adam(mlp.parameters())):
        failures, opt = _fail_each_allocation(make, _unchanged(held))
        assert failures > 0
        count += failures
    # These allocate nothing: each runs through with the hook armed.
    for step in (tape.forward, tape.backward, opt.step):
        assert _fail_each_allocation(step, _unchanged(held))[0] == 0
    data = [[0.5, -1.0], [1.0, 2.0]]
    failures, losses = _fail_each_allocation(lambda: tape.train(3, opt, inputs=xs, data=data),
                                             _unchanged(held))
    assert count > 0 and failures > 0 and len(losses) == 3
    return count + failures


@fresh
def sweep_arrays():
    """Many Values in one call: zero_grad, get_data, set_grad, ... Their
    scratch grows to the largest call so far, so each call here is larger
    than the one before (a Value may be listed more than once)."""
    mlp = pygrad.MLP(4, [16, 16, 1])
    params = mlp.parameters()
    opt = pygrad.optim.SGD(params * 2, lr=0.1)
    for p in params:
        p.grad = 0.25
    count = 0
    for action in (mlp.zero_grad, opt.zero_grad, lambda: pygrad.get_data(params * 3),
                   lambda: pygrad.set_data(params * 6, [p.data for p in params * 6]),
                   lambda: pygrad.get_grad(params * 12), lambda: pygrad.set_grad(params * 24, 0.0)):
        failures, _ = _fail_each_allocation(action, _unchanged(params))
        assert failures > 0
        count += failures
    return count


@pytest.mark.parametrize("sweep", FRESH)
def test_every_failed_allocation_raises_memory_error_and_changes_nothing(sweep, tally):
    code = f"import test_errors; print(test_errors.{sweep}())"
    here = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, f"{sweep} failed in a fresh interpreter:\n{run.stderr[-6000:]}"
    tally["hostile inputs: allocations failed on purpose"] += int(run.stdout.split()[-1])


def test_stale_handle_raises_reference_error_not_garbage():
    v = Value(1.0)
    node = v._id
    del v
    ghost = object.__new__(Value)  # what a resurrected object would hold
    ghost._id, ghost._a, ghost._b = node, None, None
    for read in (lambda: ghost.data, lambda: ghost.grad, lambda: ghost * 2, ghost.backward):
        with pytest.raises(ReferenceError):
            read()
