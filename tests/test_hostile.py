"""Hostile numbers and operands: every op on every special float (NaN, +-inf,
+-0, subnormals, the largest and smallest), every kind of Python and numpy
number, and every kind of thing that is not a number.

Each case must give what Python gives: the reference engine's result to the
bit (and, for the ops Python has, Python's own float or math result), or
the same exception type. After every error, the Values made before it and
the arena are intact. The tables' sizes are in the "inputs run" summary.
"""
import gc
import itertools
import math
import numbers
import sys
import warnings
from decimal import Decimal
from fractions import Fraction

import pytest

import pygrad
from pygrad import Value, reference
from pygrad.engine import UNARY_OPS

from forms import BINARY, FORMS, USES, outcome, same, same_outcome  # tests/forms.py

np = pytest.importorskip("numpy")

BIG = sys.float_info.max
# Special floats, and ordinary ones near where ops change behaviour.
SPECIAL = [math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0,
           5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 1e-308, -1e-308,
           1e308, -1e308, BIG, -BIG, 1.0, -1.0, 0.5, -2.5, 3.0, 1e16,
           709.78, 710.0, -745.1, -746.0, 1000.0, -1000.0]


@pytest.fixture
def witness(arena_baseline):
    """A small graph made before the hostile inputs; checked after them."""
    a = Value(1.5)
    b = a * a + 1.0
    yield  # (not the Values: pytest would keep them alive past the leak check)
    assert (a.data, b.data) == (1.5, 3.25), "a Value made before an error changed"
    a.grad = 0.0
    b.backward()
    assert a.grad == 3.0
    del a, b
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline, "nodes leaked"


# Python's own function for an op, where it has one: math.exp for exp, ...
def _python(name):
    if name == "abs":
        return abs
    return getattr(math, name, None)


def _python_pow(a, b):
    """Python's a ** b, where a result that is not real is math.pow's
    ValueError (docs/pages/api.md), not float's complex number or error."""
    try:
        math.pow(a, b)
    except ValueError:
        if a != 0.0:  # not real (math.pow's 0 ** -1 error is ** 's ZeroDivisionError)
            raise
    except OverflowError:
        pass
    return a**b


def _python_outcome(f, *xs):
    """f on floats, as Python computes it, or the exception type."""
    try:
        return f(*(float(x) for x in xs))
    except (ArithmeticError, ValueError) as e:
        return type(e)


# ---- every op on every special value ------------------------------------------

@pytest.mark.parametrize("name", UNARY_OPS)
def test_unary_op_on_special_values(name, witness, tally):
    f = FORMS[f"x.{name}()"]
    py = _python(name)
    for x in SPECIAL:
        got = outcome(Value, lambda v: f(v, None, None), x)
        want = outcome(reference.Value, lambda v: f(v, None, None), x)
        assert same_outcome(got, want), f"{name}({x!r}): pygrad {got} != reference {want}"
        if py is not None:
            p = _python_outcome(py, x)
            assert got is p if isinstance(p, type) else same(got[0], p), \
                f"{name}({x!r}): pygrad {got} != Python {p}"
    tally["hostile inputs: unary op x special value"] += len(SPECIAL)


# Forms with two operands, and the Python float operation each one is.
PYTHON_BINARY = {"x add y": float.__add__, "x mul y": float.__mul__, "x pow y": _python_pow,
                 "x - y": float.__sub__, "x + c": float.__add__, "c + x": float.__add__,
                 "x - c": float.__sub__, "x * c": float.__mul__, "c * x": float.__mul__,
                 "x ** c": _python_pow}


def _two_operand_forms():
    for form in FORMS:
        if "y" in form or "c" in form:
            yield form


