"""Replay at scale (issue 14): pygrad.Tape.train beside the hand-written C
loops, PyTorch eager, numpy by hand and JAX jit, on W1 (c), W2 and an
MNIST-shaped MLP(784, [128, 10]), in exact and fast order.

    python benchmarks/replay_scale.py [--rounds 5] [--quick] [--epoch] [--cpu]

The machine is shared and noisy, so each round runs every implementation
once, in an order that rotates from round to round, and the tables give
medians over rounds of each time and of each ratio to the C loop measured
in the same round. The C loops (pygrad/bench/loops.c, via
pygrad/bench/baselines.py) time themselves inside C; the others are timed
around the training loop only (JAX after compiling). --cpu times process
CPU time instead of wall time, every implementation (the C loops compiled
again to read CLOCK_PROCESS_CPUTIME_ID, PyTorch and numpy timed around the
call): on a machine shared by many, wall time mostly measures the waiting
for a core. --epoch adds a whole
epoch of MNIST-shaped data (60,000 x 784) in one Tape.train call, with the
per-sample time of PyTorch eager batch-1 and JAX for comparison.

One thread everywhere (set before numpy, torch and jax load).
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import atexit  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import pygrad  # noqa: E402
from pygrad.bench import baselines  # noqa: E402
from pygrad.datasets import make_moons  # noqa: E402
from pygrad.losses import hinge  # noqa: E402
from pygrad.optim import SGD  # noqa: E402
from pygrad.workloads import W1, W1_XS, W1_YS, W2_ALPHA, w2_learning_rate  # noqa: E402


#: The clock every timing here reads (--cpu: process CPU time).
CLOCK = time.perf_counter


def cpu_time_c_loops():
    """Point pygrad.bench.baselines at loops.c compiled to time itself in CPU time."""
    src = open(os.path.join(os.path.dirname(baselines.__file__), "loops.c")).read()
    tmp = tempfile.mkdtemp(prefix="pygrad-loops-cpu-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    with open(os.path.join(tmp, "loops.c"), "w") as f:
        f.write(src.replace("CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID"))
    binary = os.path.join(tmp, "loops")
    subprocess.run((baselines._find_compiler() or ["cc"]) + ["-O2", "-ffp-contract=off", "-fno-fast-math",
                    "-o", binary, os.path.join(tmp, "loops.c"), "-lm"], check=True)
    baselines._c_tried, baselines._c_binary = True, binary


def outer(fn, *args, **kwargs):
    """(seconds, losses) of a baseline timed around the whole call."""
    start = CLOCK()
    out = fn(*args, **kwargs)
    return CLOCK() - start, out["losses"]


# ---- pygrad ------------------------------------------------------------------

def pygrad_w1(iters, seed=0):
    """W1 (c): the tutorial's graph built once, Tape.train in one call."""
    run = W1(seed=seed, way="tape")
    start = CLOCK()
    losses = run.train(iters)
    return CLOCK() - start, losses


def pygrad_w2(steps, X, y, seed=0, order="exact"):
    """The bench's W2 replay (pygrad/bench/run.py, w2_replayed): the graph
    built once, one Tape.train(1) per step of the schedule."""
    random.seed(seed)
    model = pygrad.MLP(2, [16, 16, 1])
    scores = [model([pygrad.Value(v) for v in row]) for row in X]
    tape = pygrad.Tape(hinge(scores, y, model.parameters(), alpha=W2_ALPHA), order=order)
    opt = SGD(model.parameters(), lr=1.0)
    losses = []
    start = CLOCK()
    for k in range(steps):
        opt.lr = w2_learning_rate(k)
        losses += tape.train(1, opt).tolist()
    return CLOCK() - start, losses


