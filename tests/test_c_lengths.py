"""The C entry points that take arrays take their lengths, check them against
what they read, and say which argument was bad (pygrad.h: pg_where); and
what the Python side makes of that (issue 11: a short parameter list, an
input list shortened while it is converted, a dead input; the
cross-entropy's max, NaNs included). The cases that crashed run in a
subprocess, so that a crash is a failed test, not a dead pytest."""
import gc
import math
import os
import random
import subprocess
import sys
import textwrap

import pytest
from pygrad._c import ffi, lib

import pygrad
from pygrad import Value, losses, reference
OPS = {op.name: op.code for op in pygrad._c.OPS}  # the C op table: name -> code

HERE = os.path.dirname(os.path.abspath(__file__))


def bits(x):
    """x's bits, but one for every NaN: CPython's own float + gives either
    NaN operand's sign (its specialized BINARY_OP and float_add differ)."""
    return x.hex()  # tells -0.0 from 0.0; 'nan' for any NaN


def ghost():
    """A Value whose handle is stale (what a resurrected object would hold)."""
    v = Value(1.0)
    node = v._id
    del v
    g = object.__new__(Value)
    g._id, g._a, g._b = node, None, None
    return g


def run_python(code):
    """Run code in a fresh interpreter from tests/; (returncode, stdout, stderr)."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=HERE,
                         capture_output=True, text=True, timeout=300)
    return run.returncode, run.stdout, run.stderr


@pytest.fixture
def unchanged():
    """Asserts, after the test's failed calls, that the arena is consistent
    and has exactly the nodes it had."""
    gc.collect()
    live = pygrad.live_nodes()
    yield
    gc.collect()
    assert lib.pg_debug_check() == 0 and pygrad.live_nodes() == live


# ---- pg_mlp -------------------------------------------------------------------

SIZES = [3, 4, 2]
NPARAMS = 4 * (3 + 1) + 2 * (4 + 1)


def mlp_call(weights=None, params=None, nparams=None, sizes=SIZES, acts=(OPS["tanh"], 0),
             x=None, nx=None, xnum=None, nxnum=None, out=True, nout=None):
    """pg_mlp on a 3 -> 4 -> 2 network (weights: its parameter Values), with
    every argument given or else right; (status or handle, where, out, the
    Values it made, to hold while the handles are used)."""
    held = [Value(random.uniform(-1, 1)) for _ in range(NPARAMS)] if weights is None else []
    params = [v._id for v in (weights or held)] if params is None else params
    xs = [Value(0.5), Value(-1.0), Value(2.0)]
    x = [v._id for v in xs] if x is None else x
    where = ffi.new("pg_where *")
    outs = ffi.new("pg_id[]", 2) if out else ffi.NULL
    r = lib.pg_mlp(params, len(params) if nparams is None else nparams,
                   ffi.new("int32_t[]", list(sizes)), ffi.new("int32_t[]", list(acts)),
                   len(acts), x, len(x) if nx is None else nx,
                   ffi.NULL if xnum is None else xnum,
                   (0 if xnum is None else len(xnum)) if nxnum is None else nxnum,
                   outs, 2 if nout is None else nout, where)
    return r, where, outs, held + xs


def test_pg_mlp_builds_with_the_right_lengths():
    r, _, outs, held = mlp_call()
    assert r > 0 and r == outs[0] and lib.pg_valid(outs[1])
    for h in (outs[0], outs[1]):
        lib.pg_release(h)
    r, _, outs, held = mlp_call(x=[0, 0, 0], xnum=[1.0, 2.0, 3.0])  # number inputs
    assert r > 0
    for h in (outs[0], outs[1]):
        lib.pg_release(h)


@pytest.mark.parametrize("change, status, arg", [
    (dict(nparams=NPARAMS - 1), "ESIZE", 1),     # params shorter than the network's count
    (dict(nparams=NPARAMS + 1), "ESIZE", 1),     # ... or longer
    (dict(nx=2), "ESIZE", 6),                    # fewer inputs than sizes[0]
    (dict(nx=4), "ESIZE", 6),
    (dict(x=[0, 0, 0], xnum=[1.0, 2.0]), "ESIZE", 8),  # xnum shorter than x
    (dict(x=[0, 0, 0]), "EBADOP", 8),            # number inputs, no numbers
    (dict(nout=1), "ESIZE", 10),                 # out too short for 2 outputs
    (dict(out=False), "EBADOP", 10),             # no out for 2 outputs
    (dict(nx=-1), "ESIZE", 6),
    (dict(acts=(OPS["tanh"], OPS["add"])), "EBADOP", 4),  # a binary op is no activation
    (dict(sizes=(3, -4, 2)), "EBADOP", 3),
    (dict(acts=()), "EBADOP", 5),                # no layers
])
def test_pg_mlp_names_the_bad_argument_and_builds_nothing(change, status, arg, unchanged):
    r, where, _, held = mlp_call(**change)
    assert r == getattr(lib, "PG_" + status) and where.arg == arg
    del held


def test_pg_mlp_names_the_dead_handle(unchanged):
    dead = ghost()._id
    params = [Value(0.1)._id for _ in range(NPARAMS)]  # (dead themselves: the Values are gone)
    r, where, _, held = mlp_call(params=params)
    assert r == lib.PG_EBADID and (where.arg, where.index) == (1, 0)
    keep = [Value(0.1) for _ in range(NPARAMS)]
    params = [v._id for v in keep]
    params[7] = dead
    r, where, _, held = mlp_call(params=params)
    assert r == lib.PG_EBADID and (where.arg, where.index) == (1, 7)
    x = [Value(1.0), Value(2.0)]
    r, where, _, held = mlp_call(x=[x[0]._id, x[1]._id, dead])
    assert r == lib.PG_EBADID and (where.arg, where.index) == (6, 2)
    del held, keep, x


def test_pg_mlp_blames_a_math_error_on_the_layer_whose_activation_raised(unchanged):
    weights = [Value(0.5) for _ in range(NPARAMS)]
    r, where, _, held = mlp_call(weights, acts=(OPS["exp"], 0), x=[0, 0, 0],
                                 xnum=[1e300, 1e300, 1e300])
    assert r == lib.PG_ERANGE and (where.arg, where.index) == (4, 0)
    r, where, _, held = mlp_call(weights, acts=(OPS["tanh"], OPS["log"]), x=[0, 0, 0],
                                 xnum=[-1.0, -1.0, -1.0])  # log(0.5 + 4 * 0.5 * tanh(-1)) < 0
    assert r == lib.PG_EDOM and (where.arg, where.index) == (4, 1)
    del held, weights


# ---- the Python side: issue 11's attacks ------------------------------------

def test_a_neuron_whose_parameters_leave_out_the_bias_is_no_crash():
    """Issue 11.1: a Neuron subclass whose parameters() has no bias, in a
    Layer. pg_mlp read one handle per neuron past the array. Now C refuses
    the short array (ValueError), or the forward runs micrograd's graph."""
    code, out, err = run_python("""
        import random
        import pygrad
        from pygrad import nn, reference

        class NoBias(nn.Neuron):
            def parameters(self):
                return list(self.w)

        class Layer2(nn.Layer):
            Neuron = NoBias

        random.seed(1)
        layer = Layer2(3, 2, act="tanh", bias="uniform")
        x = [0.5, -1.0, 2.0]
        try:
            y = layer(x)
        except ValueError as e:
            print("ValueError", e)
        else:  # the general path: each neuron as micrograd computes it
            import math
            want = []
            for nb in layer.neurons:  # b + w0*x0 + w1*x1 + ..., left to right (not sum():
                s = nb.b.data          # on 3.12+ it adds floats with compensation)
                for w, xi in zip(nb.w, x):
                    s = s + w.data * xi
                want.append(math.tanh(s))
            print("ran", [v.data for v in y] == want)
        assert pygrad._c.debug_check() == 0
    """)
    assert code == 0, err[-3000:]
    assert out.startswith("ValueError") and "parameters" in out or out.strip() == "ran True", out


