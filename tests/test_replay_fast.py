"""Tape(root, order="fast"): each neuron's sum b + w1*x1 + ... + wn*xn may be
added in any order (csrc/tape_replay.c, pg__dot). pygrad.h states the
bound: within (2n + 1) * 2**-53 * (|b| + |w1*x1| + ... + |wn*xn|) of the sum
in micrograd's order. These tests check it on every neuron, that training
stays with the reference engine and PyTorch, and that the bits are the same
from run to run."""
import math
import random

import numpy as np
import pytest
from pygrad._c import lib

import pygrad
from pygrad import MLP, Tape, Value, reference
from pygrad.optim import SGD
from test_tape_neurons import bits, state

U = 2.0 ** -53


def sequential(b, ws, xs):
    """The neuron's sum in micrograd's order (Python's floats are IEEE doubles)."""
    acc = b
    for w, x in zip(ws, xs):
        acc = acc + w * x
    return acc


def bound(b, ws, xs):
    return (2 * len(ws) + 1) * U * (abs(b) + sum(abs(w * x) for w, x in zip(ws, xs)))


@pytest.mark.parametrize("sizes", [(300, [40, 10]), (64, [33, 17, 5]), (20, [1])])
def test_every_neurons_sum_is_within_the_stated_bound(sizes):
    nin, nouts = sizes
    random.seed(sum(nouts))
    mlp = MLP(nin, nouts, act="tanh", bias="uniform")
    x = [Value(random.uniform(-3, 3)) for _ in range(nin)]
    outs = [x]
    for layer in mlp.layers:  # every layer's outputs: the next layer's inputs
        o = layer(outs[-1])
        outs.append(o if isinstance(o, list) else [o])
    root = sum(outs[-1], Value(0.0))
    fast = Tape(root, order="fast")
    moved, checked = 0, 0
    for _ in range(3):
        pygrad.set_data(x, [random.uniform(-3, 3) for _ in range(nin)])
        fast.forward()
        for layer, ins, layer_out in zip(mlp.layers, outs, outs[1:]):
            xs = [v.data for v in ins]  # the inputs as the fast tape computed them
            for neuron, o in zip(layer.neurons, layer_out):
                (s,) = o._prev if len(o._prev) == 1 else (o,)  # s_n, before the activation
                ws = [w.data for w in neuron.w]
                exact = sequential(neuron.b.data, ws, xs)
                limit = bound(neuron.b.data, ws, xs)
                assert abs(s.data - exact) <= limit, (s.data, exact, limit)
                moved += s.data != exact
                checked += 1
    assert checked > 0
    if nin >= 64:  # wide enough that reassociation moves some sums: the fast path ran
        assert moved > 0, "fast order gave micrograd's order on every neuron"


def test_a_neuron_step_in_fast_order_keeps_the_bound():
    """A neuron whose operands repeat is not a layer: the neuron step's fast sum."""
    random.seed(3)
    ws = [Value(random.uniform(-1, 1)) for _ in range(40)]
    xs = [ws[(3 * k) % 40] for k in range(40)]  # operands shared between terms
    b = Value(0.5)
    s = b
    for w, x in zip(ws, xs):
        s = s + w * x
    out = s.tanh()
    fast = Tape(out, order="fast")
    assert lib.pg_tape_neurons(fast._c) == 1 and lib.pg_tape_layers(fast._c) == 0
    for _ in range(5):
        pygrad.set_data(ws, [random.uniform(-2, 2) for _ in ws])
        fast.forward()
        vals = [w.data for w in ws]
        exact = sequential(0.5, vals, [vals[(3 * k) % 40] for k in range(40)])
        assert abs(s.data - exact) <= bound(0.5, vals, [vals[(3 * k) % 40] for k in range(40)])
        assert out.data == math.tanh(s.data)  # the activation of the fast sum, to the bit


def classifier(engine, seed):
    random.seed(seed)
    mlp = engine.MLP(48, [24, 5], bias="uniform")
    return mlp


def ce_loss(engine, mlp, row, cls):
    x = [engine.Value(float(v)) for v in row] if engine is reference else row
    logits = mlp(x)
    return sum(z.exp() for z in logits).log() - logits[cls] * 1.0


