"""pygrad.replay: run a built graph again, without rebuilding it from Python.

A training loop on a fixed-shape model rebuilds the same graph every
iteration; only the numbers change. A Tape records a graph once, then runs
it again in C: put new data in its leaves (the inputs, the parameters),
forward() recomputes every node in the recorded topological order,
backward() backpropagates from the root. train() runs a whole loop,
forward, backward and an optimizer step per iteration, in C.

    xs = [[pygrad.Value(v) for v in row] for row in data]   # input leaves
    loss = loss_of(model, xs)                               # built once
    tape = pygrad.Tape(loss)
    history = tape.train(100_000, pygrad.optim.SGD(model.parameters(), lr=0.01))

When replay is valid: the graph's shape is fixed when it is recorded. The
tape recomputes the same ops on the same nodes; Python code that built the
graph does not run again. So a graph whose shape depends on the data (an `if
x.data > 0` in the model, a loop over a data-dependent count, a different
number of samples per batch) must be rebuilt, not replayed. Constants baked
in as numbers (`y - 1.0`) stay as they were; feed anything that changes
through leaf Values. Replay gives exactly the numbers a rebuild would give,
bit for bit, because it runs the same kernels and adds up every grad's
contributions in the same order; each neuron's chain (act(b + w1*x1 + ...))
runs as one step, and a layer's neurons side by side. Every node of the
graph, inner sums and products included, reads back what a rebuild gives
it: the tape computes in arrays of its own and writes its numbers into the
graph before anything reads or writes a node (one pass over the graph, the
first time a Value is read after a run). Consecutive train() calls with the
same optimizer and inputs go on from the tape's arrays.

order="fast" lets each neuron's sum b + w1*x1 + ... + wn*xn be added in
another order (eight partial sums, in vector registers): the result is
within (2n + 1) * 2**-53 * (|b| + |w1*x1| + ... + |wn*xn|) of the exact sum;
the order is fixed by the code, not the CPU, so the bits are the same on
every run. Every other sum stays exact. The partial sums inside such a
neuron read back as micrograd's order computes them from its operands, so
the last may differ from its output's input in the last bits.

Long calls (recording a big graph, forward or backward over one, train)
run in C in chunks of about 10 ms with Python in between, so Ctrl-C stops
them at once: an interrupted record or forward or backward changes nothing;
an interrupted train leaves everything as its last completed iteration did,
and the KeyboardInterrupt carries the losses so far as `.losses`.
"""
from __future__ import annotations

import operator
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, Union

if TYPE_CHECKING:
    import numpy as np
else:  # (imported at its first use: `import pygrad` loads no numpy)
    from ._lazy import numpy as np

from . import _c, _signals
from .arrays import float_array, handles
from .engine import Value, python_op, real, type_name
from .optim import Optimizer

if TYPE_CHECKING:
    import numpy.typing as npt

#: What train() takes as data: one array, or several read side by side.
Data = Union["npt.ArrayLike", Sequence["npt.NDArray[Any]"]]


class _Chunks:
    """The budget of node-steps per C call, set from the calls so far so
    that each takes about `target` seconds."""

    __slots__ = ("budget", "target", "start")

    def __init__(self, target: float = 0.01) -> None:
        self.budget = 1 << 20
        self.target = target
        self.start = time.perf_counter()

    def next(self) -> int:
        """The budget for the next call (after the one just made)."""
        now = time.perf_counter()
        took, self.start = now - self.start, now
        if took < self.target / 2:
            self.budget = min(self.budget * 4, 1 << 46) if took <= 0 else \
                min(int(self.budget * min(4.0, self.target / took)), 1 << 46)
        elif took > 2 * self.target:
            self.budget = max(1024, int(self.budget * self.target / took))
        return self.budget


