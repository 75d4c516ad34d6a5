"""The tutorials' workloads (docs/pages/workloads.md), as pygrad.workloads (their
loops) and pygrad.runs (`pygrad train`'s runs of them) define them for the
tests, the benchmarks and the command line: each trains, and gives the
reference engine's numbers to the bit, PyTorch's (float64) to 1e-12, or
micrograd's, step for step; W2 gives micrograd's demo's numbers."""
import math
import random
import types

import pytest

import pygrad
from pygrad import MLP, Value, reference
from pygrad.datasets import load_digits
from pygrad.losses import hinge
from pygrad.optim import SGD
from pygrad.runs import W1, W2, W3, WORKLOADS, Digits, W1b, W1Torch
from pygrad.workloads import (W1_XS, W1_YS, XOR_XS, XOR_YS, agrees, digits_loss, digits_split,
                              train_w2, w2_data, w4_numbers)

from helpers import rel_diff  # tests/helpers.py


def torch_twin(model, acts):
    """A torch float64 nn.Sequential with model's (an MLP's) weights: one
    Linear per layer, each followed by its activation in acts (None: none)."""
    torch = pytest.importorskip("torch")
    layers = []
    for layer, act in zip(model.layers, acts):
        neurons = layer.neurons
        lin = torch.nn.Linear(len(neurons[0].w), len(neurons), dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[w.data for w in n.w] for n in neurons], dtype=torch.float64))
            lin.bias.copy_(torch.tensor([n.b.data for n in neurons], dtype=torch.float64))
        layers += [lin] + ([act()] if act else [])
    return torch.nn.Sequential(*layers)


