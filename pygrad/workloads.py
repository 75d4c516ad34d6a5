"""The tutorials' training runs (spec/WORKLOADS.md), written as their users
write them: one place for the tests, the benchmarks and `pygrad train`.

A model is built on the engine given (pygrad, pygrad.reference, or anything
with the same API), so one run can be checked or timed on two engines side
by side; a loop takes the model and a number of iterations, so it can run in
chunks. The Workload classes below are `pygrad train --workload NAME`; W4,
the lecture's worked numbers, is w4_numbers().
"""
import math
import random
from typing import Any, Callable

import numpy as np

import pygrad

from .datasets import load_digits, make_moons
from .losses import cross_entropy, mse
from .optim import SGD

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


def w1_torch_model(engine, seed=0):
    """Seed 000's PyTorch twin, Linear(3, 4), Tanh, Linear(4, 4), Tanh,
    Linear(4, 1), as an MLP: tanh hidden neurons, a linear output, weights
    and biases from uniform(-1, 1) after random.seed(seed)."""
    random.seed(seed)
    return engine.MLP(3, [4, 4, 1], act="tanh", bias="uniform")


def train_w1_torch(model, iters, lr=0.01):
    """The twin's loop: nn.MSELoss (the mean of squared errors), SGD.
    Returns the losses."""
    history = []
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


def train_w1b(n, epochs, step_size=0.01):
    """Seed 004's notebook loop: sum of squared errors. Returns the losses."""
    xs, ys = W1_XS, W1_YS
    history = []
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


def train_xor(model, epochs, lr=0.1):
    """Seed 001's loop: mean squared error, SGD. Returns the losses."""
    history = []
    for _ in range(epochs):
        preds = [model(x) for x in XOR_XS]
        loss = sum((p - y) ** 2 for p, y in zip(preds, XOR_YS)) / len(XOR_YS)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        history.append(loss.data)
    return history


def train_w2(engine, steps=100, seed=0, X=None, y=None):
    """W2, micrograd's demo, from a fresh MLP(2, [16, 16, 1]) after
    random.seed(seed): w2_loop's steps 0 .. steps-1. engine: anything with
    Value and MLP (pygrad, pygrad.reference, or the micrograd package's two
    modules in a namespace). Returns (losses, final accuracy)."""
    if X is None:
        X, y = make_moons(n_samples=100, noise=0.1)
    random.seed(seed)
    model = engine.MLP(2, [16, 16, 1])  # 2-layer neural network
    return w2_loop(engine, model, X, y, range(steps))


W2_ALPHA = 1e-4  # the demo's L2 regularization strength


def w2_learning_rate(k, lr=1.0, horizon=100):
    """The demo's SGD schedule at step k: 1.0 - 0.9 * k / 100 (to the bit at
    the defaults), scaled by lr and stretched over horizon steps."""
    return lr * (1.0 - 0.9 * k / horizon)


def w2_loop(engine, model, X, y, ks, lr=1.0, horizon=100):
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

    history, acc = [], None
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


# ---- pygrad train's workloads ---------------------------------------------------

class Workload:
    """A workload of `pygrad train`: a model and its loop, run in chunks.
    train(n) runs n more iterations (of `unit`) and returns their losses;
    summary() gives lines of results. Class attributes are the defaults."""

    name = title = ""
    unit = "iteration"
    iters, lr = 100_000, 0.01
    engines: "tuple[str, ...]" = ("pygrad", "reference")
    #: train(n, progress) runs its loop in C (a Tape): it calls progress(done,
    #: last_loss) between chunks, done counted in units; a failure's or
    #: Ctrl-C's exception carries the completed units' losses as .losses
    replays = False

    def __init__(self, seed=0, lr=None, iters=None, engine=None):
        self.seed = seed
        self.lr = type(self).lr if lr is None else lr
        self.iters = type(self).iters if iters is None else iters
        self.engine = pygrad if engine is None else engine
        if self.engine is not pygrad and "reference" not in self.engines:
            raise ValueError(f"{self.name} runs on {' or '.join(self.engines)} only")
        self.build()

    def build(self):
        raise NotImplementedError

    def train(self, n):
        raise NotImplementedError

    def summary(self):
        return []


def _predictions(model, xs, ys):
    preds = [model(x).data for x in xs]
    return f"predictions [{', '.join(f'{p:.5f}' for p in preds)}] for targets {ys}"


class _OnW1Data(Workload):
    """A workload on W1's four samples: model_of(engine, seed) makes the
    model, loop(model, n, lr) trains it n iterations and returns the losses."""

    model_of: "Callable[[Any, int], Any]"
    loop: "Callable[[Any, int, float], list[float]]"

    def build(self):
        self.model = self.model_of(self.engine, self.seed)

    def train(self, n):
        return self.loop(self.model, n, self.lr)

    def summary(self):
        return [_predictions(self.model, W1_XS, W1_YS)]