class Tape:
    """A recorded graph (everything under root) that can be run again.
    order: "exact" (micrograd's sums, a rebuild's bits) or "fast" (see the
    module's docstring)."""

    @_signals.interruptible  # (its loop calls C in chunks: Ctrl-C lands between them)
    def __init__(self, root: Value, order: str = "exact") -> None:
        if not isinstance(root, Value):
            raise TypeError(f"Tape needs a pygrad Value, not {type(root).__name__!r}")
        if order not in _c.ORDERS:
            raise ValueError(f"order must be 'exact' or 'fast', not {order!r}")
        self._c, status = _c.tape_start(root._id, _c.ORDERS[order])  # holds the graph alive
        _c.check(status, "Tape", root)
        chunks = _Chunks()
        while True:
            status, refused = _c.tape_compile(self._c, chunks.budget)
            if status == 0:
                break
            if status < 0:
                if refused:
                    raise ValueError(f"Tape: the graph has an op a tape cannot replay, {python_op(refused)} "
                                     f"(node with data {_c.data(refused)!r})")
                _c.check(status, "Tape", root)
            chunks.next()
        self.root = root
        self.order = order
        self._failed = _c.failure()

    def __len__(self) -> int:
        """The number of nodes in the graph."""
        return _c.tape_size(self._c)

    @_signals.interruptible  # (its loop calls C in chunks: Ctrl-C lands between them)
    def forward(self) -> float:
        """Recompute every node from its children; return the root's data.
        On a math error nothing changes and the error names the failing op."""
        step, root, chunks = _c.counter(), _c.number(), _Chunks()
        status = _c.tape_forward_chunk(self._c, chunks.budget, step, root, self._failed)
        while status == 0 and step[0] >= 0:
            status = _c.tape_forward_chunk(self._c, chunks.next(), step, root, self._failed)
        if status:
            raise _replay_error(status, self._failed)
        return root[0]

    @_signals.interruptible  # (its loop calls C in chunks: Ctrl-C lands between them)
    def backward(self) -> None:
        """Set the root's grad to 1 and backpropagate: every grad in the graph
        (leaves' too) is what micrograd's backward gives on a fresh graph."""
        step, chunks = _c.counter(), _Chunks()
        status = _c.tape_backward_chunk(self._c, chunks.budget, step)
        while status == 0 and step[0] >= 0:
            status = _c.tape_backward_chunk(self._c, chunks.next(), step)
        _c.check(status, "Tape.backward")

    @_signals.interruptible  # (its loop calls C in chunks: Ctrl-C lands between them)
    def train(self, iters: int, optimizer: Optimizer | None = None,
              inputs: Iterable[Value] | None = None, data: Data | None = None,
              progress: Callable[[int, int, float], Any] | None = None,
              lr: Sequence[float] | Callable[[int], float] | None = None) -> npt.NDArray[np.float64]:
        """Run iters iterations of: load the next row of data into the input
        leaves, forward, record the root's data, backward, optimizer.step().
        Returns the recorded losses as a numpy array.

        inputs: leaf Values, fed from data, an array of shape
        (rows, len(inputs)), or several 2-D arrays with as many rows, read
        side by side as numpy.hstack(data) would be (without making it);
        iteration i uses row i % rows. A float64 array whose rows are
        contiguous is read where it is, never copied. Without inputs the
        graph's leaves keep their data (a full-batch loop). The optimizer's
        parameters have their grads zeroed each iteration, like the
        tutorials' loop. progress(done, iters, last_loss), if given, is
        called between chunks of about 10 ms and at the end.

        lr: a learning-rate schedule for the optimizer, as a loop that sets
        optimizer.lr before each step would have it: iters numbers (a
        sequence or array), or a function of the iteration (0 .. iters - 1)
        called for each before training starts. Each must be a valid lr for
        the optimizer (else ValueError, and nothing runs). Afterwards
        optimizer.lr is the last completed iteration's.

        On a math error, or an exception from progress, or Ctrl-C, training
        stops with everything as the last completed iteration left it (the
        parameters, the graph's data, the inputs), and the exception carries
        the losses so far as .losses.
        """
        iters = operator.index(iters)  # an int: not 1.5, not "10"
        if iters < 0:
            raise ValueError(f"iters must be >= 0, not {iters}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a pygrad.optim optimizer, not {type_name(optimizer)!r}")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be callable, not {type_name(progress)!r}")
        opt = None if optimizer is None else optimizer._c
        lrs = None if lr is None else _schedule(lr, iters, optimizer)
        ins = feeds = None
        rows = 0
        if inputs is None:
            if data is not None:
                raise ValueError("data needs inputs: the leaf Values it is loaded into")
        else:
            ins = handles(inputs)
            arrays = _feed_arrays(data, ins.n)
            rows = arrays[0].shape[0]
            feeds = _c.Feeds(arrays)
        losses = np.empty(iters, dtype=np.float64)
        done, failed = _c.counter(), self._failed
        failed.node = 0
        if progress is None and iters <= 1 and lrs is None:  # one short call (a step of a Python loop)
            status = _c.tape_train_chunk(self._c, opt, ins, feeds, rows, 0, iters, 0, losses, done, failed)
            if status:
                raise _replay_error(status, failed, losses[:done[0]], ins)
            return losses
        chunks = _Chunks()
        try:
            while done[0] < iters:
                n = done[0]
                status = _c.tape_train_chunk(self._c, opt, ins, feeds, rows, n, iters - n, chunks.budget,
                                             losses[n:], done, failed, None if lrs is None else lrs[n:])
                if status:
                    raise _replay_error(status, failed, losses[:done[0]], ins)
                if progress is not None:
                    progress(done[0], iters, float(losses[done[0] - 1]))
                chunks.next()
        except BaseException as e:  # Ctrl-C, progress's own: the losses so far go with it
            if not hasattr(e, "losses"):
                try:
                    e.losses = losses[:done[0]]  # type: ignore[attr-defined]
                except AttributeError:  # an exception that takes no attributes
                    pass
            raise
        finally:
            if lrs is not None and done[0]:  # (C stepped with it; the settings say so too)
                optimizer.lr = float(lrs[done[0] - 1])  # type: ignore[union-attr]
        if progress is not None and iters == 0:
            progress(0, 0, float("nan"))
        return losses

    def __repr__(self) -> str:
        return f"Tape({len(self)} nodes, root={self.root!r})"


