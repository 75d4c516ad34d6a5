"""The tutorials' training runs (spec/WORKLOADS.md), written as their users
write them. The tests, the benchmarks and `python -m pygrad` share them.

Every function takes the engine as an argument (pygrad.engine or
pygrad.reference, or anything with the same API), so one run can be checked
or timed on two engines side by side.
"""
import random

# W1 and W1b (seeds 000 and 004): four samples, three features, targets +-1.
W1_XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
W1_YS = [1.0, -1.0, -1.0, 1.0]

# W3 (seed 001): XOR.
XOR_XS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_YS = [0.0, 1.0, 1.0, 0.0]


def rel_diff(a, b):
    """Relative difference of two results, 0 when they are equal (both inf too)."""
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def tutorial_classes(Value):
    """Seed 000's own Neuron, Layer and MLP, unchanged, on top of `Value`:
    tanh on every neuron, weights and bias from uniform(-1, 1)."""

    class Neuron:
        def __init__(self, nin):
            self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
            self.b = Value(random.uniform(-1, 1))

        def __call__(self, x):
            n = sum((xi * wi for xi, wi in zip(x, self.w)), self.b)
            return n.tanh()

        def parameters(self):
            return self.w + [self.b]

    class Layer:
        def __init__(self, nin, nout):
            self.neurons = [Neuron(nin) for _ in range(nout)]

        def __call__(self, x):
            out = [n(x) for n in self.neurons]
            return out if len(out) > 1 else out[0]

        def parameters(self):
            return [p for n in self.neurons for p in n.parameters()]

    class MLP:
        def __init__(self, nin, layers):
            sz = [nin] + layers
            self.layers = [Layer(sz[i], sz[i + 1]) for i in range(len(layers))]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

        def parameters(self):
            return [p for layer in self.layers for p in layer.parameters()]

    return Neuron, Layer, MLP


def w1_model(engine, way="tutorial", seed=0):
    """The W1 network, 3 -> 4 -> 4 -> 1, tanh everywhere, from random.seed(seed).
    way "tutorial": seed 000's own classes on engine.Value (W1 way (a));
    way "nn": the engine's MLP with the same init (W1 way (b))."""
    random.seed(seed)
    if way == "tutorial":
        return tutorial_classes(engine.Value)[2](3, [4, 4, 1])
    if way == "nn":
        return engine.MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")
    raise ValueError(f"way must be 'tutorial' or 'nn', not {way!r}")


def train_w1(mlp, iters, lr=0.01):
    """Seed 000's loop: square-root-of-SSE loss, SGD. Returns the losses."""
    xs, ys = W1_XS, W1_YS
    losses = []
    for _ in range(iters):
        ypred = [mlp(x) for x in xs]
        for p in mlp.parameters():
            p.grad = 0
        loss = sum((yi - ypi) ** 2 for yi, ypi in zip(ys, ypred)) ** 0.5
        loss.backward()
        for p in mlp.parameters():
            p.data -= lr * p.grad
        losses.append(loss.data)
    return losses


def train_w1b(engine, epochs, seed=0, step_size=0.01):
    """Seed 004's notebook: MLP(3, [4, 4, 1]) of tanh neurons with bias 0,
    sum of squared errors. Returns the losses."""
    random.seed(seed)
    n = engine.MLP(3, [4, 4, 1], act="tanh", out_act="tanh")
    xs, ys = W1_XS, W1_YS
    losses = []
    for _ in range(epochs):
        ypred = [n(x) for x in xs]
        loss = sum([(yout - ygt) ** 2 for ygt, yout in zip(ys, ypred)])
        for p in n.parameters():
            p.grad = 0.0
        loss.backward()
        for p in n.parameters():
            p.data += -step_size * p.grad
        losses.append(loss.data)
    return losses


def train_xor(engine, epochs, seed=0, lr=0.1):
    """W3 (seed 001): 2 -> 2 -> 1, sigmoid on both layers, mean squared
    error, SGD. Returns (losses, final predictions)."""
    random.seed(seed)
    model = engine.MLP(2, [2, 1], act="sigmoid", out_act="sigmoid", bias="uniform")
    losses = []
    for _ in range(epochs):
        preds = [model(x) for x in XOR_XS]
        loss = sum((p - y) ** 2 for p, y in zip(preds, XOR_YS)) / len(XOR_YS)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        losses.append(loss.data)
    return losses, [p.data for p in preds]


def train_w2(engine, steps=100, seed=0, X=None, y=None):
    """W2, micrograd's demo, its loop verbatim: MLP(2, [16, 16, 1]) on the
    two moons, max-margin loss with L2 regularization, SGD with a decaying
    learning rate. engine: anything with Value and MLP (pygrad,
    pygrad.reference, or the micrograd package's two modules in a namespace).
    Returns (losses, final accuracy)."""
    from .datasets import make_moons

    if X is None:
        X, y = make_moons(n_samples=100, noise=0.1)
    Value = engine.Value
    random.seed(seed)
    model = engine.MLP(2, [16, 16, 1])  # 2-layer neural network

    def loss():
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum((p * p for p in model.parameters()))
        total_loss = data_loss + reg_loss
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
        return total_loss, sum(accuracy) / len(accuracy)

    history = []
    for k in range(steps):
        total_loss, acc = loss()
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        history.append(total_loss.data)
    return history, acc
