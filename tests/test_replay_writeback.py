"""A Tape computes in arrays of its own and writes its numbers back into the
graph when anything reads a node (csrc/tape_replay.c, "Writing back").
These tests read every node of the graph, inner products and partial sums
included, after train(), forward() and backward(), and hold them to a
rebuild's numbers (the same loop on a graph built afresh each iteration),
bit for bit; and check that reads and writes between calls, other tapes and
optimizers see, and are seen by, the tape."""
import random

import numpy as np
import pytest
from pygrad._c import lib

import pygrad
from pygrad import MLP, Tape, Value
from pygrad.optim import SGD, Adam
from test_tape_neurons import bits, graph_nodes, neurons, state


def layers(t):
    return lib.pg_tape_layers(t._c)


def small_net(seed):
    """MLP(3, [6, 5, 2]), tanh (no unit ever dead), over input leaves x, a
    squared error; the model, x, the loss."""
    random.seed(seed)
    mlp = MLP(3, [6, 5, 2], act="tanh", bias="uniform")
    x = [Value(0.0) for _ in range(3)]
    out = mlp(x)
    loss = (out[0] - 0.5) ** 2 + (out[1] + 0.25) ** 2
    return mlp, x, loss


DATA = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.5], [0.1, 0.2, 0.3]])


def rebuilt_state(seed, iters, make_opt, data=DATA):
    """What train(iters) must leave: a twin trained iters iterations by
    rebuilding; returns (the state of its last graph: the leaves after the
    last step, every other node as that iteration's forward and backward
    left it; its params)."""
    mlp, x, _ = small_net(seed)
    opt = make_opt(mlp.parameters())
    for i in range(iters):
        for xi, v in zip(x, data[i % len(data)]):
            xi.data = float(v)
        out = mlp(x)
        loss = (out[0] - 0.5) ** 2 + (out[1] + 0.25) ** 2
        for h in graph_nodes(loss):
            lib.pg_set_grad(h, 0.0)
        loss.backward()
        opt.step()
    return state(loss), [bits(p.data) for p in mlp.parameters()]


@pytest.mark.parametrize("make_opt", [lambda ps: SGD(ps, lr=0.05), lambda ps: SGD(ps, lr=0.05, momentum=0.9),
                                      lambda ps: Adam(ps, lr=0.01)])
def test_every_node_after_train_reads_what_a_rebuild_gives(make_opt):
    mlp, x, loss = small_net(7)
    tape = Tape(loss)
    # two layers side by side, and the two outputs apart (the loss comes between them)
    assert neurons(tape) == 6 + 5 + 2 and layers(tape) == 4
    tape.train(7, make_opt(mlp.parameters()), inputs=x, data=DATA)
    want, params = rebuilt_state(7, 7, make_opt)
    assert all(xi.grad != 0.0 for xi in x)  # (the inputs' grads come from the write-back)
    assert state(loss) == want  # every product, partial sum, output: data and grad
    assert [bits(p.data) for p in mlp.parameters()] == params


def test_a_product_node_held_by_the_user_reads_the_last_iteration():
    w = [Value(v) for v in (0.5, -0.75, 1.25)]
    x = [Value(0.0) for _ in range(3)]
    b = Value(0.1)
    prods = [wi * xi for wi, xi in zip(w, x)]
    s = b
    for p in prods:
        s = s + p
    out = s.tanh()
    tape = Tape(out)
    data = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.25]])
    opt = SGD(w + [b], lr=0.1)
    tape.train(2, opt, inputs=x, data=data)
    # the second iteration: weights after one step, the second row
    tw = [Value(v) for v in (0.5, -0.75, 1.25)]
    tb = Value(0.1)
    topt = SGD(tw + [tb], lr=0.1)
    for row in data:
        tx = [Value(float(v)) for v in row]
        tp = [wi * xi for wi, xi in zip(tw, tx)]
        ts = tb
        for p in tp:
            ts = ts + p
        tout = ts.tanh()
        for v in tw + [tb]:
            v.grad = 0.0
        tout.backward()
        got = [(bits(p.data), bits(p.grad)) for p in tp]
        topt.step()
    assert [(bits(p.data), bits(p.grad)) for p in prods] == got
    assert [bits(xi.data) for xi in x] == [bits(v) for v in data[-1]]


def test_reading_between_calls_changes_no_number():
    runs = []
    for split in ([6], [2, 1, 3], [1] * 6):
        mlp, x, loss = small_net(3)
        tape, opt = Tape(loss), SGD(mlp.parameters(), lr=0.02, momentum=0.5)
        losses = []
        for i, n in enumerate(split):
            losses += tape.train(n, opt, inputs=x, data=np.roll(DATA, -sum(split[:i]), axis=0)).tolist()
            _ = [p.data for p in mlp.parameters()], loss.grad  # writes the tape back
        runs.append((losses, state(loss), [bits(p.data) for p in mlp.parameters()]))
    assert runs[0] == runs[1] == runs[2]


def test_a_leaf_written_between_calls_is_read_by_the_next():
    mlp, x, loss = small_net(4)
    tape, opt = Tape(loss), SGD(mlp.parameters(), lr=0.05)
    tape.train(2, opt, inputs=x, data=DATA)
    mlp.parameters()[3].data = 0.625
    pygrad.set_data(mlp.parameters()[:2], [0.5, -0.5])
    losses = tape.train(2, opt, inputs=x, data=DATA[2:]).tolist()
    twin, tx, tloss = small_net(4)
    topt = SGD(twin.parameters(), lr=0.05)
    Tape(tloss).train(2, topt, inputs=tx, data=DATA)
    twin.parameters()[3].data = 0.625
    pygrad.set_data(twin.parameters()[:2], [0.5, -0.5])
    want = []
    for row in DATA[2:]:  # by rebuilding
        out = twin([float(v) for v in row])
        tl = (out[0] - 0.5) ** 2 + (out[1] + 0.25) ** 2
        want.append(tl.data)
        twin.zero_grad()
        tl.backward()
        topt.step()
    assert losses == want
    assert [bits(p.data) for p in mlp.parameters()] == [bits(p.data) for p in twin.parameters()]


