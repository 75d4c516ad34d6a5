"""pygrad._c: the binding, the one module that calls the C library.

The library (csrc/, compiled with its cffi glue as the extension `_pygrad`)
names nodes by integer handles and reports failures as negative status codes
(csrc/pygrad.h). Everything of it that Python uses passes through here:

- the op table, read from C (OPS, OP): csrc/ops.h lists the ops once;
- error() and check(): the one place a status becomes a Python exception;
- the entry points, under their C names without the `pg_` prefix. Those that
  make or read one node are the hot paths of pygrad.engine and are the C
  functions themselves: they return a handle, a number or a status, and the
  caller passes a status to check(). Calls on many nodes take a Handles;
- Handles (Values as a C array of handles) and the C objects with a
  destructor (tapes, optimizers), freed with their Python owner.

No other module imports `_pygrad` (tests/test_binding.py checks it).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from _pygrad import ffi, lib

# ---- the op table ----------------------------------------------------------


class Op(NamedTuple):
    """A row of the C op table (csrc/ops.h)."""

    code: int
    name: str    # the method name, and the stem of its C kernels
    symbol: str  # micrograd's _op string for a node it makes
    arity: int   # children: 0 a leaf, 1 unary, 2 binary
    takes_k: bool  # keeps a constant in the node (a ** k)


def _text(p: Any) -> str:
    return ffi.string(p).decode()


OPS = tuple(Op(i, _text(lib.pg_op_name(i)), _text(lib.pg_op_symbol(i)), lib.pg_op_arity(i),
               bool(lib.pg_op_takes_k(i))) for i in range(lib.pg_op_count()))
#: The ops by name: OP["add"].code
OP = {op.name: op for op in OPS}

# ---- statuses --------------------------------------------------------------

OK = lib.PG_OK
EBADID, EDOM, ERANGE, EZERODIV = lib.PG_EBADID, lib.PG_EDOM, lib.PG_ERANGE, lib.PG_EZERODIV

#: The Python exception of each status: Python's own float and math rules.
EXCEPTIONS = {
    lib.PG_ENOMEM: MemoryError,
    lib.PG_ELIMIT: MemoryError,
    lib.PG_EBADID: ReferenceError,
    lib.PG_EBADOP: ValueError,
    lib.PG_EDOM: ValueError,
    lib.PG_ERANGE: OverflowError,
    lib.PG_EZERODIV: ZeroDivisionError,
}


def _show(x: Any) -> str:
    data = getattr(x, "data", x)  # a Value is shown by its data
    return repr(data) if isinstance(data, float) else repr(x)


def error(status: int, what: str, *operands: Any, note: str = "") -> Exception:
    """The exception for a failed call: `what` names the op or the call,
    operands (Values or numbers) what it was given, as `a + b`, `tanh(x)`."""
    reason = _text(lib.pg_strerror(status))
    if len(operands) == 2:
        where = f"{_show(operands[0])} {what} {_show(operands[1])}"
    elif operands:
        where = f"{what}({', '.join(_show(x) for x in operands)})"
    else:
        where = what
    return EXCEPTIONS.get(status, RuntimeError)(f"{where}: {reason}" + (f" ({note})" if note else ""))


def check(status: int, what: str, *operands: Any, note: str = "") -> None:
    """Raise error(...) if status is a failure (negative); else nothing."""
    if status < 0:
        raise error(status, what, *operands, note=note)


# ---- one node at a time (the hot paths: see the module's docstring) ---------

leaf = lib.pg_leaf
apply1 = lib.pg_apply1
apply1k = lib.pg_apply1k
apply2 = lib.pg_apply2
apply2n = lib.pg_apply2n
apply_composed = lib.pg_apply_composed
data = lib.pg_data          # NaN for a bad handle: valid() tells it from a real NaN
grad = lib.pg_grad
set_data = lib.pg_set_data
set_grad = lib.pg_set_grad
valid = lib.pg_valid
op_of = lib.pg_op
k_of = lib.pg_k
child = lib.pg_child
retain = lib.pg_retain
release = lib.pg_release
backward = lib.pg_backward
backward_node = lib.pg_backward_node
live_nodes = lib.pg_live_nodes
capacity = lib.pg_capacity
node_limit = lib.pg_node_limit
set_node_limit = lib.pg_set_node_limit

DATA, GRAD = lib.PG_DATA, lib.PG_GRAD

# ---- many nodes at a time ---------------------------------------------------


class Handles:
    """Values as a C array of their handles, kept alive with the Values."""

    __slots__ = ("values", "array", "n")

    def __init__(self, values: Any) -> None:
        self.values = list(values)  # keeps every node alive while the array is used
        self.array = ffi.new("pg_id[]", [v._id for v in self.values])
        self.n = len(self.values)


def gather(h: Handles, field: int, out: Any) -> int:
    """out (a float64 numpy array of h.n) = the field (DATA or GRAD) of each node."""
    return lib.pg_gather(h.array, h.n, field, ffi.from_buffer("double[]", out))


def scatter(h: Handles, field: int, src: Any = None, fill: float = 0.0) -> int:
    """The field of each node = src[i] (a float64 numpy array of h.n), or fill."""
    buf = ffi.NULL if src is None else ffi.from_buffer("double[]", src)
    return lib.pg_scatter(h.array, h.n, field, buf, fill)


def ids(n: int) -> Any:
    """A new C array of n handles (zeros)."""
    return ffi.new("pg_id[]", n)


def int32s(values: Any) -> Any:
    return ffi.new("int32_t[]", values)


NULL = ffi.NULL
mlp = lib.pg_mlp

LOSS = {"sum_squares": lib.PG_LOSS_SUM_SQUARES, "mse": lib.PG_LOSS_MSE,
        "root_sum_squares": lib.PG_LOSS_ROOT_SUM_SQUARES, "hinge": lib.PG_LOSS_HINGE,
        "cross_entropy": lib.PG_LOSS_CROSS_ENTROPY}


def loss(kind: str, pred: list[int], target: list[float], nclass: int, params: list[int],
         alpha: float) -> int:
    """The loss node (pygrad.h: pg_loss) or a status."""
    return lib.pg_loss(LOSS[kind], pred, target, len(pred), nclass, params or ffi.NULL,
                       len(params), alpha)


# ---- C objects: optimizers and tapes ----------------------------------------

SGD, ADAM = lib.PG_SGD, lib.PG_ADAM


def optim_config(kind: int, settings: dict[str, Any]) -> Any:
    """A pg_optim_config of kind with the settings given (floats; betas a pair)."""
    cfg = ffi.new("pg_optim_config *")
    cfg.kind = kind
    for name, value in settings.items():
        if name == "betas":
            cfg.beta1, cfg.beta2 = value
        else:
            setattr(cfg, name, value)
    return cfg


def optim_new(cfg: Any, params: Handles) -> tuple[Any, int]:
    """(the C optimizer, freed with its owner, or None; the status)."""
    status = ffi.new("int *")
    ptr = lib.pg_optim_new(cfg, params.array, params.n, status)
    return (None if ptr == ffi.NULL else ffi.gc(ptr, lib.pg_optim_free)), status[0]


optim_configure = lib.pg_optim_configure
optim_step = lib.pg_optim_step
optim_steps = lib.pg_optim_steps


# Tapes (csrc/tape_compile.c, csrc/tape_replay.c): every long call comes in
# chunks of about `budget` node-steps, so that Python runs in between.

ORDERS = {"exact": lib.PG_ORDER_EXACT, "fast": lib.PG_ORDER_FAST}
EBADOP = lib.PG_EBADOP  # (with a node: a parameter or input the graph computes)


def tape_start(root: int, order: int) -> tuple[Any, int]:
    """(the C tape of the graph under root, to be compiled, freed with its
    owner, or None; the status)."""
    status = ffi.new("int *")
    ptr = lib.pg_tape_start(root, order, status)
    return (None if ptr == ffi.NULL else ffi.gc(ptr, lib.pg_tape_free)), status[0]


def tape_compile(tape: Any, budget: int) -> tuple[int, int]:
    """(pg_tape_compile's status: 0 compiled, 1 more to do, or negative;
    the handle of a node a tape cannot replay, or 0)."""
    refused = ffi.new("pg_id *")
    status = lib.pg_tape_compile(tape, budget, refused)
    return status, refused[0]


tape_size = lib.pg_tape_size
tape_neurons = lib.pg_tape_neurons
tape_layers = lib.pg_tape_layers


def failure() -> Any:
    """A pg_failure for a replay to fill in (node, a, b)."""
    return ffi.new("pg_failure *")


def counter() -> Any:
    """An int64_t a chunked call keeps its place in ([0])."""
    return ffi.new("int64_t *")


def number() -> Any:
    """A double a call writes a result into ([0])."""
    return ffi.new("double *")


tape_forward_chunk = lib.pg_tape_forward_chunk  # (tape, budget, next, root, failed)
tape_backward_chunk = lib.pg_tape_backward_chunk  # (tape, budget, next)


class Feeds:
    """Training data for pg_tape_train_chunk: 2-D float64 arrays read side by
    side, each as rows of contiguous columns (kept alive here)."""

    __slots__ = ("arrays", "c", "n")

    def __init__(self, arrays: list[Any]) -> None:
        self.arrays = arrays
        self.n = len(arrays)
        self.c = ffi.new("pg_feed[]", max(1, self.n))
        for i, a in enumerate(arrays):  # (rows apart by any whole number of doubles)
            self.c[i].data = ffi.cast("const double *", a.__array_interface__["data"][0])
            self.c[i].stride = a.strides[0] // 8 if a.shape[0] > 1 else a.shape[1]
            self.c[i].cols = a.shape[1]


def tape_train_chunk(tape: Any, opt: Any, inputs: Handles | None, feeds: Feeds | None, rows: int,
                     start: int, iters: int, budget: int, losses: Any, done: Any,
                     failed: Any) -> int:
    """pg_tape_train_chunk: iterations start.. of up to iters, losses into
    losses[0..] (a float64 array from iteration start on), done[0] counting."""
    if inputs is None or feeds is None:
        ins, nin, fc, nf = ffi.NULL, 0, ffi.NULL, 0
    else:
        ins, nin, fc, nf = inputs.array, inputs.n, feeds.c, feeds.n
    return lib.pg_tape_train_chunk(tape, ffi.NULL if opt is None else opt, ins, nin, fc, nf, rows, start,
                                   iters, budget, ffi.from_buffer("double[]", losses), done, failed)


# ---- test hooks ---------------------------------------------------------------

debug_check = lib.pg_debug_check
debug_fail_alloc = lib.pg_debug_fail_alloc
debug_tape_fusion = lib.pg_debug_tape_fusion
debug_tape_layers = lib.pg_debug_tape_layers
debug_tape_refuse = lib.pg_debug_tape_refuse
debug_tape_simd = lib.pg_debug_tape_simd
