"""W1 (a): the tutorial's own Neuron/Layer/MLP classes, on the reference engine and on pygrad.

(Also W1 (b), pygrad.nn's MLP with the same loop, for comparison.)

Workload W1 (spec/WORKLOADS.md, seed 000): MLP(3, [4, 4, 1]), tanh on every neuron, weights
and biases uniform(-1, 1), the user's training loop. The tutorial's classes (pygrad.workloads) are
built on pygrad.reference.Value (pure Python) and on pygrad.Value (C), from the same seed.
Runs alternate (reference, pygrad, ...) for --repeats rounds; each engine's median is reported
(gc stays on). The losses must agree at every iteration, or the script exits 1. Run it with:

    python benchmarks/w1.py [--iters 3000] [--seed 0] [--repeats 3] [--json results.json]
"""
import argparse
import gc
import json
import statistics
import sys
import time

import pygrad
import pygrad.reference
from pygrad.workloads import rel_diff, train_w1, w1_model

# (row name, engine, way): the tutorial's classes on each engine (way (a)),
# and pygrad.nn's MLP with the same loop (way (b)).
RUNS = [("reference", pygrad.reference, "tutorial"), ("pygrad", pygrad, "tutorial"),
        ("pygrad.nn", pygrad, "nn")]


def run(engine, way, iters, seed):
    """Build the W1 model from the seed and train it; return (seconds, loss history)."""
    mlp = w1_model(engine, way, seed)
    gc.collect()  # don't bill this run for the previous run's garbage
    start = time.perf_counter()
    history = train_w1(mlp, iters)
    return time.perf_counter() - start, history


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=3000, help="training iterations per run")
    ap.add_argument("--seed", type=int, default=0, help="random.seed before each model")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args()
    if args.iters < 1 or args.repeats < 1:
        ap.error("--iters and --repeats must be at least 1")
    times, histories = {name: [] for name, _, _ in RUNS}, {}
    for _ in range(args.repeats):
        for name, engine, way in RUNS:
            seconds, history = run(engine, way, args.iters, args.seed)
            times[name].append(seconds)
            histories.setdefault(name, history)  # keep the first round's
    ref = histories["reference"]
    worst = max(rel_diff(a, b) for name, _, _ in RUNS for a, b in zip(ref, histories[name]))
    final = max(rel_diff(ref[-1], histories[name][-1]) for name, _, _ in RUNS)
    print(f"W1 (a) tutorial classes, MLP(3, [4, 4, 1]), {args.iters} iterations, seed {args.seed}, "
          f"median of {args.repeats} interleaved runs, Python {sys.version.split()[0]}")
    print(f"{'engine':<10} {'us/iter':>9} {'s/run':>8}  final loss")
    rows = []
    for name, _, _ in RUNS:
        seconds = statistics.median(times[name])
        rows.append({"engine": name, "us_per_iter": 1e6 * seconds / args.iters, "seconds": seconds,
                     "runs_seconds": times[name], "final_loss": histories[name][-1]})
        print(f"{name:<10} {rows[-1]['us_per_iter']:>9.1f} {seconds:>8.3f}  {histories[name][-1]!r}")
    print(f"largest relative difference from the reference's losses: {final:.3g} at the end, "
          f"{worst:.3g} over all {len(ref)} iterations of the first round")
    ratio = rows[0]["seconds"] / rows[1]["seconds"]
    print(f"W1 (a) tutorial classes: pygrad is {ratio:.1f}x faster than the reference engine")
    print(f"W1 (b) pygrad.nn, same loop: {rows[0]['seconds'] / rows[2]['seconds']:.1f}x faster")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workload": "W1 (a) tutorial classes", "iters": args.iters, "seed": args.seed,
                       "repeats": args.repeats, "python": sys.version.split()[0], "rows": rows,
                       "ratio": ratio, "final_rel_diff": final, "max_rel_diff": worst}, f, indent=2)
    if max(worst, final) > 1e-9:  # the spec: the same losses, iteration for iteration
        sys.exit("FAIL: the engines' losses differ by more than 1e-9 relative")


if __name__ == "__main__":
    main()