def test_an_optimizer_step_between_calls_uses_the_tapes_grads():
    mlp, x, loss = small_net(5)
    tape, opt = Tape(loss), SGD(mlp.parameters(), lr=0.1)
    tape.train(1, None, inputs=x, data=DATA)  # forward and backward, no step
    opt.step()  # from the grads the tape left
    twin, tx, tloss = small_net(5)
    for xi, v in zip(tx, DATA[0]):
        xi.data = float(v)
    tloss = (lambda o: (o[0] - 0.5) ** 2 + (o[1] + 0.25) ** 2)(twin(tx))
    twin.zero_grad()
    tloss.backward()
    SGD(twin.parameters(), lr=0.1).step()
    assert [bits(p.data) for p in mlp.parameters()] == [bits(p.data) for p in twin.parameters()]


def test_two_tapes_over_one_graph_see_each_others_numbers():
    mlp, x, loss = small_net(6)
    whole, again = Tape(loss), Tape(loss)
    first = next(iter(loss._prev))  # part of the graph
    part = Tape(first)
    whole.train(3, SGD(mlp.parameters(), lr=0.05), inputs=x, data=DATA)
    out = mlp(x)  # rebuilt at the leaves whole left (the parameters after its steps)
    rebuilt = (out[0] - 0.5) ** 2 + (out[1] + 0.25) ** 2
    assert part.forward() == first.data  # part reads whole's leaves
    assert again.forward() == rebuilt.data
    again.backward()
    rebuilt.backward()
    assert [bits(p.grad) for p in mlp.parameters()] == [bits(p.grad) for p in mlp.parameters()]
    assert state(loss) == state(rebuilt)


def test_a_tape_freed_while_its_numbers_are_pending_writes_them_back():
    mlp, x, loss = small_net(9)
    Tape(loss).train(3, SGD(mlp.parameters(), lr=0.05), inputs=x, data=DATA)  # the tape dies here
    want, params = rebuilt_state(9, 3, lambda ps: SGD(ps, lr=0.05))
    assert state(loss) == want
    assert [bits(p.data) for p in mlp.parameters()] == params


def test_input_grads_left_for_the_write_back_are_right():
    """A layer's inputs that only it uses (a training loop's data) get their
    grads when the tape is written back, not every iteration."""
    random.seed(10)
    mlp = MLP(20, [12, 3], bias="uniform")
    x = [Value(0.0) for _ in range(20)]
    t = [Value(0.0) for _ in range(3)]
    logits = mlp(x)
    loss = sum(z.exp() for z in logits).log() - sum(ti * z for ti, z in zip(t, logits))
    rng = np.random.default_rng(0)
    X, T = rng.random((5, 20)), np.eye(3)[[0, 2, 1, 1, 0]]
    tape = Tape(loss)
    tape.train(5, SGD(mlp.parameters(), lr=0.1), inputs=x + t, data=[X, T])
    twin = MLP(20, [12, 3], bias="uniform")
    pygrad.set_data(twin, pygrad.get_data(mlp))  # (after the steps: compare the last iteration's grads)
    random.seed(10)
    twin = MLP(20, [12, 3], bias="uniform")
    topt = SGD(twin.parameters(), lr=0.1)
    for row, onehot in zip(X, T):
        tx, tt = [Value(float(v)) for v in row], [Value(float(v)) for v in onehot]
        tl = twin(tx)
        tloss = sum(z.exp() for z in tl).log() - sum(ti * z for ti, z in zip(tt, tl))
        twin.zero_grad()
        tloss.backward()
        topt.step()
    assert [bits(v.grad) for v in x] == [bits(v.grad) for v in tx]
    assert [bits(v.grad) for v in t] == [bits(v.grad) for v in tt]
    assert state(loss) == state(tloss)


def test_layers_on_and_off_give_the_same_bits_on_random_graphs():
    from test_tape_neurons import random_graph
    rng = random.Random(99)
    for _ in range(150):
        root = random_graph(rng)
        results = []
        for on in (1, 0):
            lib.pg_debug_tape_layers(on)
            try:
                t = Tape(root)
            finally:
                lib.pg_debug_tape_layers(1)
            for h in graph_nodes(root):
                lib.pg_set_grad(h, 0.0)
            t.forward()
            t.backward()
            results.append(state(root))
        assert results[0] == results[1]


def test_mlp_layers_run_as_layer_steps_with_the_same_bits():
    """MLPs of a batch of samples: one layer step per layer and sample, the
    weights laid out once; the same numbers as neuron by neuron."""
    runs = []
    for on in (1, 0):
        random.seed(11)
        model = MLP(2, [16, 16, 1])
        xs = [[Value(random.uniform(-2, 2)) for _ in range(2)] for _ in range(8)]
        ys = [random.choice((-1.0, 1.0)) for _ in range(8)]
        loss = pygrad.losses.hinge([model(x) for x in xs], ys, model.parameters(), alpha=1e-4)
        lib.pg_debug_tape_layers(on)
        try:
            t = Tape(loss)
        finally:
            lib.pg_debug_tape_layers(1)
        assert (layers(t) >= 8 * 2) if on else layers(t) == 0
        losses = t.train(20, SGD(model.parameters(), lr=0.5)).tolist()
        runs.append((losses, state(loss)))
    assert runs[0] == runs[1]
