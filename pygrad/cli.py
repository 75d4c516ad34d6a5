"""pygrad's command line (`pygrad` or `python -m pygrad`).

    pygrad train [--workload W1] [--iters N] [--lr LR] [--seed S] [--out PATH]
    pygrad bench [--quick] ...

train runs one of the tutorials' workloads (spec/WORKLOADS.md, defined in
pygrad.workloads) with a progress bar, prints the final loss, the time and
the speed, and writes the loss curve as a PNG. bench runs the benchmark
suite (pygrad.bench). Bad arguments get a one-line error and exit status 2.
"""
import argparse
import math
import os
import sys
import time

from . import reference
from .workloads import W1, WORKLOADS, agrees, w4_numbers

NAMES = [*WORKLOADS, "W4"]  # W4 is the lecture's worked numbers: checked, not trained
BY_LOWER = {name.lower(): name for name in NAMES}


class Parser(argparse.ArgumentParser):
    """argparse, with a one-line error (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def workload_name(text):
    try:
        return BY_LOWER[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown workload {text!r} (choose from {', '.join(NAMES)})") from None


def positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def positive_float(text):
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not (x > 0 and math.isfinite(x)):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return x


def png_path(text):
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"{text!r} does not end in .png")
    folder = os.path.dirname(text) or os.curdir
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no folder {folder!r} to write {os.path.basename(text)!r} in")
    return text


def build_parser(prog):
    ap = Parser(prog=prog, description="pygrad: micrograd's API with the graph and the kernels "
                "in C. Train the tutorials' networks, or run the benchmark suite.")
    commands = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    defaults = "; ".join(f"{w.name} {w.iters} {w.unit}s" for w in WORKLOADS.values())
    train = commands.add_parser(
        "train", help="train a workload of spec/WORKLOADS.md (default W1, 100000 iterations)",
        description="Train one of the tutorials' networks (spec/WORKLOADS.md) with a progress "
        "bar; print the final loss, the time and the speed; write the loss curve as a PNG "
        "(with matplotlib if installed, else a built-in plot). W4 checks the lecture's "
        f"worked numbers instead. Default lengths: {defaults}.")
    train.add_argument("-w", "--workload", type=workload_name, default="W1", metavar="NAME",
                       help=f"{', '.join(NAMES)} (any case; default W1)")
    train.add_argument("--iters", type=positive_int, metavar="N",
                       help="iterations (epochs for digits, steps for W2); default: the workload's")
    train.add_argument("--lr", type=positive_float, help="learning rate (default: the workload's: "
                       + ", ".join(f"{w.name} {w.lr}" for w in WORKLOADS.values()) + ")")
    train.add_argument("--seed", type=int, default=0, help="random.seed for the weights (default 0)")
    train.add_argument("--out", type=png_path, metavar="PATH.png",
                       help="where to write the loss curve (default: <workload>_loss.png)")
    train.add_argument("--no-plot", action="store_true", help="write no plot")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--engine", choices=["pygrad", "reference"], default="pygrad",
                       help="pygrad (C) or the pure-Python reference engine (not for digits)")
    train.add_argument("--way", choices=W1.ways,
                       help="W1 only: pygrad.nn's MLP (default), the tutorial's own classes on "
                       "Value, or pygrad.Tape replaying the graph (the fastest)")
    commands.add_parser("bench", add_help=False,
                        help="run the benchmark suite (pygrad bench --help for its options)")
    return ap


def main(argv=None, prog="pygrad"):
    """Run the command line on argv (default sys.argv[1:]); return the exit status."""
    try:
        args, rest = build_parser(prog).parse_known_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a bad argument (2)
        return e.code
    if args.command == "bench":
        from .bench import main as bench_main
        return bench_main(rest)
    prog = f"{prog} train"
    problem = f"unrecognized arguments: {' '.join(rest)}" if rest else conflict(args)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    return check_w4(args.engine) if args.workload == "W4" else train(args, prog)


def conflict(args):
    """What is wrong with a combination of train's arguments, or None."""
    if args.workload == "W4":  # it checks numbers: nothing to train or plot
        given = [name for name in ("iters", "lr", "out", "way") if getattr(args, name) is not None]
        given += ["seed"] if args.seed != 0 else []
        return f"argument --{given[0]}: W4 trains nothing" if given else None
    if args.way is not None and args.workload != "W1":
        return "argument --way: only for W1"
    return None  # the workload itself refuses an engine it does not run on


