"""The tutorials' training runs (docs/pages/workloads.md), written as their users
write them: their data, models and loops, for the tests, the benchmarks and
`pygrad train` (whose runs, pygrad/runs.py, are built from these).

A model is built on the engine given (pygrad, pygrad.reference, or anything
with the same API), so one run can be checked or timed on two engines side
by side; a loop takes the model and a number of iterations, so it can run in
chunks, and appends each loss to `history` (a list it returns) as it goes, so
a caller keeps the losses of a run that raised. W4, the lecture's worked
numbers, is w4_numbers().
"""
import math
import random

import pygrad

from .datasets import make_moons
from .losses import cross_entropy, mse

# W1 and W1b (seeds 000 and 004): four samples, three features, targets +-1.
W1_XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
W1_YS = [1.0, -1.0, -1.0, 1.0]

# W3 (seed 001): XOR.
XOR_XS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_YS = [0.0, 1.0, 1.0, 0.0]


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


def train_w1(mlp, iters, lr=0.01, history=None):
    """Seed 000's loop: square-root-of-SSE loss, SGD. Returns the losses."""
    xs, ys = W1_XS, W1_YS
    losses = [] if history is None else history
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


def w1_torch_model(engine, seed=0):
    """Seed 000's PyTorch twin, Linear(3, 4), Tanh, Linear(4, 4), Tanh,
    Linear(4, 1), as an MLP: tanh hidden neurons, a linear output, weights
    and biases from uniform(-1, 1) after random.seed(seed)."""
    random.seed(seed)
    return engine.MLP(3, [4, 4, 1], act="tanh", bias="uniform")


def train_w1_torch(model, iters, lr=0.01, history=None):
    """The twin's loop: nn.MSELoss (the mean of squared errors), SGD.
    Returns the losses."""
    history = [] if history is None else history
    for _ in range(iters):
        loss = mse([model(x) for x in W1_XS], W1_YS)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        history.append(loss.data)
    return history


def w1b_model(engine, seed=0):
    """Seed 004's network: MLP(3, [4, 4, 1]) of tanh neurons with bias 0."""
    random.seed(seed)
    return engine.MLP(3, [4, 4, 1], act="tanh", out_act="tanh")


def train_w1b(n, epochs, step_size=0.01, history=None):
    """Seed 004's notebook loop: sum of squared errors. Returns the losses."""
    xs, ys = W1_XS, W1_YS
    history = [] if history is None else history
    for _ in range(epochs):
        ypred = [n(x) for x in xs]
        loss = sum([(yout - ygt) ** 2 for ygt, yout in zip(ys, ypred)])
        for p in n.parameters():
            p.grad = 0.0
        loss.backward()
        for p in n.parameters():
            p.data += -step_size * p.grad
        history.append(loss.data)
    return history


def xor_model(engine, seed=0):
    """W3 (seed 001): 2 -> 2 -> 1, sigmoid on both layers, nn.Linear's
    weights and biases (here uniform(-1, 1) after random.seed(seed))."""
    random.seed(seed)
    return engine.MLP(2, [2, 1], act="sigmoid", out_act="sigmoid", bias="uniform")


def train_xor(model, epochs, lr=0.1, history=None):
    """Seed 001's loop: mean squared error, SGD. Returns the losses."""
    history = [] if history is None else history
    for _ in range(epochs):
        preds = [model(x) for x in XOR_XS]
        loss = sum((p - y) ** 2 for p, y in zip(preds, XOR_YS)) / len(XOR_YS)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        history.append(loss.data)
    return history


W2_SEED = 1337  # micrograd's demo: np.random.seed(1337) and random.seed(1337)


def w2_data(seed=W2_SEED):
    """micrograd's demo data: make_moons(n_samples=100, noise=0.1) drawn from
    numpy's RandomState(seed) (the demo seeds numpy's global one, 1337), the
    labels mapped to -1.0 and +1.0 (the demo's y*2 - 1). Lists of floats."""
    X, y = make_moons(n_samples=100, noise=0.1, random_state=seed)
    return X.tolist(), (y * 2 - 1).astype(float).tolist()


