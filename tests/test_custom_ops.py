"""Custom ops, micrograd's way (issue 15, item 3): `out = Value(t, (self,), 'op')`
then `out._backward = _backward`, monkeypatching (`Value.tanh = tanh`),
subclasses that add ops and any attribute on a Value; backward() calls each
Python _backward in its turn, mixed with the C ops; a _backward that raises
leaves every Value valid and leaks nothing; Tape refuses such graphs; copy,
pickle and draw_dot take them. Checked against the reference engine (the
same programs on pygrad.reference) and PyTorch."""
import copy
import gc
import math
import pickle
import random
import re
import subprocess
import sys
import textwrap

import pytest

import pygrad
from pygrad import Tape, Value, reference


def tanh_by_hand(V):
    """The lecture's tanh, written as a custom op (seed 002)."""
    def tanh(self):
        x = self.data
        t = (math.exp(2 * x) - 1) / (math.exp(2 * x) + 1)
        out = V(t, (self,), "tanh")

        def _backward():
            self.grad += (1 - t**2) * out.grad
        out._backward = _backward
        return out
    return tanh


def mul_by_hand(V, a, b):
    out = V(a.data * b.data, (a, b), "*")

    def _backward():
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad
    out._backward = _backward
    return out


def sum_by_hand(V, *xs):
    """An op of any number of children (more than two: hidden group nodes in C)."""
    out = V(sum(x.data for x in xs), xs, "sum")

    def _backward():
        for x in xs:
            x.grad += out.grad
    out._backward = _backward
    return out


def program(V):
    """C ops and custom ops mixed: the lecture's neuron with a custom tanh, a
    custom product of a shared operand, a 5-way custom sum."""
    tanh = tanh_by_hand(V)
    x1, x2, w1, w2 = V(2.0), V(0.0), V(-3.0), V(1.0)
    b = V(6.8813735870195432)
    n = x1 * w1 + x2 * w2 + b
    o = tanh(n)
    m = mul_by_hand(V, o, x1)  # x1 reached twice
    s = sum_by_hand(V, m, o, x1, w1, m * 2)
    loss = (s - 1.5) ** 2 + tanh(s * 0.1)
    return loss, [x1, x2, w1, w2, b]


def test_a_custom_op_graph_matches_the_reference_engine():
    ours, leaves = program(Value)
    theirs, rleaves = program(reference.Value)
    ours.backward()
    theirs.backward()
    assert ours.data == theirs.data
    assert [v.grad for v in leaves] == [v.grad for v in rleaves]
    assert pygrad._c.debug_check() == 0


def test_a_custom_op_graph_matches_pytorch():
    torch = pytest.importorskip("torch")
    ours, leaves = program(Value)
    ours.backward()
    x1, x2, w1, w2, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True)
                         for v in (2.0, 0.0, -3.0, 1.0, 6.8813735870195432))
    o = torch.tanh(x1 * w1 + x2 * w2 + b)
    m = o * x1
    s = m + o + x1 + w1 + m * 2
    loss = (s - 1.5) ** 2 + torch.tanh(s * 0.1)
    loss.backward()
    assert math.isclose(ours.data, loss.item(), rel_tol=1e-12)
    for v, t in zip(leaves, (x1, x2, w1, w2, b)):
        assert math.isclose(v.grad, t.grad.item(), rel_tol=1e-10, abs_tol=1e-12)


def test_monkeypatching_value_tanh():
    original = Value.tanh
    Value.tanh = tanh_by_hand(Value)
    try:
        x = Value(0.5)
        y = (x * 2).tanh()
        assert y._op == "tanh" and y._prev == {y._prev.pop()} and len(y._prev) == 1
        y.backward()
        want = 2 * (1 - math.tanh(1.0) ** 2)
        assert math.isclose(x.grad, want, rel_tol=1e-12)
        random.seed(1)  # the one-call forward steps aside: the user's tanh runs
        m = pygrad.MLP(2, [2, 1], act="tanh")
        out = m([0.5, -0.5])
        assert any(v._op == "tanh" and type(v._a) is tuple for v in walk(out))
    finally:
        Value.tanh = original


def walk(root):
    topo, seen, stack = [], set(), [root]
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            topo.append(v)
            stack.extend(v._prev)
    return topo


