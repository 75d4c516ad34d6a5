"""copy, deepcopy and pickle of every Module, and saving and loading a model's
parameters (pygrad/serialization.py documents the file format)."""
import copy
import gc
import io
import math
import pickle
import random

import numpy
import pytest

import pygrad
from pygrad import MLP, Layer, Module, Neuron, Value, reference
from pygrad.nn import ACTIVATIONS


class Tied(Module):
    """A user's own module: an MLP, a loose Value, and one weight used twice."""

    def __init__(self):
        self.body = MLP(2, [3, 1], act="tanh")
        self.scale = Value(0.5, label="scale")
        self.tied = [self.scale, self.scale]

    def __call__(self, x):
        return self.body(x) * self.tied[0] + self.tied[1]

    def parameters(self):
        return self.body.parameters() + [self.scale]


def modules():
    random.seed(1)
    return ([Neuron(3, act=act, bias="uniform") for act in ACTIVATIONS if act != "log"]
            + [Layer(3, 1), Layer(3, 4, act="tanh"), MLP(3, [4, 4, 1], act="tanh", bias="uniform"),
               MLP(3, [1, 2]), Tied()])


def inputs(module):
    nin = 2 if isinstance(module, Tied) else 3
    return [0.5, -1.25, 2.0][:nin]


def outputs(module):
    out = module(inputs(module))
    return [v.data for v in (out if isinstance(out, list) else [out])]


def bits(xs):
    return [x.hex() for x in xs]


def grads_after_backward(module):
    module.zero_grad()
    out = module(inputs(module))
    sum(out if isinstance(out, list) else [out]).backward()
    return bits([p.grad for p in module.parameters()])


@pytest.mark.parametrize("module", modules(), ids=repr)
def test_deepcopy_and_pickle_give_an_independent_equal_module(module, arena_baseline):
    want = grads_after_backward(module)
    before = bits([p.data for p in module.parameters()])
    clones = [copy.deepcopy(module)] + [pickle.loads(pickle.dumps(module, protocol))
                                        for protocol in range(pickle.HIGHEST_PROTOCOL + 1)]
    for clone in clones:
        assert type(clone) is type(module)
        assert pygrad.serialization.describe(clone) == pygrad.serialization.describe(module)
        assert bits([p.data for p in clone.parameters()]) == before
        assert bits([p.grad for p in clone.parameters()]) == want  # grads travel too
        assert not set(map(id, clone.parameters())) & set(map(id, module.parameters()))
        assert bits(outputs(clone)) == bits(outputs(module))
        assert grads_after_backward(clone) == want
        for p in clone.parameters():
            p.data = 0.0
    assert bits([p.data for p in module.parameters()]) == before  # the original is untouched
    del clones, clone, p
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def test_a_shared_value_stays_shared_in_a_copy():
    for clone in (copy.deepcopy(Tied()), pickle.loads(pickle.dumps(Tied()))):
        assert clone.tied[0] is clone.tied[1] is clone.scale
        clone.scale.data = 2.0
        assert clone(inputs(clone)).data == clone.body([0.5, -1.25]).data * 2.0 + 2.0


@pytest.mark.parametrize("module", modules(), ids=repr)
def test_a_shallow_copy_shares_the_parameters(module):
    clone = copy.copy(module)
    assert [id(p) for p in clone.parameters()] == [id(p) for p in module.parameters()]
    assert bits(outputs(clone)) == bits(outputs(module))


def test_a_copy_builds_its_own_cache_and_follows_its_own_changes():
    m = MLP(3, [4, 1])
    x = [1.0, 2.0, 3.0]
    want = m(x).data  # builds m's cache
    clone = pickle.loads(pickle.dumps(m))
    assert "_cache" not in clone.__dict__  # pickling leaves the caches behind
    clone.layers[0].neurons[0].w[0].data = 10.0
    with pygrad._fastpath.off():  # the Python path, neuron by neuron
        h = clone(x)
    assert clone(x).data == h.data != want
    assert m(x).data == want


# ---- save and load ----------------------------------------------------------


def trained(seed, steps=3):
    random.seed(seed)
    m = MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")
    for _ in range(steps):
        loss = sum((y - m(x)) ** 2 for x, y in zip([[2, 3, -1], [3, -1, 0.5]], [1, -1]))
        m.zero_grad()
        loss.backward()
        for p in m.parameters():
            p.data -= 0.05 * p.grad
    return m


def test_save_then_load_round_trips_every_bit(tmp_path):
    m = trained(0)
    specials = [math.nan, math.inf, -math.inf, -0.0, 5e-324]
    for p, x in zip(m.parameters(), specials):
        p.data = x
    path = tmp_path / "w1.params"  # no .npz suffix: the file is written as named
    m.save(path)
    assert [f.name for f in tmp_path.iterdir()] == ["w1.params"]
    other = trained(1)
    assert bits([p.data for p in other.parameters()]) != bits([p.data for p in m.parameters()])
    other.load(str(path))
    assert bits([p.data for p in other.parameters()]) == bits([p.data for p in m.parameters()])
    for p in m.parameters()[:len(specials)]:
        p.data = 0.25
    other_params = other.parameters()
    for p in other_params[:len(specials)]:
        p.data = 0.25
    assert bits(outputs(other)) == bits(outputs(m))


