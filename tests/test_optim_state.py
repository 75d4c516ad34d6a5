"""Optimizer checkpoints (pygrad.optim: state_dict, load_state_dict, copy,
deepcopy, pickle) and the settings' rules, written once in csrc/optim.c.

A run stopped, saved, loaded in a fresh process and continued gives the
uninterrupted run's losses to the bit; a state that does not fit raises
ValueError and changes nothing."""
import copy
import math
import pickle
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pygrad
from pygrad import MLP, Tape, Value, _c
from pygrad.optim import SGD, Adam

MAKERS = {
    "sgd-momentum": lambda ps: SGD(ps, lr=0.05, momentum=0.9),
    "sgd-nesterov": lambda ps: SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: Adam(ps, lr=0.02, betas=(0.8, 0.99), weight_decay=0.001),
}


def model(seed=0):
    random.seed(seed)
    return MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")


XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]


def loss_of(m):
    return sum((y - m(x)) ** 2 for x, y in zip(XS, YS)) ** 0.5


def steps(m, opt, n):
    """n steps of the rebuilt loop; the losses."""
    out = []
    for _ in range(n):
        loss = loss_of(m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.data)
    return out


# ---- the state's shape ----------------------------------------------------------

def test_state_dict_is_torchs_shape_with_float64_buffers_in_parameter_order():
    m = model()
    opt = SGD(m.parameters(), lr=0.1, momentum=0.9)
    assert opt.state_dict() == {"state": {0: {"step": 0, "momentum_buffer": None}},
                                "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                                                  "weight_decay": 0.0, "nesterov": False,
                                                  "params": [0]}]}
    loss = loss_of(m)
    loss.backward()
    grads = pygrad.get_grad(m)
    opt.step()
    state = opt.state_dict()["state"][0]
    assert state["step"] == 1
    buf = state["momentum_buffer"]
    assert buf.dtype == np.float64 and buf.tolist() == grads.tolist()  # torch: buf = g at step 1
    buf[:] = 7.0  # a copy: changing it changes nothing
    assert opt.state_dict()["state"][0]["momentum_buffer"].tolist() == grads.tolist()

    adam = Adam(m.parameters(), lr=0.01)
    sd = adam.state_dict()
    assert sd["param_groups"] == [{"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8,
                                   "weight_decay": 0.0, "params": [0]}]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"]
    adam.step()
    st = adam.state_dict()["state"][0]
    assert st["step"] == 1 and st["exp_avg"].shape == st["exp_avg_sq"].shape == (41,)
    assert st["exp_avg"].tolist() == [(1 - 0.9) * g for g in grads.tolist()]  # lerp(0, g, 1 - b1)


def test_plain_sgd_has_no_momentum_buffer():
    p = [Value(1.0)]
    opt = SGD(p, lr=0.5)
    p[0].grad = 1.0
    opt.step()
    assert opt.state_dict()["state"][0] == {"step": 1, "momentum_buffer": None}


# ---- resuming ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_loaded_state_continues_the_run_to_the_bit(kind):
    make = MAKERS[kind]
    m = model(1)
    opt = make(m.parameters())
    whole = steps(m, opt, 30)

    m2 = model(1)
    opt2 = make(m2.parameters())
    first = steps(m2, opt2, 12)
    saved_params, saved_state = pygrad.get_data(m2), pickle.dumps(opt2.state_dict())
    m3 = model(5)  # another start, overwritten by the checkpoint
    pygrad.set_data(m3, saved_params)
    opt3 = make(m3.parameters())
    opt3.lr = 123.0  # settings are part of the state too
    opt3.load_state_dict(pickle.loads(saved_state))
    assert first + steps(m3, opt3, 18) == whole
    assert opt3.steps == 30