def train_w2(engine, steps=100, seed=W2_SEED, X=None, y=None):
    """W2, micrograd's demo: its data (w2_data(seed), unless X and y are
    given) and a fresh MLP(2, [16, 16, 1]) after random.seed(seed), then
    w2_loop's steps 0 .. steps-1; at the default seed, the demo's numbers.
    engine: anything with Value and MLP (pygrad, pygrad.reference, or the
    micrograd package's two modules in a namespace). Returns (losses, final
    accuracy)."""
    if X is None:
        X, y = w2_data(seed)
    random.seed(seed)
    model = engine.MLP(2, [16, 16, 1])  # 2-layer neural network
    return w2_loop(engine, model, X, y, range(steps))


W2_ALPHA = 1e-4  # the demo's L2 regularization strength


def w2_learning_rate(k, lr=1.0, horizon=100):
    """The demo's SGD schedule at step k: 1.0 - 0.9 * k / 100 (to the bit at
    the defaults), scaled by lr and stretched over horizon steps."""
    return lr * (1.0 - 0.9 * k / horizon)


def w2_loop(engine, model, X, y, ks, lr=1.0, horizon=100, history=None):
    """micrograd's demo loop verbatim, over the step numbers ks: full batch,
    max-margin loss with L2 regularization, SGD at lr * (1.0 - 0.9 * k /
    horizon) (the demo's 1.0 - 0.9 * k / 100 by default, to the bit).
    Returns (losses, accuracy at the last step)."""
    Value = engine.Value

    def loss():
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = W2_ALPHA
        reg_loss = alpha * sum((p * p for p in model.parameters()))
        total_loss = data_loss + reg_loss
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
        return total_loss, sum(accuracy) / len(accuracy)

    history, acc = [] if history is None else history, None
    for k in ks:
        total_loss, acc = loss()
        model.zero_grad()
        total_loss.backward()
        learning_rate = w2_learning_rate(k, lr, horizon)
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        history.append(total_loss.data)
    return history, acc


def digits_loss(logits, onehot):
    """Softmax cross-entropy of one sample whose class is given as one-hot
    Values (leaves a Tape can load any sample's class into):
    log(sum(exp(z))) - sum(t * z), that is -log(softmax(z)[class])."""
    return sum(z.exp() for z in logits).log() - sum(t * z for t, z in zip(onehot, logits))


def digits_split(n, held_out=0.2):
    """A fixed split of range(n), shuffled by random.Random(0): (train,
    held-out) index lists, the held-out part int(n * held_out) long."""
    idx = list(range(n))
    random.Random(0).shuffle(idx)
    k = int(n * held_out)
    return idx[k:], idx[:k]


# ---- W4: the lecture's worked numbers (seed 003) ---------------------------------

def w4_numbers(engine=None):
    """Seed 003's worked numbers computed on engine (default pygrad): a list
    of (what, computed values, the lecture's values as printed)."""
    engine = pygrad if engine is None else engine
    Value = engine.Value
    m = engine.MLP(2, [2, 1], act="relu", out_act="sigmoid")
    hidden, out = m.layers[0].neurons, m.layers[1].neurons[0]
    for n, ws, b in zip(hidden, [[0.5, 0.8], [-0.3, 0.6]], [-0.1, 0.2]):
        for w, v in zip(n.w, ws):
            w.data = v
        n.b.data = b
    out.w[0].data, out.w[1].data, out.b.data = 0.7, -0.5, -0.1
    x = [1.0, 0.5]
    z = [sum((w * xi for w, xi in zip(n.w, x)), n.b).data for n in hidden]
    scores = [Value(2.0), Value(1.0), Value(0.1)]
    exps = [s.exp() for s in scores]
    total = sum(exps)
    ce = [cross_entropy([Value(math.log(p)), Value(math.log(1 - p))], 0).data
          for p in (0.99, 0.5, 0.01)]
    return [
        ("hidden z = W x + b, x = [1.0, 0.5]", z, ["0.8", "0.2"]),
        ("output sigmoid(0.7 z0 - 0.5 z1 - 0.1)", [m(x).data], ["0.589"]),
        ("softmax([2.0, 1.0, 0.1])", [(e / total).data for e in exps], ["0.659", "0.242", "0.099"]),
        ("cross-entropy at 99% / 50% / 1%", ce, ["0.01", "0.69", "4.6"]),
        ("parameters of MLP(784, [128, 10])", [len(engine.MLP(784, [128, 10]).parameters())],
         ["101770"]),
    ]


def agrees(value, printed):
    """Whether value, rounded to as many decimals as printed has, is printed."""
    decimals = len(printed.partition(".")[2])
    return f"{value:.{decimals}f}" == printed

