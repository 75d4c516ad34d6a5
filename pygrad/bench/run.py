"""pygrad's benchmark suite: every workload, every implementation, one run.

    pygrad bench [--quick] [--repeats N] [--json results.json] [--plot speed.png]
    (or python -m pygrad.bench, or python benchmarks/run.py in a checkout)

Runs, side by side in one process, each implementation warmed up and then
timed in interleaved repeats (pygrad/bench/timing.py: medians, spreads,
ratios of medians):
- W1, the tutorial network, three ways on pygrad: (a) the tutorial's own
  classes on pygrad.Value, (b) pygrad.nn with the tutorial's loop unchanged,
  (c) the fused loop (pygrad.Tape.train); beside the pure-Python reference
  engine (the tutorial's classes on pygrad.reference), PyTorch eager
  (float64), numpy with hand-written backprop, JAX (the whole loop one
  jitted lax.fori_loop, float64) and a hand-written C loop compiled on the
  spot (pygrad/bench/loops.c).
- W2, micrograd's demo (its data and weights: seed 1337): its loop on
  pygrad.nn, on the real `micrograd` package (PyPI) and on the reference
  engine; the replayed loop (and its fast order, where pygrad.Tape has one);
  PyTorch, numpy, JAX (lax.fori_loop) and C.
- W5, scale: a 10,000,000-node chain replayed forward and backward, against
  C over plain arrays; MNIST-shaped training, one sample per step (JAX:
  one lax.scan over the samples).
The pure-Python engines are slow (ms per W1 iteration, a second or more per
W2 step): they run fewer iterations and fewer repeats, compared per
iteration. Each table gives the median time, the spread, the ratios and the
final loss: every implementation's losses must agree (pygrad's with the
reference's to the bit) and every repeat's with its first, or the suite
exits 1. What cannot run here (a peer not installed, no C compiler) is named.
The same tables go to --json, and as a picture to --plot. Benchmarks never
run as part of the tests (tests/ checks the numbers).
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import random
import subprocess
import sys
import time
import types
from typing import Any

import pygrad
from pygrad import reference
from pygrad.cli import Parser, file_path, int_in
from pygrad.losses import hinge
from pygrad.optim import SGD
from pygrad._files import atomic_write
from pygrad.plot import HOW_TO_INSTALL, have_matplotlib, save_speed_plot
from pygrad.runs import W1
from pygrad.workloads import W2_ALPHA, W2_SEED, train_w1, train_w2, w1_model, w2_data, w2_learning_rate

from . import baselines, jax_loops
from .timing import Impl, measure, timed

# One thread for every library: pygrad and the C loop use one, and on this
# shared 2-core machine PyTorch's and numpy's thread pools slowed them 10-100x
# whenever the other core was busy. The variables must be set before numpy,
# torch and jax load, so main() runs the suite in a fresh interpreter when
# they are not; set them yourself to override.
THREAD_VARIABLES = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "XLA_FLAGS": jax_loops.XLA_FLAGS, "JAX_PLATFORMS": "cpu"}
TABLES = ("W1", "W2", "chain", "mnist")


def rel_diff(a, b):
    """Relative difference of two results, 0 when they are equal (both inf too)."""
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def _losses(result):
    """{"seconds", "losses"} of a timed(...) whose function returned the losses."""
    return {"seconds": result["seconds"], "losses": list(result["out"])}


# ---- what can run here ----------------------------------------------------------

class Peers:
    """Which of the other implementations can run here; what cannot is
    noted in `missing`, for the output."""

    def __init__(self):
        self.missing: list[str] = []
        self.torch = self._module("torch", "PyTorch", "pip install torch")
        self.jax = self._module("jax", "JAX", "pip install jax")
        self.micrograd = self._module("micrograd", "micrograd", "pip install 'pygrad-engine[bench]'")
        try:
            self.c = baselines.build_c() is not None
            if not self.c:
                self.missing.append("C by hand: no C compiler found (set CC, or install cc, "
                                    "gcc or clang)")
        except RuntimeError as e:
            self.c = False
            self.missing.append(f"C by hand: {str(e).splitlines()[0]}")
        self.fast_order = "order" in inspect.signature(pygrad.Tape).parameters
        if not self.fast_order:
            self.missing.append("the Tape fast-order rows: this pygrad's Tape takes no order= "
                                "argument")

    def _module(self, module, name, how):
        if importlib.util.find_spec(module) is not None:
            return True
        self.missing.append(f"{name}: not installed ({how})")
        return False


def tape(loss, fast=False):
    """A Tape of loss, in the fast order if asked (where Tape has one: Peers)."""
    make: Any = pygrad.Tape
    return make(loss, order="fast") if fast else make(loss)


# ---- W1 ---------------------------------------------------------------------

def w1_fused(iters, seed):
    """W1 (c): build the graph once (the tutorial's forward and loss), then
    the whole loop in one C call."""
    return W1(seed=seed, way="tape").train(iters)


def w1_impls(a, peers):
    params = baselines.init_params(*baselines.W1_SIZES, seed=a.w1_seed)
    seed, n, r = a.w1_seed, a.w1_iters, a.repeats

    def loop(engine, way):
        return lambda k: _losses(timed(train_w1, w1_model(engine, way, seed), k))

    impls = [Impl("reference (pure Python)", loop(reference, "tutorial"), a.ref_iters, a.slow_repeats),
             Impl("pygrad (a) tutorial classes", loop(pygrad, "tutorial"), n, r),
             Impl("pygrad (b) pygrad.nn, same loop", loop(pygrad, "nn"), n, r),
             Impl("pygrad (c) Tape.train", lambda k: _losses(timed(w1_fused, k, seed)), n, r)]
    return impls + peer_impls(peers, "w1", n, r, params)


# ---- W2 ---------------------------------------------------------------------

def w2_replayed(steps, seed, X, y, fast=False):
    """W2 with the graph built once: input leaves, pygrad.losses.hinge, and
    one Tape.train call with the demo's learning-rate schedule. Times the training
    alone, as the C and JAX rows are timed; building and recording the graph
    is reported apart ("compile_seconds")."""
    start = time.perf_counter()
    random.seed(seed)
    model = pygrad.MLP(2, [16, 16, 1])
    scores = [model([pygrad.Value(v) for v in row]) for row in X]
    replay = tape(hinge(scores, y, model.parameters(), alpha=W2_ALPHA), fast)
    opt = SGD(model.parameters(), lr=1.0)
    built = time.perf_counter()
    if "lr" in inspect.signature(replay.train).parameters:  # the schedule in C, as the C and JAX loops have it
        losses = replay.train(steps, opt, lr=w2_learning_rate).tolist()
    else:  # (an older pygrad: a step per call)
        losses = []
        for k in range(steps):
            opt.lr = w2_learning_rate(k)
            losses += replay.train(1, opt).tolist()
    return {"seconds": time.perf_counter() - built, "losses": losses, "compile_seconds": built - start}


def micrograd_engine():
    import micrograd.engine
    import micrograd.nn
    return types.SimpleNamespace(Value=micrograd.engine.Value, MLP=micrograd.nn.MLP)


def w2_impls(a, peers):
    seed, n, r = a.w2_seed, a.w2_steps, a.repeats
    X, y = w2_data(seed)
    params = baselines.init_params(*baselines.W2_SIZES, seed=seed, zero_bias=True)

    def demo(engine):
        return lambda k: _losses(timed(lambda: train_w2(engine(), k, seed, X, y)[0]))

    impls = []
    if peers.micrograd:
        impls.append(Impl("micrograd (PyPI)", demo(micrograd_engine), a.w2_slow_steps, a.slow_repeats,
                          bitwise=False))  # (its sums follow the order of a set of Values)
    impls += [Impl("reference (pure Python)", demo(lambda: reference), a.w2_slow_steps, a.slow_repeats),
              Impl("pygrad.nn, demo loop unchanged", demo(lambda: pygrad), n, r),
              Impl("pygrad Tape, replayed", lambda k: w2_replayed(k, seed, X, y), n, r)]
    if peers.fast_order:
        impls.append(Impl("pygrad Tape, replayed, fast order",
                          lambda k: w2_replayed(k, seed, X, y, True), n, r, exact=False))
    return impls + peer_impls(peers, "w2", n, r, params, X, y)


# ---- W5 ---------------------------------------------------------------------

def chain_impls(a, peers):
    """y = (y * a + b).tanh(), a.chain_steps times (3 nodes a step), built
    once; each run replays it forward and backward. Its "losses" are the
    final value and the gradients of a and b, checked like losses."""
    built: dict[str, Any] = {}

    def replay(_):
        if not built:  # the first (warm-up) run builds the chain, timed apart
            x, b, y0 = pygrad.Value(0.5), pygrad.Value(0.25), pygrad.Value(0.1)
            start = time.perf_counter()
            y = y0
            for _ in range(a.chain_steps):
                y = (y * x + b).tanh()
            built.update(build=time.perf_counter() - start, tape=pygrad.Tape(y), ends=(y, x, b))
            built["tape"].forward()  # the first run touches the tape's fresh memory
        y, x, b = built["ends"]
        start = time.perf_counter()
        built["tape"].forward()
        built["tape"].backward()
        return {"seconds": time.perf_counter() - start, "losses": [y.data, x.grad, b.grad]}

    def c(_):
        out = baselines.chain_c(a.chain_steps)
        return {"seconds": out["seconds"], "losses": [out["final_value"], out["grad_a"], out["grad_b"]]}

    nodes = 3 * a.chain_steps + 3
    impls = [Impl("pygrad Tape replay", replay, nodes, a.repeats, warmup=nodes)]
    if peers.c:
        impls.append(Impl("C by hand, plain arrays", c, nodes, a.repeats, warmup=nodes,
                          exact=False))  # its backward adds a's and b's terms in another order
    return impls, built


def mnist_pygrad(params, X, Y, steps, lr, fast=False):
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
    replay, opt = tape(loss, fast), SGD(model.parameters(), lr=lr)
    start = time.perf_counter()
    losses = replay.train(steps, opt, inputs=x + t, data=data)
    return {"seconds": time.perf_counter() - start, "losses": losses.tolist()}


def mnist_impls(a, peers):
    n, r = a.mnist_steps, a.repeats
    X, Y = baselines.synthetic_mnist(n, seed=0)
    params = baselines.mnist_params(0)
    impls = [Impl("pygrad Tape.train", lambda k: mnist_pygrad(params, X, Y, k, 0.01), n, r)]
    if peers.fast_order:
        impls.append(Impl("pygrad Tape.train, fast order",
                          lambda k: mnist_pygrad(params, X, Y, k, 0.01, True), n, r, exact=False))
    return impls + peer_impls(peers, "mnist", n, r, params, X, Y, lr=0.01)


def peer_impls(peers, workload, n, r, *args, **kwargs):
    """PyTorch, numpy, JAX and C (baselines.py, jax_loops.py) on a workload,
    those that can run here; an MNIST run takes steps=, the others iters."""
    names = [("PyTorch eager float64", peers.torch, baselines, "torch"),
             ("numpy by hand", True, baselines, "numpy"),
             ("JAX jit, " + ("lax.scan" if workload == "mnist" else "lax.fori_loop"), peers.jax,
              jax_loops, "jax"),
             ("C by hand", peers.c, baselines, "c")]
    impls = []
    for name, here, module, kind in names:
        if here:
            fn = getattr(module, f"{workload}_{kind}")
            run = (lambda k, fn=fn: fn(*args, steps=k, **kwargs)) if workload == "mnist" else \
                (lambda k, fn=fn: fn(*args, k, **kwargs))
            impls.append(Impl(name, run, n, r, warmup=n if kind == "jax" else 0,
                              exact=kind == "c" and workload == "w1"))
    return impls


# ---- the tables ---------------------------------------------------------------

def _num(x):
    """A time, 4 significant digits or so, without an exponent."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if x >= 1000 else f"{x:.1f}" if x >= 100 else f"{x:.2f}" if x >= 10 \
        else f"{x:.3f}"


def table(title, rows, base, floor, unit):
    """Print rows with their medians, spreads and ratios (per iteration) to
    `base` (how many times faster) and to `floor` (C): the ratios of medians."""
    by = {r.name: r for r in rows}
    scale, label = (1e9, "ns") if min(r.median for r in rows) < 1e-6 else (1e6, "us")
    print(f"\n{title}\n(median of the repeats, [fastest, slowest]; speed-up: how many times "
          f"faster than {base}; x C: time over the C loop's)")
    print(f"{'implementation':<36} {'iters':>7} {'reps':>4} {label + '/' + unit:>11} "
          f"{'[fastest, slowest]':>22} {'speed-up':>9} {'x C':>8}  final loss")
    for r in rows:
        speedup = by[base].median / r.median if base in by else math.nan
        vs_c = r.median / by[floor].median if floor in by else math.nan
        spread = f"[{_num(r.fastest * scale)}, {_num(r.slowest * scale)}]"
        print(f"{r.name:<36} {r.impl.iters:>7} {len(r.seconds):>4} {_num(r.median * scale):>11} "
              f"{spread:>22} {_num(speedup):>9} {_num(vs_c):>8}  {r.losses[-1]!r}")
    for r in rows:
        if r.compile_seconds is not None:
            print(f"  {r.name}: built or compiled in {r.compile_seconds:.3f} s (not in its times)")


def agreement(rows, name, tol, others_tol=1e-9):
    """Whether every row's losses agree with the first row's over the
    iterations they share: to tol for pygrad's exact rows, others_tol for
    implementations with other arithmetic; and every repeat with its first."""
    first = rows[0].losses
    worst = {}
    for r in rows[1:]:
        n = min(len(first), len(r.losses))
        worst[r.name] = max(rel_diff(a, b) for a, b in zip(first[:n], r.losses[:n]))
    print(f"  losses agree with {rows[0].name}'s step for step: largest relative difference "
          + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))
    bad = {r.name: worst[r.name] for r in rows[1:]
           if worst[r.name] > (tol if r.impl.exact else others_tol)}
    if bad:
        print(f"  FAIL ({name}): too far apart (pygrad: {tol:g}, others: {others_tol:g}): {bad}")
    unrepeatable = [r.name for r in rows if not r.repeatable]
    if unrepeatable:
        print(f"  FAIL ({name}): a repeat gave other losses than the first: {unrepeatable} "
              "(to the bit; micrograd's to 1e-12)")
    return not bad and not unrepeatable


