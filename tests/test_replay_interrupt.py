"""Long replays run in C in chunks of about 10 ms with Python in between
(pygrad/replay.py, _Chunks): Ctrl-C stops them within a chunk, a progress
callback runs between chunks, and whatever stops a call leaves everything
as it was (a record, forward or backward) or as the last completed
iteration left it (train), with the losses so far on the exception."""
import gc
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import pygrad
from pygrad import MLP, Tape, Value, replay
from pygrad.optim import SGD
from test_tape_neurons import bits, state

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = textwrap.dedent(r"""
    import gc, random, sys, time
    import numpy as np
    import pygrad
    from pygrad import MLP, Tape, Value
    from pygrad.optim import SGD

    def model():
        random.seed(0)
        mlp = MLP(3, [4, 4, 1], act="tanh", out_act="tanh", bias="uniform")
        x = [Value(0.0) for _ in range(3)]
        return mlp, x, Tape((mlp(x) - 0.5) ** 2)

    DATA = np.array([[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]])
    gc.collect()
    baseline = pygrad.live_nodes()
    mlp, x, tape = model()
    opt = SGD(mlp.parameters(), lr=0.01)
    calls = []
    def progress(done, total, last):
        if not calls:
            print("ready", flush=True)
        calls.append(done)
    try:
        tape.train(2_000_000, opt, inputs=x, data=DATA, progress=progress)
        print("finished", flush=True)
        sys.exit(1)
    except KeyboardInterrupt as e:
        print("caught", flush=True)
        losses = e.losses
    done = len(losses)
    twin, tx, ttape = model()
    want = ttape.train(done, SGD(twin.parameters(), lr=0.01), inputs=tx, data=DATA)
    ok_losses = losses.tobytes() == want.tobytes()
    ok_params = pygrad.get_data(mlp).tobytes() == pygrad.get_data(twin).tobytes()
    ok_inputs = [v.data for v in x] == DATA[(done - 1) % 4].tolist()
    check = pygrad._c.debug_check()
    del mlp, x, tape, opt, twin, tx, ttape, losses, want
    gc.collect()
    print(done, calls[-1] if calls else -1, ok_losses, ok_params, ok_inputs, check,
          pygrad.live_nodes() - baseline, flush=True)
""")


