"""Tape.train's inputs, data and optimizers: several arrays read side by side
and row-strided arrays read in place (no copy), what a failed iteration
leaves (everything as the last completed iteration left it: issue 11,
item 8), and the unusual parameters and inputs: outside the graph, listed
twice, both an input and a parameter, or not leaves (refused)."""
import math
import random

import numpy as np
import pytest
from pygrad._c import lib

import pygrad
from pygrad import MLP, Tape, Value, replay
from pygrad.optim import SGD, Adam
from test_tape_neurons import bits, state


def net(seed=2):
    random.seed(seed)
    mlp = MLP(4, [5, 3], act="tanh", bias="uniform")
    x = [Value(0.0) for _ in range(4)]
    t = [Value(0.0) for _ in range(3)]
    logits = mlp(x)
    loss = sum(z.exp() for z in logits).log() - sum(ti * z for ti, z in zip(t, logits))
    return mlp, x, t, loss


RNG = np.random.default_rng(3)
X = RNG.random((7, 4))
T = np.eye(3)[[0, 2, 1, 1, 0, 2, 2]]


def test_several_arrays_side_by_side_read_as_their_hstack():
    runs = []
    for data in ([X, T], np.hstack([X, T]), [X[:, :2], X[:, 2:], T]):
        mlp, x, t, loss = net()
        losses = Tape(loss).train(9, SGD(mlp.parameters(), lr=0.1), inputs=x + t, data=data)
        runs.append((losses.tolist(), pygrad.get_data(mlp).tolist()))
    assert runs[0] == runs[1] == runs[2]


def test_float64_arrays_whose_rows_are_contiguous_are_read_in_place():
    wide = np.hstack([X, np.zeros((7, 3)), T])  # X's rows, 7 apart: a view, not a copy
    view = wide[:, :4]
    assert not view.flags.c_contiguous
    arrays = replay._feed_arrays([view, wide[:, 7:]], 7)
    assert arrays[0] is view and arrays[1].base is wide  # no copy made
    assert replay._feed_arrays(X, 4)[0] is X
    assert replay._feed_arrays(X.astype(np.float32), 4)[0].dtype == np.float64  # a copy
    assert replay._feed_arrays(X[:, ::2], 2)[0].flags.c_contiguous  # columns apart: a copy
    mlp, x, t, loss = net()
    strided = Tape(loss).train(9, SGD(mlp.parameters(), lr=0.1), inputs=x + t, data=[view, wide[:, 7:]])
    twin, tx, tt, tloss = net()
    assert strided.tolist() == Tape(tloss).train(9, SGD(twin.parameters(), lr=0.1), inputs=tx + tt,
                                                 data=[X, T]).tolist()


def test_data_shapes_are_checked():
    mlp, x, t, loss = net()
    tape = Tape(loss)
    for bad in ([X, T[:5]], [X], [X, T, T], np.zeros((0, 7))):
        with pytest.raises(ValueError, match="data must have shape"):
            tape.train(2, inputs=x + t, data=bad)


def failing_net():
    """y = log(w * x + b): the row x = -5 makes it fail."""
    w, b = Value(1.0), Value(3.0)
    x = Value(0.0)
    y = (w * x + b).log()
    return w, b, x, y


ROWS = np.array([[1.0], [2.0], [-5.0], [0.5]])


def test_a_failure_in_the_first_iteration_changes_nothing():
    w, b, x, y = failing_net()
    tape = Tape(y)
    x.data = 7.0
    before = state(y)
    with pytest.raises(ValueError, match=r"log\(-2\.0\)") as err:
        tape.train(3, SGD([w, b], lr=0.1), inputs=[x], data=ROWS[2:])
    assert err.value.losses.tolist() == []
    assert state(y) == before and x.data == 7.0  # the failing row is not left in the input


def test_a_failure_later_leaves_the_last_completed_iteration():
    w, b, x, y = failing_net()
    tape = Tape(y)
    opt = SGD([w, b], lr=0.1)
    with pytest.raises(ValueError, match=r"log\(") as err:
        tape.train(5, opt, inputs=[x], data=ROWS)
    assert len(err.value.losses) == 2
    # what two iterations of the Python loop leave
    tw, tb = Value(1.0), Value(3.0)
    topt = SGD([tw, tb], lr=0.1)
    for row in ROWS[:2]:
        tx = Value(float(row[0]))
        ty = (tw * tx + tb).log()
        tw.grad = tb.grad = 0.0
        ty.backward()
        topt.step()
    assert err.value.losses.tolist()[-1] == ty.data
    assert state(y) == state(ty)  # the graph, the input (row 2), the parameters and their grads
    assert x.data == 2.0 and opt.steps == 2
    # and training goes on from there
    want = math.log(w.data * 0.5 + b.data)
    assert tape.train(1, opt, inputs=[x], data=ROWS[3:]).tolist() == [want]