# ---- the command line ------------------------------------------------------------

def parse(argv):
    ap = Parser(prog="pygrad bench", description=__doc__.splitlines()[0] + " Each implementation "
                "is warmed up, then timed in interleaved repeats: medians, spreads, ratios of "
                "medians.")
    count = int_in(1, 10**9)
    ap.add_argument("--quick", action="store_true", help="short runs and 3 repeats (about a minute)")
    ap.add_argument("--repeats", type=int_in(1, 1000), help="timed repeats per implementation "
                    "(default 5; --quick 3)")
    ap.add_argument("--slow-repeats", type=int_in(1, 1000),
                    help="repeats of the pure-Python reference and micrograd (default 3; --quick 1)")
    ap.add_argument("--w1-iters", type=count, help="W1 iterations (default 100000; --quick 3000)")
    ap.add_argument("--ref-iters", type=count,
                    help="W1 iterations of the pure-Python reference (default 2000; --quick 300)")
    ap.add_argument("--w2-steps", type=count, help="W2 steps (default 100)")
    ap.add_argument("--w2-slow-steps", type=count,
                    help="W2 steps of micrograd and the reference (default 3; --quick 2)")
    ap.add_argument("--chain-steps", type=count, help="W5 chain steps, 3 nodes each "
                    "(default 3333334: 10,000,005 nodes; --quick 333334)")
    ap.add_argument("--mnist-steps", type=count, help="W5 MNIST samples (default 1000; --quick 100)")
    ap.add_argument("--seed", type=int_in(0, 2**32 - 1),
                    help=f"the seed of every workload (default: W1 0, W2 {W2_SEED} as micrograd's demo)")
    ap.add_argument("--only", metavar="TABLES", type=_tables,
                    help=f"run only these tables, comma-separated, of {', '.join(TABLES)}")
    ap.add_argument("--json", metavar="PATH", type=file_path(),
                    help="also write every table as JSON (its folder must exist)")
    ap.add_argument("--plot", metavar="PATH.png", type=file_path(".png"),
                    help=f"also draw the speed tables as a PNG (needs matplotlib: {HOW_TO_INSTALL})")
    a = ap.parse_args(argv)
    if a.plot and not have_matplotlib():
        ap.error(f"argument --plot: needs matplotlib ({HOW_TO_INSTALL})")
    q = a.quick
    defaults = dict(repeats=3 if q else 5, slow_repeats=1 if q else 3, w1_iters=3000 if q else 100_000,
                    ref_iters=300 if q else 2000, w2_steps=100, w2_slow_steps=2 if q else 3,
                    chain_steps=333_334 if q else 3_333_334, mnist_steps=100 if q else 1000,
                    only=TABLES)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.w1_seed = 0 if a.seed is None else a.seed
    a.w2_seed = W2_SEED if a.seed is None else a.seed
    return a