@pytest.mark.parametrize("form", list(_two_operand_forms()))
def test_binary_form_on_every_pair_of_special_values(form, witness, tally):
    f = FORMS[form]
    if "y" in form:  # two Values
        def run(V, a, b):
            return outcome(V, lambda x, y: f(x, y, None), a, b)
    else:  # a Value and the number b
        def run(V, a, b):
            return outcome(V, lambda x: f(x, None, b), a)
    py = PYTHON_BINARY.get(form)
    for a, b in itertools.product(SPECIAL, repeat=2):
        got, want = run(Value, a, b), run(reference.Value, a, b)
        assert same_outcome(got, want), f"{form} with x={a!r}, {b!r}: pygrad {got} != {want}"
        if py is not None:
            p = _python_outcome(py, a, b)
            assert got is p if isinstance(p, type) else same(got[0], p), \
                f"{form} with x={a!r}, {b!r}: pygrad {got} != Python {p}"
    tally["hostile inputs: two-operand form x special values"] += len(SPECIAL) ** 2


def test_nan_keeps_its_sign_through_pow_as_in_python(witness):
    """Python's float ** returns a NaN base as it is; C's pow may flip its
    sign. One NaN in, so the bits out are defined."""
    neg_nan = -math.nan
    for k in (-1.0, 0.5, 2.0, 3.0, -2.5):
        want = neg_nan**k
        assert same(want, neg_nan) and math.copysign(1.0, want) == -1.0
        for got in ((Value(neg_nan) ** k).data, (Value(neg_nan) ** Value(k)).data):
            assert math.copysign(1.0, got) == -1.0, (k, got)


def test_tape_replay_gives_what_building_gives_on_special_values(witness, tally):
    """Replay (csrc/tape.c) runs the same kernels as building: the same bits,
    or the same exception, with the graph's data left as it was."""
    from forms import MATH_ERRORS
    count = 0
    for form, f in FORMS.items():
        x0, y0 = Value(0.5), Value(0.25)
        out = f(x0, y0, 2.0)
        tape = pygrad.Tape(out)
        pairs = itertools.product(SPECIAL, repeat=2) if "y" in form else ((a, 0.25) for a in SPECIAL)
        for a, b in pairs:
            count += 1
            try:
                want = f(Value(a), Value(b), 2.0).data
            except MATH_ERRORS as e:
                want = type(e)
            before = out.data
            x0.data, y0.data = a, b
            if isinstance(want, type):
                with pytest.raises(want):
                    tape.forward()
                assert same(out.data, before), f"{form}: a failed replay changed the graph"
            else:
                assert same(tape.forward(), want), f"{form} replayed at {a!r}, {b!r}"
    tally["hostile inputs: replayed form x special values"] += count


def test_backward_after_operands_are_changed_to_special_values(witness, tally):
    """Backward kernels never raise (docs/pages/api.md: backward gives IEEE
    numbers): built at ordinary values, then given special ones as data
    (p.data = ... before backward, a micrograd habit), every form's
    gradients are the reference engine's and no exception comes out."""
    count = 0
    for form, f in FORMS.items():
        pairs = itertools.product(SPECIAL, repeat=2) if "y" in form else ((a, 0.25) for a in SPECIAL)
        for a, b in pairs:
            count += 1
            grads = []
            for V in (Value, reference.Value):
                x, y = V(0.5), V(0.25)
                out = f(x, y, 2.0)
                x.data, y.data = a, b
                out.backward()
                grads.append((x.grad, y.grad))
            assert all(map(same, *grads)), f"{form} at {a!r}, {b!r}: {grads[0]} != {grads[1]}"
    tally["hostile inputs: backward of a form at special values"] += count


@pytest.mark.parametrize("act", pygrad.nn.ACTIVATIONS)
def test_network_forward_on_special_inputs(act, witness, tally):
    """An MLP's forward in one C call (csrc/nn.c) on special inputs: the
    reference engine's MLP, built op by op from the same weights, gives the
    same output and parameter gradients to the bit, or the same exception."""
    import random
    nets = []
    for engine in (pygrad, reference):
        random.seed(4)
        nets.append(engine.MLP(2, [3, 1], act=act, out_act=act, bias="uniform"))

    def outcome_of(net, x):
        net.zero_grad()
        try:
            out = net(x)
        except (ArithmeticError, ValueError) as e:
            return type(e)
        out.backward()
        return [out.data] + [p.grad for p in net.parameters()]

    for a in SPECIAL:
        for x in ([a, 0.75], [-0.5, a]):
            got, want = (outcome_of(net, x) for net in nets)
            assert same_outcome(got, want), f"MLP(act={act}) at {x}: {got} != {want}"
    tally["hostile inputs: MLP forward x special inputs"] += 2 * len(SPECIAL)