def test_an_input_list_shortened_while_converted_is_a_value_error():
    """Issue 11.2: an input whose __float__ shortens the input list while
    MLP(x) converts it: pg_mlp read past the arrays built. Now the module
    reads x once, into a list of its own, and the lengths reach C: the
    forward is that of the inputs as read (or, had the module's own list
    changed, a ValueError), never a read past an array."""
    code, out, err = run_python("""
        import numbers
        import pygrad

        class Shrinker:
            def __init__(self, victim):
                self.victim = victim
            def __float__(self):
                del self.victim[-1]
                return 0.5
        numbers.Real.register(Shrinker)

        for make in (lambda: pygrad.MLP(3, [4, 1]), lambda: pygrad.Layer(3, 2),
                     lambda: pygrad.Neuron(3)):
            model = make()
            x = [1.0, None, 2.0]
            x[1] = Shrinker(x)
            try:
                y = model(x)
            except ValueError as e:
                print("ValueError:", e)
            else:
                want = model([1.0, 0.5, 2.0])
                same = [v.data for v in y] == [v.data for v in want] if isinstance(y, list) \
                    else y.data == want.data
                print("as read" if same else "wrong")
        assert pygrad._c.debug_check() == 0
    """)
    assert code == 0, err[-3000:]
    lines = out.splitlines()
    assert len(lines) == 3 and all(line == "as read" or line.startswith("ValueError:") and
                                   "input" in line for line in lines), out


