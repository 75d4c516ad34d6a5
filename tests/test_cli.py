"""The command line (pygrad.cli: `pygrad` and `python -m pygrad`) and the loss
plots it writes (pygrad.plot)."""
import importlib.metadata
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from pygrad.cli import main
from pygrad.plot import HEIGHT, WIDTH, png_loss_plot, save_loss_plot
from pygrad.workloads import W1


def read_png(data):
    """Check a PNG file's structure (signature, chunks and their CRCs, 8-bit
    RGB or RGBA, the image data's size); return (width, height, pixels), the
    pixels when every row is stored unfiltered (the built-in writer's), else
    None."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    assert data.endswith(b"IEND\xaeB`\x82")
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and color in (2, 6)  # RGB, RGBA
    channels = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert raw.shape[1] == 1 + channels * width
    if (raw[:, 0] != 0).any():  # a row filtered: decoding it is not worth the code here
        return width, height, None
    return width, height, raw[:, 1:].reshape(height, width, channels)[:, :, :3]


def line_rows(pixels):
    """For each pixel column, the top row of the plotted line (blue), or -1."""
    blue = (pixels == (31, 119, 180)).all(axis=2)
    return np.where(blue.any(axis=0), blue.argmax(axis=0), -1)


# ---- the built-in PNG writer and matplotlib ----------------------------------------

def test_builtin_plot_is_a_png_of_a_falling_line():
    width, height, pixels = read_png(png_loss_plot(np.geomspace(10.0, 1e-4, 5000)))
    assert (width, height) == (WIDTH, HEIGHT)
    rows = line_rows(pixels)
    cols = np.flatnonzero(rows >= 0)
    assert len(cols) > WIDTH // 2  # one unbroken line across the plot area
    assert (np.diff(cols) == 1).all()
    assert (np.diff(rows[cols]) >= 0).all() and rows[cols[-1]] > rows[cols[0]] + HEIGHT // 2
    assert (pixels[cols[0] - 1:, :, :] == 0).all(axis=2).any()  # the axes and labels are black


def test_builtin_plot_of_few_points_and_of_a_flat_line():
    rows = line_rows(read_png(png_loss_plot([1.0, 0.5, 0.25]))[2])
    assert (rows >= 0).sum() > WIDTH // 2  # three points: a line between them
    flat = line_rows(read_png(png_loss_plot([0.3] * 7))[2])
    assert len(set(flat[flat >= 0].tolist())) == 1
    read_png(png_loss_plot([2.0]))


def test_builtin_plot_leaves_out_what_a_log_scale_cannot_show():
    read_png(png_loss_plot([1.0, 0.0, float("nan"), 0.1, float("inf"), -1.0, 0.01]))
    with pytest.raises(ValueError, match="no positive"):
        png_loss_plot([0.0, -1.0, float("nan")])


def test_save_loss_plot_builtin(tmp_path):
    path = tmp_path / "loss.png"
    assert save_loss_plot([3.0, 2.0, 1.0], path, writer="builtin") == "builtin"
    assert read_png(path.read_bytes())[:2] == (WIDTH, HEIGHT)
    with pytest.raises(ValueError, match="writer"):
        save_loss_plot([1.0], tmp_path / "x.png", writer="svg")


def test_save_loss_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss.png"
    assert save_loss_plot(np.geomspace(1.0, 1e-3, 1000), path, title="t") == "matplotlib"
    assert save_loss_plot([1.0, 0.0, 0.5], path, writer="matplotlib") == "matplotlib"
    width, height, _ = read_png(path.read_bytes())
    assert width > 100 and height > 100


def test_save_loss_plot_picks_matplotlib_when_installed(tmp_path):
    try:
        import matplotlib  # noqa: F401
        expected = "matplotlib"
    except ImportError:
        expected = "builtin"
    assert save_loss_plot([1.0, 0.5], tmp_path / "a.png") == expected


# ---- pygrad train ------------------------------------------------------------------

def test_train_w1_prints_the_final_loss_and_time_and_writes_a_plot(tmp_path, capsys):
    out = tmp_path / "curve.png"
    assert main(["train", "--iters", "300", "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    lines = stdout.splitlines()
    assert f"final loss {W1().train(300)[-1]!r}" in lines  # W1, seed 0, the default
    assert any(line.startswith("time ") and "iterations/s" in line for line in lines)
    assert "300/300" in stderr and "100%" in stderr  # the progress bar
    assert read_png(out.read_bytes())
    assert f"loss curve written to {out}" in stdout


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
    (png,) = tmp_path.glob("*_loss.png")
    read_png(png.read_bytes())


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


def test_a_diverging_run_names_the_iteration_or_its_chunk(capsys):
    argv = ["train", "--lr", "10", "--iters", "5000", "--no-progress", "--no-plot"]
    assert main(argv + ["-w", "W1-torch"]) == 1  # a Python loop: the chunk it failed in
    err = capsys.readouterr().err
    assert "error: iteration 51 to 100: OverflowError" in err
    for n in range(51, 101):  # and it does fail in that chunk
        main(["train", "--lr", "10", "--iters", str(n), "--no-progress", "--no-plot",
              "-w", "W1-torch"])
        if "OverflowError" in capsys.readouterr().err:
            break
    else:
        raise AssertionError("no failure within iterations 51 to 100")


@pytest.mark.parametrize("argv, message", [
    (["train", "--iters", "x"], "argument --iters: invalid int value: 'x'"),
    (["train", "--iters", "0"], "argument --iters: must be at least 1"),
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
    (["train", "-w", "W4", "--seed", "9"], "argument --seed: W4 trains nothing"),
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


def test_a_plot_that_cannot_be_written_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken.png").mkdir()  # a folder where the file should go
    assert main(["train", "--iters", "3", "--no-progress", "--out", str(tmp_path / "taken.png")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("pygrad train: error: writing ")


def test_ctrl_c_stops_training_with_status_130(monkeypatch, capsys):
    def interrupted(self, n):
        raise KeyboardInterrupt
    monkeypatch.setattr(W1, "train", interrupted)
    assert main(["train", "--no-progress", "--no-plot"]) == 130
    assert capsys.readouterr().err == "pygrad train: interrupted after 0 iterations\n"


def test_a_plot_that_cannot_be_drawn_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "keep.png"
    save_loss_plot([1.0, 0.5], path, writer="builtin")
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_loss_plot([float("nan"), -1.0], path, writer="builtin")  # nothing to show
    assert path.read_bytes() == before
