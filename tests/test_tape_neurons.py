"""A Tape runs each neuron chain act(b + w1*x1 + ... + wn*xn) as one step
(csrc/tape.c, "Neurons"). These tests hold it to the node-by-node replay
(fusion off, pygrad's test hook) and to a plain backward, bit for bit, on
every node of the graph, including the chain's inner nodes; and check the
cases where a chain must not be fused."""
import math
import random
import struct

import pytest
from pygrad._c import lib

import pygrad
from pygrad import MLP, Tape, Value
from pygrad.optim import SGD
from pygrad.workloads import W1_XS, W1_YS, w1_model


def bits(x):
    return struct.pack("<d", x)  # tells -0.0 from 0.0, and NaN payloads apart


def graph_nodes(root):
    """Every node handle under root, in a fixed (depth-first) order."""
    seen, order, stack = set(), [], [root._id]
    while stack:
        h = stack.pop()
        if h in seen:
            continue
        seen.add(h)
        order.append(h)
        for i in (1, 0):
            c = lib.pg_child(h, i)
            if c > 0:
                stack.append(c)
    return order


def state(root):
    """(data, grad) of every node under root, as bits."""
    return [(bits(lib.pg_data(h)), bits(lib.pg_grad(h))) for h in graph_nodes(root)]


def tape(root, fuse=True):
    lib.pg_debug_tape_fusion(int(fuse))
    try:
        return Tape(root)
    finally:
        lib.pg_debug_tape_fusion(1)


def neurons(t):
    return lib.pg_tape_neurons(t._c)


def w1_loss(mlp, xs=W1_XS):
    ypred = [mlp(x) for x in xs]
    return sum((yi - ypi) ** 2 for yi, ypi in zip(W1_YS, ypred)) ** 0.5


# ---- fused and node by node give the same bits --------------------------------

@pytest.mark.parametrize("way", ["nn", "tutorial"])
def test_w1_training_fused_equals_node_by_node(way):
    runs = []
    for fuse in (True, False):
        mlp = w1_model(pygrad, way)
        loss = w1_loss(mlp)
        t = tape(loss, fuse)
        # 36 tanh neurons, and each (y - ypred) ** 2 is one too (ypred * -1 + y)
        assert neurons(t) == (40 if fuse else 0)
        losses = t.train(2000, SGD(mlp.parameters(), lr=0.01))
        runs.append((losses.tolist(), state(loss)))
    assert runs[0] == runs[1]


def test_w2_shaped_model_fused_equals_node_by_node():
    """ReLU neurons, and a linear output neuron (no activation), hinge loss."""
    runs = []
    for fuse in (True, False):
        random.seed(5)
        model = MLP(2, [16, 16, 1])
        xs = [[Value(random.uniform(-2, 2)) for _ in range(2)] for _ in range(10)]
        ys = [random.choice((-1.0, 1.0)) for _ in range(10)]
        scores = [model(x) for x in xs]
        loss = sum((1 + -y * s).relu() for y, s in zip(ys, scores)) * (1.0 / len(ys))
        loss = loss + 1e-4 * sum(p * p for p in model.parameters())
        t = tape(loss, fuse)
        assert (neurons(t) >= 10 * 33) if fuse else neurons(t) == 0
        losses = t.train(50, SGD(model.parameters(), lr=0.1))
        runs.append((losses.tolist(), state(loss)))
    assert runs[0] == runs[1]


def test_replayed_neurons_match_a_plain_backward_on_every_node():
    random.seed(6)
    mlp = MLP(3, [5, 4, 2], act="tanh", out_act="sigmoid", bias="uniform")
    x = [Value(v) for v in (0.5, -1.5, 2.0)]
    out = mlp(x)
    loss = (out[0] - 0.25) ** 2 + (out[1] + 0.5) ** 2
    t = tape(loss)
    assert neurons(t) == 5 + 4 + 2  # the loss has no products
    for new in ([1.0, 2.0, -3.0], [-0.125, 0.0, 4.5]):
        for xi, v in zip(x, new):
            xi.data = v
        t.forward()
        t.backward()
        replayed = state(loss)
        # the plain backward accumulates: zero every grad first
        for h in graph_nodes(loss):
            lib.pg_set_grad(h, 0.0)
        loss.backward()
        assert state(loss) == replayed


