"""Helpers the tests share (import them as `from helpers import ...`: pytest
puts tests/ on sys.path)."""


def rel_diff(a, b):
    """Relative difference of two results, 0 when they are equal (both inf too)."""
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)