def test_a_dead_input_is_named():
    """Issue 17: the forward named 'an activation' for a dead input."""
    model = pygrad.MLP(3, [4])
    with pytest.raises(ReferenceError, match=r"MLP\(3, \[4\]\) forward: input 2: not a live node"):
        model([Value(1.0), Value(2.0), ghost()])
    with pytest.raises(ReferenceError, match=r"forward: input 0: not a live node"):
        model([ghost(), 1.0, 2.0])
    model.layers[0].neurons[1].w[2] = ghost()
    with pytest.raises(ReferenceError, match=r"forward: parameter 6: not a live node"):
        model([1.0, 2.0, 3.0])
    assert lib.pg_debug_check() == 0


def test_an_activation_that_raises_is_named():
    model = pygrad.MLP(1, [2, 1], act="exp")
    for p in model.parameters():
        p.data = 0.5  # exp(0.5 + 0.5 * 1e300) overflows
    with pytest.raises(OverflowError, match=r"forward: the activation of layer 0: math range"):
        model([1e300])


# ---- pg_loss --------------------------------------------------------------------

def loss_call(kind, pred, target, nclass=1, params=(), ntarget=None, nparams=None, n=None):
    where = ffi.new("pg_where *")
    r = lib.pg_loss(getattr(lib, "PG_LOSS_" + kind), [v._id for v in pred],
                    len(pred) if n is None else n, list(target),
                    len(target) if ntarget is None else ntarget, nclass,
                    [v._id for v in params] or ffi.NULL,
                    len(params) if nparams is None else nparams, 1e-4, where)
    return r, where


@pytest.mark.parametrize("kind, args, status, arg, index", [
    ("MSE", dict(target=[1.0]), "ESIZE", 4, -1),              # a target short
    ("MSE", dict(ntarget=3), "ESIZE", 4, -1),
    ("MSE", dict(n=0), "ESIZE", 2, -1),
    ("MSE", dict(params=True), "ESIZE", 7, -1),               # params only for the hinge
    ("HINGE", dict(params=True, nparams=-1), "ESIZE", 7, -1),
    ("CROSS_ENTROPY", dict(target=[0.0, 1.0]), "ESIZE", 4, -1),  # one class per row: 1 row
    ("CROSS_ENTROPY", dict(target=[2.0], nclass=2), "EBADOP", 4, 0),  # class out of range
    ("CROSS_ENTROPY", dict(target=[0.5], nclass=2), "EBADOP", 4, 0),
    ("CROSS_ENTROPY", dict(target=[0.0], nclass=3), "ESIZE", 2, -1),  # 2 logits, rows of 3
    ("CROSS_ENTROPY", dict(target=[0.0], nclass=0), "EBADOP", 6, -1),
])
def test_pg_loss_names_the_bad_argument_and_builds_nothing(kind, args, status, arg, index,
                                                           unchanged):
    pred = [Value(0.5), Value(-1.0)]
    args = dict(args)  # (pytest keeps the parameter's dict: no Values in it)
    args.setdefault("target", [1.0, 0.0])
    args.setdefault("nclass", 2 if kind == "CROSS_ENTROPY" else 1)
    args["params"] = pred if args.get("params") else ()
    r, where = loss_call(kind, pred, **args)
    assert r == getattr(lib, "PG_" + status) and (where.arg, where.index) == (arg, index)


