"""Python's error rules (spec/API.md): the same exception type as Python's
float and math module give, a message naming the op, and every existing
Value (and the arena) intact afterwards."""
import gc
import math

import pytest

import pygrad
from pygrad import Value, reference
from pygrad.engine import lib

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


def test_node_limit_raises_memory_error_and_keeps_values(arena_baseline):
    a = Value(1.0)
    lib.pg_set_node_limit(pygrad.live_nodes() + 10)
    try:
        kept = []
        with pytest.raises(MemoryError, match=r"1\.0 \* 2\.0: .*node limit"):
            for _ in range(20):
                kept.append(a * 2.0)  # two nodes each: the product and the leaf 2.0
        assert len(kept) == 5
    finally:
        lib.pg_set_node_limit(0)
    assert all(k.data == 2.0 for k in kept)
    kept[-1].backward()
    assert a.grad == 2.0


def test_failed_allocation_raises_memory_error_and_keeps_values(arena_baseline):
    a = Value(1.5)
    products = []
    lib.pg_debug_fail_alloc(1)  # the next allocation fails
    try:
        with pytest.raises(MemoryError, match="out of memory"):
            # Runs until the arena must grow, which now fails.
            for _ in range(lib.pg_capacity() + 10):
                products.append(a * a)
    finally:
        lib.pg_debug_fail_alloc(0)
    assert all(p.data == 2.25 for p in products)
    more = [a * a for _ in range(1000)]  # and it grows again once allocation works
    assert more[-1].data == 2.25


def test_failed_allocation_in_backward_leaves_grads_untouched(arena_baseline):
    x = Value(1.0)
    y = x
    for _ in range(100_000):  # deeper than any scratch the sort kept so far
        y = y + 1.0
    lib.pg_debug_fail_alloc(1)
    try:
        with pytest.raises(MemoryError):
            y.backward()
    finally:
        lib.pg_debug_fail_alloc(0)
    assert x.grad == 0.0
    y.backward()
    assert x.grad == 1.0


def test_stale_handle_raises_reference_error_not_garbage():
    v = Value(1.0)
    node = v._id
    del v
    ghost = object.__new__(Value)  # what a resurrected object would hold
    ghost._id, ghost._a, ghost._b = node, None, None
    for read in (lambda: ghost.data, lambda: ghost.grad, lambda: ghost * 2, ghost.backward):
        with pytest.raises(ReferenceError):
            read()
