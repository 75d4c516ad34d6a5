"""What the fuzzers share (tests/test_fuzz_api.py, test_fuzz_replay.py,
test_load_bounded.py): how long they run and from which seed.

Each fuzzer has a short run in the normal suite (a few seconds, a fixed
seed) and a long one marked `soak`, which the normal run deselects:

    python3 -m pytest -m soak                                   # every fuzzer, long
    PYGRAD_FUZZ_STEPS=1000000 python3 -m pytest -m soak -k api  # longer still
    PYGRAD_FUZZ_SEED=7 python3 -m pytest -m soak                # other inputs

A failure names its seed and step, so the same run reproduces it.
"""
import os

import pytest


def soak(test):
    """Marks a long run: `soak`, which the default run deselects
    (pyproject.toml's addopts), and `big`, so that `-m "not big"` leaves it
    out as well."""
    return pytest.mark.big(pytest.mark.soak(test))


def length(request, short, long):
    """The number of steps for this test: short, or in a soak run
    PYGRAD_FUZZ_STEPS (default long)."""
    if request.node.get_closest_marker("soak") is None:
        return short
    return int(os.environ.get("PYGRAD_FUZZ_STEPS", long))


def seed(default=0):
    """The run's seed: PYGRAD_FUZZ_SEED, or a fixed default."""
    return int(os.environ.get("PYGRAD_FUZZ_SEED", default))
