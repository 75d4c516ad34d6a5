"""The Value API as micrograd's users rely on it, and the arena under it:
_prev identity, _op, _backward, labels, reprs, accumulation, deep chains,
and memory returned to the arena."""
import gc
import math

import pygrad
from pygrad import Value, reference


def test_prev_holds_the_very_operands():
    a, b = Value(2.0), Value(3.0)
    c = a * b
    assert a in c._prev and b in c._prev and len(c._prev) == 2
    assert (a + a)._prev == {a}
    assert a.relu()._prev == {a}
    assert Value(1.0)._prev == set()


def test_a_number_operand_is_a_leaf_child_as_in_micrograd():
    a = Value(2.0)
    c = a * 3
    (const,) = c._prev - {a}
    assert const.data == 3.0 and const._prev == set()
    assert c._prev == c._prev  # the same wrapper every time
    c.backward()
    assert (a.grad, const.grad) == (3.0, 2.0)  # micrograd gives the constant a grad too


def test_op_strings_match_micrograd():
    a, b = Value(2.0), Value(3.0)
    cases = {"+": a + b, "*": a * b, "**2": a**2, "**-1": a**-1, "**0.5": a**0.5,
             "ReLU": a.relu(), "tanh": a.tanh(), "exp": a.exp(), "": a}
    for op, v in cases.items():
        assert v._op == op
    assert (-a)._op == "*" and (a - b)._op == "+" and (a / b)._op == "*"
    assert (a**b)._op == "**"
    # Each op string is the reference engine's for the same expression.
    r = reference.Value(2.0)
    assert [v._op for v in (r**2, r**-1, r**0.5, r.relu(), r.tanh())] == \
           ["**2", "**-1", "**0.5", "ReLU", "tanh"]


def test_constructor_children_and_op_are_kept_like_micrograd():
    a, b = Value(1.0), Value(2.0)
    v = Value(3.0, (a, b), "+", label="sum")
    assert v._prev == {a, b} and v._op == "+" and v.label == "sum"


def test_labels_and_repr():
    x = Value(2.0, label="x")
    assert x.label == "x" and Value(1.0).label == ""
    y = x * 2
    y.label = "y"
    assert y.label == "y"
    assert repr(Value(1.5)) == "Value(data=1.5, grad=0.0)"


def test_values_have_identity_semantics():
    a, b = Value(1.0), Value(1.0)
    assert a != b and a == a
    assert len({a, b, a}) == 2
    d = {a: "a", b: "b"}
    assert d[a] == "a"


def test_node_by_node_backward_as_in_the_notebook():
    """Seed 004: the neuron o = tanh(x1*w1 + x2*w2 + b), backpropagated by
    calling _backward() on each node in turn."""
    x1, x2, w1, w2 = Value(2.0), Value(0.0), Value(-3.0), Value(1.0)
    b = Value(6.8813735870195432)
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    x1w1x2w2 = x1w1 + x2w2
    n = x1w1x2w2 + b
    o = n.tanh()
    assert math.isclose(o.data, 0.7071067811865476, rel_tol=1e-15)
    o.grad = 1.0
    for node in (o, n, x1w1x2w2, b, x1w1, x2w2):
        node._backward()
    by_hand = [x1.grad, x2.grad, w1.grad, w2.grad, b.grad]
    assert math.isclose(x1.grad, -1.5, rel_tol=1e-12) and math.isclose(w1.grad, 1.0, rel_tol=1e-12)
    for v in (x1, x2, w1, w2, b, x1w1, x2w2, x1w1x2w2, n, o):
        v.grad = 0.0
    o.backward()
    assert [x1.grad, x2.grad, w1.grad, w2.grad, b.grad] == by_hand


def test_a_second_backward_accumulates_like_micrograd():
    for V in (Value, reference.Value):
        x = V(3.0)
        y = (x * 2) * 3
        y.backward()
        assert x.grad == 6.0
        y.backward()
        assert x.grad == 18.0


def test_shared_subexpressions_accumulate_every_path():
    x = Value(1.5)
    s = x * x
    y = s * s + s * 3.0 + x  # dy/dx = 4x^3 + 6x + 1
    y.backward()
    assert math.isclose(x.grad, 4 * 1.5**3 + 6 * 1.5 + 1, rel_tol=1e-15)


def test_million_node_chain_backward_without_recursion(arena_baseline):
    x = Value(1.0)
    y = x
    for _ in range(1_000_000):
        y = y * 1.0000001 + 0.5  # 4 nodes a step, each depending on the one before
    y.backward()
    want = 1.0000001**1_000_000
    assert math.isclose(x.grad, want, rel_tol=1e-6)
    assert pygrad.live_nodes() == arena_baseline + 1 + 4_000_000
    del y
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline + 1  # only x: the chain was freed


def test_values_outlive_their_graph():
    a = Value(2.0)
    b = a.tanh()
    c = b * 3
    del a  # b still needs a's node: it must stay alive and correct
    c.backward()
    assert math.isclose(b.data, math.tanh(2.0)) and c.grad == 1.0 and b.grad == 3.0
    (a_again,) = b._prev
    assert a_again.data == 2.0 and math.isclose(a_again.grad, 3.0 * (1 - math.tanh(2.0) ** 2))


def test_training_loop_returns_every_node_to_the_arena(arena_baseline):
    from pygrad.workloads import train_w1, w1_model
    mlp = w1_model(pygrad, "nn", seed=1)
    params = len(mlp.parameters())
    assert pygrad.live_nodes() == arena_baseline + params
    train_w1(mlp, 100)
    capacity = pygrad._c.lib.pg_capacity()
    train_w1(mlp, 1000)
    assert pygrad._c.lib.pg_capacity() <= capacity  # flat: slots are reused (a trim may shrink it)
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline + params


def test_copy_deepcopy_and_pickle_make_independent_leaves(arena_baseline):
    import copy
    import pickle
    a = Value(2.0, label="a")
    b = a * 3.0
    b.backward()
    for clone in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a)), copy.copy(b)):
        assert clone is not a and clone._prev == set()
        assert clone.label == ("a" if clone.data == 2.0 else "")
        clone.data += 1.0
        clone.grad = 7.0
    del clone
    gc.collect()
    assert (a.data, a.grad, b.data) == (2.0, 3.0, 6.0)
    assert pygrad.live_nodes() == arena_baseline + 3  # a, b and the leaf 3.0


def test_deepcopy_and_pickle_of_a_model(arena_baseline):
    import copy
    import pickle
    m = pygrad.MLP(3, [4, 1])
    x = [1.0, -1.0, 0.5]
    want = m(x).data
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone(x).data == want
        for p in clone.parameters():
            p.data = 0.0
        assert m(x).data == want and clone(x).data == 0.0
    del clone, p
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline + len(m.parameters())


def test_init_twice_and_del_twice_neither_leak_nor_double_free(arena_baseline):
    v = Value(1.0)
    keep = v * 2.0
    for _ in range(100):
        v.__init__(2.0, label="again")
    assert (v.data, v.label, keep.data) == (2.0, "again", 2.0)
    v.__del__()
    v.__del__()
    assert keep.data == 2.0 and keep._prev  # keep's operand node is still alive
    del v, keep
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def test_op_string_keeps_the_exponent_as_written():
    a = Value(2.0)
    assert [(a**k)._op for k in (2, 2.0, -1.0, 0.5)] == ["**2", "**2.0", "**-1.0", "**0.5"]
    r = reference.Value(2.0)
    assert [(r**k)._op for k in (2, 2.0, -1.0, 0.5)] == ["**2", "**2.0", "**-1.0", "**0.5"]
