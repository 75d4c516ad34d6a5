"""The benchmark suite's machinery (pygrad.bench): how it times (warm-up,
interleaved repeats, medians), what it checks before it runs, what it names
when a peer cannot run, and one tiny run of it end to end. No timing is
asserted: the machine is shared."""
import json
import os
import subprocess
import sys
import time

import pytest

import pygrad
from pygrad.bench import run as bench
from pygrad.bench.timing import Impl, measure


def fake(name, log, losses=(1.0, 0.5), seconds=(1.0,)):
    """An Impl that logs its calls and gives these losses and, in turn, these times."""
    calls = []

    def run(iters):
        log.append((name, iters))
        calls.append(iters)
        return {"seconds": seconds[(len(calls) - 1) % len(seconds)], "losses": list(losses)}
    return run


def test_measure_warms_up_then_interleaves_rotated_rounds():
    log = []
    impls = [Impl("a", fake("a", log), 100, 3), Impl("b", fake("b", log), 10, 3),
             Impl("slow", fake("slow", log), 4, 1), Impl("jit", fake("jit", log), 50, 3, warmup=50)]
    rows = measure(impls, "test")
    assert log[:4] == [("a", 10), ("b", 1), ("slow", 1), ("jit", 50)]  # warm-ups, a tenth or given
    timed = [name for name, _ in log[4:]]
    assert timed == ["a", "b", "slow", "jit",  # round 1
                     "b", "jit", "a",          # round 2, rotated by one (slow sat out)
                     "jit", "a", "b"]          # round 3
    assert [len(r.seconds) for r in rows] == [3, 3, 1, 3]
    assert all(r.repeatable for r in rows)


def test_rows_give_medians_and_spreads_per_iteration_and_catch_unrepeatable_runs():
    log = []
    flaky = iter([[1.0, 0.5], [1.0, 0.5], [1.0, 0.25], [1.0, 0.5]])
    impls = [Impl("timed", fake("timed", log, seconds=(5.0, 1.0, 3.0, 2.0, 9.0)), 10, 4),
             Impl("flaky", lambda n: {"seconds": 1.0, "losses": next(flaky)}, 10, 3)]
    timed, bad = measure(impls)
    assert timed.seconds == [1.0, 3.0, 2.0, 9.0]  # after the warm-up's 5.0
    assert (timed.median, timed.fastest, timed.slowest) == (0.25, 0.1, 0.9)
    assert timed.repeatable and not bad.repeatable
    d = timed.as_dict()
    assert d["median"] == 0.25 and d["repeats"] == 4 and d["final_loss"] == 0.5


def test_micrograd_repeats_may_differ_in_the_last_bits_only():
    """micrograd adds gradients in the order of a set of Values (their
    addresses): its repeats are compared to 1e-12, every other row's to the bit."""
    def runs(*finals):
        it = iter(finals)
        return lambda n: {"seconds": 1.0, "losses": [1.0, next(it)]}
    last_bits = (0.7429006313851131, 0.742900631385113, 0.7429006313851131)
    far = (0.7429006313851131, 0.7429006313851131, 0.75)
    rows = measure([Impl("micrograd", runs(*last_bits), 2, 2, bitwise=False),
                    Impl("micrograd, far", runs(*far), 2, 2, bitwise=False),
                    Impl("pygrad", runs(*last_bits), 2, 2)])
    assert [r.repeatable for r in rows] == [True, False, False]


def test_agreement_fails_on_a_far_row_or_an_unrepeatable_one(capsys):
    log = []
    rows = measure([Impl("ref", fake("ref", log, losses=(1.0, 0.5)), 2, 1),
                    Impl("pygrad", fake("p", log, losses=(1.0, 0.5 + 1e-15)), 2, 1),
                    Impl("torch", fake("t", log, losses=(1.0, 0.5 + 1e-12)), 2, 1, exact=False)])
    assert not bench.agreement(rows, "X", tol=0.0)  # pygrad must be exact here
    assert bench.agreement(rows, "X", tol=1e-14)
    rows[2].repeatable = False
    assert not bench.agreement(rows, "X", tol=1e-14)
    assert "a repeat gave other losses than the first: ['torch']" in capsys.readouterr().out


