"""The command line (pygrad.cli: `pygrad` and `python -m pygrad`) and the
plots it writes (pygrad.plot, with matplotlib: those tests skip without it,
and one checks what `train` says when matplotlib cannot be imported)."""
import importlib.metadata
import os
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pygrad.plot
from pygrad.cli import main
from pygrad.plot import save_loss_plot, save_speed_plot
from pygrad.runs import W1


def png_size(data):
    """(width, height) of a PNG file's bytes (its signature and header checked)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plots draw, kept for a look at their axes."""
    pytest.importorskip("matplotlib")
    drawn = []
    save = pygrad.plot._save
    monkeypatch.setattr(pygrad.plot, "_save", lambda fig, path: (drawn.append(fig), save(fig, path)))
    return drawn


# ---- plots by matplotlib -------------------------------------------------------------

def test_the_loss_plot_has_a_title_axis_names_and_a_log_scale(tmp_path, figures):
    path = tmp_path / "loss.png"
    save_loss_plot(np.geomspace(10.0, 1e-4, 5000), path, title="W1: the tutorial network",
                   xlabel="iteration")
    width, height = png_size(path.read_bytes())
    assert (width, height) == (800, 500)
    (ax,) = figures[-1].axes
    assert ax.get_title() == "W1: the tutorial network"
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "loss (log scale)"
    assert ax.get_yscale() == "log" and ax.get_xlim() == (1, 5000)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "1,000" in labels and "5,000" in labels  # readable ticks


@pytest.mark.parametrize("losses, scale", [([0.3] * 7, "linear"), ([1.0, 0.5, 0.25], "linear"),
                                           ([2.0, -1.0, 0.5], "linear"), ([5.0, 0.01], "log"),
                                           ([1.0, 0.0, float("nan"), 0.1, float("inf"), 1e-3], "linear"),
                                           ([float("nan")], "linear"), ([2.0], "linear")])
def test_the_loss_axis_is_logarithmic_only_where_it_fits(losses, scale, tmp_path, figures):
    save_loss_plot(losses, tmp_path / "x.png", xlabel="step")
    (ax,) = figures[-1].axes
    assert ax.get_yscale() == scale and ax.get_xlabel() == "step"
    assert png_size((tmp_path / "x.png").read_bytes())


def test_the_speed_plot_has_a_panel_per_table(tmp_path, figures):
    rows = [dict(impl="C by hand", median=1.1e-6, min=1e-6, max=1.2e-6),
            dict(impl="pygrad (c) Tape.train", median=2e-6, min=1.9e-6, max=2.5e-6),
            dict(impl="reference (pure Python)", median=9e-4, min=8e-4, max=1e-3)]
    save_speed_plot([("W1", "iteration", rows), ("W2", "step", rows[:2]), ("none", "x", [])],
                    tmp_path / "speed.png", title="pygrad bench")
    assert png_size((tmp_path / "speed.png").read_bytes())
    w1, w2 = figures[-1].axes
    assert w1.get_title(loc="left") == "W1" and w1.get_xscale() == "log"
    assert [t.get_text() for t in w1.get_yticklabels()] == [r["impl"] for r in rows]
    assert "us per iteration" in w1.get_xlabel() and "us per step" in w2.get_xlabel()


