"""The graph as a walk over `_prev` sees it (issue 15): one Python object per
node, micrograd's nodes and edges on every build path, and the lecture's
node-by-node backward equal to backward(), on pygrad and on the pure-Python
reference engine (and the real micrograd where it is installed)."""
import gc
import math
import random

import numpy as np
import pytest

import pygrad
from pygrad import Tape, Value, losses, reference
from pygrad.optim import SGD


def walk(root):
    """micrograd's build_topo by identity (iterative): the nodes, children first."""
    topo, seen, stack = [], set(), [(root, False)]
    while stack:
        v, done = stack.pop()
        if done:
            topo.append(v)
        elif v not in seen:
            seen.add(v)
            stack.append((v, True))
            stack.extend((c, False) for c in reversed(list(v._prev)))
    return topo


def shape(root):
    """(nodes, edges, op strings) of the graph a walk by identity meets."""
    topo = walk(root)
    return len(topo), sum(len(v._prev) for v in topo), sorted(v._op for v in topo)


def by_hand(root):
    """The lecture's backward: zero every grad, root.grad = 1, then every
    node's _backward() in reverse topological order."""
    topo = walk(root)
    for v in topo:
        v.grad = 0.0
    root.grad = 1.0
    for v in reversed(topo):
        v._backward()
    return topo


def twins(build):
    """build(engine) on pygrad and on the reference engine, same weights."""
    out = []
    for engine in (pygrad, reference):
        random.seed(3)
        out.append(build(engine))
    return out


def mlp_inputs(engine, kind):
    if kind == "numbers":
        return [0.5, -1.25, 2.0]
    if kind == "values":
        return [engine.Value(v) for v in (0.5, -1.25, 2.0)]
    return [engine.Value(0.5), -1.25, engine.Value(2.0)]


BUILDS = {
    "ops": lambda e: (lambda a, b: ((a * b + a).tanh() * b ** 2 + (-a).relu()).exp())(
        e.Value(0.5), e.Value(-0.75)),
    "sub and div": lambda e: (lambda a, b: (a - b) / (a + b) - (1 - a) / (2 / b))(
        e.Value(2.0), e.Value(-3.0)),
    "numbers": lambda e: (lambda a: 2 * a + a * 3.0 - 1.5 + a ** 0.5 + 2 ** a)(e.Value(1.5)),
    "the lecture": lambda e: (lambda x1, w1, b: (lambda n: (n - 1) / (n + 1))(2 * (x1 * w1 + b)))(
        e.Value(2.0), e.Value(-3.0), e.Value(0.88)),
    "sum": lambda e: sum(v * v for v in [e.Value(x) for x in (1.0, -2.0, 3.0)]),
    "pow of values": lambda e: e.Value(2.0) ** e.Value(1.5) + 3 ** e.Value(0.5),
}
for _kind in ("numbers", "values", "mixed"):
    BUILDS[f"MLP, {_kind} in"] = (lambda kind: lambda e: (lambda m: sum(
        m(mlp_inputs(e, kind))))(e.MLP(3, [4, 4, 2], act="tanh", bias="uniform")))(_kind)
BUILDS["Layer"] = lambda e: sum(e.Layer(3, 3, act="sigmoid")(mlp_inputs(e, "mixed")))
BUILDS["Neuron"] = lambda e: e.Neuron(3, act="relu", bias="uniform")(mlp_inputs(e, "values")) * 2
BUILDS["MLP, a 1-neuron hidden layer"] = lambda e: e.MLP(2, [1, 3, 1])([e.Value(1.0), 2.0])
BUILDS["MLP output twice"] = lambda e: (lambda o: o[0] * o[1] + o[0])(
    e.MLP(2, [3, 2], act="tanh")([0.5, -0.5]))


def _loss_build(name):
    def build(e):
        m = e.MLP(2, [3, 2], act="tanh", bias="uniform")
        preds = [o for x in ([0.5, -1.0], [1.5, 0.25]) for o in m(x)]
        if name == "hinge":
            return losses.hinge(preds, [1, -1, 1, -1], m.parameters(), alpha=0.01)
        if name == "cross_entropy":
            return losses.cross_entropy([preds[:2], preds[2:]], [1, 0])
        return getattr(losses, name)(preds, [1.0, -1.0, 0.5, 0.0])
    return build


for _name in ("sum_squares", "mse", "root_sum_squares", "hinge", "cross_entropy"):
    BUILDS[f"losses.{_name}"] = _loss_build(_name)


@pytest.mark.parametrize("name", BUILDS)
def test_a_walk_meets_micrographs_nodes_and_edges(name):
    ours, theirs = twins(BUILDS[name])
    assert shape(ours) == shape(theirs)
    assert ours.data == theirs.data or math.isclose(ours.data, theirs.data, rel_tol=1e-12)


@pytest.mark.parametrize("name", BUILDS)
def test_every_walk_meets_the_same_objects(name):
    root = twins(BUILDS[name])[0]
    first = walk(root)
    gc.collect()
    again = walk(root)
    assert [id(v) for v in first] == [id(v) for v in again]
    assert all(v._prev == v._prev for v in first)  # the same objects on every access
    assert len({id(v) for v in first}) == len({v._id for v in first})  # one object per node


@pytest.mark.parametrize("name", BUILDS)
def test_node_by_node_backward_equals_backward(name):
    """To the bit: pygrad's walk order over _prev is its C sort's (operand
    order, depth first), so the contributions add up in the same order."""
    ours = twins(BUILDS[name])[0]
    topo = by_hand(ours)
    hand = [(v.data, v.grad) for v in topo]
    for v in topo:
        v.grad = 0.0
    ours.backward()
    assert [(v.data, v.grad) for v in topo] == hand


