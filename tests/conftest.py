import collections
import gc
import os
import signal
import sys

import pytest

# The tests run against the installed pygrad (the built wheel), never the
# source folder beside them, which has no compiled module: `python -m pytest`
# puts the current folder first on sys.path, so it is taken off here, before
# anything imports pygrad.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]

# Ctrl-C must be deliverable: the tests that send SIGINT (to this process, or
# to the interpreters they start, which inherit an ignored signal) check that
# pygrad stops at once. A run started with SIGINT ignored (a background job
# of a non-interactive shell, nohup) would lose every one of them, so the
# default handler is put back first, before pygrad installs its own over it.
if hasattr(signal, "SIGINT") and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pygrad  # noqa: E402

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the property tests skip without it
    settings = None

if settings is not None:
    # "ci" (the default): a bounded, reproducible run. derandomize draws the
    # same examples on every run and no example database is kept, so a
    # failure in CI is the failure you get locally. No deadline: CI runs the
    # suite again under AddressSanitizer, several times slower.
    # "soak": many more examples, for a long hunt (HYPOTHESIS_PROFILE=soak).
    _common = dict(deadline=None, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=300, derandomize=True, **_common)
    settings.register_profile("soak", max_examples=20_000, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# How many generated examples and hostile inputs the tests ran, for the
# summary at the end of the run (see `tally`).
TALLY = collections.Counter()


@pytest.fixture(scope="session")
def tally():
    """A Counter the tests add to: tally["hostile inputs: what"] += n. Keys
    under "hypothesis examples:" and "hostile inputs:" are totalled; others
    ("of which: ...") are details of those."""
    return TALLY


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    terminalreporter.section("inputs run")
    for group in ("hypothesis examples", "hostile inputs", "of which"):
        keys = sorted(k for k in TALLY if k.startswith(group + ":"))
        for key in keys:
            terminalreporter.write_line(f"{TALLY[key]:>9,}  {key}")
        if keys and group != "of which":
            total = sum(TALLY[k] for k in keys)
            terminalreporter.write_line(f"{total:>9,}  {group}, in all")


@pytest.fixture
def arena_baseline():
    """Live nodes before the test; the test may compare after freeing."""
    gc.collect()
    return pygrad.live_nodes()
