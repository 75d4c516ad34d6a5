"""pygrad's command line (`pygrad` or `python -m pygrad`).

    pygrad train [--workload W1] [--iters N] [--lr LR] [--seed S] [--out PATH]
    pygrad sweep -w W3 --seeds 0-99 [--lr LR] [--iters N] [--workers N | --dask ADDRESS]
    pygrad bench [--quick] ...
    pygrad --version

train runs one of the tutorials' workloads (docs/pages/workloads.md, as pygrad.runs
defines them) with a progress bar, prints the final loss, the time and the
speed, and writes the loss curve as a PNG (with matplotlib); a loss that is
not finite stops it, with exit status 1. sweep trains a workload for many
seeds in parallel (pygrad.sweep). bench runs the benchmark suite
(pygrad.bench). Bad arguments get a one-line error and exit status 2; the
argument types here are shared by all three.
"""
import argparse
import math
import os
import platform
import sys
import time

from . import __version__, reference
from .plot import HOW_TO_INSTALL, have_matplotlib, save_loss_plot
from .runs import W1, WORKLOADS
from .workloads import agrees, w4_numbers

NAMES = [*WORKLOADS, "W4"]  # W4 is the lecture's worked numbers: checked, not trained
BY_LOWER = {name.lower(): name for name in NAMES}
MAX_ITERS = 10**8  # the losses are kept (for the plot): 10**8 of them take ~3 GB
MAX_SEED = 2**32 - 1  # numpy's RandomState (W2's data) takes seeds below 2**32


class Parser(argparse.ArgumentParser):
    """argparse, with a one-line error (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class Version(argparse.Action):
    """--version: print one line and exit 0. Where pygrad was imported from
    too, as pip --version does: another project on PyPI is also called pygrad
    and installs a package of the same name. (argparse's own version action
    wraps the line at the terminal's width.)"""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"pygrad {__version__} (pygrad-engine) from {os.path.dirname(os.path.abspath(__file__))} "
              f"(Python {platform.python_version()})")
        parser.exit(0)


def workload_name(text, names=NAMES):
    try:
        name = BY_LOWER[text.lower()]
    except KeyError:
        name = None
    if name not in names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {text!r} (choose from {', '.join(names)})") from None
    return name


def int_in(low, high):
    """An argument type: an int in [low, high]."""
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {n}")
        if n > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, not {n}")
        return n
    return parse


positive_int = int_in(1, MAX_ITERS)
seed_int = int_in(0, MAX_SEED)


def positive_float(text):
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not (x > 0 and math.isfinite(x)):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return x


def file_path(suffix=""):
    """An argument type: a path to write a file at (ending in suffix), in a
    folder that exists and can be written to, not itself a folder: checked
    before anything runs."""
    def parse(text):
        if suffix and not text.lower().endswith(suffix):
            raise argparse.ArgumentTypeError(f"{text!r} does not end in {suffix}")
        folder = os.path.dirname(text) or os.curdir
        if not os.path.isdir(folder):
            raise argparse.ArgumentTypeError(f"no folder {folder!r} to write "
                                             f"{os.path.basename(text)!r} in")
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{text!r} is a folder")
        if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(text) and
                                                          not os.access(text, os.W_OK)):
            raise argparse.ArgumentTypeError(f"cannot write {text!r} (permission denied)")
        return text
    return parse


def build_parser(prog):
    ap = Parser(prog=prog, description="pygrad: micrograd's API with the graph and the kernels "
                "in C. Train the tutorials' networks, sweep them over seeds, or run the "
                "benchmark suite.")
    ap.add_argument("--version", action=Version, help="print the version and where pygrad is imported from")
    commands = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    defaults = "; ".join(f"{w.name} {w.iters} {w.unit}s" for w in WORKLOADS.values())
    train = commands.add_parser(
        "train", help="train one of the tutorials' networks (default W1, 100000 iterations)",
        description="Train one of the tutorials' networks (W1-W4, digits) with a progress "
        "bar; print the final loss, the time and the speed; write the loss curve as a PNG "
        f"(needs matplotlib: {HOW_TO_INSTALL}). A loss that is not finite stops training "
        "with exit status 1. W4 checks the lecture's worked numbers instead. Default lengths: "
        f"{defaults}.")
    train.add_argument("-w", "--workload", type=workload_name, default="W1", metavar="NAME",
                       help=f"{', '.join(NAMES)} (any case; default W1)")
    train.add_argument("--iters", type=positive_int, metavar="N",
                       help="iterations (epochs for digits, steps for W2), at most "
                       f"{MAX_ITERS:,}; default: the workload's")
    train.add_argument("--lr", type=positive_float, help="learning rate (default: the workload's: "
                       + ", ".join(f"{w.name} {w.lr}" for w in WORKLOADS.values()) + ")")
    train.add_argument("--seed", type=seed_int, help="random.seed for the weights (W2: and "
                       "numpy's for its data), 0 to 2**32-1 (default 0; W2 1337, as micrograd's demo)")
    train.add_argument("--out", type=file_path(".png"), metavar="PATH.png",
                       help="where to write the loss curve (default: <workload>_loss.png)")
    train.add_argument("--no-plot", action="store_true", help="write no plot")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--engine", choices=["pygrad", "reference"], default="pygrad",
                       help="pygrad (C) or the pure-Python reference engine (not for digits)")
    train.add_argument("--way", choices=W1.ways,
                       help="W1 only: pygrad.nn's MLP (default), the tutorial's own classes on "
                       "Value, or pygrad.Tape replaying the graph (the fastest)")
    commands.add_parser("sweep", add_help=False,
                        help="train a workload for many seeds in parallel (pygrad sweep --help)")
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
    if args.command == "sweep":
        from .sweep import main as sweep_main
        return sweep_main(rest, prog=f"{prog} sweep")
    prog = f"{prog} train"
    problem = f"unrecognized arguments: {' '.join(rest)}" if rest else conflict(args)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    return check_w4(args.engine) if args.workload == "W4" else train(args, prog)


