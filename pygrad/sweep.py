"""pygrad sweep: one workload trained for many seeds, in parallel.

    pygrad sweep -w W3 --seeds 0-99 [--lr LR] [--iters N] [--workers N] [--json PATH]
    pygrad sweep -w W3 --seeds 0-99 --dask tcp://scheduler:8786

Each run is `pygrad train`'s run of the workload (pygrad.runs) for one seed,
trained from scratch and stopped, like train, at a loss that is not finite.
The runs go to worker processes on this machine (multiprocessing, started
by spawn on every platform; --workers, default one per core; --workers 1
runs them here, one after another), or to an existing Dask cluster
(--dask ADDRESS; Dask's `distributed` is the optional extra `dask`, and
pygrad must be installed where its workers run). Runs share nothing, so each
run's numbers are a serial run's, bit for bit, wherever it runs.

The summary says how many runs converged (by the workload's criterion), how
their final losses are spread, and which runs were the fastest and the
slowest; --json PATH writes {"runs": [...]}, a dict per run in seed order:
seed, workload, lr, iters, final_loss (null where it is not finite),
diverged_at (the first iteration whose loss is not finite, or null), error
(the math error that stopped it, or null), converged and seconds. Ctrl-C
stops the workers (they ignore SIGINT; the pool is terminated) and exits 130.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
from typing import Any, Callable, Iterable

from .cli import Parser, file_path, int_in, positive_float, positive_int, train_in_chunks, workload_name
from ._files import atomic_write
from .runs import WORKLOADS

MAX_RUNS = 100_000
SEED_MAX = 2**32 - 1
_BUILD = threading.Lock()  # runs in threads (a Dask worker's) seed the global random module


def run_one(task: tuple[str, int, float | None, int | None]) -> dict[str, Any]:
    """One run of a sweep: (workload name, seed, lr or None, iters or None)
    -> the run's record (the module's docstring)."""
    name, seed, lr, iters = task
    with _BUILD:  # random.seed(seed), then the weights: nothing in between
        run = WORKLOADS[name](seed=seed, lr=lr, iters=iters)
    losses: list[float] = []
    error = None
    start = time.perf_counter()
    try:
        train_in_chunks(run, losses)  # (no tqdm here: a worker may be terminated)
    except (ArithmeticError, ValueError) as e:  # diverging: as train reports it
        error = f"{run.unit} {len(losses) + 1}: {type(e).__name__}: {e}"
    seconds = time.perf_counter() - start
    bad = next((i for i, x in enumerate(losses) if not math.isfinite(x)), None)
    final = losses[-1] if losses and bad is None and error is None else None
    return {"seed": seed, "workload": name, "lr": run.lr, "iters": run.iters, "final_loss": final,
            "diverged_at": None if bad is None else bad + 1, "error": error,
            "converged": final is not None and bool(run.converged()), "seconds": seconds}


def _ignore_sigint() -> None:
    """A worker's start: Ctrl-C is the parent's to handle (it terminates the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(tasks: list[Any], workers: int, done: Callable[[dict[str, Any]], None]) -> None:
    """Run tasks in `workers` spawned processes (here, if 1), calling done
    with each record as it comes."""
    if workers == 1:
        for task in tasks:
            done(run_one(task))
        return
    import multiprocessing
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_sigint)
    try:
        for record in pool.imap_unordered(run_one, tasks):
            done(record)
        pool.close()
    except BaseException:  # Ctrl-C, or anything else: no worker outlives the sweep
        pool.terminate()
        raise
    finally:
        pool.join()


def run_dask(tasks: list[Any], client: Any, done: Callable[[dict[str, Any]], None]) -> None:
    """Run tasks on a Dask cluster through client, calling done with each
    record as it comes; on any failure (Ctrl-C too) the rest are cancelled."""
    from distributed import as_completed
    futures = client.map(run_one, tasks, pure=False)
    try:
        for future in as_completed(futures, loop=client.loop):
            done(future.result())
    except BaseException:
        client.cancel(futures)
        raise


