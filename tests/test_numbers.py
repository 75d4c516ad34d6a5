"""Values where Python expects numbers (issue 15, item 4; beyond micrograd, as
PyTorch's tensors): float(), item(), int(), round(), format() and the
ordering comparisons read `data`, and give exactly what they give for the
float itself, errors included; == and hash stay identity."""
import math
import operator

import numpy as np
import pytest

from pygrad import Value, reference

SPECIAL = [0.0, -0.0, 1.5, -2.5, 2.5, 1e300, -1e-300, 5e-324, math.inf, -math.inf, math.nan, 7.0]


def outcome(f, *args):
    try:
        return ("ok", f(*args))
    except Exception as e:  # the type is what must match
        return ("raised", type(e))


def same(a, b):
    if a[0] != b[0]:
        return False
    x, y = a[1], b[1]
    if isinstance(x, float) and isinstance(y, float):
        return x.hex() == y.hex() if not (math.isnan(x) and math.isnan(y)) else True
    return type(x) is type(y) and x == y


@pytest.mark.parametrize("x", SPECIAL)
def test_conversions_read_the_data(x):
    v = Value(x)
    for f in (float, int, round, lambda u: round(u, 2), lambda u: round(u, -1), math.floor,
              math.ceil, math.trunc, lambda u: u.item() if isinstance(u, Value) else u):
        assert same(outcome(f, v), outcome(f, x))
    assert type(float(v)) is float and type(v.item()) is float


@pytest.mark.parametrize("spec", ["", ".4f", "8.3e", "g", "+.2%", ">12", "r" * 0])
def test_format_reads_the_data_and_an_empty_spec_is_the_repr(spec):
    v = Value(3.14159)
    if spec:
        assert format(v, spec) == format(3.14159, spec) and f"{v:{spec}}" == format(3.14159, spec)
    else:
        assert format(v, spec) == str(v) == f"{v}" == "Value(data=3.14159, grad=0.0)"
    with pytest.raises(ValueError):
        format(v, "d")  # as format(3.14159, "d")


OPS = [operator.lt, operator.le, operator.gt, operator.ge]


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
def test_ordering_compares_data_with_values_and_numbers(op):
    for x in SPECIAL:
        for y in SPECIAL + [3, True, np.float64(1.5), np.int32(-2)]:
            want = op(x, float(y))
            assert op(Value(x), Value(float(y))) is want
            assert op(Value(x), y) is want
            assert op(y, Value(x)) is op(float(y), x)
    for bad in ("1", None, [1.0], 1j):
        with pytest.raises(TypeError):
            op(Value(1.0), bad)
        with pytest.raises(TypeError):
            op(bad, Value(1.0))


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
def test_ordering_with_a_huge_int_or_a_fraction_is_pythons_exact_comparison(op):
    """Python compares a float with an int or a Fraction exactly, with no
    conversion that could overflow or round (found by the API fuzzer's soak)."""
    from fractions import Fraction
    for x in SPECIAL:
        for y in (10**400, -10**400, 2**53 + 1, Fraction(1, 3), Fraction(-10**400, 3)):
            assert op(Value(x), y) is op(x, y)
            assert op(y, Value(x)) is op(y, x)


def test_max_min_sorted_and_numpy_reductions():
    xs = [3.0, -1.0, 7.5, 0.25, 7.5, -4.0]
    vs = [Value(x) for x in xs]
    assert max(vs) is vs[2] and min(vs) is vs[5]  # the first of equals, as for floats
    assert [v.data for v in sorted(vs)] == sorted(xs)
    assert sorted(vs, reverse=True)[0] is vs[2]
    a = np.array(vs, dtype=object)
    assert np.argmax(a) == np.argmax(xs) and np.argmin(a) == np.argmin(xs)
    assert a.max() is vs[2] and a.min() is vs[5]
    assert np.array(vs, dtype=float).tolist() == xs  # float() of each


def test_equality_and_hash_stay_identity_as_in_micrograd():
    a, b = Value(1.0), Value(1.0)
    assert a != b and a == a and hash(a) != hash(b)
    assert len({a, b}) == 2 and {a: 1, b: 2}[b] == 2
    assert a <= b and a >= b and not a < b  # ordering is by data, == is not


def test_the_graph_is_left_untouched():
    a = Value(2.0)
    y = a * 3
    before = (y.data, y._op, set(map(id, y._prev)))
    float(y), y < a, round(y), format(y, ".2f"), max([y, a])
    assert (y.data, y._op, set(map(id, y._prev))) == before
    y.backward()
    assert a.grad == 3.0


def test_the_reference_engine_is_unchanged_here():
    """pygrad.reference is micrograd's engine: it has none of these (the tests' oracle
    stays micrograd's)."""
    with pytest.raises(TypeError):
        float(reference.Value(1.0))
    with pytest.raises(TypeError):
        reference.Value(1.0) < reference.Value(2.0)
