"""Threads (issue 4, part 5).

What a Python user sees: pygrad's C calls hold the GIL (pygrad/_ffi_build.py
undoes cffi's GIL release, a measured speed choice), so two Python threads
are never inside the C library together; they interleave between C calls,
which is where these tests make them switch as often as possible
(sys.setswitchinterval). Every C call must leave the arena whole for the next
thread, whatever Python code ran in between:
- threads training their own models get, bit for bit, a sequential run's
  numbers, by every way of training (the tutorial classes, pygrad.nn,
  losses and optimizers, Tape.train), with a thread collecting garbage;
- threads sharing one model under a user's lock get exactly the numbers
  of the same steps run in a row; threads reading one model need no lock;
- a fork while threads train leaves the child a usable arena.

What a C caller sees: the library's own lock (csrc/arena.c) is what makes
it safe to call from several threads at once, the case of any C program and
of a cffi that releases the GIL. tests/threads_harness.c checks it from
pthreads, and runs under ThreadSanitizer where the compiler has it.
"""
import gc
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import pygrad
from pygrad import Tape, Value, losses
from pygrad.optim import SGD, Adam
from pygrad.workloads import W1_XS, W1_YS, train_w1, w1_model

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")


@pytest.fixture(autouse=True)
def switch_often():
    """Make threads switch every few bytecodes (default: every 5 ms)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(work, n):
    """work(i) for i < n, each on its own thread; their results in order.
    An exception in a thread fails the test."""
    results, errors = [None] * n, []

    def target(i):
        try:
            results[i] = work(i)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# ---- each thread its own model ---------------------------------------------
# Each way makes its model(s) first (random is one global generator, so models
# are made in a fixed order, before any thread starts) and returns `train`,
# which trains them and returns every loss and the final parameters.

def way_tutorial(seed):  # W1 (a): seed 000's own classes on pygrad.Value
    mlp = w1_model(pygrad, "tutorial", seed=seed)
    return lambda: train_w1(mlp, 60) + [p.data for p in mlp.parameters()]


def way_nn(seed):  # W1 (b): pygrad.nn, the same loop
    mlp = w1_model(pygrad, "nn", seed=seed)
    return lambda: train_w1(mlp, 150) + [p.data for p in mlp.parameters()]


def way_losses_and_optim(seed):  # pygrad.losses and a C optimizer with momentum
    mlp = w1_model(pygrad, "nn", seed=seed)
    opt = SGD(mlp.parameters(), lr=0.02, momentum=0.9)

    def train():
        out = []
        for _ in range(150):
            loss = losses.mse([mlp(x) for x in W1_XS], W1_YS)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.data)
        return out + pygrad.get_data(mlp).tolist()
    return train


def way_tape(seed):  # W1 (c): a replayed graph fed rows of data, Adam
    mlp = w1_model(pygrad, "nn", seed=seed)
    x = [Value(0.0) for _ in range(3)]
    tape = Tape((mlp(x) - 0.5) ** 2)
    opt = Adam(mlp.parameters(), lr=0.01)

    def train():
        out = []
        for _ in range(20):  # many short C calls, so that threads interleave
            out += tape.train(50, opt, inputs=x, data=W1_XS).tolist()
        return out + pygrad.get_data(mlp).tolist()
    return train


WAYS = [way_tutorial, way_nn, way_losses_and_optim, way_tape]


@pytest.mark.parametrize("way", WAYS, ids=lambda w: w.__name__[4:])
def test_threads_training_their_own_models_match_a_sequential_run(way, arena_baseline):
    seeds = [11, 12, 13, 14]
    sequential = [way(s)() for s in seeds]
    trainers = [way(s) for s in seeds]
    assert run_threads(lambda i: trainers[i](), len(seeds)) == sequential
    assert sequential[0] != sequential[1]  # each thread had work of its own
    del trainers
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def test_every_way_at_once_with_a_thread_collecting_garbage(arena_baseline):
    """All the ways in threads together, while another thread runs the
    garbage collector (which frees other threads' Values) and a third makes
    and drops small graphs; Values made on one thread die on another."""
    sequential = [way(20 + i)() for i, way in enumerate(WAYS)]
    trainers = [way(20 + i) for i, way in enumerate(WAYS)]
    done = threading.Event()

    def collect():
        while not done.is_set():
            gc.collect()

    def churn():
        rng = random.Random(5)
        junk = []
        while not done.is_set():
            v = Value(rng.uniform(-1, 1))
            junk.append((v * v).tanh() + v)
            junk.append([junk, v])  # cycles only the collector frees
            if len(junk) > 200:
                junk = []

    helpers = [threading.Thread(target=f) for f in (collect, churn)]
    for t in helpers:
        t.start()
    try:
        results = run_threads(lambda i: trainers[i](), len(trainers))
    finally:
        done.set()
        for t in helpers:
            t.join()
    assert results == sequential
    del trainers
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


# ---- threads sharing one model ----------------------------------------------

def test_threads_sharing_one_model_under_a_lock_match_the_same_steps_in_a_row(arena_baseline):
    """Threads take turns, under the user's lock, at one model's training
    steps: step k (whichever thread runs it) uses sample k % 4. The model
    ends exactly as after the same steps run in a row."""
    steps, nthreads = 400, 4

    def step(mlp, k):
        x, y = W1_XS[k % 4], W1_YS[k % 4]
        loss = (mlp(x) - y) ** 2
        mlp.zero_grad()
        loss.backward()
        for p in mlp.parameters():
            p.data -= 0.05 * p.grad
        return loss.data

    alone = w1_model(pygrad, "nn", seed=3)
    want = [step(alone, k) for k in range(steps)]

    shared = w1_model(pygrad, "nn", seed=3)
    lock = threading.Lock()
    got = [None] * steps
    taken = [0]

    def work(i):
        mine = 0
        while True:
            with lock:
                k = taken[0]
                if k == steps:
                    return mine
                taken[0] += 1
                got[k] = step(shared, k)
            mine += 1

    per_thread = run_threads(work, nthreads)
    assert sum(per_thread) == steps
    assert got == want
    assert [p.data for p in shared.parameters()] == [p.data for p in alone.parameters()]
    del alone, shared
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def test_threads_sharing_one_tape_and_optimizer_under_a_lock(arena_baseline):
    """One recorded graph and one Adam optimizer, stepped by several threads
    in turn: the same numbers as the same steps in a row."""
    steps = 200

    def build():
        mlp = w1_model(pygrad, "nn", seed=4)
        x = [Value(0.0) for _ in range(3)]
        tape = Tape((mlp(x) - 1.0) ** 2)
        return mlp, x, tape, Adam(mlp.parameters(), lr=0.01)

    def step(model, k):
        mlp, x, tape, opt = model
        for xi, v in zip(x, W1_XS[k % 4]):
            xi.data = v
        loss = tape.forward()
        tape.backward()
        opt.step()
        return loss

    alone = build()
    want = [step(alone, k) for k in range(steps)]
    shared, lock, got, taken = build(), threading.Lock(), [None] * steps, [0]

    def work(i):
        while True:
            with lock:
                k = taken[0]
                if k == steps:
                    return
                taken[0] += 1
                got[k] = step(shared, k)

    run_threads(work, 3)
    assert got == want
    assert pygrad.get_data(shared[0]).tolist() == pygrad.get_data(alone[0]).tolist()
    del alone, shared
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def test_threads_reading_one_model_need_no_lock(arena_baseline):
    """Inference from several threads on one model (no writes): each thread
    builds its own graphs on the shared parameters, whose reference counts
    all threads change at once."""
    mlp = w1_model(pygrad, "nn", seed=5)
    inputs = [[random.Random(i).uniform(-2, 2) for _ in range(3)] for i in range(300)]
    want = [mlp(x).data for x in inputs]

    def work(i):
        out = []
        for x in inputs:
            y = mlp([Value(v) for v in x])
            out.append(y.data)
            y.backward()  # accumulates into the shared grads: only data is compared
        return out

    assert run_threads(work, 4) == [want] * 4
    del mlp
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_other_threads_train(arena_baseline):
    """os.fork() while threads are in the middle of training: the child
    inherits an arena no thread was inside (C calls hold the GIL, and fork
    takes it), so it builds and backpropagates without deadlock, with the
    parent's Values intact."""
    x = Value(0.5)
    trainers = [way_nn(30 + i) for i in range(3)]
    stop = threading.Event()

    def train(i):
        while not stop.is_set():
            trainers[i]()

    threads = [threading.Thread(target=train, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        codes = []
        for _ in range(5):
            pid = os.fork()
            if pid == 0:  # the child: exit status 0 if all is well
                ok = False
                try:
                    y = (x * 3.0).tanh()
                    y.backward()
                    ok = y.data == math.tanh(1.5) and x.grad == 3.0 * (1 - y.data ** 2)
                finally:
                    os._exit(0 if ok else 1)
            codes.append(_wait(pid, 60))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert codes == [0] * 5
    del trainers, x
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline


def _wait(pid, timeout):
    """The exit status of child pid, or "hung" (it is killed) after timeout s."""
    for _ in range(int(timeout / 0.01)):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


# ---- the C library from several pthreads -------------------------------------

def _compiler():
    if os.name != "posix" or not os.path.isdir(CSRC):
        return None
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")


def _build_harness(cc, tmp_path, flags):
    exe = str(tmp_path / "threads_harness")
    sources = [os.path.join(HERE, "threads_harness.c")] + [
        os.path.join(CSRC, f) for f in sorted(os.listdir(CSRC)) if f.endswith(".c")]
    cmd = [cc, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-ffp-contract=off", "-pthread",
           *flags, "-I", CSRC, *sources, "-o", exe, "-lm"]
    return exe, subprocess.run(cmd, capture_output=True, text=True)


def _env_without_preload():
    """The environment without the CI's preloaded ASan runtime (a
    ThreadSanitizer program cannot start with it)."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}


def test_c_library_from_pthreads_at_once(tmp_path):
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler (or not POSIX, or no csrc/ beside tests/)")
    exe, built = _build_harness(cc, tmp_path, [])
    assert built.returncode == 0, built.stderr
    run = subprocess.run([exe], capture_output=True, text=True, timeout=600,
                         env=_env_without_preload())
    assert (run.returncode, run.stdout, run.stderr) == (0, "ok\n", "")


def test_c_library_from_pthreads_under_thread_sanitizer(tmp_path):
    """The same program built with -fsanitize=thread: any data race in the
    library (or the harness) is reported, and fails the test."""
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler (or not POSIX, or no csrc/ beside tests/)")
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    if subprocess.run([cc, "-fsanitize=thread", str(probe), "-o", str(tmp_path / "probe")],
                      capture_output=True).returncode != 0:
        pytest.skip(f"{cc} cannot build with -fsanitize=thread here")
    exe, built = _build_harness(cc, tmp_path, ["-fsanitize=thread", "-fno-omit-frame-pointer"])
    assert built.returncode == 0, built.stderr
    env = dict(_env_without_preload(), TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    run = subprocess.run([exe], capture_output=True, text=True, timeout=600, env=env)
    if run.returncode != 0 and "WARNING: ThreadSanitizer" not in run.stderr \
            and "FATAL: ThreadSanitizer" in run.stderr:
        pytest.skip("ThreadSanitizer cannot run on this system: " + run.stderr.strip()[:200])
    assert (run.returncode, run.stdout, run.stderr) == (0, "ok\n", "")