@pytest.mark.parametrize("name", BUILDS)
def test_node_by_node_backward_gives_the_reference_engines_gradients(name):
    ours, theirs = twins(BUILDS[name])
    mine, ref = by_hand(ours), by_hand(theirs)
    for a, b in zip(sorted((v.data, v.grad) for v in mine if not v._prev),
                    sorted((v.data, v.grad) for v in ref if not v._prev)):
        assert a[0] == b[0]
        assert a[1] == b[1] or math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-12)


def test_the_issues_example():
    x1, w1, b = Value(2.0), Value(-3.0), Value(0.88)
    e = 2 * (x1 * w1 + b)
    o = (e - 1) / (e + 1)
    topo = by_hand(o)
    assert len(topo) == 13
    got = x1.grad
    x1.grad = 0.0
    for v in topo:
        v.grad = 0.0
    o.backward()
    assert got == x1.grad and round(got, 4) == -0.1406


def test_a_held_value_is_reached_as_that_very_object():
    random.seed(0)
    m = pygrad.MLP(3, [4, 1])
    x = [Value(1.0), Value(-2.0), Value(0.5)]
    out = m(x)
    met = {id(v) for v in walk(out)}
    assert all(id(p) in met for p in m.parameters())
    assert all(id(v) in met for v in x)
    a, b = Value(1.0), Value(2.0)
    for root in (a - b, a / b, b - a, 2 - b, b / 2, 2 / b, losses.mse([a, b], [0, 1])):
        met = {id(v) for v in walk(root)}
        assert id(b) in met and (id(a) in met or root._op in ("+", "*") and len(walk(root)) <= 5)


def test_a_replayed_graph_walks_the_same():
    random.seed(1)
    m = pygrad.MLP(2, [3, 1], act="tanh")
    x = [Value(0.0), Value(0.0)]
    loss = (m(x) - 1.0) ** 2
    before = [id(v) for v in walk(loss)]
    Tape(loss).train(5, SGD(m.parameters(), lr=0.1), inputs=x, data=[[0.5, -0.5], [1.0, 2.0]])
    after = walk(loss)
    assert [id(v) for v in after] == before
    topo = by_hand(loss)
    grads = [v.grad for v in topo]
    for v in topo:
        v.grad = 0.0
    loss.backward()
    assert [v.grad for v in topo] == grads


def test_draw_dot_draws_micrographs_picture():
    for name in ("the lecture", "MLP, mixed in", "losses.hinge"):
        ours, theirs = twins(BUILDS[name])
        a, b = pygrad.draw_dot(ours, max_nodes=10**6), pygrad.draw_dot(theirs, max_nodes=10**6)
        count = lambda d, s: d.source.count(s)  # noqa: E731
        assert count(a, "shape=record") == count(b, "shape=record")
        assert count(a, "->") == count(b, "->")


def test_micrograds_own_graph():
    engine = pytest.importorskip("micrograd.engine")
    nn = pytest.importorskip("micrograd.nn")
    mg = type("micrograd", (), {"Value": engine.Value})
    for name in ("sub and div", "the lecture", "sum"):  # (micrograd has no tanh, exp, rpow)
        ours, theirs = BUILDS[name](pygrad), BUILDS[name](mg)
        assert shape(ours) == shape(theirs)
    random.seed(4)
    ours = sum(pygrad.MLP(3, [4, 4, 2])([0.5, -1.0, Value(2.0)]))
    random.seed(4)
    theirs = sum(nn.MLP(3, [4, 4, 2])([0.5, -1.0, engine.Value(2.0)]))
    assert shape(ours) == shape(theirs) and ours.data == theirs.data


def test_the_walk_is_the_same_every_run():
    """Iteration over _prev follows operand order, not object ids: the same
    program walks the same nodes in the same order in another interpreter."""
    import subprocess
    import sys
    program = (
        "import random, pygrad\n"
        "from pygrad import Value\n"
        "random.seed(5)\n"
        "m = pygrad.MLP(3, [4, 2], act='tanh')\n"
        "o = m([Value(1.0), 2.0, Value(-1.0)])\n"
        "r = (o[0] - o[1]) / (o[0] + 2)\n"
        "topo, seen = [], set()\n"
        "def build(v):\n"
        "    if v not in seen:\n"
        "        seen.add(v)\n"
        "        for c in v._prev: build(c)\n"
        "        topo.append(v)\n"
        "build(r)\n"
        "print([(v._op, v.data.hex()) for v in topo])\n")
    outs = {subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                           env={**__import__('os').environ, "PYTHONHASHSEED": str(seed)},
                           check=True).stdout for seed in (1, 2, 3)}
    assert len(outs) == 1


def test_the_leaf_of_x_minus_a_number_is_micrographs_negated_number():
    """micrograd's x - c is x + (-c), with -c done on c as given: int 0 gives
    a leaf of 0.0, a float 0.0 one of -0.0 (found by the API fuzzer's soak)."""
    for c in (0, 0.0, -0.0, False, 2, 1.5, np.int64(0), np.float64(0.0)):
        ours = [math.copysign(1.0, v.data) for v in (Value(1.0) - c)._prev if v._op == "" and v.data == 0]
        theirs = [math.copysign(1.0, v.data) for v in (reference.Value(1.0) - c)._prev
                  if v._op == "" and v.data == 0]
        assert ours == theirs, c