def test_ctrl_c_stops_a_long_train_within_half_a_second():
    """A subprocess trains 2,000,000 iterations; SIGINT after a moment must
    stop it within 0.5 s, with the losses so far and the parameters of the
    last completed iteration, the arena consistent and nothing leaked."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=HERE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline().strip()
        stopped = time.perf_counter() - sent
        assert line == "caught", (line, proc.stderr.read())
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert stopped < 0.5, f"Ctrl-C took {stopped:.3f} s to stop Tape.train"
    done, last_progress, ok_losses, ok_params, ok_inputs, check, leaked = out.split()
    assert 0 < int(done) < 2_000_000 and int(last_progress) <= int(done)
    assert (ok_losses, ok_params, ok_inputs) == ("True", "True", "True"), err
    assert int(check) == 0 and int(leaked) == 0


def small():
    random.seed(1)
    mlp = MLP(3, [5, 1], act="tanh", bias="uniform")
    x = [Value(0.0) for _ in range(3)]
    return mlp, x, (mlp(x) - 0.25) ** 2


DATA = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.5]])


class TinyChunks(replay._Chunks):
    """Chunks of 50 node-steps: every long call runs in many chunks."""

    def __init__(self, target=0.01):
        super().__init__(target)
        self.budget = 50

    def next(self):
        return self.budget


@pytest.fixture
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(replay, "_Chunks", TinyChunks)


def test_progress_is_called_between_chunks_and_at_the_end(tiny_chunks):
    mlp, x, loss = small()
    calls = []
    losses = Tape(loss).train(40, SGD(mlp.parameters(), lr=0.1), inputs=x, data=DATA,
                              progress=lambda d, n, last: calls.append((d, n, last)))
    assert len(calls) > 5 and calls[-1][0] == 40 and all(n == 40 for _, n, _ in calls)
    assert [d for d, _, _ in calls] == sorted(set(d for d, _, _ in calls))  # growing
    assert all(last == losses[d - 1] for d, _, last in calls)
    twin, tx, tloss = small()
    assert Tape(tloss).train(40, SGD(twin.parameters(), lr=0.1), inputs=tx, data=DATA).tolist() == \
        losses.tolist()  # chunks change no number
    assert pygrad.get_data(mlp).tolist() == pygrad.get_data(twin).tolist()


def test_an_exception_from_progress_stops_training_after_the_last_completed_iteration(tiny_chunks):
    mlp, x, loss = small()

    def stop(done, total, last):
        if done >= 12:
            raise RuntimeError("enough")
    with pytest.raises(RuntimeError, match="enough") as err:
        Tape(loss).train(1000, SGD(mlp.parameters(), lr=0.1), inputs=x, data=DATA, progress=stop)
    done = len(err.value.losses)
    assert 12 <= done < 1000
    twin, tx, tloss = small()
    want = Tape(tloss).train(done, SGD(twin.parameters(), lr=0.1), inputs=tx, data=DATA)
    assert err.value.losses.tolist() == want.tolist()
    assert pygrad.get_data(mlp).tolist() == pygrad.get_data(twin).tolist()
    assert state(loss) == state(tloss)  # the graph as the last completed iteration left it
    assert pygrad._c.debug_check() == 0


def test_progress_must_be_callable():
    mlp, x, loss = small()
    with pytest.raises(TypeError, match="progress must be callable"):
        Tape(loss).train(3, progress=5)


def chain(n):
    a, b, y = Value(0.5), Value(0.25), Value(0.1)
    y0 = y
    for _ in range(n):
        y = (y * a + b).tanh()
    return a, b, y0, y


def test_chunked_calls_match_whole_calls(monkeypatch):
    results = []
    for tiny in (True, False):
        if tiny:
            monkeypatch.setattr(replay, "_Chunks", TinyChunks)
        else:
            monkeypatch.undo()
        a, b, y0, y = chain(300)
        t = Tape(y)
        assert len(t) == 3 * 300 + 3
        a.data = 0.75
        value = t.forward()
        t.backward()
        results.append((bits(value), state(y)))
    assert results[0] == results[1]


class Interrupt(Exception):
    pass


def interrupting(monkeypatch, name, after):
    """Make _c.<name> raise Interrupt (as a Ctrl-C between chunks would) after
    `after` calls that go through."""
    real = getattr(replay._c, name)
    count = [0]

    def call(*args):
        count[0] += 1
        if count[0] > after:
            raise Interrupt
        return real(*args)
    monkeypatch.setattr(replay._c, name, call)
    return count


def test_an_interrupted_record_leaves_nothing_behind(monkeypatch, tiny_chunks, arena_baseline):
    a, b, y0, y = chain(200)
    interrupting(monkeypatch, "tape_compile", 3)
    with pytest.raises(Interrupt):
        Tape(y)
    monkeypatch.undo()
    del a, b, y0, y
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline and pygrad._c.debug_check() == 0


def test_an_interrupted_forward_or_backward_changes_nothing(monkeypatch, tiny_chunks):
    a, b, y0, y = chain(200)
    t = Tape(y)
    t.forward()
    t.backward()
    a.data = 0.9  # new numbers for the next run, which never finishes
    before = state(y)
    for name, run in (("tape_forward_chunk", t.forward), ("tape_backward_chunk", t.backward)):
        real = getattr(replay._c, name)
        interrupting(monkeypatch, name, 2)
        with pytest.raises(Interrupt):
            run()
        monkeypatch.setattr(replay._c, name, real)
        assert state(y) == before, f"an interrupted {name} changed the graph"
    assert pygrad._c.debug_check() == 0
    t.forward()  # and the tape still works
    assert bits(y.data) != before[0][0]  # a is new: the root moved