def test_the_file_is_plain_numpy_as_documented(tmp_path):
    m = trained(0)
    m.save(tmp_path / "m")
    with numpy.load(tmp_path / "m", allow_pickle=False) as z:
        assert sorted(z.files) == ["data", "format", "model", "version"]
        assert str(z["format"]) == "pygrad.parameters" and int(z["version"]) == 1
        assert str(z["model"]) == repr(m)
        assert z["data"].dtype == numpy.float64
        assert bits(z["data"].tolist()) == bits([p.data for p in m.parameters()])


def test_file_objects_and_other_engines_and_user_modules():
    buf = io.BytesIO()
    random.seed(3)
    ref = reference.MLP(3, [4, 1])  # trained on the pure-Python engine ...
    ref.save(buf)
    assert repr(ref) == repr(MLP(3, [4, 1]))  # the same shape on either engine
    random.seed(4)
    mine = MLP(3, [4, 1])  # ... loads into pygrad's
    buf.seek(0)
    mine.load(buf)
    assert bits([p.data for p in mine.parameters()]) == bits([p.data for p in ref.parameters()])
    t, u = Tied(), Tied()
    t.scale.data = 3.0
    buf = io.BytesIO()
    t.save(buf)
    buf.seek(0)
    u.load(buf)
    buf.seek(0)
    with numpy.load(buf) as z:
        assert str(z["model"]) == "Tied with 14 parameters"  # 3 * (2 + 1) + (3 + 1) + scale
    assert u.scale.data == 3.0 and bits(outputs(u)) == bits(outputs(t))


def test_a_file_of_another_model_is_refused_and_changes_nothing(tmp_path):
    trained(0).save(tmp_path / "w1")
    for model in (MLP(3, [4, 1]), MLP(3, [4, 4, 1], act="relu", out_act="tanh"), Neuron(3),
                  MLP(3, [4, 4, 1], act="tanh")):  # another count, or another repr
        before = bits([p.data for p in model.parameters()])
        with pytest.raises(ValueError, match=r"holds 41 parameters of MLP of \[Layer of \[TanhNeuron"):
            model.load(tmp_path / "w1")
        assert bits([p.data for p in model.parameters()]) == before


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        numpy.savez(f, **arrays)
    return path


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("not a zip"), "not a pygrad parameter file"),
    (lambda p: p.write_bytes(b""), "not a pygrad parameter file"),
    (lambda p: numpy.save(open(p, "wb"), numpy.zeros(41)), "not a pygrad parameter file"),
    (lambda p: write_npz(p, data=numpy.zeros(41)), "not a pygrad parameter file"),
    (lambda p: write_npz(p, format=numpy.array("other"), version=numpy.array(1),
                         model=numpy.array("m"), data=numpy.zeros(41)), "not a pygrad parameter file"),
    (lambda p: write_npz(p, format=numpy.array("pygrad.parameters"), version=numpy.array(2),
                         model=numpy.array("m"), data=numpy.zeros(41)), "version 2"),
    (lambda p: write_npz(p, format=numpy.array("pygrad.parameters"), version=numpy.array(1),
                         model=numpy.array("m"), data=numpy.zeros(41, "float32")), "float64"),
    (lambda p: write_npz(p, format=numpy.array("pygrad.parameters"), version=numpy.array(1),
                         model=numpy.array("m"), data=numpy.zeros((41, 1))), "1-D"),
    (lambda p: write_npz(p, format=numpy.array("pygrad.parameters"), version=numpy.array(1),
                         model=numpy.array("m"), data=numpy.array([object()])), "not a pygrad"),
])
def test_a_file_that_is_not_a_parameter_file_is_a_value_error(tmp_path, make, words):
    path = tmp_path / "bad"
    make(path)
    m = trained(0, steps=0)
    before = bits([p.data for p in m.parameters()])
    with pytest.raises(ValueError, match=words):
        m.load(path)
    assert bits([p.data for p in m.parameters()]) == before


def test_a_truncated_file_is_a_value_error(tmp_path):
    m = trained(0, steps=0)
    whole = io.BytesIO()
    m.save(whole)
    data = whole.getvalue()
    for cut in (10, 100, len(data) // 2, len(data) - 30, len(data) - 1):
        with pytest.raises(ValueError, match="not a pygrad parameter file"):
            m.load(io.BytesIO(data[:cut]))


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        MLP(3, [1]).load(tmp_path / "absent")


def test_a_model_that_fails_to_save_leaves_the_old_file_whole(tmp_path):
    class Broken(Module):
        def parameters(self):
            raise RuntimeError("no parameters today")

    m = trained(0, steps=0)
    m.save(tmp_path / "ck")
    before = (tmp_path / "ck").read_bytes()
    with pytest.raises(RuntimeError, match="no parameters today"):
        Broken().save(tmp_path / "ck")
    assert (tmp_path / "ck").read_bytes() == before
    m.load(tmp_path / "ck")
