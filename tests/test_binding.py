"""The binding's own conversions (pygrad/_ffi_build.py replaces cffi's int64
and double converters with faster ones for exact ints): they must give what
cffi's gave, the same numbers and the same errors. And pg_apply_composed,
the one call behind -, / and their reflections."""
import gc

import pytest
from pygrad._c import lib

import pygrad
from pygrad import Value


@pytest.mark.parametrize("n", [0, 1, -1, 2**30, 2**31 - 1, 2**53 + 1, 2**63 - 1, -2**63,
                               10**20, True, False])
def test_ints_become_the_doubles_float_makes(n):
    v = Value(0.0)
    v.data = n
    v.grad = n
    assert v.data == float(n) and v.grad == float(n)
    assert repr(v.data) == repr(float(n))


def test_ints_too_large_for_a_double_raise_overflow():
    v = Value(0.0)
    with pytest.raises(OverflowError):
        v.grad = 10**400
    with pytest.raises(OverflowError):
        lib.pg_set_grad(v._id, 10**400)
    assert v.grad == 0.0


def test_handles_of_every_size_and_bad_ints():
    v = Value(1.5)
    assert v._id > 2**32  # the generation sits above bit 32
    assert lib.pg_data(v._id) == 1.5 and lib.pg_valid(v._id) == 1
    for bad in (0, 5, 2**40 + 3, -(2**62), 2**63 - 1):
        assert lib.pg_valid(bad) == 0
    for too_big in (2**63, -(2**63) - 1, 10**30):
        with pytest.raises(OverflowError):
            lib.pg_valid(too_big)
    for not_int in (1.0, "1", None):
        with pytest.raises(TypeError):
            lib.pg_valid(not_int)
    assert lib.pg_valid(True) == 0  # an int subclass: cffi's own path


def test_composed_ops_are_the_two_op_graph_and_build_nothing_on_error(arena_baseline):
    OPS = {op.name: op.code for op in pygrad._c.OPS}

    a, b = Value(3.0), Value(0.0)
    base = pygrad.live_nodes()
    for make, op, inner in ((lambda: a - b, "+", "*"), (lambda: 2.0 - a, "+", "*"),
                            (lambda: a / 4.0, "*", None), (lambda: 2.0 / a, "*", "**-1")):
        y = make()
        assert y._op == op
        mid = [c for c in y._prev if c is not a and c is not b]
        if inner:  # the inner node, a child of y, held by y alone
            assert any(c._op == inner for c in mid)
        del y, mid
        gc.collect()
        assert pygrad.live_nodes() == base
    for bad in (lambda: a / b, lambda: 1.0 / b):
        with pytest.raises(ZeroDivisionError, match="division by zero"):
            bad()
        assert pygrad.live_nodes() == base
    assert lib.pg_apply_composed(OPS["add"], 0, OPS["add"], a._id, 1.0, 0.0) == lib.PG_EBADOP
    ghost = a._id + (1 << 32)  # the same slot, another generation
    assert lib.pg_apply_composed(OPS["add"], ghost, OPS["mul"], a._id, -1.0, 0.0) == lib.PG_EBADID
    assert lib.pg_apply_composed(OPS["add"], 0, OPS["mul"], ghost, -1.0, 0.0) == lib.PG_EBADID
    assert pygrad.live_nodes() == base


def test_only_the_binding_module_calls_the_c_library():
    """pygrad/_c.py is the one module that imports _pygrad (ffi, lib); every
    other module calls the library through it, so statuses are checked and
    reported in one place."""
    import ast
    import importlib.util
    import pathlib

    package = pathlib.Path(importlib.util.find_spec("pygrad").origin).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.name in ("_c.py", "_ffi_build.py"):  # the binding, and its build script
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            reaches_in = isinstance(node, ast.Attribute) and node.attr in ("lib", "ffi") and \
                isinstance(node.value, ast.Name) and node.value.id == "_c"
            if any(m.split(".")[0] == "_pygrad" for m in imported) or reaches_in:
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not offenders, f"calls into the C library outside pygrad/_c.py: {offenders}"