def test_inner_nodes_held_by_the_user_see_replayed_numbers():
    w = [Value(v) for v in (0.5, -0.75, 1.25)]
    xs = [Value(v) for v in (2.0, -1.0, 0.5)]
    b = Value(0.125)
    sums, prods = [], []
    acc = b
    for wi, xi in zip(w, xs):
        prods.append(wi * xi)
        acc = acc + prods[-1]
        sums.append(acc)
    out = acc.tanh()
    t = tape(out)
    assert neurons(t) == 1
    xs[1].data = 3.0
    assert t.forward() == math.tanh(((0.125 + 0.5 * 2.0) + -0.75 * 3.0) + 1.25 * 0.5)
    t.backward()
    got = [(v.data, v.grad) for v in prods + sums + w + xs + [b]]
    twin_w = [Value(v.data) for v in w]
    twin_x = [Value(v.data) for v in xs]
    tprods = [wi * xi for wi, xi in zip(twin_w, twin_x)]
    tsums, acc = [], Value(b.data)
    tb = acc
    for p in tprods:
        acc = acc + p
        tsums.append(acc)
    acc.tanh().backward()
    assert got == [(v.data, v.grad) for v in tprods + tsums + twin_w + twin_x + [tb]]


# ---- when a chain must not be fused ------------------------------------------

def test_a_sum_used_elsewhere_is_not_fused_and_the_numbers_stay():
    w = [Value(v) for v in (0.5, -0.75, 1.25)]
    x = [Value(v) for v in (2.0, -1.0, 0.5)]
    s1 = Value(0.1) + w[0] * x[0]
    s2 = s1 + w[1] * x[1]  # s2 is also used below: it cannot be an inner node
    out = (s2 + w[2] * x[2]).tanh() + s2 * 3.0
    fused, plain = tape(out), tape(out, fuse=False)
    # Three neurons: s2 (no activation, b = 0.1, two terms), tanh(s2 + w2*x2)
    # with s2 as its b, and out = tanh(...) + s2*3.0 (b = the tanh, one term).
    assert neurons(fused) == 3 and neurons(plain) == 0
    for v in (-1.0, 4.0, 0.0):
        x[1].data = v
        runs = []
        for t in (fused, plain):
            t.forward()
            t.backward()
            runs.append(state(out))
        assert runs[0] == runs[1]


def test_no_fusion_when_an_operand_has_a_parent_in_between():
    """x1 gets contributions from m1 = w1*x1 (in the chain), from q = x1 * c
    (reached through x2, so between m1 and the chain's output in the order),
    and from r = x1 * 1.0 after it. Moving m1's contribution ahead of q's
    would change the sum's rounding, so that chain must not be fused."""
    x1, w1, w2, c, b = Value(1.0), Value(-1.0), Value(1.0), Value(1e-16), Value(2.0)
    x2 = x1 * c  # q: a parent of x1, inside the chain's span
    out = (b + w1 * x1 + w2 * x2).relu()  # relu(1.0): passes the grad 1 on
    root = out + x1 * 1.0  # r: x1's first contribution in backward
    t = tape(root)
    # Fused: root = out + r, and b + w1*x1 alone (its span ends before q);
    # not the chain up to relu, whose span holds q.
    assert neurons(t) == 2
    t.forward()
    t.backward()
    replayed = state(root)
    for h in graph_nodes(root):
        lib.pg_set_grad(h, 0.0)
    root.backward()
    assert state(root) == replayed
    assert x1.grad == (1.0 + 1e-16) + -1.0  # r, then q, then m1: 0.0, where m1 before q gives 1e-16


