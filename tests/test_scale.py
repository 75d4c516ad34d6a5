"""Deep and wide graphs (issue 4, part 9): a 10,000,000-node chain and a
1,000,000-term sum, backward without recursion, in memory linear in their
size, every node back in the arena and the memory given back afterwards.

Each graph is built in a fresh interpreter (tests/test_lifetimes.py's
run_python), so that its memory is measured alone and given back at exit.
Values are checked against the same recurrence computed with Python floats
(bit for bit) and against closed forms. Linearity is checked without
clocks: the arena's size against the node count, and peak resident memory
per node at two sizes ten times apart.

Under CI's sanitizer pass (PYGRAD_SANITIZED=1, .ci/run) every size is ten
times smaller (memory there is instrumented and quarantined, so bytes per
node are not compared either).
"""
import json

import pytest

from test_lifetimes import SANITIZED, run_python

SCALE_PROGRAM = r'''
import gc, json, math, random, sys, threading, time
import pygrad
from pygrad import Value
from pygrad._c import lib

kind, n = sys.argv[1], int(sys.argv[2])

def memory():  # resident and peak resident set, in bytes
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}

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

gc.collect()
base = memory()
t0 = time.perf_counter()
out = {"base": base}
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
out["peak"] = memory()
out["capacity"] = lib.pg_capacity()
if kind == "chain":
    del y, x, a, b
else:
    del s, w, xs, data
gc.collect()
out["live_after"] = pygrad.live_nodes()
out["after"] = memory()
out["capacity_after"] = lib.pg_capacity()
print(json.dumps(out))
'''


def scale_run(kind, n):
    out = json.loads(run_python(SCALE_PROGRAM, kind, n))
    grown = out["peak"]["VmHWM"] - out["base"]["VmRSS"]
    out["bytes_per_node"] = grown / out["nodes"]
    out["kept"] = out["after"]["VmRSS"] - out["base"]["VmRSS"]
    print(f"\n{kind} of {out['nodes']} nodes: build {out['build_s']:.1f} s, backward "
          f"{out['backward_s']:.2f} s, peak RSS +{grown / 2**20:.0f} MiB "
          f"({out['bytes_per_node']:.0f} bytes/node), arena capacity {out['capacity']}; "
          f"freed: RSS +{out['kept'] / 2**20:.1f} MiB, capacity {out['capacity_after']}")
    return out


def check(out, nodes):
    assert out["nodes"] == nodes
    assert all(out["exact"]) and all(out["close"]), (out["exact"], out["close"])
    assert nodes <= out["capacity"] < 2 * nodes + 1024  # doubling, nothing more
    assert out["live_after"] == 0
    assert out["capacity_after"] < 1 << 16  # the arena gave its slots back
    if not SANITIZED:  # ... and the memory: under a fifth of the peak is kept
        assert out["kept"] < (out["peak"]["VmHWM"] - out["base"]["VmRSS"]) / 5


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
        runs[n] = scale_run(kind, n)
        check(runs[n], nodes(n))
    if not SANITIZED:
        ratio = runs[big]["bytes_per_node"] / runs[small]["bytes_per_node"]
        assert 0.67 < ratio < 1.5, ratio