def train(args, prog):
    cls = WORKLOADS[args.workload]
    engine = reference if args.engine == "reference" else None
    options = {"way": args.way} if args.way else {}
    try:
        run = cls(seed=args.seed, lr=args.lr, iters=args.iters, engine=engine, **options)
    except ValueError as e:  # an engine (or way) this workload does not run on
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    how = f"{args.way or 'nn'}, {args.engine}" if cls.name == "W1" else args.engine
    print(f"{cls.name}: {cls.title}; {run.iters} {cls.unit}s ({how}), lr {run.lr}, "
          f"seed {args.seed}", flush=True)

    losses: "list[float]" = []
    try:
        seconds = train_with_progress(run, losses, not args.no_progress)
    except (ArithmeticError, ValueError) as e:  # e.g. diverging at a too large --lr
        n = 1 if run.replays else min(chunk_size(run), run.iters - len(losses))  # it failed in this chunk
        where = f"{len(losses) + 1}" + (f" to {len(losses) + n}" if n > 1 else "")
        print(f"{prog}: error: {cls.unit} {where}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted after {len(losses)} {cls.unit}s", file=sys.stderr)
        return 130
    n, unit = len(losses), cls.unit
    speed = (f"{n / seconds:,.0f} {unit}s/s, {1e6 * seconds / n:,.1f} us/{unit}" if n >= 100 * seconds
             else f"{n / seconds:.3g} {unit}s/s, {seconds / n:.3g} s/{unit}")
    print(f"final loss {losses[-1]!r}")
    print(f"time {seconds:.2f} s, {speed}")
    for line in run.summary():
        print(line)
    if not args.no_plot:
        from .plot import save_loss_plot
        out = args.out or f"{cls.name.lower()}_loss.png"
        try:
            writer = save_loss_plot(losses, out, xlabel=unit,
                                    title=f"{cls.name}, lr {run.lr}, seed {args.seed}")
        except (OSError, ValueError) as e:
            print(f"{prog}: error: writing {out}: {e}", file=sys.stderr)
            return 1
        note = "" if writer == "matplotlib" else \
            " (a plain plot: pip install matplotlib for a full one)"
        print(f"loss curve written to {out}{note}")
    return 0


def chunk_size(run):
    """Iterations per call of run.train: 1% of the run."""
    return max(1, run.iters // 100)


def train_with_progress(run, losses, progress=True):
    """Train run.iters iterations, appending their losses to losses, in
    chunks of about 1%, with a progress bar on stderr updated between
    chunks. Returns the seconds taken."""
    from tqdm import tqdm

    chunk = chunk_size(run)
    bar = tqdm(total=run.iters, unit="it" if run.unit == "iteration" else f" {run.unit}",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    try:
        if run.replays:  # one call: the tape reports between its chunks of C
            def tick(done, last):
                bar.set_postfix_str(f"loss {last:.4g}", refresh=False)
                bar.update(done - bar.n)
            try:
                losses += run.train(run.iters, progress=tick)
            except BaseException as e:  # what was done before it
                losses += list(getattr(e, "losses", []))
                raise
            return time.perf_counter() - start
        while len(losses) < run.iters:
            n = min(chunk, run.iters - len(losses))
            losses += run.train(n)
            bar.set_postfix_str(f"loss {losses[-1]:.4g}", refresh=False)
            bar.update(n)
        return time.perf_counter() - start
    finally:
        bar.close()


def check_w4(engine_name):
    """Print seed 003's worked numbers, computed, beside the lecture's; 0 if all agree."""
    engine = reference if engine_name == "reference" else None
    print(f"W4: the lecture's worked numbers (seed 003), computed on {engine_name}")
    ok = True
    for what, values, printed in w4_numbers(engine):
        good = all(agrees(v, p) for v, p in zip(values, printed))
        ok &= good
        shown = ", ".join(f"{v:.6g}" for v in values)
        print(f"  {what:<38} {shown:<32} lecture: {', '.join(printed):<20} "
              f"{'agrees' if good else 'DISAGREES'}")
    print("all agree with the lecture" if ok else "some disagree with the lecture")
    return 0 if ok else 1