def test_fast_training_stays_with_the_reference_engine_and_pytorch():
    rng = np.random.default_rng(1)
    X, C = rng.random((40, 48)) - 0.5, rng.integers(0, 5, 40)
    mlp = classifier(pygrad, 4)
    x = [Value(0.0) for _ in range(48)]
    t = [Value(0.0) for _ in range(5)]
    logits = mlp(x)
    loss = sum(z.exp() for z in logits).log() - sum(ti * z for ti, z in zip(t, logits))
    fast = Tape(loss, order="fast").train(40, SGD(mlp.parameters(), lr=0.1), inputs=x + t,
                                            data=[X, np.eye(5)[C]]).tolist()
    ref = classifier(reference, 4)
    want = []
    for row, c in zip(X, C):
        tl = ce_loss(reference, ref, row, int(c))
        want.append(tl.data)
        for p in ref.parameters():
            p.grad = 0.0
        tl.backward()
        for p in ref.parameters():
            p.data -= 0.1 * p.grad
    assert max(abs(a - b) / abs(b) for a, b in zip(fast, want)) < 1e-12
    torch = pytest.importorskip("torch")
    ps = [torch.tensor(pygrad.get_data(classifier(pygrad, 4)), dtype=torch.float64)]
    flat = ps[0]
    W1 = flat[:24 * 49].reshape(24, 49).clone().requires_grad_()
    W2 = flat[24 * 49:].reshape(5, 25).clone().requires_grad_()
    theirs = []
    for row, c in zip(torch.tensor(X), C):
        h = torch.relu(W1[:, :48] @ row + W1[:, 48])
        z = W2[:, :24] @ h + W2[:, 24]
        tl = torch.logsumexp(z, 0) - z[int(c)]
        theirs.append(tl.item())
        tl.backward()
        with torch.no_grad():
            for W in (W1, W2):
                W -= 0.1 * W.grad
                W.grad = None
    assert max(abs(a - b) / abs(b) for a, b in zip(fast, theirs)) < 1e-10
    assert np.allclose(pygrad.get_data(mlp), np.concatenate([W1.detach().numpy().ravel(),
                                                             W2.detach().numpy().ravel()]),
                       rtol=1e-9, atol=1e-12)


def test_fast_order_gives_the_same_bits_every_run():
    runs = []
    for _ in range(2):
        random.seed(5)
        mlp = MLP(200, [30, 3], bias="uniform")
        x = [Value(0.0) for _ in range(200)]
        loss = sum(o * o for o in mlp(x))
        data = np.random.default_rng(2).random((6, 200))
        losses = Tape(loss, order="fast").train(12, SGD(mlp.parameters(), lr=0.001), inputs=x,
                                                data=data)
        runs.append(([bits(v) for v in losses], state(loss)))
    assert runs[0] == runs[1]


def test_order_is_checked():
    with pytest.raises(ValueError, match="order must be 'exact' or 'fast'"):
        Tape(Value(1.0) * 2.0, order="quick")
    assert Tape(Value(1.0) * 2.0, order="exact").order == "exact"


@pytest.mark.parametrize("order", ["exact", "fast"])
def test_the_plain_and_the_vector_kernels_give_the_same_bits(order):
    """Layer steps run AVX2 kernels where the CPU has them (csrc/tape_layers.h):
    each lane does what the plain code does, so the bits are the same."""
    runs = []
    for simd in (0, 1):
        lib.pg_debug_tape_simd(simd)
        try:
            random.seed(6)
            mlp = MLP(70, [33, 9], bias="uniform")
            x = [Value(0.0) for _ in range(70)]
            logits = mlp(x)
            loss = sum(z.exp() for z in logits).log() - logits[0]
            data = np.random.default_rng(4).random((5, 70)) - 0.5
            for opt in (SGD(mlp.parameters(), lr=0.05), SGD(mlp.parameters(), lr=0.05, momentum=0.5)):
                losses = Tape(loss, order=order).train(6, opt, inputs=x, data=data)
            runs.append(([bits(v) for v in losses], state(loss)))
        finally:
            lib.pg_debug_tape_simd(1)
    assert runs[0] == runs[1]
