"""pygrad's benchmark suite: every workload, every implementation, one run.

    pygrad bench [--quick] [--json results.json]
    (or python -m pygrad.bench, or python benchmarks/run.py in a checkout)

Runs, side by side in one process (the machines are shared and noisy, so
only ratios measured together mean anything):
- W1, the tutorial network, three ways on pygrad: (a) the tutorial's own
  classes on pygrad.Value, (b) pygrad.nn with the tutorial's loop unchanged,
  (c) the fused loop (pygrad.Tape.train); beside the pure-Python reference
  engine (the tutorial's classes on pygrad.reference), PyTorch eager
  (float64), numpy with hand-written backprop, and a hand-written C loop
  compiled on the spot (pygrad/bench/loops.c).
- W2, micrograd's demo: its loop on pygrad.nn, on the real `micrograd`
  package (PyPI) and on the reference engine; the replayed loop; PyTorch,
  numpy and C.
- W5, scale: a 10,000,000-node chain replayed forward and backward, against
  C over plain arrays; MNIST-shaped training, one sample per step.
Each table gives the time, the ratios, and the final loss: every
implementation must agree, or the suite exits 1. The same tables go to
--json. Benchmarks never run as part of the tests (tests/ checks the numbers).
"""
import gc
import json
import math
import os
import subprocess
import sys
import time
import types

import pygrad
from pygrad import reference
from pygrad.cli import Parser
from pygrad.losses import hinge
from pygrad.optim import SGD
from pygrad.workloads import (W1, W2_ALPHA, rel_diff, train_w1, train_w2, w1_model,
                              w2_learning_rate)

from . import baselines

# One thread for every library: pygrad and the C loop use one, and on this
# shared 2-core machine PyTorch's and numpy's thread pools slowed them 10-100x
# whenever the other core was busy. The variables must be set before numpy
# and torch load, so main() runs the suite in a fresh interpreter when they
# are not; set them yourself to override.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def timed(fn, *args, **kwargs):
    gc.collect()  # don't bill a run for the previous run's garbage
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def row(impl, seconds, iters, losses):
    """One line of a table: an implementation's time over iters iterations."""
    return {"impl": impl, "iters": iters, "seconds": seconds, "us_per_iter": 1e6 * seconds / iters,
            "final_loss": losses[-1], "losses": losses}


# ---- W1 ---------------------------------------------------------------------

def w1_fused(iters, seed):
    """W1 (c): build the graph once (the tutorial's forward and loss), then
    the whole loop in one C call."""
    return W1(seed=seed, way="tape").train(iters)


def bench_w1(iters, ref_iters, seed):
    params = baselines.init_params(*baselines.W1_SIZES, seed=seed)
    rows = []

    s, h = timed(train_w1, w1_model(reference, "tutorial", seed), ref_iters)
    rows.append(row("reference (pure Python)", s, ref_iters, h))
    s, h = timed(train_w1, w1_model(pygrad, "tutorial", seed), iters)
    rows.append(row("pygrad (a) tutorial classes", s, iters, h))
    s, h = timed(train_w1, w1_model(pygrad, "nn", seed), iters)
    rows.append(row("pygrad (b) pygrad.nn, same loop", s, iters, h))
    s, h = timed(w1_fused, iters, seed)
    rows.append(row("pygrad (c) Tape.train", s, iters, h))
    rows += run_baselines("w1", iters, params, iters)
    return rows


# ---- W2 ---------------------------------------------------------------------

def w2_replayed(steps, seed, X, y):
    """W2 with the graph built once: input leaves, pygrad.losses.hinge, and
    one Tape.train step per learning rate of the schedule."""
    import random
    random.seed(seed)
    model = pygrad.MLP(2, [16, 16, 1])
    scores = [model([pygrad.Value(v) for v in row]) for row in X]
    tape = pygrad.Tape(hinge(scores, y, model.parameters(), alpha=W2_ALPHA))
    opt = SGD(model.parameters(), lr=1.0)
    losses = []
    for k in range(steps):
        opt.lr = w2_learning_rate(k)
        losses += tape.train(1, opt).tolist()
    return losses


def micrograd_engine():
    try:
        import micrograd.engine
        import micrograd.nn
    except ImportError:
        return None
    return types.SimpleNamespace(Value=micrograd.engine.Value, MLP=micrograd.nn.MLP)


def bench_w2(steps, slow_steps, seed):
    from pygrad.datasets import make_moons
    X, y = make_moons(n_samples=100, noise=0.1)
    params = baselines.init_params(*baselines.W2_SIZES, seed=seed, zero_bias=True)
    rows = []

    mg = micrograd_engine()
    if mg is None:
        print("  (skipping micrograd: pip install micrograd)")
    else:
        s, (h, _) = timed(train_w2, mg, slow_steps, seed, X, y)
        rows.append(row("micrograd (PyPI)", s, slow_steps, h))
    s, (h, _) = timed(train_w2, reference, slow_steps, seed, X, y)
    rows.append(row("reference (pure Python)", s, slow_steps, h))
    s, (h, _) = timed(train_w2, pygrad, steps, seed, X, y)
    rows.append(row("pygrad.nn, demo loop unchanged", s, steps, h))
    s, h = timed(w2_replayed, steps, seed, X, y)
    rows.append(row("pygrad Tape, replayed", s, steps, h))
    rows += run_baselines("w2", steps, params, X, y, steps)
    return rows


