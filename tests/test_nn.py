"""pygrad.nn as micrograd's users know it. The tutorials' workloads
(docs/pages/workloads.md) are tested in test_workloads.py."""
import random

import pytest

import pygrad
from pygrad import MLP, Layer, Neuron, Value
from pygrad.workloads import W1_XS



# ---- the modules ------------------------------------------------------------

def test_reprs_and_defaults_are_micrographs():
    random.seed(0)
    m = MLP(2, [16, 16, 1])
    assert repr(m).startswith("MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2)")
    assert repr(m).endswith("Layer of [LinearNeuron(16)]]")
    assert len(m.parameters()) == 337  # W2's network
    assert all(n.b.data == 0.0 for layer in m.layers for n in layer.neurons)
    assert repr(Neuron(3, act="tanh")) == "TanhNeuron(3)"
    assert repr(Neuron(3, nonlin=False)) == "LinearNeuron(3)"
    assert repr(Layer(2, 2, act="sigmoid")) == "Layer of [SigmoidNeuron(2), SigmoidNeuron(2)]"


def test_weights_are_drawn_in_micrographs_order():
    random.seed(42)
    n = Neuron(3)
    random.seed(42)
    assert [w.data for w in n.w] == [random.uniform(-1, 1) for _ in range(3)]
    random.seed(42)
    n = Neuron(3, bias="uniform")  # seed 000: the bias is drawn after the weights
    random.seed(42)
    assert [p.data for p in n.parameters()] == [random.uniform(-1, 1) for _ in range(4)]


def test_neuron_sums_bias_first_then_in_order():
    n = Neuron(3, nonlin=False)
    for w, v in zip(n.w, (0.1, 0.2, 0.3)):
        w.data = v
    n.b.data = 0.7
    x = [1e16, 1.0, -1e16]
    assert n(x).data == ((0.7 + 0.1 * 1e16) + 0.2 * 1.0) + 0.3 * -1e16


def test_zero_grad_and_parameters():
    m = MLP(3, [4, 1])
    m(W1_XS[0]).backward()
    assert any(p.grad != 0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad == 0 for p in m.parameters())
    assert pygrad.Module().parameters() == []


def test_layer_of_one_returns_a_value_and_a_one_neuron_hidden_layer_works():
    assert isinstance(Layer(2, 1)([1.0, 2.0]), Value)
    m = MLP(2, [1, 3, 1], act="tanh")
    out = m([0.5, -0.5])
    out.backward()
    assert isinstance(out, Value) and len(m.parameters()) == 3 + 6 + 4


def test_inputs_may_be_values_tuples_iterators_or_numpy():
    np = pytest.importorskip("numpy")
    m = MLP(3, [2, 1])
    want = m([1.0, -2.0, 0.5]).data
    for x in ((1.0, -2.0, 0.5), iter([1.0, -2.0, 0.5]), np.array([1.0, -2.0, 0.5]),
              [Value(1.0), Value(-2.0), Value(0.5)], [1, -2, 0.5]):
        assert m(x).data == want


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="takes 3 inputs, got 2"):
        MLP(3, [2, 1])([1.0, 2.0])
    with pytest.raises(ValueError, match="act"):
        Neuron(2, act="swish")
    with pytest.raises(ValueError, match="bias"):
        Neuron(2, bias="normal")
    with pytest.raises(ValueError, match="nin"):
        Neuron(-1)
