"""Batch steps (csrc/tape_batch.c): the layer steps that apply one model's
weights to the samples of a batch run as one step, the samples side by
side. The program is reordered for it, so these tests hold every number to
the same tape without batches, to a node-by-node rebuild and to the
reference engine, bit for bit; check that a reorder that would change the
order of any node's grads is refused; and that failures, write-back, fed
inputs and the plain kernels behave as in a tape without batches. Also
Tape.train's learning-rate schedule (lr=), which W2's loop uses."""
import math
import random
import struct

import numpy as np
import pytest
from pygrad._c import lib

import pygrad
from pygrad import MLP, Tape, Value, reference
from pygrad.losses import hinge
from pygrad.optim import SGD, Adam
from pygrad.workloads import W2_ALPHA, w2_data
from test_tape_neurons import bits, state


def batches(t):
    return lib.pg_tape_batches(t._c)


def with_batches(on, make):
    lib.pg_debug_tape_batches(int(on))
    try:
        return make()
    finally:
        lib.pg_debug_tape_batches(1)


def minibatch(seed, samples=11, sizes=(3, [9, 8, 1]), act="relu", engine=pygrad, alpha=1e-3):
    """An MLP on `samples` input rows of leaves, micrograd's demo loss (hinge
    + L2): (model, the input leaves row by row, targets, loss)."""
    random.seed(seed)
    model = engine.MLP(*sizes, act=act) if engine is pygrad else engine.MLP(*sizes)
    rng = random.Random(seed + 1)
    xs = [[engine.Value(rng.uniform(-2, 2)) for _ in range(sizes[0])] for _ in range(samples)]
    ys = [rng.choice((-1.0, 1.0)) for _ in range(samples)]
    scores = [model(x) for x in xs]
    losses = [(1 + -y * s).relu() for y, s in zip(ys, scores)]
    loss = sum(losses) * (1.0 / len(losses)) + alpha * sum(p * p for p in model.parameters())
    return model, xs, ys, loss


def trained(on, order="exact", iters=5, lr=0.2, **kw):
    def run():
        model, xs, _, loss = minibatch(3, **kw)
        t = Tape(loss, order=order)
        losses = t.train(iters, SGD(model.parameters(), lr=lr))
        return batches(t), [bits(v) for v in losses], state(loss), [bits(p.data) for p in model.parameters()]
    return with_batches(on, run)


# Shapes for the batch kernels' paths: neurons in the lanes (8 or more, a
# last block part full: 9, 12, 20), fewer neurons member by member (1, 3,
# 5, 7), members in fours with one to three left over, inputs 2 to 20.
SHAPES = [{}, {"samples": 2}, {"samples": 17, "sizes": (2, [16, 16, 1])},
          {"act": "tanh", "sizes": (4, [3, 5, 1])}, {"samples": 9, "sizes": (5, [12, 1])},
          {"samples": 7, "sizes": (3, [9, 3, 1])}, {"samples": 5, "sizes": (2, [20, 7, 1])},
          {"samples": 6, "sizes": (16, [8, 1])}, {"samples": 10, "sizes": (4, [16, 8, 1]), "act": "tanh"}]


@pytest.mark.parametrize("order", ["exact", "fast"])
@pytest.mark.parametrize("kw", SHAPES)
def test_batches_give_the_bits_of_layer_steps_apart(order, kw):
    if order == "fast" and max(kw.get("sizes", (3, [9]))[1][:-1] + [kw.get("sizes", (3,))[0]]) >= 16:
        pytest.skip("the fast order's layer steps of 16 inputs or more reassociate their sums, where a "
                    "batch keeps micrograd's order: both within the bound, not the same bits")
    on, off = trained(1, order, **kw), trained(0, order, **kw)
    assert on[0] > 0 and off[0] == 0  # (the batch steps ran)
    assert on[1:] == off[1:]  # losses, every node's data and grad, the parameters


def micrograd_loop(engine, iters, lr=0.1, seed=5, samples=13):
    """micrograd's demo loop on a graph rebuilt each step: its losses and
    the parameters after, as bits."""
    model, xs, ys, _ = minibatch(seed, samples=samples, engine=engine)
    out = []
    for _ in range(iters):
        scores = [model(x) for x in xs]
        loss = sum((1 + -y * s).relu() for y, s in zip(ys, scores)) * (1.0 / len(scores)) \
            + 1e-3 * sum(p * p for p in model.parameters())
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        out.append(bits(loss.data))
    return out, [bits(p.data) for p in model.parameters()]