def test_a_dead_prediction_or_parameter_is_named():
    preds = [Value(0.5), ghost(), Value(1.0)]
    with pytest.raises(ReferenceError, match=r"^mse: prediction 1: not a live node"):
        losses.mse(preds, [0.0, 1.0, 0.0])
    with pytest.raises(ReferenceError, match=r"^hinge: parameter 2: not a live node"):
        losses.hinge([Value(0.5)], [1.0], [Value(1.0), Value(2.0), ghost()])
    assert lib.pg_debug_check() == 0


# The nodes each loss builds, as the expression builds them: pg_loss reserves
# them all before the first, so at a node limit of exactly that many more it
# must still succeed (an overcount would refuse), and at one fewer fail.
@pytest.mark.parametrize("name, args", [
    ("sum_squares", ([1.0, -1.0, 2.0],)), ("mse", ([1.0, -1.0, 2.0],)),
    ("root_sum_squares", ([1.0, -1.0, 2.0],)), ("hinge", ([1.0, -1.0, 1.0],)),
    ("hinge", ([1.0, -1.0, 1.0], "params")), ("cross_entropy", ("rows",)),
])
def test_a_loss_fits_a_node_limit_of_exactly_its_nodes(name, args):
    pred = [Value(0.25), Value(-0.5), Value(0.75)]
    params = [Value(0.5), Value(-2.0)]

    def build():
        if name == "cross_entropy":
            return losses.cross_entropy([pred, pred[::-1]], [0, 2])
        if "params" in args:
            return losses.hinge(pred, args[0], params, alpha=0.1)
        return getattr(losses, name)(pred, args[0])

    gc.collect()
    base = pygrad.live_nodes()
    out = build()
    need = pygrad.live_nodes() - base
    del out
    gc.collect()
    try:
        pygrad.set_node_limit(base + need)
        out = build()
        assert pygrad.live_nodes() == base + need
        del out
        gc.collect()
        pygrad.set_node_limit(base + need - 1)
        with pytest.raises(MemoryError):
            build()
        gc.collect()
        assert pygrad.live_nodes() == base and lib.pg_debug_check() == 0
    finally:
        pygrad.set_node_limit(0)


# ---- pg_gather, pg_scatter --------------------------------------------------------

def test_gather_and_scatter_check_the_values_length(unchanged):
    vs = [Value(1.0), Value(2.0), Value(3.0)]
    ids = [v._id for v in vs]
    out = ffi.new("double[]", 3)
    where = ffi.new("pg_where *")
    assert lib.pg_gather(ids, 3, lib.PG_DATA, out, 2, where) == lib.PG_ESIZE
    assert (where.arg, where.index) == (4, -1)
    assert lib.pg_gather(ids, 3, 7, out, 3, where) == lib.PG_EBADOP and where.arg == 3
    assert lib.pg_gather(ids, 3, lib.PG_DATA, ffi.NULL, 3, where) == lib.PG_EBADOP
    assert lib.pg_scatter(ids, 3, lib.PG_DATA, [9.0, 9.0], 2, 0.0, where) == lib.PG_ESIZE
    assert (where.arg, where.index) == (4, -1) and [v.data for v in vs] == [1.0, 2.0, 3.0]
    ids[1] = ghost()._id
    assert lib.pg_scatter(ids, 3, lib.PG_DATA, [9.0, 9.0, 9.0], 3, 0.0, where) == lib.PG_EBADID
    assert (where.arg, where.index) == (1, 1) and [v.data for v in vs] == [1.0, 2.0, 3.0]
    assert lib.pg_gather(ids, 3, lib.PG_GRAD, out, 3, where) == lib.PG_EBADID
    assert (where.arg, where.index) == (1, 1)
    assert lib.pg_gather(ids, -1, lib.PG_GRAD, out, -1, where) == lib.PG_ESIZE
    ids[1] = vs[1]._id
    assert lib.pg_scatter(ids, 3, lib.PG_GRAD, ffi.NULL, 0, 0.5, where) == lib.PG_OK
    assert lib.pg_gather(ids, 3, lib.PG_GRAD, out, 3, ffi.NULL) == lib.PG_OK
    assert list(out) == [0.5, 0.5, 0.5]


# ---- the cross-entropy's max, as Python's max computes it (issue 11.10) -----

