"""pygrad.nn's one-call forward (csrc/nn.c: pg_mlp): the same graph as
micrograd's layer-by-layer forward, node for node and bit for bit."""
import gc
import random

import numpy as np
import pytest

import pygrad
from pygrad import MLP, Layer, Neuron, Value, reference
from pygrad import _fastpath
from pygrad.engine import UNARY_OPS


def twin(cls_name, seed, *args, **kwargs):
    """The same module on pygrad and on the reference engine, same weights."""
    random.seed(seed)
    fast = getattr(pygrad, cls_name)(*args, **kwargs)
    random.seed(seed)
    slow = getattr(reference, cls_name)(*args, **kwargs)
    return fast, slow


def outputs(y):
    return y if isinstance(y, list) else [y]


def grads(values):
    return [v.grad for v in values]


def python_path(module, x):
    """The same module's forward through Python ops on pygrad.Value (no pg_mlp):
    nn.py's own code, with the one-call forward switched off."""
    with _fastpath.off():
        return module(x)


@pytest.mark.parametrize("act", ["linear"] + list(UNARY_OPS))
def test_mlp_forward_and_backward_match_the_reference_to_the_bit(act):
    fast, slow = twin("MLP", 7, 3, [5, 4, 2], act=act, out_act=act, bias="uniform")
    x = [0.3, 0.2, 0.9]  # positive inputs and weights keep log/sqrt in their domains
    if act in ("log", "sqrt"):
        for m in (fast, slow):
            for p in m.parameters():
                p.data = abs(p.data) + 0.1
    yf, ys = outputs(fast(x)), outputs(slow(x))
    assert [v.data for v in yf] == [v.data for v in ys]
    (yf[0] * 2.0 + yf[1]).backward()
    (ys[0] * 2.0 + ys[1]).backward()
    assert grads(fast.parameters()) == grads(slow.parameters())


def test_the_graph_is_micrographs_node_for_node(arena_baseline):
    random.seed(1)
    m = MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")
    base = pygrad.live_nodes()
    y = m([2.0, 3.0, -1.0])  # numbers: one leaf per use, as micrograd makes
    c_nodes = pygrad.live_nodes() - base
    z = python_path(m, [2.0, 3.0, -1.0])
    assert pygrad.live_nodes() - base - c_nodes == c_nodes == 4 * (3 * 3 + 1) + 4 * (2 * 4 + 1) + 9
    assert y.data == z.data and y._op == z._op == "tanh"
    y.backward()
    g_c = grads(m.parameters())
    m.zero_grad()
    z.backward()
    assert g_c == grads(m.parameters())
    del y, z
    gc.collect()
    assert pygrad.live_nodes() == base


@pytest.mark.parametrize("x", [
    [0.5, -1.0],
    (0.5, -1.0),
    np.array([0.5, -1.0]),
    [np.float32(0.5), True],
    iter([0.5, -1.0]),
])
def test_inputs_of_every_kind_give_the_python_paths_numbers(x):
    fast, slow = twin("MLP", 3, 2, [3, 2])
    xs = list(x) if not isinstance(x, type(iter([]))) else [0.5, -1.0]
    yf = fast(x if not isinstance(x, type(iter([]))) else iter(xs))
    assert [v.data for v in yf] == [v.data for v in slow(xs)]


def test_value_inputs_get_their_gradients():
    fast, slow = twin("Layer", 5, 3, 2, act="tanh")
    xf = [Value(v) for v in (0.1, 0.2, 0.3)]
    xs = [reference.Value(v) for v in (0.1, 0.2, 0.3)]
    mixed = [xf[0], 0.2, xf[2]]  # Values and numbers together
    yf, ys = fast(xf), slow(xs)
    (yf[0] + yf[1]).backward()
    (ys[0] + ys[1]).backward()
    assert grads(xf) == grads(xs)
    assert [v.data for v in fast(mixed)] == [v.data for v in yf]


def test_neuron_and_layer_calls_and_edge_shapes():
    n_fast, n_slow = twin("Neuron", 2, 3, act="sigmoid")
    assert n_fast([1.0, 2.0, 3.0]).data == n_slow([1.0, 2.0, 3.0]).data
    empty = Neuron(0, nonlin=False)  # micrograd returns the bias itself
    assert empty([]) is not empty.b and empty([]).data == empty.b.data
    m = MLP(2, [1, 3, 1], act="tanh")  # a 1-neuron hidden layer
    assert isinstance(m([0.5, -0.5]), Value)


def test_changing_a_model_is_seen_by_the_next_forward():
    random.seed(0)
    m = MLP(2, [2, 1])
    x = [1.0, 2.0]
    m(x)  # builds and caches the C network
    m.layers[0].neurons[0].w[0] = Value(10.0)  # a new weight Value
    assert m(x).data == python_path(m, x).data
    assert m.layers[0].neurons[0].w[0] in m.parameters()
    m.layers[1].neurons[0].b = Value(-3.0)
    assert m(x).data == python_path(m, x).data
    m.layers[1].neurons.append(Neuron(2))  # now two outputs
    assert [v.data for v in m(x)] == [v.data for v in python_path(m, x)]
    assert len(m.parameters()) == 2 * 3 + 2 * 3
    lst = m.parameters()
    lst.clear()  # parameters() gives a new list each time
    assert len(m.parameters()) == 12


