"""How `pygrad bench` times implementations: warm-up, interleaved repeats, medians.

The machine is shared and noisy, so one timing says little and two timings
taken minutes apart compare little. Each implementation is first run once
to warm up (imports, caches, the C compiler, JAX's compiles). Then the
implementations run in rounds, each once per round, in an order rotated by
one every round, so a slow spell of the machine falls on all of them alike;
the slow ones (the pure-Python engines) sit out the later rounds. A row
reports the median time per iteration of its repeats and their spread (the
fastest and the slowest), and ratios are taken between medians. Every repeat
must give the first repeat's losses, to the bit: the implementations are
deterministic, so a difference is a failure, reported. The one exception is
micrograd (`bitwise=False`): it adds each node's gradients in the order of a
Python set of Values, which follows their addresses, so its repeats may
differ in the last bits; they must agree to 1e-12 relative.

An implementation is an Impl: a name and run(iters), which trains iters
iterations from the same start every time and returns a dict with
"seconds" (the training alone, as baselines.py measures it), "losses" (one
per iteration) and, for JAX, "compile_seconds".
"""
from __future__ import annotations

import gc
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Impl:
    name: str
    run: Callable[[int], dict[str, Any]]
    iters: int
    repeats: int
    warmup: int = 0           # iterations of the warm-up run; 0: a tenth of iters (at least 1)
    exact: bool = True        # same arithmetic as pygrad: its losses must match to pygrad's tolerance
    bitwise: bool = True      # its repeats give the same bits (micrograd's do not: see above)


@dataclass
class Row:
    """An implementation's measurements."""

    impl: Impl
    seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    repeatable: bool = True   # every repeat gave the first one's losses
    compile_seconds: float | None = None

    @property
    def name(self) -> str:
        return self.impl.name

    def per_iter(self, seconds: float) -> float:
        return seconds / self.impl.iters

    @property
    def median(self) -> float:
        """Median seconds per iteration."""
        return self.per_iter(statistics.median(self.seconds))

    @property
    def fastest(self) -> float:
        return self.per_iter(min(self.seconds))

    @property
    def slowest(self) -> float:
        return self.per_iter(max(self.seconds))

    def as_dict(self) -> dict[str, Any]:
        """The row for --json (and the speed plot): times in seconds per iteration."""
        return {"impl": self.name, "iters": self.impl.iters, "repeats": len(self.seconds),
                "median": self.median, "min": self.fastest, "max": self.slowest,
                "seconds": self.seconds, "compile_seconds": self.compile_seconds,
                "repeatable": self.repeatable, "final_loss": self.losses[-1], "losses": self.losses}


def timed(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """{"seconds", "out"}: fn(*args) timed whole, after a collection (so a
    run is not billed for the previous run's garbage)."""
    gc.collect()
    start = time.perf_counter()
    out = fn(*args)
    return {"seconds": time.perf_counter() - start, "out": out}


def _same(a: list[float], b: list[float], bitwise: bool) -> bool:
    if bitwise or len(a) != len(b):
        return a == b
    return all(x == y or abs(x - y) <= 1e-12 * max(abs(x), abs(y)) for x, y in zip(a, b))


def measure(impls: list[Impl], label: str = "") -> list[Row]:
    """Warm each implementation up, then time it impl.repeats times,
    interleaved as the module's docstring says. Returns a Row per Impl, in
    the order given. Progress goes to stderr."""
    rows = [Row(impl) for impl in impls]
    say = lambda text: print(text, end="", file=sys.stderr, flush=True)  # noqa: E731
    say(f"  {label} warm-up")
    for impl in impls:
        impl.run(min(impl.iters, impl.warmup or max(1, impl.iters // 10)))
    rounds = max(impl.repeats for impl in impls)
    for r in range(rounds):
        say(f", round {r + 1}/{rounds}")
        k = r % len(rows)
        for row in rows[k:] + rows[:k]:
            if r >= row.impl.repeats:
                continue
            gc.collect()
            out = row.impl.run(row.impl.iters)
            row.seconds.append(out["seconds"])
            if r == 0:
                row.losses = list(out["losses"])
                row.compile_seconds = out.get("compile_seconds")
            elif not _same(list(out["losses"]), row.losses, row.impl.bitwise):
                row.repeatable = False
    say("\n")
    return rows