def test_a_batched_tape_trains_as_a_rebuild_does_and_as_the_reference_engine():
    model, _, _, loss = minibatch(5, samples=13)
    t = Tape(loss)
    assert batches(t) == 3
    got = [bits(v) for v in t.train(4, SGD(model.parameters(), lr=0.1))]
    want = micrograd_loop(pygrad, 4)
    assert (got, [bits(p.data) for p in model.parameters()]) == want
    assert micrograd_loop(reference, 4) == want


def test_a_reorder_that_would_change_a_grads_order_is_refused():
    """A parent of a weight between two samples' layers (w * 2 added to the
    loss after the first sample): batching would move the second sample's
    contribution to the weight ahead of it, so the program stays as it was."""
    def run():
        random.seed(2)
        model = MLP(2, [4, 1])
        w = model.layers[0].neurons[0].w[0]
        a = model([Value(0.5), Value(-1.0)])
        mid = a * 1.0 + w * 2.0
        b = model([Value(1.5), Value(0.25)])
        loss = (mid - 1.0) ** 2 + (b + 0.5) ** 2
        t = Tape(loss)
        losses = t.train(3, SGD(model.parameters(), lr=0.05))
        return batches(t), [bits(v) for v in losses], state(loss)
    on, off = with_batches(1, run), with_batches(0, run)
    assert on[0] == 0 and on == off


def test_shared_and_gathered_inputs_in_a_batch():
    """Two samples that share an input leaf (its grad gets both members'
    contributions, in order) and inputs that are computed in another order
    (gathered, not contiguous)."""
    def run():
        random.seed(4)
        model = MLP(3, [8, 8, 1], act="tanh")
        base = [Value(0.3 * i - 0.5) for i in range(7)]
        rows = [[base[0], base[1], base[2]], [base[0], base[3], base[4]], [base[6] * 2.0, base[5] + 1.0, base[4]],
                [base[2], base[2] * base[1], base[0]]]
        loss = sum((model(r) - 0.25) ** 2 for r in rows)
        t = Tape(loss)
        losses = t.train(3, SGD(model.parameters() + base, lr=0.05))
        return batches(t), [bits(v) for v in losses], state(loss), [bits(v.grad) for v in base]
    on, off = with_batches(1, run), with_batches(0, run)
    assert on[0] > 0 and on[1:] == off[1:]


@pytest.mark.parametrize("kw", [{"samples": 19, "sizes": (2, [16, 16, 1])}] + SHAPES[5:])
def test_plain_and_vector_batch_kernels_give_the_same_bits(kw):
    runs = []
    for simd in (0, 1):
        lib.pg_debug_tape_simd(simd)
        try:
            runs.append(trained(1, **kw))
        finally:
            lib.pg_debug_tape_simd(1)
    assert runs[0][0] > 0 and runs[0] == runs[1]


def same(a, b):
    return a == b or (a != a and b != b)  # (NaN: any NaN)


@pytest.mark.parametrize("width", [8, 9, 16])
def test_relus_vector_kernels_keep_minus_zero_nan_and_the_infinities(width):
    """Sums of -0.0, 0.0, NaN, +-inf, +-tiny and ordinary numbers into relu,
    on layers whose relu runs eight neurons at a time (in a batch, with the
    CPU's widest vectors, and in a lone layer step, with the plain build's):
    relu(-0.0) is -0.0, NaN stays NaN, and the grads are
    (out > 0) * g, all as the graph's own backward and the reference engine
    give them."""
    specials = [-0.0, 0.0, float("nan"), float("inf"), float("-inf"), -1.5, 2.5, 5e-324, -5e-324]

    def build(engine, samples):
        random.seed(8)
        model = engine.MLP(2, [width, 1])
        for j, neuron in enumerate(model.layers[0].neurons):  # sums b + (+-0.0) + (+-0.0) of row 0: b
            neuron.b.data = specials[j % len(specials)]
            neuron.w[0].data, neuron.w[1].data = (0.0, -0.0) if j < len(specials) else (0.5, -0.25)
        for j, w in enumerate(model.layers[1].neurons[0].w):
            w.data = (-1.0) ** j * (j + 1)
        rows = [[engine.Value(-1.0), engine.Value(2.0)], [engine.Value(1.0), engine.Value(-3.0)],
                [engine.Value(-0.0), engine.Value(0.0)]][:samples]
        loss = sum(model(r) * (i + 1.0) for i, r in enumerate(rows))
        return model, loss

    for samples in (1, 3):  # a lone layer step, and a batch
        def graph():
            model, loss = build(pygrad, samples)
            loss.backward()
            return [(p.data, p.grad) for p in model.parameters()], state(loss)

        def taped(on, simd):
            def run():
                model, loss = build(pygrad, samples)
                lib.pg_debug_tape_simd(simd)
                try:
                    t = Tape(loss)
                    t.forward()
                    t.backward()
                finally:
                    lib.pg_debug_tape_simd(1)
                return batches(t), [(p.data, p.grad) for p in model.parameters()], state(loss)
            return with_batches(on, run)

        want = graph()
        got = [taped(1, 1), taped(0, 1), taped(1, 0)]
        assert (got[0][0] > 0) == (samples > 1)
        for g in got:
            assert g[2] == want[1]  # every node's data and grad, to the bit
        ref_model, ref_loss = build(reference, samples)
        ref_loss.backward()
        ref = [(p.data, p.grad) for p in ref_model.parameters()]
        assert all(same(a, c) and same(b, d) for (a, b), (c, d) in zip(want[0], ref))
        data = [struct.unpack("<d", d)[0] for d, _ in want[1]]
        assert any(x != x for x in data) and any(x == 0.0 and math.copysign(1.0, x) < 0 for x in data)