# ---- sigmoid never overflows -------------------------------------------------

SIGMOID_EXTREMES = [1000.0, -1000.0, 1e4, -1e4, 1e300, -1e300, BIG, -BIG, math.inf, -math.inf,
                    709.0, 710.0, -709.0, -710.0, 745.0, -745.0, 746.0, -746.0, 5e-324, -5e-324,
                    10**300, -(10**300)]


def test_sigmoid_never_overflows_by_any_path(witness, tally):
    """Built op by op, in an MLP forward (csrc/nn.c) and replayed
    (csrc/tape.c): no exception, no warning, a result in [0, 1] that is
    the reference engine's, and a finite gradient."""
    neuron = pygrad.Neuron(1, act="sigmoid")
    neuron.w[0].data, neuron.b.data = 1.0, 0.0
    leaf = Value(0.0)
    replayed = leaf.sigmoid()
    tape = pygrad.Tape(replayed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in SIGMOID_EXTREMES:
            want = reference.Value(x).sigmoid().data
            leaf.data = x
            tape.forward()
            for s in (Value(x).sigmoid(), neuron([x]), replayed):
                assert 0.0 <= s.data <= 1.0 and same(s.data, want), (x, s.data, want)
                s.backward()
            assert math.isfinite(leaf.grad), (x, leaf.grad)
            assert (want == 1.0) if x > 40 else (want == 0.0) if x < -800 else True
    tally["hostile inputs: sigmoid at the extremes, three paths"] += 3 * len(SIGMOID_EXTREMES)


# ---- every kind of number -----------------------------------------------------


class FloatSaysTwo(float):
    def __float__(self):
        return 2.0


class FloatThatFails(float):
    def __float__(self):
        raise RuntimeError("no float for you")


class RealWithBadFloat:
    def __float__(self):
        return "not a float"


numbers.Real.register(RealWithBadFloat)


def _numbers():
    """Real numbers of every kind: Python's, fractions, numpy's every real
    dtype, ints too big for a float, and float subclasses that misbehave."""
    kinds = [True, False, 0, -7, 2**53 + 1, 2**1023, 10**308, -(10**308), 10**400, -(10**400),
             Fraction(1, 3), Fraction(10**400, 3), FloatSaysTwo(1.0), FloatThatFails(1.0),
             RealWithBadFloat()]
    for t in (np.float16, np.float32, np.float64, np.longdouble):
        kinds += [t(0.1), t(-0.0), t("nan"), t("-inf"), t(np.finfo(t).max), t(np.finfo(t).tiny)]
    kinds.append(np.longdouble("1e400"))  # beyond a double: float() gives inf
    for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
        kinds += [t(np.iinfo(t).min), t(np.iinfo(t).max), t(3)]
    return kinds


NUMBERS = _numbers()


def _as_python_float(x):
    """float(x), or the exception Python's float() raises for it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's longdouble overflow warning
            return float(x)
    except Exception as e:  # FloatThatFails: any exception at all
        return type(e)


def _use_outcome(V, use, b):
    """What USES[use] does with a Value of 1.5 and the operand b: the data
    of the result (or of x after an assignment), or the exception type."""
    x = V(1.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's longdouble overflow warning
            out = USES[use](x, b)
    except Exception as e:
        return type(e)
    return [(x if out is None else out).data, x.grad]


@pytest.mark.parametrize("use", sorted(USES))
def test_every_kind_of_number_is_its_python_float(use, witness, tally):
    """A real number of any kind acts as float(x) does; where float(x)
    raises (10**400: OverflowError), pygrad raises the same."""
    for b in NUMBERS:
        f = _as_python_float(b)
        got = _use_outcome(Value, use, b)
        if use == "pow(x, 2, b)":  # no modulo for floats, whatever b is (as pow(1.5, 2, b))
            want = TypeError
        else:
            want = f if isinstance(f, type) else _use_outcome(reference.Value, use, f)
        assert same_outcome(got, want), f"{use} with b={b!r} ({type(b).__name__}): {got} != {want}"
    tally["hostile inputs: kinds of number x uses"] += len(NUMBERS)


# ---- everything that is not a number ---------------------------------------------


def _non_numbers():
    class HasFloat:  # float() would take it; it is not a numbers.Real
        def __float__(self):
            return 1.0

    class HasIndex:
        def __index__(self):
            return 1

    return ["1.5", "", b"1", bytearray(b"1"), memoryview(b"1"), None, 1j, complex(1, 0), [1.0],
            (1.0,), (), {1: 2}, {1.0}, frozenset(), range(3), object(), HasFloat(), HasIndex(),
            Decimal("1.5"), Decimal("nan"), reference.Value(1.0), print, Value, type, ..., NotImplemented,
            np.array([1.0, 2.0]), np.array(3.0), np.array([]), np.complex128(1.0), np.complex64(1j),
            np.bool_(True), np.str_("1"), np.bytes_(b"1"), np.datetime64(1, "D"),
            np.timedelta64(1, "D"), np.void(b"1")]


NON_NUMBERS = _non_numbers()


@pytest.mark.parametrize("use", sorted(USES))
def test_every_non_number_raises_type_error(use, witness, tally):
    """TypeError for every use, and the constructor and assignments name
    the operand's type."""
    count = 0
    for b in NON_NUMBERS:
        if use == "pow(x, 2, b)" and b is None:
            continue  # pow(x, 2, None) is x ** 2, as for every Python number
        if use == "pow(x, 2, b)" and isinstance(b, Decimal):
            continue  # test_pow_with_a_decimal_modulus (it crashes some CPythons)
        count += 1
        x = Value(1.5)
        with pytest.raises(TypeError) as info:
            USES[use](x, b)
        if use in ("Value(b)", "x.data = b", "x.grad = b"):
            assert type(b).__name__ in str(info.value), (use, b, str(info.value))
        assert (x.data, x.grad) == (1.5, 0.0), (use, b)
    tally["hostile inputs: non-numbers x uses"] += count


# CPython 3.13.0 to 3.13.2 crash (segfault) on a three-argument pow() whose
# modulus alone is a Decimal, with or without pygrad: pow("a", 2, Decimal(1)).
# python/cpython#130230, fixed in 3.13.3.
POW_DECIMAL_CRASHES = (3, 13, 0) <= sys.version_info[:3] < (3, 13, 3)


@pytest.mark.skipif(POW_DECIMAL_CRASHES, reason="CPython 3.13.0-3.13.2 segfault on "
                    "pow(x, 2, Decimal(...)) for any x (python/cpython#130230, fixed in 3.13.3)")
@pytest.mark.parametrize("b", [b for b in NON_NUMBERS if isinstance(b, Decimal)], ids=repr)
def test_pow_with_a_decimal_modulus(b, witness, tally):
    """pow(x, 2, Decimal) is a TypeError, as for every non-number modulus."""
    x = Value(1.5)
    with pytest.raises(TypeError):
        USES["pow(x, 2, b)"](x, b)
    assert (x.data, x.grad) == (1.5, 0.0)
    tally["hostile inputs: non-numbers x uses"] += 1


def test_the_named_type_is_the_operands_own():
    """numpy's bool is not Python's: the message must not say just 'bool'."""
    with pytest.raises(TypeError, match=r"numpy\.bool"):
        Value(np.bool_(True))
    with pytest.raises(TypeError, match=r"decimal\.Decimal"):
        Value(1.0).data = Decimal(1)
    with pytest.raises(TypeError, match=r"'str'"):  # builtins keep their short names
        Value("1")


# ---- the rest of the API: networks, losses, optimizers, Tape, arrays -------------

def _api_cases():
    """(what, call, exception) for hostile arguments to every entry point
    that takes numbers: each must raise that built-in exception."""
    mlp = pygrad.MLP(2, [3, 1])
    p = [Value(1.0), Value(2.0)]
    losses, optim = pygrad.losses, pygrad.optim
    cases = []
    for x, exc in ((None, TypeError), (5, TypeError), ("ab", TypeError), ([1.0], ValueError),
                   ([1.0, 2.0, 3.0], ValueError), ([None, 1.0], TypeError), ([1j, 1.0], TypeError),
                   ([[1.0], [2.0]], TypeError), (np.array([[1.0, 2.0]]), ValueError),
                   (["1", "2"], TypeError), ([Decimal(1), 1.0], TypeError),
                   ([10**400, 1.0], OverflowError), ([reference.Value(1.0), 1.0], TypeError),
                   ([np.bool_(True), 1.0], TypeError), (np.array(["a", "b"]), TypeError)):
        cases.append((f"MLP(2, [3, 1])({x!r})", lambda x=x: mlp(x), exc))
    for loss in (losses.sum_squares, losses.mse, losses.root_sum_squares, losses.hinge):
        for t, exc in (([1.0, "a"], TypeError), ([None, 1.0], TypeError), ([1j, 1.0], TypeError),
                       (["1", "2"], TypeError), ([Decimal(1), 2.0], TypeError), (None, TypeError),
                       ([10**400, 1.0], OverflowError), ([1.0], ValueError), (5, TypeError)):
            cases.append((f"{loss.__name__}(p, {t!r})", lambda f=loss, t=t: f(p, t), exc))
    for alpha in ("0.1", None, 1j, [1.0]):
        cases.append((f"hinge(alpha={alpha!r})",
                      lambda a=alpha: losses.hinge(p, [1, -1], params=p, alpha=a), TypeError))
    for c, exc in ((2, ValueError), (-1, ValueError), ("0", ValueError), (1.0, TypeError),
                   (None, TypeError), ([0, 1], ValueError), (10**400, ValueError)):
        cases.append((f"cross_entropy(p, {c!r})", lambda c=c: losses.cross_entropy(p, c), exc))
    for kind in (optim.SGD, optim.Adam):
        for name, bad, exc in (("lr", "0.1", TypeError), ("lr", None, TypeError),
                               ("lr", 1j, TypeError), ("lr", Decimal("0.1"), TypeError),
                               ("lr", math.nan, ValueError), ("lr", -1.0, ValueError),
                               ("lr", math.inf, ValueError), ("lr", 10**400, OverflowError),
                               ("weight_decay", "0", TypeError), ("weight_decay", -1, ValueError)):
            cases.append((f"{kind.__name__}({name}={bad!r})",
                          lambda k=kind, n=name, b=bad: k(p, **{n: b}), exc))
            cases.append((f"{kind.__name__}().{name} = {bad!r}",
                          lambda k=kind, n=name, b=bad: setattr(k(p), n, b), exc))
        cases.append((f"{kind.__name__}(params=[1.0])", lambda k=kind: k([1.0]), TypeError))
    for name, bad, exc in (("momentum", "0.9", TypeError), ("dampening", "x", TypeError),
                           ("momentum", math.nan, ValueError)):
        cases.append((f"SGD({name}={bad!r})", lambda n=name, b=bad: optim.SGD(p, **{n: b}), exc))
    for betas, exc in (("ab", TypeError), (None, TypeError), ((0.9,), ValueError),
                       ((1.0, 0.5), ValueError), ((math.nan, 0.9), ValueError), (("0.9", 0.9), TypeError)):
        cases.append((f"Adam(betas={betas!r})", lambda b=betas: optim.Adam(p, betas=b), exc))
    tape = pygrad.Tape((p[0] * p[1]).tanh())
    for root in (None, 1.0, "a", reference.Value(1.0)):
        cases.append((f"Tape({root!r})", lambda r=root: pygrad.Tape(r), TypeError))
    for kwargs, exc in (({"iters": -1}, ValueError), ({"iters": 1.5}, TypeError),
                        ({"iters": "3"}, TypeError), ({"iters": None}, TypeError),
                        ({"iters": math.nan}, TypeError), ({"iters": 2, "optimizer": "sgd"}, TypeError),
                        ({"iters": 2, "inputs": p, "data": [[None, 1.0]]}, TypeError),
                        ({"iters": 2, "inputs": p, "data": [["1", "2"]]}, TypeError),
                        ({"iters": 2, "inputs": p, "data": [[1j, 1.0]]}, TypeError),
                        ({"iters": 2, "inputs": p, "data": [1.0, 2.0]}, ValueError),
                        ({"iters": 2, "inputs": p, "data": np.zeros((0, 2))}, ValueError),
                        ({"iters": 2, "inputs": [1.0, 2.0], "data": [[1.0, 2.0]]}, TypeError),
                        ({"iters": 2, "data": [[1.0, 2.0]]}, ValueError)):
        cases.append((f"Tape.train(**{kwargs!r})", lambda k=kwargs: tape.train(**k), exc))
    for f in (pygrad.set_data, pygrad.set_grad):
        for src, exc in (("a", TypeError), ("1.5", TypeError), (None, TypeError), (1j, TypeError),
                         ([None, 1.0], TypeError), (["1", "2"], TypeError), ([1.0], ValueError),
                         ([[1.0, 2.0]], ValueError), (10**400, OverflowError),
                         ([Value(1.0), Value(2.0)], TypeError), (np.array(["1", "2"]), TypeError),
                         ([Decimal(1), 2.0], TypeError)):
            cases.append((f"{f.__name__}(p, {src!r})", lambda f=f, s=src: f(p, s), exc))
    for f in (pygrad.get_data, pygrad.get_grad):
        for values in (None, [1.0], "ab", 5, [p[0], None]):
            cases.append((f"{f.__name__}({values!r})", lambda f=f, v=values: f(v), TypeError))
    return cases, p


def test_every_entry_point_refuses_hostile_arguments_with_the_right_exception(witness, tally):
    cases, p = _api_cases()
    before = [(v.data, v.grad) for v in p]
    for what, call, exc in cases:
        with pytest.raises(exc):
            call()
        assert [(v.data, v.grad) for v in p] == before, f"{what} changed a Value before raising"
    tally["hostile inputs: arguments to networks, losses, optimizers, Tape, arrays"] += len(cases)
    del cases


def test_real_numbers_of_every_kind_work_through_the_api(witness):
    """The numbers Value takes are taken everywhere: numpy labels, numpy
    hyperparameters, object arrays of Python numbers."""
    p = [Value(0.5), Value(-0.25)]
    ce = pygrad.losses.cross_entropy(p, np.int64(1))
    assert ce.data == pygrad.losses.cross_entropy(p, 1).data
    opt = pygrad.optim.SGD(p, lr=np.float32(0.5), momentum=Fraction(1, 2))
    opt.lr = np.int8(1)
    pygrad.set_data(p, np.array([1, 2**70], dtype=object))
    assert pygrad.get_data(p).tolist() == [1.0, float(2**70)]
    pygrad.set_grad(p, np.float16(0.5))
    assert pygrad.get_grad(p).tolist() == [0.5, 0.5]
    loss = (p[0] * 1e-70).tanh()
    assert pygrad.Tape(loss).train(np.int64(2), opt, inputs=p, data=[[True, 3]]).shape == (2,)


def test_module_inputs_of_every_iterable_kind_and_bad_layer_sizes():
    m = pygrad.MLP(2, [3, 1])
    want = m([0.5, -1.0]).data
    assert m(iter([0.5, -1.0])).data == want and m((0.5, -1.0)).data == want
    assert m(np.array([0.5, -1.0])).data == want
    with pytest.raises(TypeError, match="str"):  # a dict is read as its keys, as zip does
        m({"a": 0.5, "b": -1.0})
    with pytest.raises(ValueError, match="takes 2 inputs, got 3"):
        m({1.0, 2.0, 3.0})
    with pytest.raises(ValueError, match="nout must be a non-negative int, not -1"):
        pygrad.MLP(2, [1, -1])
    with pytest.raises(TypeError, match="nout must be an int, not 'list'"):
        pygrad.Layer(2, [3])
    for bad in (2.0, "2", True):  # the same mistake gives the same error on either size
        with pytest.raises(TypeError, match="nin must be an int"):
            pygrad.MLP(bad, [3])
        with pytest.raises(TypeError, match="nout must be an int"):
            pygrad.MLP(2, [bad])
    with pytest.raises(ValueError, match="nin must be a non-negative int, not -2"):
        pygrad.Neuron(-2)