class MnistTape:
    """MLP(784, [128, 10]) and a softmax cross-entropy over input leaves (the
    pixels, and the class one-hot), recorded once (pygrad/bench/run.py's
    mnist_pygrad); train(X, T, n) runs n samples in one Tape.train call,
    from X and T as they are (no stacking)."""

    def __init__(self, params, order="exact"):
        self.model = pygrad.MLP(784, [128, 10])
        pygrad.set_data(self.model, params)
        self.x = [pygrad.Value(0.0) for _ in range(784)]
        self.t = [pygrad.Value(0.0) for _ in range(10)]
        logits = self.model(self.x)
        loss = sum(z.exp() for z in logits).log() - sum(ti * z for ti, z in zip(self.t, logits))
        self.tape = pygrad.Tape(loss, order=order)
        self.opt = SGD(self.model.parameters(), lr=0.01)

    def train(self, X, T, n, progress=None):
        start = CLOCK()
        losses = self.tape.train(n, self.opt, inputs=self.x + self.t, data=[X, T], progress=progress)
        return CLOCK() - start, losses.tolist()


def pygrad_mnist(params, X, T, n, order):
    return MnistTape(params, order).train(X, T, n)


# ---- JAX ---------------------------------------------------------------------

def _jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def _mlp_jax(jnp, blocks, acts, x):
    for (W, b), act in zip(blocks, acts):
        x = W @ x + b
        if act == "tanh":
            x = jnp.tanh(x)
        elif act == "relu":
            x = jnp.maximum(x, 0.0)
    return x


def _jax_blocks(jnp, params, nin, nouts):
    flat = jnp.asarray(params, dtype=jnp.float64)
    return [(blk[:, :-1], blk[:, -1]) for blk in baselines._layer_blocks(flat, nin, nouts)]


def jax_w1(iters, seed=0):
    """W1 in JAX: the whole loop in one jitted lax.fori_loop (4 samples per step)."""
    jax = _jax()
    jnp = jax.numpy
    params = _jax_blocks(jnp, baselines.init_params(3, [4, 4, 1], seed=seed), 3, [4, 4, 1])
    X, Y = jnp.asarray(W1_XS), jnp.asarray(W1_YS)

    def loss_fn(p):
        pred = jax.vmap(lambda x: _mlp_jax(jnp, p, ["tanh"] * 3, x)[0])(X)
        return jnp.sqrt(jnp.sum((Y - pred) ** 2))

    def body(i, state):
        p, losses = state
        loss, g = jax.value_and_grad(loss_fn)(p)
        p = jax.tree_util.tree_map(lambda a, b: a - 0.01 * b, p, g)
        return p, losses.at[i].set(loss)

    run = jax.jit(lambda p: jax.lax.fori_loop(0, iters, body, (p, jnp.zeros(iters))))
    jax.block_until_ready(run(params))  # compiles
    start = CLOCK()
    _, losses = jax.block_until_ready(run(params))
    return CLOCK() - start, np.asarray(losses).tolist()


def jax_w2(steps, X, y, seed=0):
    """W2 in JAX: the demo's full-batch steps in one jitted lax.scan."""
    jax = _jax()
    jnp = jax.numpy
    params = _jax_blocks(jnp, baselines.init_params(2, [16, 16, 1], seed=seed, zero_bias=True), 2, [16, 16, 1])
    Xa, ya = jnp.asarray(X), jnp.asarray(y, dtype=jnp.float64)
    lrs = jnp.asarray([w2_learning_rate(k) for k in range(steps)])

    def loss_fn(p):
        scores = jax.vmap(lambda x: _mlp_jax(jnp, p, ["relu", "relu", "linear"], x)[0])(Xa)
        reg = sum(jnp.sum(W * W) + jnp.sum(b * b) for W, b in p)
        return jnp.mean(jnp.maximum(1.0 - ya * scores, 0.0)) + W2_ALPHA * reg

    def body(p, lr):
        loss, g = jax.value_and_grad(loss_fn)(p)
        return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g), loss

    run = jax.jit(lambda p: jax.lax.scan(body, p, lrs))
    jax.block_until_ready(run(params))
    start = CLOCK()
    _, losses = jax.block_until_ready(run(params))
    return CLOCK() - start, np.asarray(losses).tolist()