def test_a_failure_in_a_batch_leaves_the_last_iteration_and_names_a_node():
    """A log activation whose sum goes negative in one sample: the error is
    that neuron's, as without batches, and every node is as the last good
    forward left it."""
    random.seed(8)
    model = MLP(2, [6, 1], act="log", bias="uniform")
    for p in model.layers[0].parameters():
        p.data = abs(p.data)  # (positive sums for positive inputs)
    rows = [[Value(0.5), Value(1.0)], [Value(0.25), Value(2.0)], [Value(1.5), Value(0.75)]]
    loss = sum(model(r) for r in rows)
    errors = []
    for on in (1, 0):
        t = with_batches(on, lambda: Tape(loss))
        assert (batches(t) > 0) == bool(on)
        t.forward()
        before = state(loss)
        rows[1][0].data = -1e6  # that sample's sums go negative: log of a negative number
        with pytest.raises(ValueError, match="log") as e:
            t.forward()
        errors.append(str(e.value))
        rows[1][0].data = 0.25
        assert state(loss) == before
    assert errors[0] == errors[1]


def test_of_two_failures_the_one_the_old_order_meets_first_is_reported():
    """Sample 0's loss fails (log of a negative) and so does a later sample's
    layer: without batches the first is met first; with them the batch runs
    before sample 0's loss, yet the error must be the same."""
    random.seed(8)
    model = MLP(2, [6, 1], act="log", bias="uniform")
    for p in model.layers[0].parameters():
        p.data = abs(p.data)
    rows = [[Value(0.5), Value(1.0)], [Value(0.25), Value(2.0)], [Value(1.5), Value(0.75)]]
    shift = Value(0.0)
    outs = [model(r) for r in rows]
    loss = (outs[0] - shift).log() + outs[1] + outs[2]
    errors = []
    for on in (1, 0):
        t = with_batches(on, lambda: Tape(loss))
        assert (batches(t) > 0) == bool(on)
        shift.data, rows[2][0].data = 1e6, -1e6  # both fail
        with pytest.raises(ValueError) as e:
            t.forward()
        errors.append(str(e.value))
        shift.data, rows[2][0].data = 0.0, 1.5
    assert errors[0] == errors[1] and errors[0].startswith("log(")


def test_batches_write_back_inner_nodes_and_feed_inputs_from_data():
    """Inputs fed from rows of data (each row the whole batch): the inner
    products of every sample read after train() what a tape without
    batches leaves there."""
    def run():
        model, xs, _, loss = minibatch(6, samples=5, sizes=(2, [5, 1]), act="tanh")
        inputs = [v for row in xs for v in row]
        data = np.random.default_rng(1).normal(size=(3, len(inputs)))
        t = Tape(loss)
        t.train(4, SGD(model.parameters(), lr=0.1), inputs=inputs, data=data)
        return batches(t), state(loss), [bits(v.grad) for v in inputs]
    on, off = with_batches(1, run), with_batches(0, run)
    assert on[0] > 0 and on[1:] == off[1:]


