"""The runs of `pygrad train` and `pygrad sweep`: each workload of
docs/pages/workloads.md as an object that builds its model (from the tutorials'
code in pygrad.workloads), trains in chunks, and reports.

A run's train(n, losses) trains n more iterations (of `unit`), appending
each loss to the list losses as it is computed (so a run that raises keeps
the losses before the failure), and returns that list (a new one if none is
given: run.train(100)[-1] is the last loss); summary() gives lines of results;
converged() says whether it solved its task, by the `criterion` stated.
Class attributes are the defaults (`seed` included: W2's is micrograd's demo's).
"""
from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np

import pygrad

from .datasets import load_digits
from .optim import SGD
from .workloads import (W1_XS, W1_YS, W2_SEED, XOR_XS, XOR_YS, digits_loss, digits_split,
                        train_w1, train_w1_torch, train_w1b, train_xor, w1_model, w1_torch_model,
                        w1b_model, w2_data, w2_loop, xor_model)


class Workload:
    """A workload of `pygrad train`: a model and its loop, run in chunks."""

    name = title = criterion = ""
    unit = "iteration"
    iters, lr, seed = 100_000, 0.01, 0
    engines: tuple[str, ...] = ("pygrad", "reference")

    def __init__(self, seed: int | None = None, lr: float | None = None, iters: int | None = None,
                 engine: Any = None) -> None:
        cls = type(self)
        self.seed = cls.seed if seed is None else seed
        self.lr = cls.lr if lr is None else lr
        self.iters = cls.iters if iters is None else iters
        self.engine = pygrad if engine is None else engine
        if self.engine is not pygrad and "reference" not in self.engines:
            raise ValueError(f"{self.name} runs on {' or '.join(self.engines)} only")
        self.build()

    def build(self) -> None:
        raise NotImplementedError

    def train(self, n: int, losses: list[float] | None = None, progress: Any = None) -> list[float]:
        """n more iterations (of unit), their losses appended to losses.
        progress(done, last_loss), if given, is called as they go (between the
        C calls of a replay: `replays` workloads), done counting the units
        done since the last loss was appended."""
        losses = [] if losses is None else losses
        self._train(n, losses, progress)
        return losses

    #: whether train runs its loop in C (a Tape), calling progress as it goes
    replays = False

    def _train(self, n: int, losses: list[float], progress: Any) -> None:
        raise NotImplementedError

    def summary(self) -> list[str]:
        return []

    def converged(self) -> bool:
        raise NotImplementedError


def _tape_train(tape, n, opt, losses, *data, progress=None):
    """Tape.train for n iterations into losses, those before a failure (or
    Ctrl-C) too; progress(done, last_loss) between its chunks."""
    tick = None if progress is None else (lambda done, total, last: progress(done, last))
    try:
        losses += tape.train(n, opt, *data, progress=tick).tolist()
    except BaseException as e:
        losses += list(getattr(e, "losses", None) or [])
        raise


def _verdict(run, saturated):
    """Whether run solved its task, and if not what to try: a smaller --lr
    where its outputs saturated (no gradient is left to learn from), else
    more iterations or another --seed (a local minimum)."""
    if run.converged():
        return "right"
    if saturated:
        big = max(abs(p.data) for p in run.model.parameters())
        return f"wrong (the outputs saturated, weights up to {big:.3g}: try a smaller --lr)"
    return "wrong (too few iterations, or a local minimum: try more --iters or another --seed)"


class _OnW1Data(Workload):
    """A workload on W1's four samples: model_of(engine, seed) makes the
    model, loop(model, n, lr, history) trains it n iterations."""

    model_of: Callable[[Any, int], Any]
    loop: Callable[..., list[float]]
    criterion = "every prediction within 0.1 of its target"

    def build(self):
        self.model = self.model_of(self.engine, self.seed)

    def _train(self, n, losses, progress):
        self.loop(self.model, n, self.lr, losses)

    def predictions(self):
        return [self.model(x).data for x in W1_XS]

    saturates = True  # a tanh output: +-1 at the extremes

    def summary(self):
        preds = self.predictions()
        saturated = self.saturates and all(1.0 - abs(p) < 1e-6 for p in preds)
        return [f"predictions [{', '.join(f'{p:.5f}' for p in preds)}] for targets {W1_YS}: "
                + _verdict(self, saturated)]

    def converged(self):
        return all(abs(p - y) < 0.1 for p, y in zip(self.predictions(), W1_YS))


