"""The C API's fuzz harness (tests/fuzz/fuzz_api.c), run on its saved corpus
by the plain-C driver (tests/fuzz/replay.c), built with AddressSanitizer and
UBSan where the compiler has them: every input is a program of calls into
pygrad.h whose invariants the harness checks after each call. libFuzzer
itself runs from .ci/run where clang is installable (tests/fuzz/README.md)."""
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")
FUZZ = os.path.join(HERE, "fuzz")
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer"]


def _compiler():
    """clang where installed (its UBSan checks more: NULL + 0, say), else cc."""
    if os.name != "posix" or not os.path.isdir(CSRC):
        return None
    return (shutil.which("clang") or shutil.which(os.environ.get("CC", "cc"))
            or shutil.which("gcc"))


def _build(cc, tmp_path, flags):
    exe = str(tmp_path / "replay")
    sources = [os.path.join(FUZZ, "fuzz_api.c"), os.path.join(FUZZ, "replay.c")] + [
        os.path.join(CSRC, f) for f in sorted(os.listdir(CSRC)) if f.endswith(".c")]
    cmd = [cc, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O1", "-g", "-Wall", "-Wextra",
           "-ffp-contract=off", "-pthread", *flags, "-I", CSRC, *sources, "-o", exe, "-lm"]
    return exe, subprocess.run(cmd, capture_output=True, text=True)


def test_the_fuzz_corpus_replays_clean(tmp_path, tally):
    cc = _compiler()
    corpus = os.path.join(FUZZ, "corpus")
    if cc is None or not os.path.isdir(corpus):
        pytest.skip("no C compiler (or not POSIX, or no tests/fuzz/ beside the tests)")
    exe, built = _build(cc, tmp_path, SANITIZE)
    if built.returncode != 0 and "sanitize" in built.stderr:
        exe, built = _build(cc, tmp_path, [])  # a compiler without the sanitizers
    assert built.returncode == 0 and "warning" not in built.stderr, built.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    run = subprocess.run([exe, corpus], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-6000:]
    count = int(run.stdout.split()[1])
    assert count == len(os.listdir(corpus)) > 0, run.stdout
    tally["hostile inputs: fuzz programs replayed in C"] += count
