import gc
import os
import sys

import pytest

# The tests run against the installed pygrad (the built wheel), never the
# source folder beside them, which has no compiled module: `python -m pytest`
# puts the current folder first on sys.path, so it is taken off here, before
# anything imports pygrad.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]

import pygrad  # noqa: E402


@pytest.fixture
def arena_baseline():
    """Live nodes before the test; the test may compare after freeing."""
    gc.collect()
    return pygrad.live_nodes()