def test_w2_replayed_in_batches_matches_micrograds_loop():
    """The benchmark's W2 (micrograd's demo): one Tape.train call with the
    demo's schedule gives the demo loop's losses, to the bit."""
    X, y = w2_data()
    X, y = X[:30], y[:30]
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    scores = [model([Value(v) for v in row]) for row in X]
    t = Tape(hinge(scores, y, model.parameters(), alpha=W2_ALPHA))
    assert batches(t) == 3
    got = t.train(6, SGD(model.parameters(), lr=1.0), lr=lambda k: 1.0 - 0.9 * k / 100)
    random.seed(1337)
    twin = MLP(2, [16, 16, 1])
    want = []
    for k in range(6):
        scores = [twin([Value(v) for v in row]) for row in X]
        loss = hinge(scores, y, twin.parameters(), alpha=W2_ALPHA)
        twin.zero_grad()
        loss.backward()
        for p in twin.parameters():
            p.data -= (1.0 - 0.9 * k / 100) * p.grad
        want.append(bits(loss.data))
    assert [bits(v) for v in got] == want
    assert [bits(p.data) for p in model.parameters()] == [bits(p.data) for p in twin.parameters()]


# ---- Tape.train(lr=...) ----------------------------------------------------------

def small():
    random.seed(1)
    m = MLP(2, [4, 1])
    loss = (m([Value(1.0), Value(-2.0)]) - 1.0) ** 2
    return m, loss


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.3), lambda ps: SGD(ps, lr=0.3, momentum=0.9),
                                  lambda ps: Adam(ps, lr=0.3)])
def test_a_schedule_steps_as_a_loop_that_sets_lr(make):
    sched = [0.1, 0.05, 0.0, 0.02, 0.2]
    m, loss = small()
    opt = make(m.parameters())
    got = Tape(loss).train(5, opt, lr=sched)
    assert opt.lr == 0.2
    m2, loss2 = small()
    opt2, t2, want = make(m2.parameters()), Tape(loss2), []
    for r in sched:
        opt2.lr = r
        want += list(t2.train(1, opt2))
    assert [bits(v) for v in got] == [bits(v) for v in want]
    assert [bits(p.data) for p in m.parameters()] == [bits(p.data) for p in m2.parameters()]
    m3, loss3 = small()
    assert list(Tape(loss3).train(5, make(m3.parameters()), lr=lambda k: sched[k])) == list(got)


def test_a_bad_schedule_raises_before_anything_trains():
    m, loss = small()
    opt, t = SGD(m.parameters(), lr=0.1), Tape(loss)
    before = [bits(p.data) for p in m.parameters()]
    with pytest.raises(ValueError, match=r"lr\[2\] = -1.0: lr must be a finite number >= 0"):
        t.train(4, opt, lr=[0.1, 0.1, -1.0, 0.1])
    with pytest.raises(ValueError, match=r"lr\[0\] = nan"):
        t.train(1, opt, lr=[float("nan")])
    with pytest.raises(ValueError, match="one learning rate per iteration: 3, not 2"):
        t.train(3, opt, lr=[0.1, 0.2])
    with pytest.raises(TypeError, match="a learning rate must be a real number"):
        t.train(2, opt, lr=[0.1, "fast"])
    with pytest.raises(TypeError, match="lr must be a sequence"):
        t.train(2, opt, lr=0.1)
    with pytest.raises(ValueError, match="needs an optimizer"):
        t.train(2, lr=[0.1, 0.1])
    assert [bits(p.data) for p in m.parameters()] == before and opt.lr == 0.1 and opt.steps == 0


def test_the_c_check_of_a_schedule_takes_its_length():
    from pygrad._c import ffi
    m, _ = small()
    opt = SGD(m.parameters(), lr=0.1)
    lrs = ffi.new("double[]", [0.1, 0.2, -0.5, 0.3])
    assert lib.pg_optim_check_lrs(opt._c, lrs, 4) == 2 and lib.pg_optim_check_lrs(opt._c, lrs, 2) == 2
    assert lib.pg_optim_check_lrs(ffi.NULL, lrs, 4) == lib.PG_EBADOP
    assert lib.pg_optim_check_lrs(opt._c, lrs, -1) == lib.PG_EBADOP
    assert lib.pg_optim_check_lrs(opt._c, ffi.NULL, 1) == lib.PG_EBADOP


def test_a_failed_iteration_keeps_the_last_completed_iterations_lr():
    x = Value(1.0)
    loss = (x * 1.0).log()
    opt = SGD([x], lr=0.5)
    t = Tape(loss)
    # x steps by -lr / x: 1.0 -> 0.5 (lr 0.5) -> -0.5 (lr 0.5): the third forward fails
    with pytest.raises(ValueError) as e:
        t.train(4, opt, lr=[0.5, 0.5, 0.25, 0.25])
    assert len(e.value.losses) == 2 and opt.lr == 0.5 and x.data == -0.5