def test_a_parameter_outside_the_graph_is_zeroed_and_stepped():
    w, b, x, y = failing_net()
    spare = Value(2.0)
    spare.grad = 5.0
    opt = SGD([w, spare, b], lr=0.1, momentum=0.5, weight_decay=0.25)
    Tape(y).train(3, opt, inputs=[x], data=ROWS[:2])
    tw, tspare, tb = Value(1.0), Value(2.0), Value(3.0)
    topt = SGD([tw, tspare, tb], lr=0.1, momentum=0.5, weight_decay=0.25)
    for i in range(3):
        ty = (tw * Value(float(ROWS[i % 2][0])) + tb).log()
        topt.zero_grad()
        ty.backward()
        topt.step()
    assert [bits(v.data) for v in (w, spare, b)] == [bits(v.data) for v in (tw, tspare, tb)]
    assert spare.grad == 0.0


def test_inputs_outside_the_graph_or_also_parameters_load_as_before():
    """An input may be outside the graph (it gets its row anyway), or a
    parameter (loaded, then stepped), as tests/test_hostile.py's p."""
    p = [Value(0.5), Value(-0.25)]
    loss = (p[0] * 1e-1).tanh()
    opt = SGD(p, lr=0.5, momentum=0.5)
    data = [[1.0, 3.0], [2.0, -1.0]]
    losses = Tape(loss).train(3, opt, inputs=p, data=data)
    tp = [Value(0.5), Value(-0.25)]
    topt = SGD(tp, lr=0.5, momentum=0.5)
    want = []
    for i in range(3):
        for v, d in zip(tp, data[i % 2]):
            v.data = d
        tl = (tp[0] * 1e-1).tanh()
        want.append(tl.data)
        topt.zero_grad()
        tl.backward()
        topt.step()
    assert losses.tolist() == want
    assert [bits(v.data) for v in p] == [bits(v.data) for v in tp]


def test_a_parameter_listed_twice_is_stepped_twice():
    w, b, x, y = failing_net()
    for make in (lambda ps: SGD(ps, lr=0.1), lambda ps: Adam(ps, lr=0.1)):
        w, b, x, y = failing_net()
        Tape(y).train(2, make([w, b, w]), inputs=[x], data=ROWS[:2])
        tw, tb = Value(1.0), Value(3.0)
        topt = make([tw, tb, tw])
        for row in ROWS[:2]:
            ty = (tw * Value(float(row[0])) + tb).log()
            topt.zero_grad()
            ty.backward()
            topt.step()
        assert [bits(w.data), bits(b.data)] == [bits(tw.data), bits(tb.data)]


def test_nodes_the_graph_computes_cannot_be_parameters_or_inputs():
    w, b, x, y = failing_net()
    inner = next(iter(y._prev))  # w * x + b
    tape = Tape(y)
    before = state(y)
    with pytest.raises(ValueError, match="a parameter is a node the graph computes"):
        tape.train(2, SGD([w, inner], lr=0.1))
    with pytest.raises(ValueError, match="an input is a node the graph computes"):
        tape.train(2, inputs=[x, inner], data=[[1.0, 2.0]])
    assert state(y) == before
    assert tape.train(1, SGD([w, b], lr=0.1), inputs=[x], data=[[1.0]]).tolist() == [math.log(4.0)]


def test_switching_optimizers_and_inputs_between_calls():
    """A call with another optimizer or other inputs than the last starts a
    new session: the numbers are those of one loop doing the same."""
    mlp, x, t, loss = net(4)
    a, b = SGD(mlp.parameters(), lr=0.1), Adam(mlp.parameters()[:10], lr=0.01)
    tape = Tape(loss)
    got = tape.train(3, a, inputs=x + t, data=[X, T]).tolist()
    got += tape.train(2, b, inputs=x + t, data=[X[3:], T[3:]]).tolist()
    got += tape.train(2, a, inputs=x + t, data=[X[5:], T[5:]]).tolist()
    twin, tx, tt, tloss = net(4)
    ta, tb = SGD(twin.parameters(), lr=0.1), Adam(twin.parameters()[:10], lr=0.01)
    want = []
    for i, opt in enumerate([ta] * 3 + [tb] * 2 + [ta] * 2):
        pygrad.set_data(tx + tt, np.concatenate([X[i], T[i]]))
        tl = twin(tx)
        tl = sum(z.exp() for z in tl).log() - sum(ti * z for ti, z in zip(tt, tl))
        want.append(tl.data)
        twin.zero_grad()
        tl.backward()
        opt.step()
    assert got == want
    assert pygrad.get_data(mlp).tolist() == pygrad.get_data(twin).tolist()


def test_a_refused_op_is_named_and_leaves_nothing(arena_baseline):
    """Python-defined ops (to come) cannot be replayed: pg_tape_compile
    refuses the graph and names the node; a test hook stands in for them."""
    x = Value(0.5)
    y = (x * 2.0).tanh() + x
    lib.pg_debug_tape_refuse(pygrad._c.OP["tanh"].code)
    try:
        with pytest.raises(ValueError, match=r"a tape cannot replay, 'tanh' \(node with data 0\.76"):
            Tape(y)
    finally:
        lib.pg_debug_tape_refuse(-1)
    assert len(Tape(y)) == 5
    del x, y
    import gc
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline and lib.pg_debug_check() == 0
