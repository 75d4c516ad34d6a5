"""pygrad.losses: each C-built loss is, node for node, the Python expression
its docstring gives: same data, same gradients, same node count, on pygrad
and on the reference engine; and PyTorch's numbers."""
import gc
import math
import random

import pytest

import pygrad
from pygrad import Value, losses, reference

TARGETS = [1.0, -1.0, 1.0, -1.0]

# The expressions, written out as the tutorials write them (any engine).
EXPRESSIONS = {
    "sum_squares": lambda p, y: sum((yi - pi) ** 2 for yi, pi in zip(y, p)),
    "mse": lambda p, y: sum((yi - pi) ** 2 for yi, pi in zip(y, p)) * (1.0 / len(p)),
    "root_sum_squares": lambda p, y: sum((yi - pi) ** 2 for yi, pi in zip(y, p)) ** 0.5,
    "hinge": lambda p, y: sum((1 + -yi * pi).relu() for yi, pi in zip(y, p)) * (1.0 / len(p)),
}


def values(engine, seed, n=4):
    random.seed(seed)
    return [engine.Value(random.uniform(-2, 2)) for _ in range(n)]


def nodes_made(build):
    gc.collect()
    before = pygrad.live_nodes()
    out = build()
    return out, pygrad.live_nodes() - before


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_each_loss_is_its_expression_node_for_node(name):
    p = values(pygrad, 1)
    built, n_c = nodes_made(lambda: getattr(losses, name)(p, TARGETS))
    expr, n_py = nodes_made(lambda: EXPRESSIONS[name](p, TARGETS))
    assert n_c == n_py and built.data == expr.data
    built.backward()
    g_c = [v.grad for v in p]
    for v in p:
        v.grad = 0.0
    expr.backward()
    assert g_c == [v.grad for v in p]
    r = values(reference, 1)
    r_loss = getattr(losses, name)(r, TARGETS)
    r_loss.backward()
    assert r_loss.data == built.data and [v.grad for v in r] == g_c


def test_hinge_with_l2_is_micrograds_demo_loss():
    random.seed(2)
    model = pygrad.MLP(2, [4, 1])
    X = [[0.5, -1.0], [1.5, 0.25], [-0.5, 0.75]]
    y = [1.0, -1.0, 1.0]
    built = losses.hinge([model(x) for x in X], y, model.parameters(), alpha=1e-4)
    scores = [model(x) for x in X]  # a graph of its own: backward leaves grads in it
    data_loss = sum((1 + -yi * si).relu() for yi, si in zip(y, scores)) * (1.0 / len(scores))
    expr = data_loss + 1e-4 * sum((p * p for p in model.parameters()))
    assert built.data == expr.data
    built.backward()
    g = [p.grad for p in model.parameters()]
    model.zero_grad()
    expr.backward()
    assert g == [p.grad for p in model.parameters()]


def test_cross_entropy_matches_pytorch_and_w4s_numbers():
    torch = pytest.importorskip("torch")
    rows = [[2.0, 1.0, 0.1], [0.5, -1.0, 3.0]]
    vals = [[Value(z) for z in row] for row in rows]
    loss = losses.cross_entropy(vals, [0, 2])
    loss.backward()
    t = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(t, torch.tensor([0, 2]))
    tl.backward()
    assert loss.data == pytest.approx(tl.item(), rel=1e-12)
    for row, trow in zip(vals, t.grad.tolist()):
        assert [v.grad for v in row] == pytest.approx(trow, rel=1e-12, abs=1e-15)
    # W4: 99% / 50% / 1% confidence in the right class
    for p, expected in ((0.99, 0.01), (0.5, 0.69), (0.01, 4.6)):
        one = losses.cross_entropy([Value(math.log(p)), Value(math.log(1 - p))], 0)
        assert one.data == pytest.approx(expected, abs=0.006)
    big = losses.cross_entropy([Value(1000.0), Value(0.0)], 1)  # no overflow: the max is taken out
    assert big.data == 1000.0


def test_loss_arguments_are_checked(arena_baseline):
    p = values(pygrad, 3)
    with pytest.raises(ValueError, match="as many targets"):
        losses.mse(p, [1.0])
    with pytest.raises(ValueError, match="as many targets"):
        losses.sum_squares([], [])
    with pytest.raises(ValueError, match="class 3"):
        losses.cross_entropy(p[:3], 3)
    with pytest.raises(ValueError, match="one length"):
        losses.cross_entropy([p[:2], p[:3]], [0, 0])
    with pytest.raises(TypeError):
        losses.mse(p, ["a"] * 4)
    big = [Value(1e200)]
    with pytest.raises(OverflowError):  # (y - 1e200) ** 2 overflows, as in Python
        losses.sum_squares(big, [0.0])
    del big
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline + 4
