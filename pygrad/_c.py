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
    arity: int   # children: 0 a leaf, 1 unary, 2 binary, -1 any (a custom op)
    takes_k: bool  # keeps a constant in the node (a ** k)
    doc: str     # what it computes


def _text(p: Any) -> str:
    return ffi.string(p).decode()


OPS = tuple(Op(i, _text(lib.pg_op_name(i)), _text(lib.pg_op_symbol(i)), lib.pg_op_arity(i),
               bool(lib.pg_op_takes_k(i)), _text(lib.pg_op_doc(i)))
            for i in range(lib.pg_op_count()))
#: The ops by name: OP["add"].code
OP = {op.name: op for op in OPS}

# ---- statuses --------------------------------------------------------------

OK = lib.PG_OK
EBADID, EBADOP, EDOM, ERANGE, EZERODIV = (lib.PG_EBADID, lib.PG_EBADOP, lib.PG_EDOM, lib.PG_ERANGE,
                                       lib.PG_EZERODIV)
ESIZE = lib.PG_ESIZE
MORE, PYTHON, WALK = lib.PG_MORE, lib.PG_PYTHON, lib.PG_WALK  # (not failures: steps)

#: The Python exception of each status: Python's own float and math rules.
EXCEPTIONS = {
    lib.PG_ENOMEM: MemoryError,
    lib.PG_ELIMIT: MemoryError,
    lib.PG_EBADID: ReferenceError,
    lib.PG_EBADOP: ValueError,
    lib.PG_EDOM: ValueError,
    lib.PG_ERANGE: OverflowError,
    lib.PG_EZERODIV: ZeroDivisionError,
    lib.PG_ESIZE: ValueError,
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


def where() -> Any:
    """A new pg_where for a call on many nodes to fill in when it fails."""
    return ffi.new("pg_where *")


#: The pg_where of pg_mlp's calls from pygrad.nn. It is shared to keep the
#: hot path free of an allocation, so read it right after the failed call:
#: two threads whose forwards fail at the same moment may see each other's.
WHERE = where()


def blamed(status: int, what: str, where: Any, names: dict[int, tuple[str, str]]) -> Exception:
    """The exception for a failed call on many nodes: `where` (a pg_where)
    names the argument to blame by its position in the C call, and names
    says what Python calls one element of it and the whole ("input",
    "inputs"): `what: input 2: reason`, `what: inputs: reason`."""
    nouns = names.get(where.arg)
    if nouns is None:  # no argument to blame (out of memory, a math error)
        return error(status, what)
    one, whole = nouns
    return error(status, f"{what}: {one} {where.index}" if where.index >= 0 else f"{what}: {whole}")


# ---- one node at a time (the hot paths: see the module's docstring) ---------

# Making nodes (each returns a new handle, or a status):
leaf, apply1, apply1k, apply2, apply2n, apply_composed = (
    lib.pg_leaf, lib.pg_apply1, lib.pg_apply1k, lib.pg_apply2, lib.pg_apply2n, lib.pg_apply_composed)
# Reading and writing one node (data and grad are NaN for a bad handle: valid()
# tells it from a real NaN; the setters return a status):
data, grad, set_data, set_grad, valid, op_of, k_of, child = (
    lib.pg_data, lib.pg_grad, lib.pg_set_data, lib.pg_set_grad, lib.pg_valid, lib.pg_op, lib.pg_k,
    lib.pg_child)
# References, and backward (backward(root, budget): OK, or WALK: walk it, below):
retain, release, backward, backward_node, set_python_backward = (
    lib.pg_retain, lib.pg_release, lib.pg_backward, lib.pg_backward_node,
    lib.pg_set_python_backward)


def custom(data: float, children: list[int]) -> int:
    """A custom node (csrc/pygrad.h: pg_custom) over the handles children, or a status."""
    return lib.pg_custom(data, children or ffi.NULL, len(children), ffi.NULL)


def walk_new(root: int) -> tuple[Any, int]:
    """(a walk of root's backward, freed with its owner, or None; the status)."""
    status = ffi.new("int *")
    ptr = lib.pg_walk_new(root, status)
    return (None if ptr == ffi.NULL else ffi.gc(ptr, lib.pg_walk_free)), status[0]


def node_out() -> Any:
    """A pg_id for a call to fill in (pg_walk_step's node)."""
    return ffi.new("pg_id *")


walk_step = lib.pg_walk_step
# The arena:
live_nodes, capacity, node_limit, set_node_limit = (
    lib.pg_live_nodes, lib.pg_capacity, lib.pg_node_limit, lib.pg_set_node_limit)

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
    """out (a float64 numpy array of h.n) = the field (DATA or GRAD) of each
    node; the status."""
    buf = ffi.from_buffer("double[]", out)
    return lib.pg_gather(h.array, h.n, field, buf, len(buf), ffi.NULL)


def scatter(h: Handles, field: int, src: Any = None, fill: float = 0.0) -> int:
    """The field of each node = src[i] (a float64 numpy array of h.n), or
    fill; the status."""
    if src is None:
        return lib.pg_scatter(h.array, h.n, field, ffi.NULL, 0, fill, ffi.NULL)
    buf = ffi.from_buffer("double[]", src)
    return lib.pg_scatter(h.array, h.n, field, buf, len(buf), fill, ffi.NULL)


def ids(n: int) -> Any:
    """A new C array of n handles (zeros)."""
    return ffi.new("pg_id[]", n)


def int32s(values: Any) -> Any:
    return ffi.new("int32_t[]", values)


NULL = ffi.NULL
#: pg_mlp itself (pygrad.nn's hot path): (params, nparams, sizes, acts,
#: nlayers, x, nx, xnum, nxnum, out, nout, where); on failure, mlp_error.
mlp = lib.pg_mlp
#: What pg_mlp's arguments are to Python, by position (pg_where.arg).
MLP_ARGS = {1: ("parameter", "parameters"), 4: ("the activation of layer", "activations"),
            6: ("input", "inputs"), 8: ("input", "inputs")}


def mlp_error(status: int, what: str, where: Any = WHERE) -> Exception:
    """The exception for pg_mlp's failed status, naming the bad argument."""
    return blamed(status, what, where, MLP_ARGS)

LOSS = {"sum_squares": lib.PG_LOSS_SUM_SQUARES, "mse": lib.PG_LOSS_MSE,
        "root_sum_squares": lib.PG_LOSS_ROOT_SUM_SQUARES, "hinge": lib.PG_LOSS_HINGE,
        "cross_entropy": lib.PG_LOSS_CROSS_ENTROPY}


#: What pg_loss's arguments are to Python, by position (pg_where.arg).
LOSS_ARGS = {2: ("prediction", "predictions"), 4: ("target", "targets"),
             7: ("parameter", "parameters")}


def loss(kind: str, pred: list[int], target: list[float], nclass: int, params: list[int],
         alpha: float) -> int:
    """The loss node (pygrad.h: pg_loss) of the handles pred (and params),
    or raise the failure's exception, naming the argument to blame."""
    blame = where()
    node = lib.pg_loss(LOSS[kind], pred, len(pred), target, len(target), nclass,
                       params or ffi.NULL, len(params), alpha, blame)
    if node < 0:
        raise blamed(node, kind, blame, LOSS_ARGS)
    return node


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
optim_size = lib.pg_optim_size


def optim_rule(field: str) -> str:
    """The rule a setting must follow ("a finite number >= 0"), as csrc/optim.c says it."""
    return _text(lib.pg_optim_rule(getattr(lib, f"PG_OPTIM_{field.upper()}")))


def optim_check_lrs(opt: Any, lrs: Any) -> int:
    """How many of lrs (a float64 array) are valid learning rates for opt, from the first on."""
    return lib.pg_optim_check_lrs(opt, ffi.from_buffer("double[]", lrs), len(lrs))


def optim_check(cfg: Any) -> tuple[str, str] | None:
    """None if cfg is a valid config, else (the config field that is not,
    its rule): the rules are written once, in csrc/optim.c."""
    bad = lib.pg_optim_check(cfg)
    if bad == lib.PG_OPTIM_VALID:
        return None
    return _text(lib.pg_optim_setting_name(bad)), _text(lib.pg_optim_rule(bad))


def optim_get_state(opt: Any, m: Any, v: Any) -> tuple[int, int, bool]:
    """Fill m and v (float64 numpy arrays of the optimizer's size) with its
    buffers; (status, steps, has a momentum buffer)."""
    steps, has_m = ffi.new("int64_t *"), ffi.new("int *")
    status = lib.pg_optim_get_state(opt, steps, has_m, ffi.from_buffer("double[]", m),
                                    ffi.from_buffer("double[]", v), len(m))
    return status, steps[0], bool(has_m[0])


def optim_set_state(opt: Any, steps: int, has_momentum: bool, m: Any, v: Any) -> int:
    """Set the optimizer's state (m, v: float64 numpy arrays of its size); the status."""
    return lib.pg_optim_set_state(opt, steps, int(has_momentum), ffi.from_buffer("double[]", m),
                                  ffi.from_buffer("double[]", v), len(m))


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
tape_batches = lib.pg_tape_batches


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
            self.c[i].stride = stride = a.strides[0] // 8 if a.shape[0] > 1 else a.shape[1]
            self.c[i].cols = a.shape[1]
            self.c[i].n = (a.shape[0] - 1) * stride + a.shape[1] if a.shape[0] else 0  # (its extent)


def tape_train_chunk(tape: Any, opt: Any, inputs: Handles | None, feeds: Feeds | None, rows: int,
                     start: int, iters: int, budget: int, losses: Any, done: Any,
                     failed: Any, lrs: Any = None) -> int:
    """pg_tape_train_chunk: iterations start.. of up to iters, losses into
    losses[0..] (a float64 array from iteration start on), done[0] counting;
    lrs: None, or their learning rates (a float64 array from iteration start on)."""
    if inputs is None or feeds is None:
        ins, nin, fc, nf = ffi.NULL, 0, ffi.NULL, 0
    else:
        ins, nin, fc, nf = inputs.array, inputs.n, feeds.c, feeds.n
    return lib.pg_tape_train_chunk(tape, ffi.NULL if opt is None else opt, ins, nin, fc, nf, rows, start,
                                   iters, budget, ffi.from_buffer("double[]", losses), len(losses),
                                   ffi.NULL if lrs is None else ffi.from_buffer("double[]", lrs),
                                   0 if lrs is None else len(lrs), done, failed)


# ---- test hooks ---------------------------------------------------------------

debug_check = lib.pg_debug_check
debug_fail_alloc = lib.pg_debug_fail_alloc
debug_tape_fusion = lib.pg_debug_tape_fusion
debug_tape_layers = lib.pg_debug_tape_layers
debug_tape_refuse = lib.pg_debug_tape_refuse
debug_tape_simd = lib.pg_debug_tape_simd
debug_tape_batches = lib.pg_debug_tape_batches