NAN = float("nan")
ROWS = {
    "nan first": [NAN, 1.0, 2.0],
    "nan in the middle": [1.0, NAN, 2.0],
    "nan last": [1.0, 2.0, NAN],
    "all nan": [NAN, NAN, NAN],
    "-0.0 then 0.0": [-0.0, 0.0, -1.0],
    "0.0 then -0.0": [0.0, -0.0, -1.0],
    "inf first": [math.inf, 1.0, 2.0],
    "-inf": [-math.inf, -math.inf, 0.5],
}


def ce_graph(engine, rows, classes):
    zs = [[engine.Value(z) for z in row] for row in rows]
    return zs, losses.cross_entropy(zs, classes)


def ce_reference(zs, classes, m):
    """The docstring's expression (on any engine's Values) with the maxima m
    given (a replay keeps the ones baked at build time)."""
    out = [sum((z - mi).exp() for z in row).log() - (row[c] - mi)
           for row, c, mi in zip(zs, classes, m)]
    return sum(out) * (1.0 / len(out))


def graph(root):
    """(op, data) of every node under root, depth first in operand order,
    the data as bits(): a graph's constants included."""
    out, stack = [], [root._id]
    while stack:
        h = stack.pop()
        out.append((lib.pg_op(h), bits(lib.pg_data(h))))
        stack += [c for c in (lib.pg_child(h, 1), lib.pg_child(h, 0)) if c > 0]
    return out


@pytest.mark.parametrize("name", sorted(ROWS))
def test_cross_entropy_takes_pythons_max_nans_included(name):
    rows = [ROWS[name], [0.5, -0.25, 1.5]]
    classes = [2, 0]
    zs, built = ce_graph(pygrad, rows, classes)
    # node for node the expression, with Python's max, built op by op
    assert graph(built) == graph(ce_reference(zs, classes, [max(row) for row in rows]))
    rzs, want = ce_graph(reference, rows, classes)  # losses.py's fallback expression
    built.backward()
    want.backward()
    assert bits(built.data) == bits(want.data)
    assert [bits(z.grad) for row in zs for z in row] == [bits(z.grad) for row in rzs for z in row]

    # A replay keeps the constants: new finite data, the maxima of the first build.
    m = [max(row) for row in rows]  # (Python's max: the oracle itself)
    tape = pygrad.Tape(built)
    new = [[random.Random(i).uniform(-3, 3) for _ in row] for i, row in enumerate(rows)]
    for row, vals in zip(zs, new):
        for z, v in zip(row, vals):
            z.data = v
    rzs = [[reference.Value(v) for v in row] for row in new]
    try:
        want = ce_reference(rzs, classes, m)
    except ValueError:  # m = inf: log(0.0), in the replay too
        with pytest.raises(ValueError, match="log"):
            tape.forward()
        return
    got = tape.forward()
    tape.backward()
    want.backward()
    assert bits(got) == bits(want.data)
    assert [bits(z.grad) for row in zs for z in row] == [bits(z.grad) for row in rzs for z in row]


def test_tape_train_checks_the_losses_and_data_lengths(unchanged):
    """pg_tape_train reads nrows rows of its data and writes iters losses:
    both arrays come with their lengths, and a short one is PG_ESIZE with
    nothing trained."""
    x = [Value(0.5), Value(-1.0)]
    w = Value(0.25)
    loss = (x[0] * w + x[1]) ** 2
    tape = pygrad.Tape(loss)
    ins = ffi.new("pg_id[]", [v._id for v in x])
    data = ffi.new("double[]", [1.0, 2.0, 3.0, 4.0])  # 2 rows of 2
    losses = ffi.new("double[]", 3)
    done = ffi.new("int64_t *")
    train = lambda ndata, nrows, nlosses, iters=3: lib.pg_tape_train(  # noqa: E731
        tape._c, ffi.NULL, iters, ins, 2, data, ndata, nrows, losses, nlosses, done, ffi.NULL)
    assert train(4, 3, 3) == lib.PG_ESIZE and done[0] == 0   # 3 rows need 6 doubles
    assert train(4, 2, 2) == lib.PG_ESIZE and done[0] == 0   # 3 losses need 3
    assert w.data == 0.25 and x[0].data == 0.5
    assert train(4, 2, 3) == lib.PG_OK and done[0] == 3
    assert list(losses) == [(1.0 * 0.25 + 2.0) ** 2, (3.0 * 0.25 + 4.0) ** 2, (1.0 * 0.25 + 2.0) ** 2]
    del tape, loss