# ---- W5 ---------------------------------------------------------------------

def bench_chain(steps):
    """y = (y * a + b).tanh(), `steps` times: 3 nodes a step."""
    a, b, y0 = pygrad.Value(0.5), pygrad.Value(0.25), pygrad.Value(0.1)
    start = time.perf_counter()
    y = y0
    for _ in range(steps):
        y = (y * a + b).tanh()
    build = time.perf_counter() - start
    tape = pygrad.Tape(y)
    tape.forward()  # the first run touches the tape's fresh memory
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        tape.forward()
        t1 = time.perf_counter()
        tape.backward()
        times.append((t1 - t0, time.perf_counter() - t1))
    fwd, bwd = min(times, key=sum)
    ours = {"impl": "pygrad Tape replay", "nodes": len(tape), "seconds_forward": fwd,
            "seconds_backward": bwd, "seconds": fwd + bwd, "build_seconds": build,
            "final_value": y.data, "grad_a": a.grad, "grad_b": b.grad}
    rows = [ours]
    c = baselines.chain_c(steps)
    if c is not None:
        c["impl"] = "C by hand, plain arrays"
        rows.append(c)
    del tape, y
    return rows


def run_baselines(workload, iters, *args, **kwargs):
    """Rows for PyTorch, numpy and C (pygrad/bench/baselines.py) on a workload;
    an implementation that cannot run here (no torch, no compiler) is skipped."""
    rows = []
    for name, kind in (("PyTorch eager float64", "torch"), ("numpy by hand", "numpy"),
                       ("C by hand", "c")):
        try:
            out = getattr(baselines, f"{workload}_{kind}")(*args, **kwargs)
        except ImportError as e:
            out = None
            print(f"  (skipping {name}: {e})")
        if out is not None:  # None: no C compiler here
            rows.append(row(name, out["seconds"], iters, out["losses"]))
    return rows


def mnist_pygrad(params, X, Y, steps, lr):
    """One sample per step, by replay: the graph of MLP(784, [128, 10]) and a
    softmax cross-entropy is built once over input leaves (the pixels and
    the one-hot label), and Tape.train feeds it a row of data per step."""
    import numpy as np
    model = pygrad.MLP(784, [128, 10])
    pygrad.set_data(model, params)
    x = [pygrad.Value(0.0) for _ in range(784)]
    t = [pygrad.Value(0.0) for _ in range(10)]
    logits = model(x)
    loss = sum(z.exp() for z in logits).log() - sum(ti * z for ti, z in zip(t, logits))
    data = np.hstack([X[:steps], np.eye(10)[Y[:steps]]])
    start = time.perf_counter()
    losses = pygrad.Tape(loss).train(steps, SGD(model.parameters(), lr=lr), inputs=x + t, data=data)
    return time.perf_counter() - start, steps, losses.tolist()


def bench_mnist(steps):
    X, Y = baselines.synthetic_mnist(max(steps, 1), seed=0)
    params = baselines.mnist_params(0)
    rows = []
    rows.append(row("pygrad Tape.train", *mnist_pygrad(params, X, Y, steps, 0.01)))
    return rows + run_baselines("mnist", steps, params, X, Y, batch=1, steps=steps, lr=0.01)


# ---- the tables ---------------------------------------------------------------

def table(title, rows, base, floor, unit="iter"):
    """Print rows with their ratios to `base` (how much faster) and to `floor` (C),
    per iteration (runs with fewer iterations are compared per iteration)."""
    by = {r["impl"]: r for r in rows}
    print(f"\n{title}\n(speed-up: how many times faster than {base}; x C: time over the C loop's)")
    print(f"{'implementation':<34} {'us/' + unit:>12} {'speed-up':>9} {'x C':>7}  final loss")
    ref = by.get(base)
    for r in rows:
        speedup = ref["us_per_iter"] / r["us_per_iter"] if ref else float("nan")
        vs_c = r["us_per_iter"] / by[floor]["us_per_iter"] if floor in by else float("nan")
        r["speedup_vs_" + base.split()[0]] = speedup
        r["x_c_time"] = vs_c
        print(f"{r['impl']:<34} {r['us_per_iter']:>12.2f} {speedup:>9.1f} {vs_c:>7.2f}  "
              f"{r['final_loss']!r}" + (f" (after {r['iters']})" if r["iters"] != rows[-1]["iters"]
                                        else ""))