def _tables(text):
    names = [t.strip() for t in text.split(",")]
    unknown = [t for t in names if t not in TABLES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown table {unknown[0] if unknown else text!r} "
                                         f"(choose from {', '.join(TABLES)})")
    return tuple(names)


def main(argv=None):
    """Run the suite with argv's options (default sys.argv[1:]); return the
    exit status: 0, 1 if implementations disagree (or --json or --plot
    cannot be written), 2 for bad arguments (checked before anything runs)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        a = parse(argv)
    except SystemExit as e:
        return e.code
    if not all(v in os.environ for v in THREAD_VARIABLES):
        env = {**THREAD_VARIABLES, **os.environ}
        return subprocess.call([sys.executable, "-m", "pygrad.bench", *argv], env=env)
    return run_suite(a)


def run_suite(a):
    print(f"pygrad {pygrad.__version__} benchmarks, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores; {a.repeats} repeats, interleaved, after a warm-up "
          f"(the pure-Python engines: {a.slow_repeats})")
    peers = Peers()
    for note in peers.missing:
        print(f"  not run here: {note}")
    ok, results, tables = True, {}, []

    if "W1" in a.only:
        rows = measure(w1_impls(a, peers), "W1")
        title = f"W1: MLP(3, [4, 4, 1]) tanh, seed {a.w1_seed}, {a.w1_iters} iterations"
        table(title, rows, "reference (pure Python)", "C by hand", "iter")
        ok &= agreement(rows, "W1", 1e-12)
        results["W1"] = [r.as_dict() for r in rows]
        tables.append((title, "iteration", rows))

    if "W2" in a.only:
        rows = measure(w2_impls(a, peers), "W2")
        base = rows[0].name  # micrograd where installed, else the reference
        title = f"W2: micrograd's demo, MLP(2, [16, 16, 1]), seed {a.w2_seed}, {a.w2_steps} steps"
        table(title, rows, base, "C by hand", "step")
        ok &= agreement(rows, "W2", 1e-9)
        results["W2"] = [r.as_dict() for r in rows]
        tables.append((title, "step", rows))

    if "chain" in a.only:
        impls, built = chain_impls(a, peers)
        rows = measure(impls, "W5 chain")
        title = (f"W5: a chain of {rows[0].impl.iters:,} nodes, y = (y * a + b).tanh(), "
                 "forward + backward")
        table(title, rows, rows[0].name, "C by hand, plain arrays", "node")
        print(f"  (the chain was built from Python once, in {built['build']:.1f} s; \"losses\": "
              "the final value and the gradients of a and b)")
        ok &= agreement(rows, "chain", 1e-12)
        results["W5_chain"] = [r.as_dict() for r in rows]
        tables.append((title, "node", rows))
        built.clear()

    if "mnist" in a.only:
        rows = measure(mnist_impls(a, peers), "W5 MNIST")
        title = (f"W5: MNIST-shaped MLP(784, [128, 10]), softmax cross-entropy, SGD, "
                 f"{a.mnist_steps} samples one at a time")
        table(title, rows, "PyTorch eager float64", "C by hand", "sample")
        ok &= agreement(rows, "MNIST", 1e-9)
        results["W5_mnist"] = [r.as_dict() for r in rows]
        tables.append((title, "sample", rows))

    status = 0 if ok else 1
    if a.json:
        record = {"python": sys.version.split()[0], "pygrad": pygrad.__version__,
                  "cores": os.cpu_count(), "settings": {k: getattr(a, k) for k in vars(a)},
                  "not_run": peers.missing, "results": results}
        status = max(status, _write(a.json, lambda f: f.write(
            json.dumps(record, indent=1, default=float).encode())))
    if a.plot:
        status = max(status, _write(a.plot, None, tables))
    return status


def _write(path, write, tables=None):
    """Write --json (write(f)) or --plot (tables); a failure is one line on
    stderr and status 1, not a traceback after the whole suite."""
    try:
        if tables is None:
            with atomic_write(path) as f:
                write(f)
        else:
            save_speed_plot([(title, unit, [r.as_dict() for r in rows]) for title, unit, rows in tables],
                            path, title=f"pygrad {pygrad.__version__} bench: time per unit, log scale")
    except OSError as e:
        print(f"pygrad bench: error: writing {path}: {e}", file=sys.stderr)
        return 1
    print(f"{'speed tables drawn in' if tables else 'tables written to'} {path}")
    return 0