def test_a_subclass_of_value_that_adds_ops():
    class MyValue(Value):
        def swish(self):
            s = 1 / (1 + math.exp(-self.data))
            out = MyValue(self.data * s, (self,), "swish")

            def _backward():
                self.grad += (s + self.data * s * (1 - s)) * out.grad
            out._backward = _backward
            return out

    x = MyValue(1.5)
    y = x.swish().swish() * 3  # (micrograd's ops make a plain Value, as here: no swish on it)
    y.backward()
    r = reference.Value(1.5)

    def rswish(v):
        s = 1 / (1 + math.exp(-v.data))
        out = reference.Value(v.data * s, (v,), "swish")

        def _backward():
            v.grad += (s + v.data * s * (1 - s)) * out.grad
        out._backward = _backward
        return out
    ry = rswish(rswish(r)) * 3
    ry.backward()
    assert (y.data, x.grad) == (ry.data, r.grad)
    assert isinstance(x.swish(), MyValue) and type(x * 2) is Value  # as micrograd's ops make


def test_any_attribute_and_label_op_prev_assignments():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    c.label, c.note, c.tags = "c", "anything", [1, 2]
    assert (c.label, c.note, c.tags) == ("c", "anything", [1, 2])
    c._op = "times"
    assert c._op == "times" and c._prev == {a, b}
    d = Value(5.0)
    d._prev = {a}  # micrograd's Values take it: d is now an op over a
    d._backward = lambda: setattr(a, "grad", a.grad + 7 * d.grad)
    d.backward()
    assert a.grad == 7.0 and d._prev == {a}


def test_node_by_node_backward_with_custom_ops_equals_backward():
    loss, leaves = program(Value)
    topo = []
    seen = set()

    def build(v):
        if v not in seen:
            seen.add(v)
            for c in v._prev:
                build(c)
            topo.append(v)
    build(loss)
    loss.grad = 1.0
    for v in reversed(topo):
        v._backward()
    by_hand = [v.grad for v in leaves]
    for v in topo:
        v.grad = 0.0
    loss.backward()
    assert [v.grad for v in leaves] == by_hand
    assert len(topo) == len(walk(loss))


def test_a_backward_that_raises_leaves_everything_valid(arena_baseline):
    x = Value(3.0)
    y = x * 2

    def bad():
        raise RuntimeError("boom")
    z = Value(y.data + 1, (y,), "bad")
    z._backward = bad
    w = z * 4
    with pytest.raises(RuntimeError, match="boom"):
        w.backward()
    assert (w.grad, z.grad, x.grad) == (1.0, 4.0, 0.0)  # as far as it got, as micrograd
    assert pygrad._c.debug_check() == 0
    z._backward = lambda: setattr(y, "grad", y.grad + z.grad)
    for v in (w, z, y, x):
        v.grad = 0.0
    w.backward()
    assert x.grad == 8.0
    del x, y, z, w, v, bad
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def test_a_tape_refuses_a_graph_with_a_python_backward():
    x = Value(1.0)
    y = tanh_by_hand(Value)(x * 2)
    with pytest.raises(ValueError, match="Python"):
        Tape(y)
    z = x * 3
    z._backward = lambda: None  # a C op whose backward the user replaced
    with pytest.raises(ValueError, match="Python"):
        Tape(z + 1)
    del z._backward  # and back: replayable again
    assert Tape(z + 1).forward() == 4.0


def test_copy_pickle_and_draw_dot_of_custom_ops():
    loss, leaves = program(Value)
    for clone in (copy.copy(loss), copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
        assert clone.data == loss.data and clone._prev == set()  # a leaf, like every copy
    dot = pygrad.draw_dot(loss)
    rdot = pygrad.draw_dot(program(reference.Value)[0])
    assert dot.source.count("->") == rdot.source.count("->")
    # (graphviz quotes an op's label only where DOT needs it; the fallback always)
    assert len(re.findall(r'_op \[label="?sum"?\]', dot.source)) == 1


def test_a_huge_backward_is_walked_in_steps_and_ctrl_c_stops_it():
    """A 3,000,000-node graph (more than one C call's budget): backward()
    walks it in steps, so Ctrl-C stops it within a moment, with the arena
    consistent and every node given back."""
    program_text = textwrap.dedent("""
        import gc, os, signal, threading, time, sys
        import pygrad
        from pygrad import Value
        a = Value(0.5)
        y = a
        for _ in range(1_000_000):
            y = (y * 0.999 + a).tanh()
        y.backward()  # in steps: it completes
        ok = a.grad != 0.0
        for _ in range(2):  # now interrupt it
            start = None
            def shoot():
                global start
                time.sleep(0.05)
                start = time.time()
                os.kill(os.getpid(), signal.SIGINT)
            t = threading.Thread(target=shoot)
            try:  # (t.start() inside: under load the signal may come before it returns)
                t.start()
                for _ in range(200):
                    y.backward()
                print("not interrupted")
            except KeyboardInterrupt:
                late = time.time() - start
            t.join()
        del y
        gc.collect()
        print(ok, late < 0.5, pygrad._c.debug_check(), pygrad.live_nodes())
    """)
    run = subprocess.run([sys.executable, "-c", program_text], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "True", "0", "1"], run.stdout