def test_a_plot_that_fails_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    path = tmp_path / "keep.png"
    save_loss_plot([1.0, 0.5], path)
    before = path.read_bytes()

    def half_then_fail(self, f, **kwargs):
        f.write(b"\x89PNG half a file")
        raise OSError(28, "No space left on device")

    from matplotlib.figure import Figure
    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        save_loss_plot([3.0, 2.0], path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["keep.png"]


def test_atomic_write_keeps_the_umask_and_writes_devices_in_place(tmp_path):
    with pygrad.plot.atomic_write(tmp_path / "a.bin") as f:
        f.write(b"data")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.bin").read_bytes() == b"data"
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == 0o666 & ~mask
    with pygrad.plot.atomic_write(os.devnull) as f:  # not replaced by a regular file
        f.write(b"gone")
    assert not os.path.isfile(os.devnull)
    with pytest.raises(IsADirectoryError):
        with pygrad.plot.atomic_write(tmp_path):
            pass


# ---- pygrad train ------------------------------------------------------------------

def test_train_w1_prints_the_final_loss_and_time_and_writes_a_plot(tmp_path, capsys):
    out = tmp_path / "curve.png"
    assert main(["train", "--iters", "300", "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    lines = stdout.splitlines()
    assert f"final loss {W1().train(300)[-1]!r}" in lines  # W1, seed 0, the default
    assert any(line.startswith("time ") and "iterations/s" in line for line in lines)
    assert "300/300" in stderr and "100%" in stderr  # the progress bar
    if pygrad.plot.have_matplotlib():
        assert png_size(out.read_bytes()) and f"loss curve written to {out}" in lines
    else:
        assert not out.exists() and any("pip install 'pygrad-engine[plot]'" in line for line in lines)


@pytest.mark.parametrize("argv", [
    ["-w", "W1-torch", "--iters", "30"], ["-w", "w1b", "--iters", "20"],
    ["-w", "W2", "--iters", "2"], ["-w", "w3", "--iters", "50", "--seed", "1"],
    ["-w", "DIGITS", "--iters", "1"], ["--way", "tape", "--iters", "50", "--lr", "0.05"],
    ["--way", "tutorial", "--engine", "reference", "--iters", "5"],
    ["-w", "W3", "--engine", "reference", "--iters", "5"],
])
def test_train_every_workload(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--no-progress", *argv]) == 0
    stdout, stderr = capsys.readouterr()
    assert "final loss " in stdout and stderr == ""
    if pygrad.plot.have_matplotlib():
        (png,) = tmp_path.glob("*_loss.png")
        assert png_size(png.read_bytes())


def test_train_digits_reports_its_accuracy(tmp_path, capsys):
    assert main(["train", "-w", "digits", "--iters", "1", "--no-plot", "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "held-out accuracy" in stdout and "epochs/s" in stdout


def test_train_w4_checks_the_lectures_numbers(capsys):
    assert main(["train", "-w", "W4"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("agrees") == 5 and "101770" in stdout and "DISAGREES" not in stdout


def test_no_plot_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--iters", "3", "--no-plot", "--no-progress"]) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_run_ends_with_a_one_line_error(tmp_path, capsys):
    assert main(["train", "-w", "digits", "--lr", "1000", "--iters", "1", "--no-progress",
                 "--no-plot"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("pygrad train: error: epoch 1: OverflowError")
    assert err[0].endswith("(the run diverged: --lr 1000 is 1e+05 times the default for digits "
                           "(0.01): try a smaller --lr)")


def test_a_loss_that_is_not_finite_stops_training_naming_the_step(tmp_path, monkeypatch, capsys):
    """W2 at --lr 1e6 gave `final loss nan` and exit status 0."""
    monkeypatch.chdir(tmp_path)
    from pygrad.runs import W2
    steps = []
    real = W2._train
    monkeypatch.setattr(W2, "_train", lambda self, n, losses, progress=None: (steps.append(n), real(self, n, losses, progress)))
    assert main(["train", "-w", "W2", "--lr", "1e6", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    trained = sum(steps)
    run = W2(lr=1e6)
    losses = run.train(100)
    first = next(i for i, x in enumerate(losses) if not np.isfinite(x))
    assert err == (f"pygrad train: error: step {first + 1}: the loss is {losses[first]!r} (the run "
                   "diverged: --lr 1e+06 is 1e+06 times the default for W2 (1): try a smaller --lr)\n")
    assert "final loss" not in out and list(tmp_path.iterdir()) == []  # no plot
    assert trained == first + 1  # it stopped there (a chunk is one step here)


def test_a_diverging_python_loop_names_its_iteration(capsys):
    argv = ["train", "--lr", "10", "--iters", "5000", "--no-progress", "--no-plot"]
    assert main(argv + ["-w", "W1-torch"]) == 1
    err = capsys.readouterr().err
    failing = int(err.split("iteration ")[1].split(":")[0])
    losses = []
    with pytest.raises(OverflowError):  # and that is the iteration that raises
        from pygrad.runs import W1Torch
        W1Torch(lr=10).train(5000, losses)
    assert failing == len(losses) + 1 and "OverflowError" in err and "try a smaller --lr" in err


@pytest.mark.parametrize("argv, verdict", [
    (["-w", "W3", "--lr", "1e300", "--iters", "200"], "wrong (the outputs saturated, weights up to "),
    (["-w", "W3", "--seed", "2", "--iters", "200"], "wrong (too few iterations, or a local minimum"),
    (["--lr", "1e200", "--iters", "200", "--way", "tape"], "wrong (the outputs saturated"),
])
def test_a_wrong_result_gets_advice_that_fits_its_cause(argv, verdict, capsys):
    """W3 at --lr 1e300 used to advise another seed: its sigmoids saturate."""
    assert main(["train", "--no-progress", "--no-plot", *argv]) == 0
    assert verdict in capsys.readouterr().out


NO_MATPLOTLIB = textwrap.dedent("""
    import sys
    class Hide:  # matplotlib cannot be imported
        def find_spec(self, name, path=None, target=None):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ImportError("no matplotlib here")
    sys.meta_path.insert(0, Hide())
    from pygrad.cli import main
    sys.exit(main(["train", "--iters", "20", "--no-progress"]))
""")


def test_without_matplotlib_train_trains_and_says_how_to_get_the_plot(tmp_path):
    out = run([sys.executable, "-c", NO_MATPLOTLIB], tmp_path)
    assert out.returncode == 0 and "final loss " in out.stdout, out.stderr
    assert out.stdout.splitlines()[-1] == ("no loss curve drawn: pip install 'pygrad-engine[plot]' "
                                           "(matplotlib) to have it written to w1_loss.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["train", "--iters", "x"], "argument --iters: invalid int value: 'x'"),
    (["train", "--iters", "0"], "argument --iters: must be at least 1"),
    (["train", "--iters", str(2**64)], "argument --iters: must be at most 100,000,000"),
    (["train", "--seed", "-1"], "argument --seed: must be at least 0"),
    (["train", "--seed", str(2**32)], "argument --seed: must be at most 4,294,967,295"),
    (["train", "--out", "."], "argument --out: '.' does not end in .png"),
    (["train", "--lr", "-1"], "argument --lr: must be a positive number"),
    (["train", "--lr", "nan"], "argument --lr: must be a positive number"),
    (["train", "--seed", "1.5"], "argument --seed: invalid int value"),
    (["train", "-w", "W9"], "unknown workload 'W9' (choose from W1, W1-torch, W1b, W2, W3, digits, W4)"),
    (["train", "--out", "curve.svg"], "argument --out: 'curve.svg' does not end in .png"),
    (["train", "--out", "/no/such/folder/c.png"], "argument --out: no folder"),
    (["train", "--way", "fast"], "argument --way: invalid choice"),
    (["train", "-w", "W3", "--way", "tape"], "argument --way: only for W1"),
    (["train", "--way", "tape", "--engine", "reference"], "tape (pygrad.Tape) runs on the pygrad"),
    (["train", "-w", "digits", "--engine", "reference"], "digits runs on pygrad only"),
    (["train", "-w", "W4", "--iters", "7"], "argument --iters: W4 trains nothing"),
    (["train", "-w", "W4", "--way", "tape"], "argument --way: W4 trains nothing"),
    (["train", "-w", "W4", "--seed", "0"], "argument --seed: W4 trains nothing"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "extra"], "unrecognized arguments: extra"),
    ([], "the following arguments are required"),
    (["fly"], "argument COMMAND: invalid choice: 'fly'"),
])
def test_bad_arguments_give_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == "" and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("pygrad") and ": error: " in stderr and message in stderr, stderr


@pytest.mark.parametrize("argv, words", [
    (["--help"], ["train", "bench"]),
    (["train", "--help"], ["--iters", "--lr", "--seed", "--out", "--workload", "W1-torch", "digits"]),
])
def test_help(argv, words, capsys):
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert all(w in stdout for w in words)


# ---- as a program: python -m pygrad, the pygrad script, pygrad bench --------------------

def run(args, cwd):
    """Run a command away from the source folder (whose pygrad/ is not built)."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_python_m_pygrad_exit_status(tmp_path):
    bad = run([sys.executable, "-m", "pygrad", "train", "--iters", "x"], tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "python -m pygrad train: error: argument --iters: invalid int value: 'x'\n"
    ok = run([sys.executable, "-m", "pygrad", "train", "--iters", "10", "--no-plot"], tmp_path)
    assert ok.returncode == 0 and "final loss " in ok.stdout and "10/10" in ok.stderr


def test_console_script(tmp_path):
    # the distribution's own entry points (entry_points(group=...) needs 3.10)
    dist = importlib.metadata.distribution("pygrad-engine")
    (entry,) = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == "pygrad"]
    assert entry.value == "pygrad.cli:main"
    script = shutil.which("pygrad", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the pygrad script is not beside this Python")
    assert run([script, "train", "--help"], tmp_path).returncode == 0
    bad = run([script, "train", "-w", "W0"], tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_version(tmp_path, capsys):
    """pygrad --version names the version, the distribution and where the
    package was imported from (another PyPI project installs a pygrad too)."""
    import pygrad
    assert main(["--version"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"pygrad {pygrad.__version__} (pygrad-engine) from ")
    assert os.path.dirname(os.path.abspath(pygrad.__file__)) in line and line.count("\n") == 1
    assert importlib.metadata.version("pygrad-engine") == pygrad.__version__
    ran = run([sys.executable, "-m", "pygrad", "--version"], tmp_path)
    assert ran.returncode == 0 and ran.stdout == line and ran.stderr == ""


def test_bench_help_and_bad_arguments(tmp_path):
    """pygrad bench forwards its options to the suite (not run here: too long)."""
    helped = run([sys.executable, "-m", "pygrad", "bench", "--help"], tmp_path)
    assert helped.returncode == 0 and "--quick" in helped.stdout and "--json" in helped.stdout
    bad = run([sys.executable, "-m", "pygrad", "bench", "--w1-iters", "many"], tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "pygrad bench: error: argument --w1-iters: invalid int value: 'many'\n"


def test_bench_ships_its_c_loops():
    from importlib import resources
    assert "int main" in resources.files("pygrad.bench").joinpath("loops.c").read_text()


def test_a_plot_path_that_cannot_be_written_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "taken.png").mkdir()  # a folder where the file should go
    assert main(["train", "--iters", "3", "--no-progress", "--out", str(tmp_path / "taken.png")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"pygrad train: error: argument --out: '{tmp_path / 'taken.png'}' is a folder"]


def test_a_plot_that_cannot_be_written_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")

    def full(fig, path):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(pygrad.plot, "_save", full)
    assert main(["train", "--iters", "3", "--no-progress", "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"pygrad train: error: writing {tmp_path / 'c.png'}: [Errno 28] No space left on device"]


def test_ctrl_c_stops_training_with_status_130(monkeypatch, capsys):
    def interrupted(self, n, losses=None, progress=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(W1, "train", interrupted)
    assert main(["train", "--no-progress", "--no-plot"]) == 130
    assert capsys.readouterr().err == "pygrad train: interrupted after 0 iterations\n"