def jax_mnist(params, X, labels, n):
    """MNIST-shaped in JAX: one sample per step, the steps in one jitted lax.scan."""
    jax = _jax()
    jnp = jax.numpy
    p = _jax_blocks(jnp, params, 784, [128, 10])
    Xa, La = jnp.asarray(X[:n]), jnp.asarray(labels[:n])

    def loss_fn(p, x, c):
        z = _mlp_jax(jnp, p, ["relu", "linear"], x)
        return jax.nn.logsumexp(z) - z[c]

    def body(p, xc):
        loss, g = jax.value_and_grad(loss_fn)(p, *xc)
        return jax.tree_util.tree_map(lambda a, b: a - 0.01 * b, p, g), loss

    run = jax.jit(lambda p: jax.lax.scan(body, p, (Xa, La)))
    jax.block_until_ready(run(p))
    start = CLOCK()
    _, losses = jax.block_until_ready(run(p))
    return CLOCK() - start, np.asarray(losses).tolist()


# ---- the rounds ----------------------------------------------------------------

def c_time(out):
    return out["seconds"], out["losses"]


def timed(fn, *args, **kwargs):
    """A Python baseline's own timing, or, in CPU time, the whole call's."""
    return outer(fn, *args, **kwargs) if CLOCK is time.process_time else c_time(fn(*args, **kwargs))