def agreement(rows, n_common, name, tol, others_tol=1e-9):
    """Largest relative difference of every row's losses from the first row's,
    over the iterations they share (at most n_common): at most tol for
    pygrad's rows, others_tol for implementations with other arithmetic."""
    first = rows[0]["losses"]
    worst = {}
    for r in rows[1:]:
        n = min(n_common, len(first), len(r["losses"]))
        worst[r["impl"]] = max(rel_diff(a, b) for a, b in zip(first[:n], r["losses"][:n]))
    print(f"  losses agree with {rows[0]['impl']}'s step for step: largest relative difference "
          + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))
    bad = {k: v for k, v in worst.items() if v > (tol if k.startswith("pygrad") else others_tol)}
    if bad:
        print(f"  FAIL ({name}): too far apart (pygrad: {tol:g}, others: {others_tol:g}): {bad}")
    return not bad


def main(argv=None):
    """Run the suite with argv's options (default sys.argv[1:]); return the
    exit status: 0, 1 if implementations disagree, 2 for bad arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not all(v in os.environ for v in THREAD_VARIABLES):
        env = dict(os.environ)
        for v in THREAD_VARIABLES:
            env.setdefault(v, "1")
        return subprocess.call([sys.executable, "-m", "pygrad.bench", *argv], env=env)
    ap = Parser(prog="pygrad bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (a few minutes less)")
    ap.add_argument("--w1-iters", type=int, help="W1 iterations (default 100000; --quick 3000)")
    ap.add_argument("--ref-iters", type=int,
                    help="W1 iterations of the pure-Python reference (default: as --w1-iters)")
    ap.add_argument("--w2-steps", type=int, default=100, help="W2 steps (default 100)")
    ap.add_argument("--w2-slow-steps", type=int,
                    help="W2 steps of micrograd and the reference (default 100; --quick 5)")
    ap.add_argument("--chain-steps", type=int, help="W5 chain steps, 3 nodes each "
                    "(default 3333334: 10,000,001 nodes; --quick 333334)")
    ap.add_argument("--mnist-steps", type=int, help="W5 MNIST samples (default 1000; --quick 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write every table as JSON")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return e.code
    q = args.quick
    w1_iters = args.w1_iters or (3000 if q else 100_000)
    ref_iters = args.ref_iters or w1_iters
    slow = args.w2_slow_steps or (5 if q else args.w2_steps)
    chain = args.chain_steps or (333_334 if q else 3_333_334)
    mnist = args.mnist_steps or (100 if q else 1000)
    print(f"pygrad {pygrad.__version__} benchmarks, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")
    ok = True
    results = {}

    w1 = bench_w1(w1_iters, ref_iters, args.seed)
    table(f"W1: MLP(3, [4, 4, 1]) tanh, seed {args.seed}, {w1_iters} iterations", w1,
          "reference (pure Python)", "C by hand")
    ok &= agreement(w1, min(w1_iters, ref_iters), "W1", 1e-12)
    results["W1"] = w1

    w2 = bench_w2(args.w2_steps, slow, args.seed)
    base = "micrograd (PyPI)" if any(r["impl"] == "micrograd (PyPI)" for r in w2) else \
        "reference (pure Python)"
    table(f"W2: micrograd's demo, MLP(2, [16, 16, 1]), {args.w2_steps} steps", w2, base,
          "C by hand", unit="step")
    ok &= agreement(w2, slow, "W2", 1e-9)
    results["W2"] = w2

    ch = bench_chain(chain)
    print(f"\nW5: a chain of {ch[0]['nodes']:,} nodes, y = (y * a + b).tanh(), forward + backward")
    for r in ch:
        r["ns_per_node"] = 1e9 * r["seconds"] / r["nodes"]
        print(f"{r['impl']:<34} forward {r['seconds_forward']:.3f} s, backward "
              f"{r['seconds_backward']:.3f} s, {r['ns_per_node']:.2f} ns/node, "
              f"value {r['final_value']!r}, grad a {r['grad_a']!r}")
    if len(ch) == 2:
        ratio = ch[0]["seconds"] / ch[1]["seconds"]
        print(f"  replay costs {ratio:.2f}x the C loop per node (built from Python in "
              f"{ch[0]['build_seconds']:.1f} s)")
        same = rel_diff(ch[0]["grad_a"], ch[1]["grad_a"]) < 1e-9 and \
            rel_diff(ch[0]["final_value"], ch[1]["final_value"]) < 1e-12
        if not same:
            print("  FAIL (chain): the C loop and pygrad disagree")
        ok &= same
    results["W5_chain"] = ch

    mn = bench_mnist(mnist)
    table(f"W5: MNIST-shaped MLP(784, [128, 10]), softmax cross-entropy, SGD, {mnist} samples "
          "one at a time", mn, "PyTorch eager float64", "C by hand", unit="sample")
    ok &= agreement(mn, mnist, "MNIST", 1e-9)
    results["W5_mnist"] = mn

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "pygrad": pygrad.__version__,
                       "results": results}, f, indent=1, default=float)
    return 0 if ok else 1