def seed_list(text: str) -> list[int]:
    """--seeds: "0-99", "3", "0-9,20,30-39": distinct seeds, in the order given."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a seed or a range "
                                             "like 0-99") from None
        if not 0 <= first <= last <= SEED_MAX:
            raise argparse.ArgumentTypeError(f"{part.strip()!r}: seeds run from 0 to {SEED_MAX}, "
                                             "ranges upwards")
        if len(seeds) + last - first + 1 > MAX_RUNS:
            raise argparse.ArgumentTypeError(f"at most {MAX_RUNS:,} runs")
        seeds += range(first, last + 1)
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} names a seed twice")
    return seeds


def default_workers() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def build_parser(prog: str) -> Parser:
    trainable = list(WORKLOADS)
    ap = Parser(prog=prog, description="Train one workload for many seeds in parallel (worker "
                "processes, or a Dask cluster) and summarize: how many converged, the final "
                "losses, the fastest and slowest runs. Each run's numbers equal a serial run's.")
    ap.add_argument("-w", "--workload", required=True, metavar="NAME",
                    type=lambda t: workload_name(t, trainable), help=", ".join(trainable))
    ap.add_argument("--seeds", required=True, type=seed_list, metavar="SEEDS",
                    help='seeds, as "0-99", "7" or "0-9,20,30-39" (0 to 2**32-1)')
    ap.add_argument("--lr", type=positive_float, help="learning rate (default: the workload's)")
    ap.add_argument("--iters", type=positive_int, metavar="N",
                    help="iterations per run (default: the workload's)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int_in(1, 1024), metavar="N",
                       help=f"worker processes (default {default_workers()}: the cores here; "
                       "1 runs the runs here, one after another)")
    where.add_argument("--dask", metavar="ADDRESS",
                       help="the scheduler of a running Dask cluster, e.g. tcp://10.0.0.5:8786 "
                       "(needs `distributed`: pip install 'pygrad-engine[dask]')")
    ap.add_argument("--json", metavar="PATH", type=file_path(),
                    help='also write {"runs": [...]}, one record per run, to PATH')
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def main(argv: Iterable[str] | None = None, prog: str = "pygrad sweep") -> int:
    """Run a sweep on argv (default sys.argv[1:]); return the exit status:
    0, 1 if the cluster or the JSON file fails, 2 for bad arguments, 130
    when interrupted."""
    ap = build_parser(prog)
    try:
        a = ap.parse_args(None if argv is None else list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    cls = WORKLOADS[a.workload]
    client = None
    if a.dask is not None:
        try:
            import distributed
        except ImportError:
            print(f"{prog}: error: argument --dask: needs Dask's distributed (pip install "
                  "'pygrad-engine[dask]')", file=sys.stderr)
            return 2
        try:
            client = distributed.Client(a.dask, timeout=10, set_as_default=False)
        except (OSError, ValueError, TypeError) as e:  # unreachable, or not an address
            print(f"{prog}: error: cannot reach the Dask scheduler at {a.dask!r}: {e}", file=sys.stderr)
            return 1
    workers = min(a.workers or default_workers(), len(a.seeds))
    where = f"on the Dask cluster at {a.dask}" if client else \
        "here, one after another" if workers == 1 else f"in {workers} worker processes"
    print(f"{cls.name}: {cls.title}; {len(a.seeds)} seeds, {a.iters or cls.iters} {cls.unit}s "
          f"each, lr {a.lr or cls.lr}, {where}", flush=True)

    from tqdm import tqdm
    tasks = [(cls.name, seed, a.lr, a.iters) for seed in a.seeds]
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(tasks), unit="run", file=sys.stderr, disable=a.no_progress,
               dynamic_ncols=True)

    def done(record):
        records.append(record)
        bar.update(1)

    start = time.perf_counter()
    try:
        if client is not None:
            run_dask(tasks, client, done)
        else:
            run_local(tasks, workers, done)
    except KeyboardInterrupt:
        bar.close()
        print(f"{prog}: interrupted after {len(records)} of {len(tasks)} runs", file=sys.stderr)
        return 130
    except Exception as e:  # a worker that could not run (on a cluster: pygrad missing there)
        bar.close()
        print(f"{prog}: error: a run failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
    bar.close()
    wall = time.perf_counter() - start
    order = {seed: i for i, seed in enumerate(a.seeds)}
    records.sort(key=lambda r: order[r["seed"]])
    for line in summary(records, cls, wall):
        print(line)
    if a.json:
        try:
            with atomic_write(a.json) as f:
                f.write(json.dumps({"runs": records}, indent=1, allow_nan=False).encode())
        except OSError as e:
            print(f"{prog}: error: writing {a.json}: {e}", file=sys.stderr)
            return 1
        print(f"runs written to {a.json}")
    return 0


def summary(records: list[dict[str, Any]], cls: Any, wall: float) -> list[str]:
    """Lines: how many converged, the final losses' spread, the fastest and slowest runs."""
    n = len(records)
    ok = [r for r in records if r["converged"]]
    lines = [f"converged: {len(ok)} of {n} ({cls.criterion})"]
    missed = [r["seed"] for r in records if not r["converged"]]
    if missed:
        shown = ", ".join(map(str, missed[:20])) + (", ..." if len(missed) > 20 else "")
        lines.append(f"  not converged: seed{'s' if len(missed) > 1 else ''} {shown}")
    finals = sorted(r["final_loss"] for r in records if r["final_loss"] is not None)
    if finals:
        q = statistics.quantiles(finals, n=4, method="inclusive") if len(finals) > 1 else finals * 3
        lines.append(f"final loss: min {finals[0]:.4g}, quartiles {q[0]:.4g} / {q[1]:.4g} / "
                     f"{q[2]:.4g}, max {finals[-1]:.4g}")
    diverged = [r for r in records if r["final_loss"] is None]
    if diverged:
        lines.append(f"diverged: {len(diverged)} (seeds {', '.join(str(r['seed']) for r in diverged[:20])}"
                     f"{', ...' if len(diverged) > 20 else ''}): a loss that is not finite, or a math error")
    by_time = sorted(records, key=lambda r: r["seconds"])
    total = sum(r["seconds"] for r in records)
    lines.append(f"fastest: seed {by_time[0]['seed']} in {by_time[0]['seconds']:.2f} s; slowest: "
                 f"seed {by_time[-1]['seed']} in {by_time[-1]['seconds']:.2f} s; "
                 f"{total:.1f} s of runs in {wall:.1f} s")
    return lines
