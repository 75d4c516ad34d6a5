"""pygrad.replay: run a built graph again, without rebuilding it from Python.

A training loop on a fixed-shape model rebuilds the same graph every
iteration; only the numbers change. A Tape records a graph once, then runs
it again in C: put new data in its leaves (the inputs, the parameters),
forward() recomputes every node in the recorded topological order,
backward() zeroes the graph's grads and backpropagates. train() runs a whole
loop, forward, backward and an optimizer step per iteration, in one C call.

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
runs as one step, and every node of the graph, inner sums and products
included, still gets its data and grad.
"""
from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Iterable

import numpy as np

from . import _c
from .arrays import float_array, handles
from .engine import Value, type_name
from .optim import Optimizer

if TYPE_CHECKING:
    import numpy.typing as npt


class Tape:
    """A recorded graph (everything under root) that can be run again."""

    def __init__(self, root: Value) -> None:
        if not isinstance(root, Value):
            raise TypeError(f"Tape needs a pygrad Value, not {type(root).__name__!r}")
        self._c, status = _c.tape_new(root._id)  # the tape holds the graph alive
        if status == _c.EBADOP:
            raise ValueError("Tape: the graph has an op whose backward is Python's (a custom op, "
                             "or a Value whose _backward was assigned): a Tape cannot replay "
                             "it; run backward() on a rebuilt graph instead")
        _c.check(status, "Tape", root)
        self.root = root

    def __len__(self) -> int:
        """The number of nodes in the graph."""
        return _c.tape_size(self._c)

    def forward(self) -> float:
        """Recompute every node from its children; return the root's data.
        On a math error nothing changes and the error names the failing op."""
        failed = _c.failure()
        status = _c.tape_forward(self._c, failed)
        if status:
            raise _replay_error(status, failed)
        return self.root.data

    def backward(self) -> None:
        """Zero every grad in the graph (leaves' too), set the root's to 1,
        and backpropagate: micrograd's backward on a fresh graph."""
        _c.check(_c.tape_backward(self._c), "Tape.backward")

    def train(self, iters: int, optimizer: Optimizer | None = None,
              inputs: Iterable[Value] | None = None,
              data: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        """Run iters iterations of: load the next row of data into the input
        leaves, forward, record the root's data, backward, optimizer.step().
        Returns the recorded losses as a numpy array.

        inputs: leaf Values of the graph, fed from data, an array of shape
        (rows, len(inputs)); iteration i uses row i % rows. Without inputs the
        graph's leaves keep their data (a full-batch loop). The optimizer's
        parameters have their grads zeroed each iteration, like the
        tutorials' loop. On a math error the failing iteration's forward is
        undone, the error is raised, and the losses so far are its .losses.
        """
        iters = operator.index(iters)  # an int: not 1.5, not "10"
        if iters < 0:
            raise ValueError(f"iters must be >= 0, not {iters}")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a pygrad.optim optimizer, not {type_name(optimizer)!r}")
        opt = None if optimizer is None else optimizer._c
        ins = table = None
        if inputs is None:
            if data is not None:
                raise ValueError("data needs inputs: the leaf Values it is loaded into")
        else:
            ins = handles(inputs)
            table = float_array(data, "Tape.train data")
            if table.ndim != 2 or table.shape[1] != ins.n or table.shape[0] < 1:
                raise ValueError(f"data must have shape (rows, {ins.n}) for {ins.n} inputs, "
                                 f"not {table.shape}")
        losses = np.empty(iters, dtype=np.float64)
        failed = _c.failure()
        status, done = _c.tape_train(self._c, opt, iters, ins, table, losses, failed)
        if status:
            raise _replay_error(status, failed, losses[:done])
        return losses

    def __repr__(self) -> str:
        return f"Tape({len(self)} nodes, root={self.root!r})"


def _replay_error(status, failed, losses=None):
    """The exception for a failed replay, naming the op and its operands'
    data; it carries the losses recorded before it (Tape.train)."""
    if status not in (_c.EDOM, _c.ERANGE, _c.EZERODIV):
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