def _schedule(lr: Any, iters: int, optimizer: Optimizer | None) -> np.ndarray:
    """Tape.train's lr= as a float64 array of iters learning rates, each
    valid for the optimizer (by the C library's rule: ValueError naming the
    first that is not)."""
    if optimizer is None:
        raise ValueError("lr (a learning-rate schedule) needs an optimizer to step")
    if callable(lr):
        values = [lr(k) for k in range(iters)]
    elif isinstance(lr, (str, bytes)) or not isinstance(lr, Iterable):
        raise TypeError(f"lr must be a sequence of {iters} learning rates or a function of the "
                        f"iteration, not {type_name(lr)!r}")
    else:
        values = list(lr)
    if len(values) != iters:
        raise ValueError(f"lr must give one learning rate per iteration: {iters}, not {len(values)}")
    lrs = np.array([real(x, "a learning rate") for x in values], dtype=np.float64)
    valid = _c.optim_check_lrs(optimizer._c, lrs)
    if valid < iters:
        raise ValueError(f"Tape.train: lr[{valid}] = {values[valid]!r}: lr must be {_c.optim_rule('lr')}")
    return lrs


def _feed_arrays(data: Any, ninputs: int) -> list[np.ndarray]:
    """data as train() takes it: a list of 2-D float64 arrays with rows of
    contiguous columns (read in place where data already is one), whose
    columns add up to ninputs, each with the same number (>= 1) of rows."""
    if isinstance(data, (list, tuple)) and data and all(isinstance(a, np.ndarray) and a.ndim == 2
                                                        for a in data):
        parts = list(data)
    else:
        parts = [data]
    arrays = []
    for part in parts:
        a = np.asarray(part) if isinstance(part, np.ndarray) else float_array(part, "Tape.train data")
        if a.dtype != np.float64 or a.ndim != 2 or (a.shape[1] > 1 and a.strides[1] != 8) or \
                a.strides[0] % 8 or a.strides[0] < 0:
            a = float_array(a, "Tape.train data")  # a float64, C-contiguous copy
        arrays.append(a)
    cols = sum(a.shape[1] if a.ndim == 2 else -1 for a in arrays)
    if any(a.ndim != 2 for a in arrays) or cols != ninputs or arrays[0].shape[0] < 1 or \
            any(a.shape[0] != arrays[0].shape[0] for a in arrays):
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(f"data must have shape (rows, {ninputs}) for {ninputs} inputs, not {shapes}")
    return arrays


def _replay_error(status, failed, losses=None, inputs=None):
    """The exception for a failed replay, naming the op and its operands'
    data; it carries the losses recorded before it (Tape.train). (Returned,
    not raised here: a frame that raises its own local would keep itself in
    a cycle through the traceback, and every Value it reaches with it.)"""
    if status == _c.EBADOP and failed.node:  # a parameter or an input the graph computes
        what = "an input" if inputs is not None and failed.node in {v._id for v in inputs.values} \
            else "a parameter"
        e = _c.error(status, "Tape.train", note=f"{what} is a node the graph computes, not a leaf: "
                                                 f"data {_c.data(failed.node)!r}")
    elif status not in (_c.EDOM, _c.ERANGE, _c.EZERODIV):
        e = _c.error(status, "Tape")
    else:
        op = _c.OPS[_c.op_of(failed.node)]
        note = "replaying a Tape"
        if op.arity == 2:  # a * b, a ** b
            e = _c.error(status, op.symbol, failed.a, failed.b, note=note)
        elif op.takes_k:  # a ** k
            e = _c.error(status, op.symbol, failed.a, _c.k_of(failed.node), note=note)
        else:
            e = _c.error(status, op.name, failed.a, note=note)
    e.losses = losses  # type: ignore[attr-defined]
    return e