class W1(_OnW1Data):
    name = "W1"
    title = ("the tutorial network (seed 000): MLP(3, [4, 4, 1]), tanh everywhere, "
             "loss sqrt(sum of squared errors), SGD")
    ways = ("nn", "tutorial", "tape")

    def __init__(self, seed=0, lr=None, iters=None, engine=None, way="nn"):
        if way not in self.ways:
            raise ValueError(f"way must be one of {self.ways}, not {way!r}")
        self.way = way
        super().__init__(seed, lr, iters, engine)

    def build(self):
        self.model = w1_model(self.engine, "nn" if self.way == "tape" else self.way, self.seed)
        if self.way == "tape":  # W1 (c): the graph built once, the loop in one C call
            if self.engine is not pygrad:
                raise ValueError("way tape (pygrad.Tape) runs on the pygrad engine "
                                 "(pygrad only: the reference engine has no Tape)")
            ypred = [self.model(x) for x in W1_XS]
            loss = sum((yi - ypi) ** 2 for yi, ypi in zip(W1_YS, ypred)) ** 0.5
            self.tape = pygrad.Tape(loss)
            self.opt = SGD(self.model.parameters(), lr=self.lr)

    @property
    def replays(self):  # type: ignore[override]
        return self.way == "tape"

    def train(self, n, progress=None):
        if self.way == "tape":
            tick = None if progress is None else (lambda done, total, last: progress(done, last))
            return self.tape.train(n, self.opt, progress=tick).tolist()
        return train_w1(self.model, n, self.lr)


class W1Torch(_OnW1Data):
    name = "W1-torch"
    title = ("seed 000's PyTorch twin: MLP(3, [4, 4, 1]), tanh hidden, linear output, "
             "MSE loss, SGD")
    model_of, loop = staticmethod(w1_torch_model), staticmethod(train_w1_torch)


class W1b(_OnW1Data):
    name = "W1b"
    title = ("the micrograd-style notebook (seed 004): MLP(3, [4, 4, 1]), tanh, bias 0, "
             "sum of squared errors, SGD")
    iters = 500
    model_of, loop = staticmethod(w1b_model), staticmethod(train_w1b)


class W2(Workload):
    name = "W2"
    title = ("micrograd's demo: two moons, MLP(2, [16, 16, 1]), ReLU, hinge loss + L2, "
             "full-batch SGD, lr decaying linearly to a tenth")
    unit, iters, lr = "step", 100, 1.0

    def build(self):
        self.X, self.y = make_moons(n_samples=100, noise=0.1)
        random.seed(self.seed)
        self.model = self.engine.MLP(2, [16, 16, 1])
        self.done, self.acc = 0, None

    def train(self, n):
        ks = range(self.done, self.done + n)
        losses, self.acc = w2_loop(self.engine, self.model, self.X, self.y, ks, self.lr, self.iters)
        self.done += n
        return losses

    def summary(self):
        return [f"training accuracy {self.acc:.0%} at the last step"]


class W3(Workload):
    name = "W3"
    title = "XOR (seed 001): MLP(2, [2, 1]), sigmoid on both layers, MSE loss, SGD"
    lr = 0.1

    def build(self):
        self.model = xor_model(self.engine, self.seed)

    def train(self, n):
        return train_xor(self.model, n, self.lr)

    def predictions(self):
        return [self.model(x).data for x in XOR_XS]

    def summary(self):
        preds = self.predictions()
        ok = [round(p) for p in preds] == XOR_YS
        return [f"predictions [{', '.join(f'{p:.5f}' for p in preds)}] for XOR {[int(y) for y in XOR_YS]}: "
                + ("right" if ok else "wrong (stuck in a local minimum: try another --seed)")]


class Digits(Workload):
    name = "digits"
    title = ("scikit-learn's 8x8 digits: MLP(64, [32, 10]), ReLU, softmax cross-entropy, "
             "SGD one sample at a time, replayed by pygrad.Tape")
    unit, iters, lr = "epoch", 20, 0.01
    engines = ("pygrad",)  # it replays its graph with pygrad.Tape
    replays = True
    hidden = 32

    def build(self):
        self.X, self.y = load_digits()
        self.train_idx, self.test_idx = digits_split(len(self.y))
        random.seed(self.seed)
        self.model = pygrad.MLP(64, [self.hidden, 10])
        self.x = [pygrad.Value(0.0) for _ in range(64)]  # a sample's pixels ...
        self.t = [pygrad.Value(0.0) for _ in range(10)]  # ... and its class, one-hot
        self.logits = self.model(self.x)
        self.tape = pygrad.Tape(digits_loss(self.logits, self.t))
        self.opt = SGD(self.model.parameters(), lr=self.lr)
        self.rng = random.Random(self.seed)

    def epoch_data(self):
        """The training samples in a new random order: rows of 64 pixels and
        a one-hot class, as Tape.train loads them into x + t."""
        order = list(self.train_idx)
        self.rng.shuffle(order)
        return np.hstack([self.X[order], np.eye(10)[self.y[order]]])

    def train(self, n, progress=None):
        """n epochs; each epoch's loss is the mean of its samples' losses."""
        rows, losses = len(self.train_idx), []  # type: int, list[float]
        for e in range(n):
            tick = None if progress is None else \
                (lambda done, total, last, e=e: progress(e + done / total, last))
            try:
                epoch = self.tape.train(rows, self.opt, self.x + self.t, self.epoch_data(), progress=tick)
            except BaseException as err:  # the completed epochs' losses go with it
                err.losses = losses  # type: ignore[attr-defined]
                raise
            losses.append(float(epoch.mean()))
        return losses

    def predict(self, rows):
        """The class of each row of pixels: the largest logit, by replay."""
        classes = []
        for row in rows:
            pygrad.set_data(self.x, row)
            self.tape.forward()
            classes.append(int(np.argmax(pygrad.get_data(self.logits))))
        return np.array(classes)

    def accuracy(self, idx):
        return float(np.mean(self.predict(self.X[idx]) == self.y[idx]))

    def summary(self):
        return [f"held-out accuracy {self.accuracy(self.test_idx):.2%} on {len(self.test_idx)} "
                f"digits (training {self.accuracy(self.train_idx):.2%} on {len(self.train_idx)})"]


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


WORKLOADS = {w.name: w for w in (W1, W1Torch, W1b, W2, W3, Digits)}
