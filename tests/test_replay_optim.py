"""Graph replay (pygrad.Tape), the C optimizers (pygrad.optim) and the bulk
numpy access (pygrad.get_data & co.): each against the Python loop it
replaces, to the bit, and against PyTorch where PyTorch defines it."""
import gc
import math
import random

import numpy as np
import pytest

import pygrad
from pygrad import MLP, Tape, Value, reference
from pygrad.optim import SGD, Adam
from pygrad.workloads import W1_XS, W1_YS, train_w1, w1_model


def w1_loss(mlp, xs=W1_XS):
    ypred = [mlp(x) for x in xs]
    return sum((yi - ypi) ** 2 for yi, ypi in zip(W1_YS, ypred)) ** 0.5


# ---- Tape: forward, backward, train ---------------------------------------

def test_train_gives_the_tutorial_loops_losses_to_the_bit():
    expected = train_w1(w1_model(reference, "tutorial"), 300)
    mlp = w1_model(pygrad, "nn")
    losses = Tape(w1_loss(mlp)).train(300, SGD(mlp.parameters(), lr=0.01))
    assert isinstance(losses, np.ndarray) and losses.dtype == np.float64
    assert losses.tolist() == expected
    slow = w1_model(reference, "tutorial")
    train_w1(slow, 300)
    assert [p.data for p in mlp.parameters()] == [p.data for p in slow.parameters()]


def test_fused_loop_matches_the_unchanged_loop_for_100000_iterations():
    b = w1_model(pygrad, "nn")
    expected = train_w1(b, 100_000)
    c = w1_model(pygrad, "nn")
    losses = Tape(w1_loss(c)).train(100_000, SGD(c.parameters(), lr=0.01))
    assert losses[-1] == expected[-1] and losses.tolist() == expected


def test_forward_and_backward_equal_a_rebuilt_graph():
    random.seed(3)
    mlp = MLP(2, [3, 1], act="tanh")
    x = [Value(0.5), Value(-0.25)]
    loss = (mlp(x) - 0.5) ** 2
    tape = Tape(loss)
    assert len(tape) > 10
    for new in ([1.0, 2.0], [-3.0, 0.125]):
        for xi, v in zip(x, new):
            xi.data = v
        assert tape.forward() == loss.data
        tape.backward()
        got = [p.grad for p in mlp.parameters()] + [xi.grad for xi in x]
        fresh = (mlp(x) - 0.5) ** 2
        assert fresh.data == loss.data
        mlp.zero_grad()
        for xi in x:
            xi.grad = 0.0
        fresh.backward()
        assert got == [p.grad for p in mlp.parameters()] + [xi.grad for xi in x]


def test_train_feeds_rows_of_data_into_the_inputs():
    random.seed(4)
    mlp = MLP(2, [4, 1])
    x = [Value(0.0), Value(0.0)]
    loss = (mlp(x) - 1.0) ** 2
    data = np.array([[0.1, 0.2], [0.3, -0.4], [-0.5, 0.6]])
    random.seed(4)
    twin = MLP(2, [4, 1])
    opt_twin = SGD(twin.parameters(), lr=0.05, momentum=0.9)
    expected = []
    for i in range(7):  # the same loop in Python, rebuilding each time
        row = data[i % 3]
        out = (twin([float(row[0]), float(row[1])]) - 1.0) ** 2
        expected.append(out.data)
        twin.zero_grad()
        out.backward()
        opt_twin.step()
    losses = Tape(loss).train(7, SGD(mlp.parameters(), lr=0.05, momentum=0.9), inputs=x, data=data)
    assert losses.tolist() == expected
    assert [p.data for p in mlp.parameters()] == [p.data for p in twin.parameters()]


def test_a_failed_replay_changes_nothing_and_says_what_failed():
    x = Value(2.0)
    y = (x * 3.0).log() + x
    tape = Tape(y)
    before = y.data
    x.data = -1.0
    with pytest.raises(ValueError, match=r"log\(-3.0\): math domain error \(replaying a Tape\)"):
        tape.forward()
    assert y.data == before and x.data == -1.0
    x.data = 1.0
    assert tape.forward() == math.log(3.0) + 1.0
    x2 = Value(1.0)
    z = (x2 * 1.0).log()
    with pytest.raises(ValueError) as err:
        Tape(z).train(5, inputs=[x2], data=[[1.0], [2.0], [-1.0]])
    assert err.value.losses.tolist() == [0.0, math.log(2.0)]


