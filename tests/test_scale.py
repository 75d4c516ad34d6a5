"""Deep and wide graphs (issue 4, part 9): a 10,000,000-node chain and a
1,000,000-term sum, backward without recursion, in memory linear in their
size, every node back in the arena and the memory given back afterwards.

Each graph is built in a fresh interpreter (tests/test_lifetimes.py's
run_python), so that its memory is measured alone and given back at exit.
Values are checked against the same recurrence computed with Python floats
(bit for bit) and against closed forms. Linearity is checked without
clocks: the arena's size against the node count, and peak resident memory
per node at two sizes ten times apart.

Memory given back is measured in two parts, because what the interpreter
keeps of its own freed objects differs between versions (3.14 keeps several
MB more of the sum's Values resident than 3.11):
- the arena's: its slots (pg_capacity) and the C heap's bytes in use (glibc's
  mallinfo2: the arena's node array, the sort's scratch and Python's big
  buffers all come from malloc) go back to what they were before the graph;
- the process's: the graph is built and freed three times over; resident
  memory after the third free is within a tenth of the graph's peak of what
  it was after the second (memory is reused, not kept: a graph's worth kept
  each time would fail; the first time settles the allocators, which keep
  more on the second), and under half of that peak.

Under CI's sanitizer pass (PYGRAD_SANITIZED=1, .ci/run) every size is ten
times smaller (memory there is instrumented and quarantined, so only slots
are compared). Resident memory is read from /proc (Linux); elsewhere only
the values, the node counts and the arena's slots are checked.
"""
import json

import pytest

from test_lifetimes import SANITIZED, run_python

SCALE_PROGRAM = r'''
import ctypes, gc, json, math, os, random, sys, threading, time
import pygrad
from pygrad import Value
from pygrad._c import lib

kind, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def memory():  # resident and peak resident set, in bytes (None where there is no /proc)
    if not os.path.exists("/proc/self/status"):
        return None
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2, all size_t
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

def heap_in_use():  # bytes malloc has handed out and not had back (glibc 2.33+), or None
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError, TypeError):  # not glibc; Windows has no CDLL(None)
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd  # in the heap, and in blocks of their own (mmap)

def backward_without_recursion(root):
    """root.backward() on a thread with a 256 KiB C stack and a Python
    recursion limit of 50: any recursion over the graph would crash or raise."""
    errors = []
    def run():
        try:
            root.backward()
        except BaseException as e:
            errors.append(repr(e))
    threading.stack_size(256 * 1024)
    sys.setrecursionlimit(50)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    sys.setrecursionlimit(1000)
    assert not errors, errors

def build_and_free():
    """Build the graph, backpropagate, check its numbers, free it: what was measured."""
    t0 = time.perf_counter()
    out = {}
    if kind == "chain":  # y <- y * a + b, n // 2 times: n nodes deep, on three leaves
        steps = n // 2
        x, a, b = Value(0.25), Value(0.999999), Value(0.5)
        y = x
        for _ in range(steps):
            y = y * a + b
        out["nodes"] = pygrad.live_nodes()
        out["build_s"] = time.perf_counter() - t0
        backward_without_recursion(y)
        out["backward_s"] = time.perf_counter() - t0 - out["build_s"]
        # The same recurrences with Python floats, in backward's order where
        # it adds up: y's data, and x's grad (a product of steps a's).
        A, B, Y, G = a.data, b.data, x.data, 1.0
        for _ in range(steps):
            Y = Y * A + B
            G = A * G
        out["exact"] = [y.data == Y, x.grad == G]
        # Closed forms: y = a^n x + b (1 - a^n) / (1 - a); dy/dx = a^n;
        # dy/db = (1 - a^n) / (1 - a); dy/da = sum_k y_(k-1) a^(n-k).
        An = A ** steps
        D, Y = 0.0, x.data
        for _ in range(steps):
            D, Y = D * A + Y, Y * A + B
        out["close"] = [math.isclose(got, want, rel_tol=1e-9) for got, want in (
            (y.data, An * x.data + B * (1 - An) / (1 - A)), (x.grad, An),
            (b.grad, (1 - An) / (1 - A)), (a.grad, D))]
        graph = [y, x, a, b]
        del y, x, a, b
    elif kind == "sum":  # s = sum(x_i * w): n terms over n leaves and one shared w
        rng = random.Random(n)
        data = [rng.uniform(-1, 1) for _ in range(n)]
        w = Value(1.25)
        xs = [Value(v) for v in data]
        s = sum(xi * w for xi in xs)
        out["nodes"] = pygrad.live_nodes()
        out["build_s"] = time.perf_counter() - t0
        backward_without_recursion(s)
        out["backward_s"] = time.perf_counter() - t0 - out["build_s"]
        S = 0  # Python's sum: 0 + t_0, then left to right
        for v in data:
            S = S + v * 1.25
        G = 0.0  # w's grad: the terms' contributions, last term first
        for v in reversed(data):
            G += v * 1.0
        out["exact"] = [s.data == S, w.grad == G, all(xi.grad == 1.25 for xi in xs)]
        out["close"] = [math.isclose(w.grad, math.fsum(data), rel_tol=1e-9, abs_tol=1e-9)]
        graph = [s, w, xs, data]
        del s, w, xs, data
    out["peak"] = memory()
    out["heap_peak"] = heap_in_use()
    out["capacity"] = lib.pg_capacity()
    del graph
    gc.collect()
    out["live_after"] = pygrad.live_nodes()
    out["after"] = memory()
    out["heap_after"] = heap_in_use()
    out["capacity_after"] = lib.pg_capacity()
    return out

gc.collect()
base = {"memory": memory(), "heap": heap_in_use(), "capacity": lib.pg_capacity()}
print(json.dumps({"base": base, "runs": [build_and_free() for _ in range(repeats)]}))
'''


