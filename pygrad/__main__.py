"""python -m pygrad train: run W1, the tutorial network, and report the time
and the final loss (spec/WORKLOADS.md). `python -m pygrad train --help`."""
import argparse
import sys
import time

import pygrad
from pygrad import reference
from pygrad.workloads import train_w1, w1_model


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pygrad", description=__doc__.splitlines()[0])
    commands = ap.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train W1: MLP(3, [4, 4, 1]), tanh, seed 000's loop")
    train.add_argument("--iters", type=int, default=100_000, help="iterations (default 100000)")
    train.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    train.add_argument("--seed", type=int, default=0, help="random.seed for the weights (default 0)")
    train.add_argument("--way", choices=["nn", "tutorial"], default="nn",
                       help="pygrad.nn's MLP, or the tutorial's own classes on pygrad.Value")
    train.add_argument("--engine", choices=["pygrad", "reference"], default="pygrad",
                       help="pygrad (C) or the pure-Python reference engine")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error("--iters must be at least 1")

    engine = pygrad if args.engine == "pygrad" else reference
    mlp = w1_model(engine, args.way, args.seed)
    print(f"W1: {args.iters} iterations of MLP(3, [4, 4, 1]) ({args.way}, {args.engine}), "
          f"lr {args.lr}, seed {args.seed}", flush=True)
    losses = []
    chunk = max(1, args.iters // 10)
    start = time.perf_counter()
    while len(losses) < args.iters:
        losses += train_w1(mlp, min(chunk, args.iters - len(losses)), args.lr)
        print(f"  iteration {len(losses):>7}  loss {losses[-1]:.6e}", flush=True)
    seconds = time.perf_counter() - start
    print(f"final loss {losses[-1]!r}")
    print(f"time {seconds:.2f} s, {args.iters / seconds:,.0f} iterations/s, "
          f"{1e6 * seconds / args.iters:.1f} us/iteration")
    return 0


if __name__ == "__main__":
    sys.exit(main())