def conflict(args):
    """What is wrong with a combination of train's arguments, or None."""
    if args.workload == "W4":  # it checks numbers: nothing to train or plot
        given = [name for name in ("iters", "lr", "seed", "out", "way")
                 if getattr(args, name) is not None]
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
          f"seed {run.seed}", flush=True)

    losses: "list[float]" = []
    try:
        seconds = train_with_progress(run, losses, not args.no_progress)
    except (ArithmeticError, ValueError) as e:  # a math error: diverging, at a too large --lr
        print(f"{prog}: error: {cls.unit} {len(losses) + 1}: {type(e).__name__}: {e} "
              f"(the run diverged: {advice(run)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted after {len(losses)} {cls.unit}s", file=sys.stderr)
        return 130
    bad = next((i for i, x in enumerate(losses) if not math.isfinite(x)), None)
    if bad is not None:
        print(f"{prog}: error: {cls.unit} {bad + 1}: the loss is {losses[bad]!r} "
              f"(the run diverged: {advice(run)})", file=sys.stderr)
        return 1
    n, unit = len(losses), cls.unit
    speed = (f"{n / seconds:,.0f} {unit}s/s, {1e6 * seconds / n:,.1f} us/{unit}" if n >= 100 * seconds
             else f"{n / seconds:.3g} {unit}s/s, {seconds / n:.3g} s/{unit}")
    print(f"final loss {losses[-1]!r}")
    print(f"time {seconds:.2f} s, {speed}")
    for line in run.summary():
        print(line)
    if args.no_plot:
        return 0
    out = args.out or f"{cls.name.lower()}_loss.png"
    if not have_matplotlib():
        print(f"no loss curve drawn: {HOW_TO_INSTALL} to have it written to {out}")
        return 0
    try:
        save_loss_plot(losses, out, xlabel=unit, title=f"{cls.name}: {cls.title.split(':')[0]}\n"
                       f"lr {run.lr:g}, seed {run.seed}, {n:,} {unit}s")
    except (OSError, ValueError) as e:
        print(f"{prog}: error: writing {out}: {e}", file=sys.stderr)
        return 1
    print(f"loss curve written to {out}")
    return 0


def advice(run):
    """What to try after run diverged."""
    default = type(run).lr
    if run.lr > default:
        return (f"--lr {run.lr:g} is {run.lr / default:,.3g} times the default for {run.name} "
                f"({default:g}): try a smaller --lr")
    return f"try a smaller --lr than {run.lr:g}"


def chunk_size(run):
    """Iterations per call of run.train: 1% of the run."""
    return max(1, run.iters // 100)


def train_with_progress(run, losses, progress=True):
    """train_in_chunks with a progress bar on stderr, updated between chunks."""
    from tqdm import tqdm

    bar = tqdm(total=run.iters, unit="it" if run.unit == "iteration" else f" {run.unit}",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)

    def after_chunk(n):
        bar.set_postfix_str(f"loss {losses[-1]:.4g}", refresh=False)
        bar.update(len(losses) - bar.n)

    def during(done, last):  # a replay's progress within a chunk: done since losses[-1]
        bar.set_postfix_str(f"loss {last:.4g}", refresh=False)
        bar.update(len(losses) + done - bar.n)
    try:
        return train_in_chunks(run, losses, after_chunk, during if run.replays else None)
    finally:
        bar.close()


def train_in_chunks(run, losses, after_chunk=None, during=None):
    """Train run.iters iterations, appending their losses to losses, in
    chunks of about 1%, calling after_chunk(n) after each chunk of n (and
    during(done, last_loss) within one, for a replay); stop after a chunk
    with a loss that is not finite. Returns the seconds taken."""
    chunk = chunk_size(run)
    start = time.perf_counter()
    while len(losses) < run.iters:
        n = min(chunk, run.iters - len(losses))
        first = len(losses)
        run.train(n, losses, during)
        if after_chunk is not None:
            after_chunk(n)
        if not all(map(math.isfinite, losses[first:])):
            break
    return time.perf_counter() - start


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