def scale_run(kind, n, repeats):
    """Build and free the graph `repeats` times in one fresh interpreter:
    the first time's measures, with "repeats" (every time's) and "base"."""
    result = json.loads(run_python(SCALE_PROGRAM, kind, n, repeats))
    base, runs = result["base"], result["runs"]
    out = dict(runs[0], base=base, repeats=runs)
    if base["memory"] is not None:
        grown = out["peak"]["VmHWM"] - base["memory"]["VmRSS"]
        out["grown"] = grown
        out["bytes_per_node"] = grown / out["nodes"]
        out["kept"] = [r["after"]["VmRSS"] - base["memory"]["VmRSS"] for r in runs]
        print(f"\n{kind} of {out['nodes']} nodes: build {out['build_s']:.1f} s, backward "
              f"{out['backward_s']:.2f} s, peak RSS +{grown / 2**20:.0f} MiB "
              f"({out['bytes_per_node']:.0f} bytes/node), arena capacity {out['capacity']}; "
              f"freed: RSS +{', +'.join(f'{k / 2**20:.1f}' for k in out['kept'])} MiB "
              f"(each of {repeats} times), capacity {out['capacity_after']}", end="")
    if base["heap"] is not None:
        print(f"; C heap in use +{(out['heap_peak'] - base['heap']) / 2**20:.1f} -> "
              f"+{(out['heap_after'] - base['heap']) / 2**20:.1f} MiB", end="")
    print()
    return out


def check(out, nodes):
    base = out["base"]
    for run in out["repeats"]:  # the same graph, the same numbers, each time
        assert run["nodes"] == nodes
        assert all(run["exact"]) and all(run["close"]), (run["exact"], run["close"])
        assert nodes <= run["capacity"] < 2 * nodes + 1024  # doubling, nothing more
        assert run["live_after"] == 0
        assert run["capacity_after"] < 1 << 16  # the arena gave its slots back
    if SANITIZED:
        return
    if base["heap"] is not None:  # ... and their memory: the C heap is back where it was
        grown = out["heap_peak"] - base["heap"]
        assert out["heap_after"] - base["heap"] < grown / 5, (out["heap_after"], base["heap"], grown)
    if base["memory"] is not None:  # ... and the process gives memory back
        kept = out["kept"]  # after each free; the first time settles the allocators
        for before, after in zip(kept[1:], kept[2:]):  # then memory is reused, not kept again
            assert after - before < out["grown"] / 10, kept
        assert out["kept"][-1] < out["grown"] / 2, (out["kept"], out["grown"])


SIZES = {  # the size, and one ten times smaller
    "chain": (1_000_000, 10_000_000),
    "sum": (100_000, 1_000_000),
}


@pytest.mark.big
@pytest.mark.parametrize("kind", ["chain", "sum"])
def test_deep_and_wide_graphs_in_linear_memory(kind):
    small, big = (n // 10 for n in SIZES[kind]) if SANITIZED else SIZES[kind]
    # chain: n nodes and 3 leaves; sum: per term a leaf, a product and a sum,
    # plus w and the 0 that sum() starts from.
    nodes = {"chain": lambda n: n + 3, "sum": lambda n: 3 * n + 2}[kind]
    runs = {}
    for n in (small, big):
        runs[n] = scale_run(kind, n, repeats=1 if SANITIZED else 3)
        check(runs[n], nodes(n))
    if not SANITIZED and "bytes_per_node" in runs[big]:
        ratio = runs[big]["bytes_per_node"] / runs[small]["bytes_per_node"]
        assert 0.67 < ratio < 1.5, ratio
