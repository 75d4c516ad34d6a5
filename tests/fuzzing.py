"""What the fuzzers share (tests/test_fuzz_api.py, test_fuzz_replay.py,
test_load_bounded.py): how long they run, from which seed, how they compare
numbers, and the reference engine's optimizers.

Each fuzzer has a short run in the normal suite (a few seconds, a fixed
seed) and a long one marked `soak`, which the normal run deselects:

    python3 -m pytest -m soak                                   # every fuzzer, a few minutes
    PYGRAD_FUZZ_STEPS=1000000 python3 -m pytest -m soak -k api  # longer
    PYGRAD_FUZZ_SEED=7 python3 -m pytest -m soak                # other inputs

PYGRAD_FUZZ_STEPS (default 200,000) is the API fuzzer's steps and the
mutation fuzzer's files; the replay fuzzer, whose graphs cost about 50 API
steps each, runs a fiftieth as many graphs. A failure names its seed and
step, so the same run reproduces it.
"""
import math
import os

import pytest

from pygrad import reference


#: A fuzzer test runs twice: "short" in the normal suite, and "soak", marked
#: `soak` (which the default run deselects: pyproject.toml's addopts) and
#: `big` (so that `-m "not big"` leaves it out too). The test takes `run`.
runs = pytest.mark.parametrize("run", ["short", pytest.param(
    "soak", marks=[pytest.mark.soak, pytest.mark.big])])


def length(request, short, cost=1):
    """The number of steps for this test: short, or in a soak run
    PYGRAD_FUZZ_STEPS (default 200,000) divided by cost, what one of this
    fuzzer's steps costs in API-fuzzer steps."""
    if request.node.get_closest_marker("soak") is None:
        return short
    return max(1, int(os.environ.get("PYGRAD_FUZZ_STEPS", 200_000)) // cost)


def seed(default=0):
    """The run's seed: PYGRAD_FUZZ_SEED, or a fixed default."""
    return int(os.environ.get("PYGRAD_FUZZ_SEED", default))


def bits(x):
    """x to the bit, as text: float.hex, so 0.0 is not -0.0 and every NaN is
    'nan' (which NaN two NaNs give is the compiler's choice). float() first:
    the reference engine's zero_grad leaves the int 0, as micrograd's does."""
    return float(x).hex()


def nodes_under(root, children, key=id):
    """Every node under root, each once (as key tells them apart), through
    children(node): _prev (what a walk by hand meets) or the reference
    engine's _children. A loop: graphs deeper than the recursion limit too."""
    met, stack = {}, [root]
    while stack:
        v = stack.pop()
        if key(v) not in met:
            met[key(v)] = v
            stack.extend(children(v))
    return list(met.values())


# ---- the reference engine's optimizers: csrc/optim.c, in Python ----------------

class ReferenceSGD:
    """torch.optim.SGD as csrc/optim.c computes it, on reference Values."""

    def __init__(self, params, **settings):
        self.params = list(params)
        self.settings = {k: (v if k in ("nesterov", "betas") else float(v))
                         for k, v in settings.items()}
        self.m = [0.0] * len(self.params)
        self.have_m = False
        self.steps = 0

    def step(self):
        self.steps += 1
        c = self.settings
        first = not self.have_m
        for i, p in enumerate(self.params):
            g = p.grad
            if c["weight_decay"] != 0.0:
                g = g + c["weight_decay"] * p.data
            if c["momentum"] != 0.0:
                self.m[i] = g if first else self.m[i] * c["momentum"] + (1.0 - c["dampening"]) * g
                g = g + c["momentum"] * self.m[i] if c["nesterov"] else self.m[i]
            p.data -= c["lr"] * g
        if c["momentum"] != 0.0:
            self.have_m = True

    def zero_grad(self):
        for p in self.params:
            p.grad = 0.0


class ReferenceAdam(ReferenceSGD):
    """torch.optim.Adam (amsgrad off) as csrc/optim.c computes it."""

    def __init__(self, params, **settings):
        super().__init__(params, **settings)
        self.settings["betas"] = tuple(float(b) for b in settings["betas"])
        self.v = [0.0] * len(self.params)

    def step(self):
        self.steps += 1
        c = self.settings
        beta1, beta2 = c["betas"]
        t = float(self.steps)
        step_size = c["lr"] / (1.0 - math.pow(beta1, t))
        bc2_sqrt = math.sqrt(1.0 - math.pow(beta2, t))
        w = 1.0 - beta1
        for i, p in enumerate(self.params):
            g = p.grad
            if c["weight_decay"] != 0.0:
                g = g + c["weight_decay"] * p.data
            m = self.m[i]
            m = m + w * (g - m) if w < 0.5 else g - (g - m) * (1.0 - w)
            v = self.v[i] * beta2 + (1.0 - beta2) * g * g
            self.m[i], self.v[i] = m, v
            p.data += -step_size * reference._div(m, math.sqrt(v) / bc2_sqrt + c["eps"])


def optimizer_settings(rng, kind):
    if kind == "SGD":
        momentum = rng.choice([0.0, 0.0, 0.9, 0.5])
        nesterov = momentum > 0 and rng.random() < 0.3
        return dict(lr=rng.choice([0.01, 0.1, 1.0, 0.0]), momentum=momentum,
                    dampening=0.0 if nesterov else rng.choice([0.0, 0.1]),
                    weight_decay=rng.choice([0.0, 1e-3]), nesterov=nesterov)
    return dict(lr=rng.choice([1e-3, 0.1]), betas=rng.choice([(0.9, 0.999), (0.5, 0.9), (0.0, 0.0)]),
                eps=rng.choice([1e-8, 0.0]), weight_decay=rng.choice([0.0, 1e-2]))
