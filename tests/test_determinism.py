"""Determinism (issue 4, part 6): the same program with the same seed gives
the same bits, run after run, in threads or not.

A micrograd-style engine does not promise this: its backward sorts the
graph through each node's `_prev` set, whose order comes from object ids,
that is from memory addresses, which change from run to run (and with the
allocations before). Where a node feeds several others, that order is the
order in which its gradient adds up, and float addition is not associative.
pygrad sorts in operand order (as pygrad.reference does), so its gradients
cannot depend on addresses, hash seeds, or when the garbage collector runs.
"""
import os
import subprocess
import sys

import pygrad
from pygrad import reference

# The program run in fresh interpreters: every number printed as float.hex().
PROGRAM = r'''
import gc, os, random, sys, threading
import pygrad
from pygrad import Tape, Value
from pygrad.optim import SGD, Adam
from pygrad.workloads import W1_XS, train_w1, train_w2, w1_model

if os.environ.get("GC_OFTEN"):
    gc.set_threshold(1, 1, 1)  # a collection at nearly every allocation

def show(name, numbers):
    print(name, " ".join(float(x).hex() for x in numbers))

# W1, two ways, some thousand iterations; and (c), replayed.
for way, iters in (("tutorial", 1000), ("nn", 3000)):
    mlp = w1_model(pygrad, way, seed=0)
    show("w1-" + way, train_w1(mlp, iters) + [p.data for p in mlp.parameters()])
mlp = w1_model(pygrad, "nn", seed=0)
x = [Value(0.0) for _ in range(3)]
losses = Tape((mlp(x) - 0.5) ** 2).train(3000, Adam(mlp.parameters(), lr=0.01), x, W1_XS)
show("w1-tape", list(losses) + [p.data for p in mlp.parameters()])

# W2, micrograd's demo, a few steps.
losses, _ = train_w2(pygrad, steps=3)
show("w2", losses)

# A random DAG where many nodes feed many others: every leaf's gradient is a
# sum of many terms, added in the order the sort gives.
rng = random.Random(7)
leaves = [Value(rng.uniform(-1.5, 1.5)) for _ in range(40)]
nodes = list(leaves)
for _ in range(4000):
    a, b = rng.choice(nodes), rng.choice(nodes[-50:])
    z = (a + b, a * b, a - b, a * 0.5 + b)[rng.randrange(4)]
    nodes.append(getattr(z, rng.choice(("tanh", "sin", "sigmoid")))())
root = sum(nodes[-100:])
root.backward()
show("dag", [root.data] + [v.grad for v in leaves] + [v.grad for v in nodes[40:400]])

# The same training in threads and one after the other.
def train(mlp):
    return train_w1(mlp, 300) + [p.data for p in mlp.parameters()]
models = [w1_model(pygrad, "nn", seed=s) for s in range(4)]
threaded = [None] * 4
def work(i):
    threaded[i] = train(models[i])
sys.setswitchinterval(1e-6)
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
for i in range(4):
    show(f"threaded-{i}", threaded[i])
for s in range(4):
    show(f"sequential-{s}", train(w1_model(pygrad, "nn", seed=s)))
'''


def run_program(**env):
    run = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, **env))
    assert run.returncode == 0 and run.stderr == "", run.stderr
    return dict(line.split(" ", 1) for line in run.stdout.splitlines())


def test_the_same_program_gives_the_same_bits_run_after_run():
    """Three interpreters with different hash seeds (so different set and
    dict orders for strings) and different addresses; one of them runs the
    garbage collector at nearly every allocation."""
    first = run_program(PYTHONHASHSEED="0")
    assert len(first) == 13 and all(len(v.split()) > 1 for v in first.values())
    assert run_program(PYTHONHASHSEED="1") == first
    assert run_program(PYTHONHASHSEED="4242", GC_OFTEN="1") == first
    for i in range(4):  # in threads or not
        assert first[f"threaded-{i}"] == first[f"sequential-{i}"]
    assert first["threaded-0"] != first["threaded-1"]


# ---- why: a sort through Python sets ------------------------------------------

def micrograd_backward(root):
    """micrograd's Value.backward (engine.py): the topological sort follows
    the `_prev` set of each node, as micrograd's does."""
    topo, visited = [], set()

    def build_topo(v):
        if v not in visited:
            visited.add(v)
            for child in v._prev:
                build_topo(child)
            topo.append(v)
    build_topo(root)
    root.grad = 1.0
    for v in reversed(topo):
        v._backward()


def three_paths(V):
    """x reaches the root three ways, with local gradients 1, 1e16 and
    -1e16: x.grad is their sum, and its value depends on the order of the
    additions (1 when the two big ones cancel first)."""
    x = V(1.0)
    return x, (x * 1.0 + x * 1e16) + x * -1e16


def test_a_sort_through_sets_gives_different_gradients_for_the_same_program():
    seen = {}
    keep = []  # graphs kept alive, so each new one lives at new addresses
    for _ in range(2000):
        x, root = three_paths(reference.Value)
        micrograd_backward(root)
        seen.setdefault(x.grad, root)
        keep.append(root)
        if len(seen) > 1:
            break
    assert len(seen) > 1, "every graph was sorted alike: could not show the set order's effect"
    # The one program, the same numbers: one grad for the sort through sets,
    # another for the next graph. pygrad and the reference (operand order)
    # always give the same one.
    for V in (pygrad.Value, reference.Value):
        for _ in range(50):
            x, root = three_paths(V)
            root.backward()
            assert x.grad == 1.0