def torch_losses(net, loss_fn, batches, lr):
    """Losses of SGD steps on net, one per (inputs, targets) batch."""
    import torch
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    out = []
    for x, y in batches:
        loss = loss_fn(net(torch.tensor(x, dtype=torch.float64)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def assert_close(ours, theirs, tol=1e-12):
    worst = max(rel_diff(a, b) for a, b in zip(ours, theirs))
    assert len(ours) == len(theirs) and worst <= tol, worst


# ---- W1: the tutorial network (seed 000) -----------------------------------------

@pytest.mark.parametrize("way", ["tutorial", "nn", "tape"])
def test_w1_trains_to_the_reference_engines_losses(way):
    """Ways (a), (b) and (c): iteration for iteration, to the bit."""
    want = W1(seed=3, engine=reference, way="tutorial").train(300)
    got = W1(seed=3, way=way).train(300)
    assert got == want
    assert got[-1] < got[0] / 10


def test_w1_in_chunks_is_one_run():
    """pygrad train runs a workload in chunks between progress-bar updates."""
    run = W1(seed=1)
    assert run.train(40) + run.train(1) + run.train(59) == W1(seed=1).train(100)


def test_w1_tape_runs_on_pygrad_only():
    with pytest.raises(ValueError, match="pygrad only"):
        W1(engine=reference, way="tape")
    with pytest.raises(ValueError, match="way"):
        W1(way="fast")


def test_w1_pytorch_twin_matches_pytorch_step_for_step():
    """Seed 000's PyTorch model: Linear/Tanh, linear output, MSELoss, SGD 0.01."""
    torch = pytest.importorskip("torch")
    run = W1Torch(seed=7)
    net = torch_twin(run.model, [torch.nn.Tanh, torch.nn.Tanh, None])
    target = torch.tensor(W1_YS, dtype=torch.float64).reshape(-1, 1)
    theirs = torch_losses(net, torch.nn.MSELoss(), [(W1_XS, target)] * 300, lr=0.01)
    ours = run.train(300)
    assert_close(ours, theirs)
    assert ours[-1] < ours[0] / 10


def test_w1_pytorch_twin_gives_the_reference_engines_losses():
    assert W1Torch(seed=3).train(200) == W1Torch(seed=3, engine=reference).train(200)


# ---- W1b (seed 004), W3 (seed 001) -------------------------------------------------

def test_w1b_notebook_trains_to_the_reference_engines_losses():
    got = W1b(seed=5).train(100)
    assert got == W1b(seed=5, engine=reference).train(100)
    assert got[-1] < got[0] / 2


def test_w1b_trains_like_the_notebook():
    """500 epochs take the loss well under its start (the notebook: 0.058)."""
    run = W1b()
    losses = run.train(run.iters)
    assert losses[-1] < 0.1 < losses[0]


def test_w3_xor_with_sigmoid_trains_to_the_reference_engines_losses():
    got, want = W3(seed=2), W3(seed=2, engine=reference)
    assert got.train(400) == want.train(400)
    assert got.predictions() == want.predictions()


def test_w3_xor_matches_pytorch_step_for_step():
    torch = pytest.importorskip("torch")
    run = W3(seed=1)
    net = torch_twin(run.model, [torch.nn.Sigmoid, torch.nn.Sigmoid])
    target = torch.tensor(XOR_YS, dtype=torch.float64).reshape(-1, 1)
    theirs = torch_losses(net, torch.nn.MSELoss(), [(XOR_XS, target)] * 200, lr=0.1)
    assert_close(run.train(200), theirs)


def test_w3_learns_xor():
    """Seed 0 learns XOR (seeds 2 and 5 stick in a local minimum at 100,000
    epochs, predicting 0.5 for two inputs); 10,000 epochs are enough."""
    run = W3(seed=0)
    losses = run.train(10_000)
    assert losses[-1] < losses[0] / 10
    assert [round(p) for p in run.predictions()] == XOR_YS


# ---- W2: micrograd's demo --------------------------------------------------------

def test_w2_demo_loop_gives_the_reference_engines_losses_to_the_bit():
    ours, acc = train_w2(pygrad, steps=3)
    theirs, acc_ref = train_w2(reference, steps=3)
    assert ours == theirs and acc == acc_ref


def test_w2_matches_the_micrograd_package_step_for_step():
    mg_engine = pytest.importorskip("micrograd.engine")
    mg_nn = pytest.importorskip("micrograd.nn")
    micrograd = types.SimpleNamespace(Value=mg_engine.Value, MLP=mg_nn.MLP)
    ours, _ = train_w2(pygrad, steps=2)
    theirs, _ = train_w2(micrograd, steps=2)
    # micrograd sums gradients in an order that follows object ids: equal to rounding
    assert_close(ours, theirs)


def test_w2_in_chunks_is_the_demo_loop():
    """pygrad train's W2 of 100 steps is the demo: the same schedule."""
    run = W2()
    assert run.train(2) + run.train(1) == train_w2(pygrad, steps=3)[0]


def test_w2_replayed_with_the_hinge_loss_is_the_demo_loop():
    X, y = w2_data()
    expected, _ = train_w2(pygrad, steps=4, X=X, y=y)
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    scores = [model([Value(v) for v in row]) for row in X]
    tape = pygrad.Tape(hinge(scores, y, model.parameters(), alpha=1e-4))
    opt = SGD(model.parameters(), lr=1.0)
    losses = []
    for k in range(4):
        opt.lr = 1.0 - 0.9 * k / 100
        losses += tape.train(1, opt).tolist()
    assert losses == expected


# micrograd's demo.ipynb as printed (karpathy/micrograd): "step k loss L, accuracy A%"
DEMO_PRINTED = {0: (0.8958441028683222, 50.0), 1: (1.7235905336972022, 81.0),
                2: (0.7429006313851131, 77.0), 3: (0.7705641260584198, 82.0),
                4: (0.3692793385976538, 84.0), 5: (0.313545481918522, 86.0),
                10: (0.24507023853658053, 91.0), 20: (0.18977522856087634, 91.0),
                39: (0.05225659921975849, 98.0), 40: (0.06016009895234464, 100.0),
                44: (0.045306841790015734, 100.0), 47: (0.03143222795751122, 100.0)}


def test_w2_defaults_give_micrograds_demo_numbers():
    """W2 at its defaults is the demo: the same data (make_moons as
    scikit-learn draws it after np.random.seed(1337)), the same weights
    (random.seed(1337)), the same losses and accuracies. The first loss is
    the demo's to the bit; later ones to rounding (micrograd adds gradients
    up in an order that follows object ids)."""
    run = W2()
    assert run.seed == 1337
    losses, accuracies = [], []
    for _ in range(48):
        run.train(1, losses)
        accuracies.append(run.acc * 100)
    assert losses[0] == DEMO_PRINTED[0][0]
    for k, (loss, acc) in DEMO_PRINTED.items():
        assert rel_diff(losses[k], loss) < 1e-12 and accuracies[k] == acc, k


def test_w2_data_is_the_demos():
    datasets = pytest.importorskip("sklearn.datasets")
    import numpy as np
    np.random.seed(1337)  # the demo's cells, verbatim
    X, y = datasets.make_moons(n_samples=100, noise=0.1)
    y = y*2 - 1  # make y be -1 or 1
    ours_X, ours_y = w2_data()
    assert ours_X == X.tolist() and ours_y == y.tolist()


# ---- W4: the lecture's worked numbers (seed 003) ------------------------------------

def test_agrees_rounds_to_the_printed_decimals():
    assert agrees(0.0100503, "0.01") and agrees(4.60517, "4.6") and agrees(101770, "101770")
    assert not agrees(0.016, "0.01") and not agrees(4.66, "4.6") and not agrees(101771, "101770")


def test_w4_numbers_are_the_lectures():
    numbers = w4_numbers()
    for what, values, printed in numbers:
        assert all(agrees(v, p) for v, p in zip(values, printed)), (what, values, printed)
    (_, z, _), (_, out, _), (_, soft, _), (_, ce, _), (_, count, _) = numbers
    # derived independently, with math and by hand
    assert z == pytest.approx([0.5 * 1.0 + 0.8 * 0.5 - 0.1, -0.3 * 1.0 + 0.6 * 0.5 + 0.2], rel=1e-12)
    assert out[0] == pytest.approx(1 / (1 + math.exp(-(0.7 * 0.8 - 0.5 * 0.2 - 0.1))), rel=1e-12)
    exps = [math.exp(s) for s in (2.0, 1.0, 0.1)]
    assert soft == pytest.approx([e / sum(exps) for e in exps], rel=1e-12)
    assert ce == pytest.approx([-math.log(p) for p in (0.99, 0.5, 0.01)], rel=1e-12)
    assert count == [784 * 128 + 128 + 128 * 10 + 10]
    assert w4_numbers(reference) == numbers


def test_w4_numbers_match_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    f64 = torch.float64
    hidden = torch.tensor([[0.5, 0.8], [-0.3, 0.6]], dtype=f64) @ torch.tensor([1.0, 0.5], dtype=f64) \
        + torch.tensor([-0.1, 0.2], dtype=f64)
    out = torch.sigmoid(torch.tensor([0.7, -0.5], dtype=f64) @ torch.relu(hidden) - 0.1)
    soft = torch.softmax(torch.tensor([2.0, 1.0, 0.1], dtype=f64), dim=0)
    ce = [F.cross_entropy(torch.tensor([[math.log(p), math.log(1 - p)]], dtype=f64),
                          torch.tensor([0])).item() for p in (0.99, 0.5, 0.01)]
    count = sum(p.numel() for p in torch.nn.Sequential(torch.nn.Linear(784, 128),
                                                       torch.nn.Linear(128, 10)).parameters())
    (_, z, _), (_, o, _), (_, s, _), (_, c, _), (_, n, _) = w4_numbers()
    assert_close(z, hidden.tolist())
    assert_close(o, [out.item()])
    assert_close(s, soft.tolist())
    assert_close(c, ce)
    assert n == [count]


def test_w4_cross_entropy_gradient_is_softmax_minus_one_hot():
    """The lecture's softmax feeding a cross-entropy: d loss / d z_i = p_i - [i == 0]."""
    zs = [Value(2.0), Value(1.0), Value(0.1)]
    loss = pygrad.losses.cross_entropy(zs, 0)
    loss.backward()
    exps = [math.exp(z.data) for z in zs]
    for i, (z, e) in enumerate(zip(zs, exps)):
        assert z.grad == pytest.approx(e / sum(exps) - (i == 0), rel=1e-12, abs=1e-15)


# ---- digits: a classifier on a real data set -----------------------------------------

def test_load_digits():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype.kind == "f" and y.dtype.kind == "i"
    assert X.min() == 0.0 and X.max() == 1.0
    assert ((X * 16) == (X * 16).round()).all()  # 0..16 counts, scaled
    # The UCI page's class counts of the test set, for 0 to 4 (of 178 to 183 each)
    assert [int((y == c).sum()) for c in range(5)] == [178, 182, 177, 183, 181]
    assert sorted(set(y.tolist())) == list(range(10))


def test_digits_split_is_fixed_and_disjoint():
    train, held_out = digits_split(1797)
    assert (len(train), len(held_out)) == (1438, 359)
    assert sorted(train + held_out) == list(range(1797))
    assert digits_split(1797) == (train, held_out)


def _reference_digits_losses(run, data, steps):
    """The digits model's first SGD steps, one sample each, rebuilt on the
    pure-Python reference engine from the same weights."""
    random.seed(run.seed)
    model = reference.MLP(64, [run.hidden, 10])
    out = []
    for row in data[:steps]:
        x = [reference.Value(float(v)) for v in row[:64]]
        t = [reference.Value(float(v)) for v in row[64:]]
        loss = digits_loss(model(x), t)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= run.lr * p.grad
        out.append(loss.data)
    return out


def test_digits_first_steps_give_the_reference_engines_losses():
    run = Digits(seed=0)
    data = run.epoch_data()
    ours = run.tape.train(4, run.opt, run.x + run.t, data[:4]).tolist()
    assert ours == _reference_digits_losses(run, data, 4)


def test_digits_first_steps_match_pytorchs_cross_entropy():
    torch = pytest.importorskip("torch")
    run = Digits(seed=1)
    net = torch_twin(run.model, [torch.nn.ReLU, None])
    data = run.epoch_data()
    ours = run.tape.train(6, run.opt, run.x + run.t, data[:6]).tolist()
    batches = [([row[:64].tolist()], torch.tensor([int(row[64:].argmax())])) for row in data[:6]]
    assert_close(ours, torch_losses(net, torch.nn.CrossEntropyLoss(), batches, run.lr))


def test_digits_classifier_reaches_95_percent_on_held_out_digits():
    run = Digits()  # seed 0, 20 epochs
    losses = run.train(run.iters)
    assert losses[-1] < losses[0] / 4
    assert run.accuracy(run.test_idx) >= 0.95


def test_digits_runs_on_pygrad_only():
    with pytest.raises(ValueError, match="pygrad only"):
        Digits(engine=reference)


def test_every_workload_is_listed_once():
    assert list(WORKLOADS) == ["W1", "W1-torch", "W1b", "W2", "W3", "digits"]
    assert all(name == cls.name for name, cls in WORKLOADS.items())