def test_a_tape_keeps_its_graph_alive_and_frees_it():
    gc.collect()
    arena_baseline = pygrad.live_nodes()

    def build():
        x = Value(1.5)
        return Tape((x * x).tanh())

    tape = build()
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline + 3
    assert tape.forward() == math.tanh(2.25)
    del tape
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def test_tape_argument_errors():
    with pytest.raises(TypeError):
        Tape(1.0)
    tape = Tape(Value(1.0) * 2.0)
    with pytest.raises(ValueError, match="iters"):
        tape.train(-1)
    with pytest.raises(ValueError, match="data needs inputs"):
        tape.train(1, data=[[1.0]])
    with pytest.raises(ValueError, match="shape"):
        tape.train(1, inputs=[Value(1.0)], data=[[1.0, 2.0]])
    assert tape.train(0).tolist() == []


# ---- optimizers -------------------------------------------------------------

def test_plain_sgd_is_the_tutorials_update_to_the_bit():
    ps = [Value(v) for v in (0.3, -1.2, 4.0)]
    twins = [v.data for v in ps]
    for p, g in zip(ps, (0.1, 2.5, -7.0)):
        p.grad = g
    SGD(ps, lr=0.01).step()
    assert [p.data for p in ps] == [d - 0.01 * g for d, g in zip(twins, (0.1, 2.5, -7.0))]


@pytest.mark.parametrize("make_ours, make_torch", [
    (lambda ps: SGD(ps, lr=0.1, momentum=0.9), dict(cls="SGD", lr=0.1, momentum=0.9)),
    (lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
     dict(cls="SGD", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (lambda ps: SGD(ps, lr=0.05, momentum=0.5, dampening=0.3),
     dict(cls="SGD", lr=0.05, momentum=0.5, dampening=0.3)),
    (lambda ps: Adam(ps, lr=0.01), dict(cls="Adam", lr=0.01)),
    (lambda ps: Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     dict(cls="Adam", lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (lambda ps: Adam(ps, lr=0.01, betas=(0.3, 0.9)), dict(cls="Adam", lr=0.01, betas=(0.3, 0.9))),
])
def test_optimizers_match_pytorch(make_ours, make_torch):
    torch = pytest.importorskip("torch")
    start = [0.5, -1.5, 2.0, 0.0]
    ps = [Value(v) for v in start]
    ours = make_ours(ps)
    tp = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    kw = dict(make_torch)
    theirs = getattr(torch.optim, kw.pop("cls"))([tp], **kw)
    for step in range(25):
        loss = sum((p * float(i + 1) - 1.0) ** 2 for i, p in enumerate(ps))  # a simple bowl
        ours.zero_grad()
        loss.backward()
        ours.step()
        theirs.zero_grad()
        tl = ((tp * torch.arange(1, 5, dtype=torch.float64) - 1.0) ** 2).sum()
        tl.backward()
        theirs.step()
        for p, t in zip(ps, tp.tolist()):
            assert p.data == pytest.approx(t, rel=1e-12, abs=1e-15)
    assert ours.steps == 25


def test_optimizer_settings_are_checked_and_can_change():
    ps = [Value(1.0)]
    for bad in (dict(lr=-1.0), dict(momentum=-0.1), dict(lr=float("nan")),
                dict(nesterov=True), dict(weight_decay=float("inf"))):
        with pytest.raises(ValueError):
            SGD(ps, **bad)
    for bad in (dict(betas=(1.0, 0.9)), dict(eps=-1.0), dict(betas=(0.9,))):
        with pytest.raises(ValueError):
            Adam(ps, **bad)
    with pytest.raises(TypeError):
        SGD([1.0, 2.0])
    opt = SGD(ps, lr=0.5)
    ps[0].grad = 1.0
    opt.lr = 0.25
    opt.step()
    assert ps[0].data == 0.75 and opt.lr == 0.25
    with pytest.raises(ValueError):
        opt.lr = -1.0
    assert opt.lr == 0.25
    assert "SGD(1 parameters" in repr(opt)


def test_an_optimizer_keeps_its_parameters_alive(arena_baseline):
    opt = SGD([Value(1.0), Value(2.0)], lr=1.0)
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline + 2
    opt.step()
    assert [p.data for p in opt.params] == [1.0, 2.0]
    del opt
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


# ---- numpy access -----------------------------------------------------------

def test_get_and_set_data_and_grads_as_arrays():
    mlp = MLP(3, [4, 1])
    params = mlp.parameters()
    data = pygrad.get_data(mlp)
    assert data.tolist() == [p.data for p in params]
    pygrad.set_data(params, data * 2.0)
    assert [p.data for p in params] == (data * 2.0).tolist()
    pygrad.set_grad(params, 3.0)
    assert pygrad.get_grad(params).tolist() == [3.0] * len(params)
    pygrad.set_grad(mlp, np.arange(len(params)))
    assert [p.grad for p in params] == list(map(float, range(len(params))))
    with pytest.raises(ValueError, match="expected 21 values"):
        pygrad.set_data(params, [1.0, 2.0])
    with pytest.raises(TypeError):
        pygrad.get_data([1.0])
    assert pygrad.get_data([]).shape == (0,)
