"""pygrad.nn as micrograd's users know it, and the tutorials' workloads
(spec/WORKLOADS.md) trained to the reference engine's numbers."""
import math
import random

import pytest

import pygrad
from pygrad import MLP, Layer, Neuron, Value, reference
from pygrad.workloads import W1_XS, W1_YS, rel_diff, train_w1, train_w1b, train_xor, w1_model



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


# ---- W1: the tutorial network (seed 000) ---------------------------------------

@pytest.mark.parametrize("way", ["tutorial", "nn"])
def test_w1_trains_to_the_reference_engines_losses(way):
    """Ways (a) and (b): iteration for iteration, to the bit."""
    want = train_w1(w1_model(reference, "tutorial", seed=3), 300)
    got = train_w1(w1_model(pygrad, way, seed=3), 300)
    assert got == want
    assert got[-1] < got[0]


def test_w1_pytorch_twin_matches_pytorch_step_for_step():
    """Seed 000's PyTorch model: Linear/Tanh, linear output, MSE, SGD 0.01."""
    torch = pytest.importorskip("torch")
    random.seed(7)
    m = MLP(3, [4, 4, 1], act="tanh", bias="uniform")
    layers = []
    for layer in m.layers:
        lin = torch.nn.Linear(len(layer.neurons[0].w), len(layer.neurons), dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64))
            lin.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64))
        layers += [lin, torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xt = torch.tensor(W1_XS, dtype=torch.float64)
    yt = torch.tensor(W1_YS, dtype=torch.float64).reshape(-1, 1)
    for step in range(50):
        loss = torch.nn.functional.mse_loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ours = sum((m(x) - y) ** 2 for x, y in zip(W1_XS, W1_YS)) / len(W1_XS)
        m.zero_grad()
        ours.backward()
        for p in m.parameters():
            p.data -= 0.01 * p.grad
        assert rel_diff(ours.data, loss.item()) <= 1e-12, (step, ours.data, loss.item())


# ---- W1b (seed 004), W3 (seed 001) ---------------------------------------------

def test_w1b_notebook_trains_to_the_reference_engines_losses():
    got = train_w1b(pygrad, 100, seed=5)
    assert got == train_w1b(reference, 100, seed=5)
    assert got[-1] < got[0] / 2


def test_w3_xor_with_sigmoid_trains_to_the_reference_engines_losses():
    got, preds = train_xor(pygrad, 400, seed=2)
    want, want_preds = train_xor(reference, 400, seed=2)
    assert (got, preds) == (want, want_preds)
    assert got[-1] < got[0]


# ---- W4: the lecture's worked numbers (seed 003) ----------------------------------

def test_w4_forward_example():
    m = MLP(2, [2, 1], act="relu", out_act="sigmoid")
    hidden, out = m.layers[0].neurons, m.layers[1].neurons[0]
    for n, ws, b in zip(hidden, [[0.5, 0.8], [-0.3, 0.6]], [-0.1, 0.2]):
        for w, v in zip(n.w, ws):
            w.data = v
        n.b.data = b
    out.w[0].data, out.w[1].data, out.b.data = 0.7, -0.5, -0.1
    z = [n([1.0, 0.5]).data for n in hidden]
    assert [round(v, 12) for v in z] == [0.8, 0.2]
    y = m([1.0, 0.5])
    assert math.isclose(y.data, 1 / (1 + math.exp(-0.36)), rel_tol=1e-12)
    assert round(y.data, 3) == 0.589


def test_w4_softmax_and_cross_entropy():
    zs = [Value(2.0), Value(1.0), Value(0.1)]
    es = [z.exp() for z in zs]
    total = sum(es)
    probs = [e / total for e in es]
    assert [round(p.data, 3) for p in probs] == [0.659, 0.242, 0.099]
    loss = -probs[0].log()
    loss.backward()  # d/dz_i of -log softmax_0 = p_i - [i == 0]
    for i, (z, p) in enumerate(zip(zs, probs)):
        assert math.isclose(z.grad, p.data - (i == 0), rel_tol=1e-12, abs_tol=1e-15)
    ce = [-Value(p).log().data for p in (0.99, 0.5, 0.01)]
    assert [round(c, 2) for c in ce] == [0.01, 0.69, 4.61]


def test_w4_mnist_sized_mlp_parameter_count():
    assert len(MLP(784, [128, 10]).parameters()) == 101_770


# ---- W2: micrograd's demo ---------------------------------------------------

def test_w2_demo_loop_gives_the_reference_engines_losses_to_the_bit():
    from pygrad.workloads import train_w2
    ours, acc = train_w2(pygrad, steps=3)
    theirs, acc_ref = train_w2(reference, steps=3)
    assert ours == theirs and acc == acc_ref


def test_w2_matches_the_micrograd_package_step_for_step():
    import types

    mg_engine = pytest.importorskip("micrograd.engine")
    mg_nn = pytest.importorskip("micrograd.nn")
    from pygrad.workloads import train_w2
    micrograd = types.SimpleNamespace(Value=mg_engine.Value, MLP=mg_nn.MLP)
    ours, _ = train_w2(pygrad, steps=2)
    theirs, _ = train_w2(micrograd, steps=2)
    # micrograd sums gradients in an order that follows object ids: equal to rounding
    assert max(rel_diff(a, b) for a, b in zip(ours, theirs)) < 1e-12


def test_w2_replayed_with_the_hinge_loss_is_the_demo_loop():
    from pygrad.datasets import make_moons
    from pygrad.losses import hinge
    from pygrad.optim import SGD
    from pygrad.workloads import train_w2
    X, y = make_moons(n_samples=100, noise=0.1)
    expected, _ = train_w2(pygrad, steps=4, X=X, y=y)
    random.seed(0)
    model = MLP(2, [16, 16, 1])
    scores = [model([Value(v) for v in row]) for row in X]
    tape = pygrad.Tape(hinge(scores, y, model.parameters(), alpha=1e-4))
    opt = SGD(model.parameters(), lr=1.0)
    losses = []
    for k in range(4):
        opt.lr = 1.0 - 0.9 * k / 100
        losses += tape.train(1, opt).tolist()
    assert losses == expected