def rounds(title, unit, per, impls, nrounds, base="C loop"):
    """Run impls (name -> fn() returning (seconds, losses)) nrounds times,
    the order rotating; print medians of time per `unit` (seconds / per)
    and of each round's ratio to base."""
    names = list(impls)
    times = {k: [] for k in names}
    losses = {}
    for r in range(nrounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            s, losses[name] = impls[name]()
            times[name].append(s)
    print(f"\n{title}  (medians of {nrounds} interleaved rounds)")
    print(f"{'implementation':<36} {'us/' + unit:>12} {'x ' + base:>10}  final loss")
    for name in names:
        med = statistics.median(times[name]) / per * 1e6
        if base in times:
            ratio = statistics.median(a / b for a, b in zip(times[name], times[base]))
            rs = f"{ratio:>10.2f}"
        else:
            rs = f"{'':>10}"
        print(f"{name:<36} {med:>12.2f} {rs}  {losses[name][-1]!r}")
    return times, losses


def agreement(losses, ref, names):
    out = []
    for n in names:
        if n in losses:
            m = min(len(losses[ref]), len(losses[n]))
            d = max(abs(a - b) / max(abs(a), 1e-300) for a, b in zip(losses[ref][:m], losses[n][:m]))
            out.append(f"{n}: {d:.2g}")
    print(f"  largest relative difference of losses from {ref}'s, step for step: " + ", ".join(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--epoch", action="store_true", help="also one 60,000-sample MNIST epoch")
    ap.add_argument("--only", default="w1,w2,mnist", help="comma-separated: w1, w2, mnist")
    ap.add_argument("--cpu", action="store_true", help="process CPU time instead of wall time")
    args = ap.parse_args(argv)
    global CLOCK
    if args.cpu:
        CLOCK = time.process_time
        cpu_time_c_loops()
    only = set(args.only.split(","))
    jax = _jax()
    torch_ok = True
    try:
        import torch  # noqa: F401
    except ImportError:
        torch_ok = False
    print(f"pygrad {pygrad.__version__}, Python {sys.version.split()[0]}, "
          f"jax {jax.__version__ if jax else 'not installed'}, one thread, "
          f"{'CPU' if args.cpu else 'wall'} time")

    if "w1" in only:
        iters = 20_000 if args.quick else 100_000
        p = baselines.init_params(3, [4, 4, 1], seed=0)
        impls = {"C loop": lambda: c_time(baselines.w1_c(p, iters)),
                 "pygrad (c) Tape.train": lambda: pygrad_w1(iters)}
        if jax:
            impls["JAX jit lax.fori_loop"] = lambda: jax_w1(iters)
        _, losses = rounds(f"W1 (c): MLP(3, [4, 4, 1]) tanh, {iters} iterations", "iter", iters, impls,
                           args.rounds)
        agreement(losses, "C loop", ["pygrad (c) Tape.train", "JAX jit lax.fori_loop"])

    if "w2" in only:
        steps = 100
        X, y = make_moons(n_samples=100, noise=0.1)
        p = baselines.init_params(2, [16, 16, 1], seed=0, zero_bias=True)
        impls = {"C loop": lambda: c_time(baselines.w2_c(p, X, y, steps)),
                 "pygrad Tape, train(1) per step": lambda: pygrad_w2(steps, X, y),
                 "pygrad Tape, fast order": lambda: pygrad_w2(steps, X, y, order="fast")}
        if torch_ok:
            impls["PyTorch eager"] = lambda: timed(baselines.w2_torch, p, X, y, steps)
        impls["numpy by hand"] = lambda: timed(baselines.w2_numpy, p, X, y, steps)
        if jax:
            impls["JAX jit lax.scan"] = lambda: jax_w2(steps, X, y)
        _, losses = rounds("W2: micrograd's demo, MLP(2, [16, 16, 1]), 100 samples, 100 steps", "step",
                           steps, impls, args.rounds)
        agreement(losses, "C loop", [n for n in impls if n != "C loop"])

    if "mnist" in only:
        n = 200 if args.quick else 1000
        X, labels = baselines.synthetic_mnist(max(n, 60_000 if args.epoch else n))
        T = np.eye(10)[labels]
        p = baselines.mnist_params(0)
        exact, fast = MnistTape(p, "exact"), MnistTape(p, "fast")
        start = [0]  # each run starts from the same parameters

        def run(tape):
            pygrad.set_data(tape.model, p)
            return tape.train(X, T, n)
        impls = {"C loop": lambda: c_time(baselines.mnist_c(p, X[:n], labels[:n], batch=1, steps=n)),
                 "pygrad Tape.train, exact": lambda: run(exact),
                 "pygrad Tape.train, fast order": lambda: run(fast)}
        if torch_ok:
            impls["PyTorch eager, batch 1"] = lambda: timed(baselines.mnist_torch, p, X[:n], labels[:n],
                                                            batch=1, steps=n)
        impls["numpy by hand, batch 1"] = lambda: timed(baselines.mnist_numpy, p, X[:n], labels[:n],
                                                        batch=1, steps=n)
        if jax:
            impls["JAX jit lax.scan, batch 1"] = lambda: jax_mnist(p, X, labels, n)
        del start
        _, losses = rounds(f"MNIST-shaped MLP(784, [128, 10]), softmax cross-entropy, SGD, {n} samples "
                           "one at a time", "sample", n, impls, args.rounds)
        agreement(losses, "C loop", [k for k in impls if k != "C loop"])

        if args.epoch:
            N = 60_000
            pygrad.set_data(exact.model, p)
            ticks = []
            s, ls = exact.train(X, T, N, progress=lambda d, t, l: ticks.append(d))
            pygrad.set_data(fast.model, p)
            sf, _ = fast.train(X, T, N)
            print(f"\nOne epoch, 60,000 x 784 float64 ({X.nbytes / 1e6:.0f} MB, read in place), one "
                  f"Tape.train call: exact {s:.2f} s, fast {sf:.2f} s ({len(ticks)} progress calls); "
                  f"final loss {ls[-1]:.4f}")
            m = 2000
            if torch_ok:
                out = baselines.mnist_torch(p, X[:m], labels[:m], batch=1, steps=m)
                print(f"  PyTorch eager batch 1: {out['seconds'] / m * N:.1f} s per epoch "
                      f"(from {m} samples)")
            if jax:
                sj, _ = jax_mnist(p, X, labels, 10_000)
                print(f"  JAX jit lax.scan batch 1: {sj / 10_000 * N:.2f} s per epoch (from 10,000 samples)")
            out = baselines.mnist_c(p, X[:m * 5], labels[:m * 5], batch=1, steps=m * 5)
            print(f"  C loop: {out['seconds'] / (m * 5) * N:.2f} s per epoch (from {m * 5} samples)")


if __name__ == "__main__":
    main()
