"""What the cyclic garbage collector costs when a graph is built from Python,
op by op (issue 14, item 5): the W5 chain y = (y * a + b).tanh(), 3 nodes a
step, built with the collector on, off, frozen every 100,000 steps, with a
raised gen-0 threshold, and with every Value untracked as it is made.

    python benchmarks/graph_build_gc.py [--steps 1000000]

pygrad's Values never make a cycle through their operands (each refers only
to Values made before it), so reference counting frees every graph and the
collector's work is pure overhead: it walks the live graph again and again.
The untracked run is a prototype of the remedy: CPython's
PyObject_GC_UnTrack on each Value an op returns (here through ctypes, whose
call costs more than the rest of an op; the "ctypes calls alone" line
measures that, to subtract). In pygrad it would be one C helper in the cffi
preamble (pygrad/_ffi_build.py), called from engine.py's ops.

Each configuration runs in a fresh interpreter (the collector's state is
global), in rounds, the order rotating; medians of ns per node.
"""
import argparse
import statistics
import subprocess
import sys

CHILD = r"""
import ctypes, gc, sys, time
from pygrad import Value
how, n = sys.argv[1], int(sys.argv[2])
untrack = ctypes.pythonapi.PyObject_GC_UnTrack
untrack.argtypes, untrack.restype = [ctypes.py_object], None
if how == "off":
    gc.disable()
elif how == "threshold":
    gc.set_threshold(100_000, 50, 100)
a, b, y = Value(0.5), Value(0.25), Value(0.1)
start = time.perf_counter()
for i in range(n):
    if how == "untracked":
        m = y * a; untrack(m)
        s = m + b; untrack(s)
        y = s.tanh(); untrack(y)
    elif how == "calls":  # ctypes' cost alone (a is untracked already: a no-op)
        untrack(a); untrack(a); untrack(a)
        y = (y * a + b).tanh()
    else:
        y = (y * a + b).tanh()
        if how == "freeze" and i % 100_000 == 99_999:
            gc.freeze()
print(1e9 * (time.perf_counter() - start) / (3 * n))
"""

HOWS = {"on": "collector on (the default)", "off": "collector off (gc.disable())",
        "freeze": "gc.freeze() every 100,000 steps", "threshold": "gc.set_threshold(100_000, 50, 100)",
        "untracked": "each Value untracked (ctypes)", "calls": "ctypes calls alone (collector on)"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    times = {h: [] for h in HOWS}
    names = list(HOWS)
    for r in range(args.rounds):
        for how in names[r % len(names):] + names[:r % len(names)]:
            out = subprocess.run([sys.executable, "-c", CHILD, how, str(args.steps)], capture_output=True,
                                 text=True, check=True)
            times[how].append(float(out.stdout))
    print(f"Python {sys.version.split()[0]}: a chain of {3 * args.steps:,} nodes built op by op, "
          f"medians of {args.rounds} rounds")
    for how, label in HOWS.items():
        print(f"  {label:<40} {statistics.median(times[how]):7.0f} ns/node")
    over = statistics.median(times["calls"]) - statistics.median(times["on"])
    print(f"  untracked, less the ctypes calls' {over:.0f} ns: "
          f"{statistics.median(times['untracked']) - over:.0f} ns/node")


if __name__ == "__main__":
    main()