def test_a_missing_peer_or_compiler_is_named(monkeypatch):
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec",
                        lambda name: None if name in ("jax", "micrograd") else real(name))
    monkeypatch.setattr(bench.baselines, "_find_compiler", lambda: None)
    monkeypatch.setattr(bench.baselines, "_c_tried", False)
    monkeypatch.setattr(bench.baselines, "_c_binary", None)
    peers = bench.Peers()
    assert not peers.jax and not peers.micrograd and not peers.c
    assert "JAX: not installed (pip install jax)" in peers.missing
    assert "micrograd: not installed (pip install 'pygrad-engine[bench]')" in peers.missing
    assert any(m.startswith("C by hand: no C compiler found") for m in peers.missing)
    names = [i.name for i in bench.peer_impls(peers, "w1", 10, 1, [0.0] * 41)]
    assert "C by hand" not in names and not any(n.startswith("JAX") for n in names)


def test_the_fast_order_rows_run_only_where_tape_takes_an_order(monkeypatch):
    class OrderedTape(pygrad.Tape):
        def __init__(self, root, order="exact"):
            super().__init__(root)
    assert bench.Peers().fast_order == ("order" in __import__("inspect").signature(
        pygrad.Tape).parameters)
    monkeypatch.setattr(pygrad, "Tape", OrderedTape)
    assert bench.Peers().fast_order


def run_bench(args, cwd, timeout=600):
    env = {**os.environ, **bench.THREAD_VARIABLES}
    return subprocess.run([sys.executable, "-m", "pygrad", "bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--json", "/no/such/folder/r.json"], "argument --json: no folder '/no/such/folder'"),
    (["--json", "."], "argument --json: '.' is a folder"),
    (["--plot", "speed.svg"], "argument --plot: 'speed.svg' does not end in .png"),
    (["--plot", "/no/such/folder/s.png"], "argument --plot: no folder"),
    (["--w1-iters", "0"], "argument --w1-iters: must be at least 1"),
    (["--repeats", str(2**64)], "argument --repeats: must be at most 1,000"),
    (["--only", "W9"], "argument --only: unknown table 'W9'"),
    (["--seed", "-3"], "argument --seed: must be at least 0"),
    (["--w1-iters", "many"], "argument --w1-iters: invalid int value: 'many'"),
])
def test_bad_arguments_fail_at_once_with_one_line(args, message, tmp_path):
    start = time.perf_counter()
    out = run_bench(args, tmp_path)
    assert out.returncode == 2 and out.stdout == "", out.stdout
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr, out.stderr
    assert time.perf_counter() - start < 60  # nothing ran (a run of the suite takes minutes)


TINY = ["--only", "W1,W2,chain,mnist", "--w1-iters", "30", "--ref-iters", "5", "--w2-steps", "2",
        "--w2-slow-steps", "1", "--chain-steps", "50", "--mnist-steps", "3", "--repeats", "2",
        "--slow-repeats", "1"]


def test_a_tiny_run_of_the_whole_suite(tmp_path):
    """Every table, every implementation that can run here, agreeing; the
    JSON holds medians and spreads; with matplotlib, the plot is drawn."""
    plot = ["--plot", str(tmp_path / "speed.png")] if pygrad.plot.have_matplotlib() else []
    out = run_bench(TINY + ["--json", str(tmp_path / "r.json"), *plot], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout and "Traceback" not in out.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert set(record["results"]) == {"W1", "W2", "W5_chain", "W5_mnist"}
    w1 = {r["impl"]: r for r in record["results"]["W1"]}
    for name in ("reference (pure Python)", "pygrad (a) tutorial classes",
                 "pygrad (b) pygrad.nn, same loop", "pygrad (c) Tape.train", "numpy by hand"):
        row = w1[name]
        assert row["min"] <= row["median"] <= row["max"] and row["repeatable"]
    assert w1["pygrad (a) tutorial classes"]["repeats"] == 2 and w1["reference (pure Python)"]["repeats"] == 1
    assert w1["pygrad (c) Tape.train"]["losses"][:5] == w1["reference (pure Python)"]["losses"]
    for note in record["not_run"]:
        assert f"not run here: {note}" in out.stdout
    if plot:
        assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_json_file_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path):
    out = run_bench(["--only", "chain", "--chain-steps", "10", "--repeats", "1", "--json",
                     "/dev/full"], tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1] == \
        "pygrad bench: error: writing /dev/full: [Errno 28] No space left on device"
    assert "W5: a chain of 33 nodes" in out.stdout  # after the suite, as the last line