RESUME = textwrap.dedent("""
    import pickle, random, sys
    import numpy as np
    import pygrad
    from pygrad.optim import SGD, Adam

    kind, way, phase, folder = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    random.seed(0)
    model = pygrad.MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]

    def loss_of():
        return sum((y - model(x)) ** 2 for x, y in zip(xs, ys)) ** 0.5

    if kind == "sgd":
        opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = Adam(model.parameters(), lr=0.01)
    if phase == "second":  # a fresh process: the model and the optimizer from their files
        model.load(folder + "/model.npz")
        with open(folder + "/optim.pkl", "rb") as f:
            opt.load_state_dict(pickle.load(f))
    n = {"whole": 40, "first": 15, "second": 25}[phase]
    if way == "tape":
        losses = pygrad.Tape(loss_of()).train(n, opt).tolist()
    else:
        losses = []
        for _ in range(n):
            loss = loss_of()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.data)
    if phase == "first":
        model.save(folder + "/model.npz")
        with open(folder + "/optim.pkl", "wb") as f:
            pickle.dump(opt.state_dict(), f)
    print(" ".join(x.hex() for x in losses))
""")


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("way", ["loop", "tape"])
def test_resuming_in_a_fresh_process_gives_the_uninterrupted_runs_losses(kind, way, tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME)

    def run(phase):
        out = subprocess.run([sys.executable, str(script), kind, way, phase, str(tmp_path)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    whole = run("whole")
    assert len(whole) == 40
    assert run("first") + run("second") == whole


def test_a_state_of_torch_code_over_one_flat_parameter_is_taken():
    """torch.optim over one float64 tensor of n elements: its state fits."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start, grads = rng.standard_normal(6), rng.standard_normal((20, 6))
    for ours_cls, torch_cls, kw in ((Adam, torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.9))),
                                    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9))):
        tp = torch.tensor(start, requires_grad=True)
        theirs = torch_cls([tp], **kw)
        fresh = ours_cls([Value(float(x)) for x in start], lr=0.5)
        fresh.load_state_dict(theirs.state_dict())  # torch's state before any step: {}
        assert fresh.state_dict()["param_groups"][0]["lr"] == 0.05
        for g in grads[:10]:
            tp.grad = torch.tensor(g)
            theirs.step()
        ps = [Value(float(x)) for x in tp.detach().numpy()]
        ours = ours_cls(ps, lr=1.0)
        ours.load_state_dict(theirs.state_dict())
        for g in grads[10:]:
            tp.grad = torch.tensor(g)
            theirs.step()
            pygrad.set_grad(ps, g)
            ours.step()
        np.testing.assert_allclose(pygrad.get_data(ps), tp.detach().numpy(), rtol=1e-12, atol=1e-15)
    amsgrad = torch.optim.Adam([torch.zeros(6, dtype=torch.float64, requires_grad=True)], amsgrad=True)
    with pytest.raises(ValueError, match="amsgrad=True"):
        Adam([Value(0.0) for _ in range(6)]).load_state_dict(amsgrad.state_dict())
    single = torch.optim.SGD([torch.zeros(6, dtype=torch.float32, requires_grad=True)], lr=0.1,
                             momentum=0.9)
    single.param_groups[0]["params"][0].grad = torch.ones(6)
    single.step()
    with pytest.raises(ValueError, match="float64"):
        SGD([Value(0.0) for _ in range(6)], lr=0.1).load_state_dict(single.state_dict())


# ---- states that do not fit ----------------------------------------------------------

def _stepped(make, n=3):
    m = model(2)
    opt = make(m.parameters())
    steps(m, opt, n)
    return m, opt


def _bad_states(good, kind):
    def edit(f):
        sd = copy.deepcopy(good)
        f(sd)
        return sd
    group = lambda sd: sd["param_groups"][0]  # noqa: E731
    entry = lambda sd: sd["state"][0]  # noqa: E731
    buf = "momentum_buffer" if kind == "sgd" else "exp_avg"
    cases = [
        ({"state": {}}, ValueError),
        (edit(lambda sd: sd.update(extra=1)), ValueError),
        (edit(lambda sd: sd["param_groups"].append(dict(group(sd)))), ValueError),
        (edit(lambda sd: sd.update(param_groups=[])), ValueError),
        (edit(lambda sd: group(sd).update(params=[0, 1])), ValueError),
        (edit(lambda sd: group(sd).update(params=5)), ValueError),
        (edit(lambda sd: group(sd).pop("lr")), ValueError),
        (edit(lambda sd: group(sd).update(lr=-1.0)), ValueError),
        (edit(lambda sd: group(sd).update(lr=math.nan)), ValueError),
        (edit(lambda sd: group(sd).update(lr="0.1")), TypeError),
        (edit(lambda sd: group(sd).update(maximize=True)), ValueError),
        (edit(lambda sd: group(sd).update(color="red")), ValueError),
        (edit(lambda sd: sd.update(state={1: entry(sd)})), ValueError),
        (edit(lambda sd: sd.update(state=[entry(sd)])), ValueError),
        (edit(lambda sd: sd["state"].update({0: 5})), ValueError),
        (edit(lambda sd: entry(sd).update(step=-1)), ValueError),
        (edit(lambda sd: entry(sd).update(step=1.5)), ValueError),
        (edit(lambda sd: entry(sd).update(step=True)), ValueError),
        (edit(lambda sd: entry(sd).update(step=math.inf)), ValueError),
        (edit(lambda sd: entry(sd).update(step=2**70)), ValueError),
        (edit(lambda sd: entry(sd).update(step=np.array([1, 2]))), ValueError),
        (edit(lambda sd: entry(sd).update(step="3")), ValueError),
        (edit(lambda sd: entry(sd).update(surprise=np.zeros(41))), ValueError),
        (edit(lambda sd: entry(sd).update({buf: entry(sd)[buf][:-1]})), ValueError),
        (edit(lambda sd: entry(sd).update({buf: entry(sd)[buf].astype(np.float32)})), ValueError),
        (edit(lambda sd: entry(sd).update({buf: entry(sd)[buf].reshape(1, -1)})), ValueError),
        (edit(lambda sd: entry(sd).update({buf: ["a"] * 41})), ValueError),
        ("not a dict", TypeError),
    ]
    if kind == "adam":
        cases += [(edit(lambda sd: entry(sd).pop("exp_avg_sq")), ValueError),
                  (edit(lambda sd: entry(sd).update(exp_avg_sq=-entry(sd)["exp_avg_sq"])), ValueError)]
    return cases


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_a_state_that_does_not_fit_raises_and_changes_nothing(kind):
    make = MAKERS["sgd-momentum" if kind == "sgd" else "adam"]
    m, opt = _stepped(make)
    good = opt.state_dict()
    other = (MAKERS["adam"] if kind == "sgd" else MAKERS["sgd-momentum"])(m.parameters())
    small = _stepped(lambda ps: make(ps[:-1]))[1]
    cases = _bad_states(good, kind) + [(other.state_dict(), ValueError),
                                       (small.state_dict(), ValueError)]
    before = pickle.dumps(good)
    for bad, exc in cases:
        with pytest.raises(exc):
            opt.load_state_dict(bad)
        assert pickle.dumps(opt.state_dict()) == before, bad
    twin_m, twin = _stepped(make)  # and the run goes on as if nothing had happened
    assert steps(m, opt, 5) == steps(twin_m, twin, 5)


def test_a_state_fits_any_optimizer_of_the_same_kind_and_size():
    _, a = _stepped(MAKERS["adam"])
    other = Adam([Value(0.0) for _ in range(41)], lr=0.5, eps=1e-3)
    other.load_state_dict(a.state_dict())
    assert pickle.dumps(other.state_dict()) == pickle.dumps(a.state_dict())
    assert (other.lr, other.eps) == (0.02, 1e-8)


# ---- copy, deepcopy, pickle ------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_copies_continue_like_the_original_and_independently(kind):
    make = MAKERS[kind]
    m, opt = _stepped(make)
    twin_m, twin = _stepped(make)
    expected = steps(twin_m, twin, 6)

    shallow = copy.copy(opt)
    assert shallow.params == opt.params and all(a is b for a, b in zip(shallow.params, opt.params))
    assert shallow._c != opt._c  # a C optimizer of its own
    m_deep, opt_deep = copy.deepcopy((m, opt))
    assert all(a is b for a, b in zip(opt_deep.params, m_deep.parameters()))  # the copied model's
    m_pickled, opt_pickled = pickle.loads(pickle.dumps((m, opt)))
    assert all(a is b for a, b in zip(opt_pickled.params, m_pickled.parameters()))

    assert steps(m_deep, opt_deep, 6) == expected
    assert steps(m_pickled, opt_pickled, 6) == expected
    assert steps(m, shallow, 6) == expected  # the shallow copy steps the original's parameters
    assert opt.steps == 3 and shallow.steps == 9


def test_a_shallow_copy_has_its_own_settings():
    """Issue 11, item 9: copy.copy shared the C optimizer but not its settings,
    so a new lr on the copy changed the original's steps."""
    p = [Value(1.0)]
    opt = SGD(p, lr=0.1)
    twin = copy.copy(opt)
    twin.lr = 0.5
    p[0].grad = 1.0
    opt.step()
    assert p[0].data == 1.0 - 0.1 and opt.lr == 0.1
    twin.step()
    assert p[0].data == (1.0 - 0.1) - 0.5


def test_deepcopy_and_pickle_of_an_optimizer_work():
    """Issue 11, item 17: deepcopy raised a TypeError naming cffi's internal type."""
    p = [Value(1.0), Value(-2.0)]
    opt = Adam(p, lr=0.1)
    opt.note = "mine"  # a user's attribute comes along
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert isinstance(clone, Adam) and clone.note == "mine"
        assert [v.data for v in clone.params] == [1.0, -2.0]
        assert all(a is not b for a, b in zip(clone.params, p))
        assert repr(clone) == repr(opt)


def test_a_forged_pickle_is_checked_like_any_state():
    """A pickle carries a state dict, which goes through load_state_dict."""
    from pygrad.optim import _restore
    opt = SGD([Value(1.0)], lr=0.1, momentum=0.5)
    forged = opt.state_dict()
    forged["state"][0]["momentum_buffer"] = np.zeros(1000)

    class Forgery:
        def __reduce__(self):
            return _restore, (SGD, opt.params, forged)

    with pytest.raises(ValueError, match="float64 array of 1"):
        pickle.loads(pickle.dumps(Forgery()))


# ---- the settings' rules: once, in C ------------------------------------------------------

def test_invalid_settings_name_the_setting_and_its_rule():
    p = [Value(1.0)]
    cases = [
        (lambda: SGD(p, dampening=math.nan), r"SGD\(dampening=nan\): dampening must be a finite number"),
        (lambda: SGD(p, momentum=math.inf), r"SGD\(momentum=inf\): momentum must be a finite number >= 0"),
        (lambda: SGD(p, lr=-1), r"SGD\(lr=-1\): lr must be a finite number >= 0"),
        (lambda: SGD(p, momentum=0.0, nesterov=True), r"SGD\(nesterov=True\): nesterov must be false"),
        (lambda: Adam(p, betas=(0.9, 1.0)), r"Adam\(betas=\(0.9, 1.0\)\): beta2 must be a number in \[0, 1\)"),
        (lambda: Adam(p, eps=math.inf), r"Adam\(eps=inf\): eps must be a finite number >= 0"),
        (lambda: Adam(p, betas=(0.9,)), r"Adam\(betas=\(0.9,\)\): betas must be a pair"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    opt = SGD(p, lr=0.1, momentum=0.5)
    with pytest.raises(ValueError, match=r"SGD\(momentum=inf\)"):  # the drift: C took it, Python not
        opt.momentum = math.inf
    with pytest.raises(ValueError, match=r"SGD\(dampening=nan\)"):
        opt.dampening = math.nan
    assert (opt.momentum, opt.dampening) == (0.5, 0.0)


@pytest.mark.parametrize("kind", [_c.SGD, _c.ADAM])
def test_the_c_library_refuses_exactly_the_configs_python_reports(kind):
    numbers = [0.0, 0.5, 1.0, -0.5, math.inf, -math.inf, math.nan]
    rng = random.Random(kind)
    seen = set()
    for _ in range(400):
        s = dict(lr=rng.choice(numbers), weight_decay=rng.choice(numbers))
        if kind == _c.SGD:
            s.update(momentum=rng.choice(numbers), dampening=rng.choice(numbers),
                     nesterov=rng.random() < 0.3)
        else:
            s.update(betas=(rng.choice(numbers), rng.choice(numbers)), eps=rng.choice(numbers))
        cfg = _c.optim_config(kind, s)
        bad = _c.optim_check(cfg)
        made, status = _c.optim_new(cfg, _c.Handles([Value(1.0)]))
        assert (made is None) == (bad is not None)
        assert status == _c.OK if bad is None else isinstance(_c.error(status, "x"), ValueError)
        seen.add(bad and bad[0])
    assert len(seen) >= 4  # valid configs and several kinds of invalid one were tried