def test_a_change_to_one_model_keeps_the_other_models_caches():
    random.seed(0)
    a, b = MLP(2, [2, 1]), MLP(2, [2, 1])
    x = [1.0, 2.0]
    a(x), b(x)
    net_b = b._cache.net  # b's C network: its parameters' handles, sizes, activations
    a.layers[0].neurons[0].w[0] = Value(10.0)
    a.layers[1].neurons.append(Neuron(2))
    assert b(x).data == python_path(b, x).data
    assert b._cache.net is net_b  # not rebuilt
    assert [v.data for v in a(x)] == [v.data for v in python_path(a, x)]


def test_a_change_to_a_shared_layer_or_neuron_reaches_every_model_holding_it():
    random.seed(1)
    m1, m2 = MLP(2, [3, 1]), MLP(2, [3, 1])
    shared = Layer(3, 1, nonlin=False)
    m1.layers[1] = m2.layers[1] = shared
    x = [0.5, -1.5]
    for m in (m1, m2):
        assert m(x).data == python_path(m, x).data
    new = Value(7.0)
    shared.neurons[0].w[1] = new  # a list inside a neuron inside the shared layer
    for m in (m1, m2):
        assert m(x).data == python_path(m, x).data
        assert new in m.parameters()
    shared.neurons[0].b = Value(-2.0)  # an attribute of the shared neuron
    shared.neurons = [Neuron(3, nonlin=False), Neuron(3, nonlin=False)]  # two outputs now
    for m in (m1, m2):
        assert [v.data for v in m(x)] == [v.data for v in python_path(m, x)]
        assert len(m.parameters()) == 3 * 3 + 2 * 4


class MyLayer(pygrad.Module):
    """A user's own module standing in for a layer."""

    def __init__(self):
        self.inner = Layer(2, 2)

    def __call__(self, x):
        return self.inner(x)

    def parameters(self):
        return self.inner.parameters()


class Wrap(pygrad.Module):
    """A user's own module standing in for a neuron, a Neuron inside."""

    def __init__(self):
        self.sub = Neuron(2)

    def __call__(self, x):
        return self.sub(x)

    def parameters(self):
        return self.sub.parameters()


def test_user_modules_inside_a_model_and_changes_deep_inside_them():
    random.seed(2)
    m = MLP(2, [2, 1])
    m.layers[0] = MyLayer()
    x = [0.5, -1.5]
    assert m(x).data == m.layers[1](m.layers[0](x)).data
    assert len(m.parameters()) == 6 + 3
    m.zero_grad()
    m.layers[0].inner.neurons.append(Neuron(2))  # deep inside the user's module
    assert len(m.parameters()) == 9 + 3
    layer = Layer(2, 1)
    layer.neurons[0] = Wrap()
    assert len(layer.parameters()) == 3
    new = Value(5.0)
    layer.neurons[0].sub.w.append(new)  # a list inside a Neuron inside a Wrap
    assert len(layer.parameters()) == 4 and new in layer.parameters()
    layer.neurons[0].again = layer  # a cycle through the user's module
    layer.neurons[0].sub.b = Value(1.0)
    assert layer.parameters()[-1].data == 1.0


def test_forward_errors_raise_and_build_nothing(arena_baseline):
    m = MLP(2, [2, 1], act="exp")
    for p in m.parameters():
        p.data = 1.0
    base = pygrad.live_nodes()
    with pytest.raises(OverflowError, match="math range error"):
        m([1000.0, 1000.0])
    assert pygrad.live_nodes() == base
    with pytest.raises(TypeError, match="'str'"):
        m([1.0, "a"])
    with pytest.raises(TypeError):
        m([1.0, 1j])
    with pytest.raises(ValueError, match="takes 2 inputs, got 3"):
        m([1.0, 2.0, 3.0])
    assert pygrad.live_nodes() == base
    assert m([0.1, 0.2]).data == python_path(m, [0.1, 0.2]).data


def test_zero_grad_is_one_call_over_every_parameter():
    m = MLP(3, [4, 1])
    for p in m.parameters():
        p.grad = 5.0
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())

    class Custom(pygrad.Module):  # a user's module: zero_grad uses parameters()
        def __init__(self):
            self.a, self.b = Value(1.0), Value(2.0)

        def parameters(self):
            return [self.a, self.b]

    c = Custom()
    c.a.grad = c.b.grad = 3.0
    c.zero_grad()
    assert (c.a.grad, c.b.grad) == (0.0, 0.0)
    r = reference.MLP(2, [2])
    for p in r.parameters():
        p.grad = 1.0
    r.zero_grad()
    assert all(p.grad == 0 for p in r.parameters())


def test_models_still_copy_and_pickle_after_a_forward():
    import copy
    import pickle

    m = MLP(2, [3, 1])
    y = m([1.0, 2.0]).data
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone([1.0, 2.0]).data == y
        clone.layers[0].neurons[0].w[0].data += 1.0
        assert m([1.0, 2.0]).data == y
