"""pygrad sweep (pygrad.sweep): a workload over many seeds, in worker
processes or on a Dask cluster (those tests skip without `distributed`),
each run's numbers a serial run's to the bit."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pygrad.cli import main
from pygrad.runs import W2, W3

ITERS = 3000  # W3's default is 100,000: the same code, shorter


def sweep(tmp_path, *args, name="runs.json"):
    path = tmp_path / name
    assert main(["sweep", "--no-progress", "--json", str(path), *args]) == 0
    return json.loads(path.read_text())["runs"]


def serial(seed, iters=ITERS, cls=W3):
    run = cls(seed=seed, iters=iters)
    return run.train(iters)[-1], run.converged()


def test_the_runs_equal_serial_runs_with_one_worker_or_two(tmp_path, capsys):
    one = sweep(tmp_path, "-w", "W3", "--seeds", "0-19", "--iters", str(ITERS), "--workers", "1",
                name="one.json")
    two = sweep(tmp_path, "-w", "w3", "--seeds", "0-19", "--iters", str(ITERS), "--workers", "2",
                name="two.json")
    assert [r["seed"] for r in one] == [r["seed"] for r in two] == list(range(20))
    for a, b in zip(one, two):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items()
                                                                  if k != "seconds"}
    for r in one[:4]:  # and each is the run `pygrad train -w W3 --seed S` makes
        assert (r["final_loss"], r["converged"]) == serial(r["seed"])
        assert r["workload"] == "W3" and r["lr"] == 0.1 and r["iters"] == ITERS
        assert r["seconds"] > 0 and r["error"] is None and r["diverged_at"] is None
    out = capsys.readouterr().out
    assert "in 2 worker processes" in out and "converged: " in out and "fastest: seed " in out


def test_the_summary_counts_and_spreads(tmp_path, capsys):
    runs = sweep(tmp_path, "-w", "W3", "--seeds", "0-2,5", "--iters", "20000", "--workers", "1")
    out = capsys.readouterr().out.splitlines()
    converged = [r["seed"] for r in runs if r["converged"]]
    assert [r["seed"] for r in runs] == [0, 1, 2, 5]
    assert f"converged: {len(converged)} of 4 (XOR right (every prediction rounds to its target))" in out
    missed = [s for s in (0, 1, 2, 5) if s not in converged]
    assert f"  not converged: seed{'s' if len(missed) > 1 else ''} {', '.join(map(str, missed))}" in out
    finals = sorted(r["final_loss"] for r in runs)
    assert any(line.startswith(f"final loss: min {finals[0]:.4g}") and line.endswith(f"max {finals[-1]:.4g}")
               for line in out)
    fastest = min(runs, key=lambda r: r["seconds"])
    assert any(line.startswith(f"fastest: seed {fastest['seed']} in ") for line in out)


def test_diverged_runs_are_recorded_as_such(tmp_path, capsys):
    runs = sweep(tmp_path, "-w", "W2", "--seeds", "3,4", "--lr", "1e6", "--workers", "1")
    for r in runs:
        losses = W2(seed=r["seed"], lr=1e6).train(100)
        first = next(i for i, x in enumerate(losses) if not (abs(x) < float("inf")))
        assert r["final_loss"] is None and r["diverged_at"] == first + 1 and not r["converged"]
    assert "diverged: 2 (seeds 3, 4)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def distributed():
    return pytest.importorskip("distributed")


@pytest.mark.parametrize("processes", [False, True])
def test_a_local_dask_cluster_gives_the_same_runs(processes, distributed, tmp_path):
    here = sweep(tmp_path, "-w", "W3", "--seeds", "0-19", "--iters", str(ITERS), "--workers", "1",
                 name="here.json")
    with distributed.LocalCluster(n_workers=2 if processes else 1, threads_per_worker=1 if processes else 2,
                                  processes=processes, dashboard_address=None) as cluster:
        there = sweep(tmp_path, "-w", "W3", "--seeds", "0-19", "--iters", str(ITERS), "--dask",
                      cluster.scheduler_address, name="there.json")
    assert [(r["seed"], r["final_loss"], r["converged"]) for r in there] == \
        [(r["seed"], r["final_loss"], r["converged"]) for r in here]


def test_an_unreachable_scheduler_is_one_line(distributed, capsys):
    assert main(["sweep", "-w", "W3", "--seeds", "0", "--dask", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        "pygrad sweep: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")


HIDE_DISTRIBUTED = textwrap.dedent("""
    import sys
    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "distributed" or name.startswith("distributed."):
                raise ImportError("no distributed here")
    sys.meta_path.insert(0, Hide())
    from pygrad.cli import main
    sys.exit(main(["sweep", "-w", "W3", "--seeds", "0-3", "--dask", "tcp://127.0.0.1:8786"]))
""")


def test_dask_without_distributed_says_what_to_install(tmp_path):
    out = subprocess.run([sys.executable, "-c", HIDE_DISTRIBUTED], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("pygrad sweep: error: argument --dask: needs Dask's distributed "
                          "(pip install 'pygrad-engine[dask]')\n")


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: -w/--workload, --seeds"),
    (["-w", "W3"], "the following arguments are required: --seeds"),
    (["-w", "W4", "--seeds", "0"], "unknown workload 'W4'"),
    (["-w", "W3", "--seeds", "5-2"], "'5-2': seeds run from 0 to 4294967295, ranges upwards"),
    (["-w", "W3", "--seeds", "-1"], "'-1' is not a seed or a range"),
    (["-w", "W3", "--seeds", "a"], "'a' is not a seed or a range like 0-99"),
    (["-w", "W3", "--seeds", "0-3,2"], "names a seed twice"),
    (["-w", "W3", "--seeds", "0-100000"], "at most 100,000 runs"),
    (["-w", "W3", "--seeds", f"0-{2**40}"], "seeds run from 0 to 4294967295"),
    (["-w", "W3", "--seeds", "0", "--workers", "0"], "argument --workers: must be at least 1"),
    (["-w", "W3", "--seeds", "0", "--workers", "2", "--dask", "x:1"], "not allowed with argument"),
    (["-w", "W3", "--seeds", "0", "--iters", str(2**63)], "argument --iters: must be at most"),
    (["-w", "W3", "--seeds", "0", "--lr", "inf"], "argument --lr: must be a positive number"),
    (["-w", "W3", "--seeds", "0", "--json", "/no/such/folder/r.json"], "argument --json: no folder"),
])
def test_bad_arguments_give_one_line_and_status_2(argv, message, capsys):
    assert main(["sweep", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and message in err, err


def test_help(capsys):
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(w in out for w in ("--seeds", "--workers", "--dask", "--json", "--lr", "--iters"))


CTRL_C = textwrap.dedent("""
    import sys
    from pygrad.cli import main
    sys.exit(main(["sweep", "-w", "W3", "--seeds", "0-7", "--workers", "2", "--no-progress"]))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX process group")
def test_ctrl_c_stops_the_workers_cleanly(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it:
    the sweep ends with status 130 and one line, and no worker is left."""
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    header = proc.stdout.readline()  # printed once the runs are under way
    assert header.startswith("W3: XOR")
    time.sleep(3.0)  # the workers are spawned and training (each run takes seconds)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 130, err
    assert err.splitlines()[-1].startswith("pygrad sweep: interrupted after ") and "Traceback" not in err
    deadline = time.time() + 10
    while True:  # every process of the group (the workers) is gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline, "a worker outlived the sweep"
        time.sleep(0.1)