class W1(_OnW1Data):
    name = "W1"
    title = ("the tutorial network (seed 000): MLP(3, [4, 4, 1]), tanh everywhere, "
             "loss sqrt(sum of squared errors), SGD")
    ways = ("nn", "tutorial", "tape")

    def __init__(self, seed=None, lr=None, iters=None, engine=None, way="nn"):
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

    def _train(self, n, losses, progress):
        if self.way == "tape":
            _tape_train(self.tape, n, self.opt, losses, progress=progress)
        else:
            train_w1(self.model, n, self.lr, losses)


class W1Torch(_OnW1Data):
    name = "W1-torch"
    title = ("seed 000's PyTorch twin: MLP(3, [4, 4, 1]), tanh hidden, linear output, "
             "MSE loss, SGD")
    model_of, loop = staticmethod(w1_torch_model), staticmethod(train_w1_torch)
    saturates = False  # a linear output


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
    criterion = "100% training accuracy at the last step"
    unit, iters, lr, seed = "step", 100, 1.0, W2_SEED

    def build(self):
        self.X, self.y = w2_data(self.seed)  # the seed draws the data too, as in the demo
        random.seed(self.seed)
        self.model = self.engine.MLP(2, [16, 16, 1])
        self.done, self.acc = 0, None

    def _train(self, n, losses, progress):
        ks = range(self.done, self.done + n)
        before = len(losses)
        try:
            _, self.acc = w2_loop(self.engine, self.model, self.X, self.y, ks, self.lr, self.iters,
                                  losses)
        finally:
            self.done += len(losses) - before

    def summary(self):
        return [f"training accuracy {self.acc:.0%} at the last step"]

    def converged(self):
        return self.acc == 1.0


class W3(Workload):
    name = "W3"
    title = "XOR (seed 001): MLP(2, [2, 1]), sigmoid on both layers, MSE loss, SGD"
    criterion = "XOR right (every prediction rounds to its target)"
    lr = 0.1

    def build(self):
        self.model = xor_model(self.engine, self.seed)

    def _train(self, n, losses, progress):
        train_xor(self.model, n, self.lr, losses)

    def predictions(self):
        return [self.model(x).data for x in XOR_XS]

    def converged(self):
        return [round(p) for p in self.predictions()] == XOR_YS

    def summary(self):
        preds = self.predictions()
        saturated = all(min(p, 1.0 - p) < 1e-6 for p in preds)  # sigmoids at 0 or 1
        return [f"predictions [{', '.join(f'{p:.5f}' for p in preds)}] for XOR "
                f"{[int(y) for y in XOR_YS]}: " + _verdict(self, saturated)]


class Digits(Workload):
    name = "digits"
    title = ("scikit-learn's 8x8 digits: MLP(64, [32, 10]), ReLU, softmax cross-entropy, "
             "SGD one sample at a time, replayed by pygrad.Tape")
    criterion = "95% held-out accuracy"
    unit, iters, lr = "epoch", 20, 0.01
    engines = ("pygrad",)  # it replays its graph with pygrad.Tape
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

    replays = True

    def _train(self, n, losses, progress):
        """n epochs; each epoch's loss is the mean of its samples' losses."""
        rows = len(self.train_idx)
        for _ in range(n):
            tick = None if progress is None else \
                (lambda done, total, last: progress(done / total, last))
            epoch = self.tape.train(rows, self.opt, self.x + self.t, self.epoch_data(),
                                    progress=tick)
            losses.append(float(epoch.mean()))

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

    def converged(self):
        return self.accuracy(self.test_idx) >= 0.95


WORKLOADS: dict[str, type[Workload]] = {w.name: w for w in (W1, W1Torch, W1b, W2, W3, Digits)}