def test_a_neuron_whose_operands_repeat_keeps_their_order():
    x = Value(0.3)
    w = Value(-0.7)
    out = (x + w * x + x * x + w * w).tanh()  # x is b, and an operand three more times
    fused, plain = tape(out), tape(out, fuse=False)
    assert neurons(fused) == 1
    results = []
    for t in (fused, plain):
        for v in (0.3, -1.1, 2.5):
            x.data = v
            t.forward()
            t.backward()
            results.append(state(out))
    assert results[:3] == results[3:]


# ---- failures ---------------------------------------------------------------

def test_a_failing_activation_undoes_the_whole_neuron():
    w = [Value(v) for v in (0.5, -0.75)]
    x = [Value(v) for v in (2.0, 1.0)]
    p0, p1 = w[0] * x[0], w[1] * x[1]
    s1 = Value(1.0) + p0
    s2 = s1 + p1
    out = s2.log()
    t = tape(out)
    assert neurons(t) == 1
    before = [v.data for v in (p0, p1, s1, s2, out)]
    x[0].data = -10.0  # s2 = 1 - 5 - 0.75 < 0
    with pytest.raises(ValueError, match=r"log\(-4\.75\): math domain error \(replaying a Tape\)"):
        t.forward()
    assert [v.data for v in (p0, p1, s1, s2, out)] == before
    x[0].data = 2.0
    assert t.forward() == out.data == math.log(1.0 + 1.0 - 0.75)


def test_failed_allocations_while_recording_raise_and_leak_nothing():
    mlp = w1_model(pygrad, "nn")
    loss = w1_loss(mlp)
    live = pygrad.live_nodes()
    for n in range(1, 12):
        lib.pg_debug_fail_alloc(n)
        try:
            t = Tape(loss)
        except MemoryError:
            continue
        finally:
            lib.pg_debug_fail_alloc(0)
        assert neurons(t) == 40
        del t
    assert pygrad.live_nodes() == live


# ---- random graphs ------------------------------------------------------------

def random_graph(rng):
    """Leaves, then nodes that are often neuron chains (b + w1*x1 + ...,
    then an activation or none) and sometimes plain ops, whose operands are
    drawn from everything made so far: so chains share operands, and inner
    sums and products get used again elsewhere."""
    nodes = [Value(rng.uniform(-1.5, 1.5)) for _ in range(rng.randint(2, 6))]
    for _ in range(rng.randint(1, 8)):
        pick = lambda: rng.choice(nodes)  # noqa: E731
        if rng.random() < 0.7:
            acc = pick() if rng.random() < 0.8 else pick() * pick()
            for _ in range(rng.randint(1, 4)):
                term = pick() * (pick() if rng.random() < 0.8 else rng.uniform(-2, 2))
                acc = acc + term if rng.random() < 0.85 else term + acc
                if rng.random() < 0.15:
                    nodes.append(acc)  # an inner sum, used again later
            act = rng.choice(["tanh", "relu", "sigmoid", None, "sq"])
            out = acc if act is None else acc ** 2 if act == "sq" else getattr(acc, act)()
        else:
            out = rng.choice([lambda a, b: a + b, lambda a, b: a * b,
                              lambda a, b: (a * 0.5).tanh()])(pick(), pick())
        nodes.append(out)
    root = nodes[-1]
    for v in nodes[:-1]:
        if rng.random() < 0.3:
            root = root + v * rng.uniform(-1, 1)  # more parents for earlier nodes
    return root


def test_random_graphs_replay_like_a_plain_backward():
    rng = random.Random(12345)
    fused_total = 0
    for _ in range(300):
        root = random_graph(rng)
        t, plain = tape(root), tape(root, fuse=False)
        fused_total += neurons(t)
        for h in graph_nodes(root):  # new numbers in the leaves: the replays recompute
            if lib.pg_op(h) == 0:
                lib.pg_set_data(h, rng.uniform(-1.5, 1.5))
        results = []
        for which in (t, plain, None):
            for h in graph_nodes(root):
                lib.pg_set_grad(h, 0.0)
            if which is None:
                root.backward()
            else:
                which.forward()
                which.backward()
            results.append(state(root))
        assert results[0] == results[1] == results[2]
    assert fused_total > 300  # the neurons were there to test
