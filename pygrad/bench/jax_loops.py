"""JAX baselines of the benchmark workloads: each whole training loop jitted
into one XLA program, in float64 (jax_enable_x64). W1 and W2 are one
lax.fori_loop over the iterations, the MNIST-shaped run one lax.scan over
its samples (one SGD step each); gradients by jax.value_and_grad.

The arithmetic is the batched one of baselines.py's PyTorch and numpy
versions (XLA may also reorder a dot product's sum), so the losses agree with
pygrad's to rounding, not to the bit. Each function returns, like
baselines.py's, "seconds" (the compiled program's run alone, to
block_until_ready), "final_loss" and "losses", and "compile_seconds": the
program is compiled ahead of time once per shape (iteration count, sample
count) and kept, and that compile is timed apart. jax is imported inside the
functions (ImportError without it); run.py sets XLA_FLAGS for one thread.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from ..workloads import W1_XS, W1_YS, W2_ALPHA
from .baselines import (MNIST_ACTS, MNIST_SIZES, W1_ACTS, W1_SIZES, W2_ACTS, W2_SIZES,
                        _check_params, _layer_blocks, _mnist_result, _result, mnist_params)

#: XLA's CPU flags for one thread (read when jax first loads).
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

_compiled: dict[Any, tuple[Any, float]] = {}  # (workload, shapes) -> (program, compile seconds)


def _jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax


def _layers(params, nin, nouts):
    """Per-layer (W, b) float64 jax arrays from micrograd-order params."""
    import numpy as np
    jnp = _jax().numpy
    flat = np.array(params, dtype=np.float64)
    return [(jnp.asarray(block[:, :-1]), jnp.asarray(block[:, -1]))
            for block in _layer_blocks(flat, nin, nouts)]


def _forward(layers, acts, x):
    jax = _jax()
    for (W, b), act in zip(layers, acts):
        x = x @ W.T + b
        if act == "tanh":
            x = jax.numpy.tanh(x)
        elif act == "relu":
            x = jax.nn.relu(x)  # derivative 0 at 0, as micrograd's (jnp.maximum's is 1/2)
    return x


def _sgd(jax, layers, grads, lr):
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, layers, grads)


def _run(key: Any, make: Callable[[], Callable[..., Any]], *args: Any) -> tuple[float, Any, float]:
    """(seconds, outputs, compile seconds): the program make() returns,
    jitted and compiled for args once per key, run on args."""
    jax = _jax()
    if key not in _compiled:
        start = time.perf_counter()
        program = jax.jit(make()).lower(*args).compile()
        _compiled[key] = program, time.perf_counter() - start
    program, compile_seconds = _compiled[key]
    start = time.perf_counter()
    out = jax.block_until_ready(program(*args))
    return time.perf_counter() - start, out, compile_seconds


def _fori_train(loss_fn, iters, lr_of):
    """A training loop as one lax.fori_loop: iters steps of SGD at lr_of(k)
    on loss_fn(layers, *data); train(layers, *data) returns (layers, the losses)."""
    jax = _jax()
    value_and_grad = jax.value_and_grad(loss_fn)

    def train(layers, *data):
        def body(k, carry):
            layers, losses = carry
            loss, grads = value_and_grad(layers, *data)
            return _sgd(jax, layers, grads, lr_of(k)), losses.at[k].set(loss)
        return jax.lax.fori_loop(0, iters, body, (layers, jax.numpy.zeros(iters)))
    return train


def w1_jax(params, iters, lr=0.01):
    """W1 (seed 000's loop, batched like w1_torch) as one jitted
    lax.fori_loop. Returns seconds, final_loss, losses, compile_seconds."""
    jnp = _jax().numpy
    layers = _layers(_check_params(params, *W1_SIZES), *W1_SIZES)
    X, Y = jnp.asarray(W1_XS, dtype=jnp.float64), jnp.asarray(W1_YS, dtype=jnp.float64)

    def make():
        def loss_fn(layers):
            ypred = _forward(layers, W1_ACTS, X)[:, 0]
            return jnp.sqrt(jnp.sum((Y - ypred) ** 2))
        return _fori_train(loss_fn, iters, lambda k: lr)

    seconds, (_, losses), compile_seconds = _run(("w1", iters, lr), make, layers)
    return _result(seconds, losses.tolist(), compile_seconds=compile_seconds)


def w2_jax(params, X, y, steps=100):
    """W2 (micrograd's demo, full batch like w2_torch: hinge loss + L2, the
    demo's schedule) as one jitted lax.fori_loop. Returns seconds,
    final_loss, losses, compile_seconds."""
    jax = _jax()
    jnp = jax.numpy
    layers = _layers(_check_params(params, *W2_SIZES), *W2_SIZES)
    Xj, yj = jnp.asarray(X, dtype=jnp.float64), jnp.asarray(y, dtype=jnp.float64)

    def make():
        def loss_fn(layers, Xj, yj):
            scores = _forward(layers, W2_ACTS, Xj)[:, 0]
            data_loss = jnp.mean(jax.nn.relu(1.0 - yj * scores))
            return data_loss + W2_ALPHA * sum(jnp.sum(W * W) + jnp.sum(b * b) for W, b in layers)
        return _fori_train(loss_fn, steps, lambda k: 1.0 - 0.9 * k / 100)  # w2_learning_rate

    seconds, (_, losses), compile_seconds = _run(("w2", steps, len(X)), make, layers, Xj, yj)
    return _result(seconds, losses.tolist(), compile_seconds=compile_seconds)


def mnist_jax(params, X, Y, batch=1, steps=100, lr=0.01):
    """The MNIST-shaped run of mnist_torch, one sample per step, as one
    jitted lax.scan over the samples (batch must be 1). Returns seconds,
    final_loss, losses, samples, seconds_per_sample, compile_seconds."""
    if batch != 1:
        raise ValueError("mnist_jax trains one sample per step (batch=1)")
    import numpy as np
    jax = _jax()
    jnp = jax.numpy
    layers = _layers(_check_params(mnist_params(0) if params is None else params, *MNIST_SIZES),
                     *MNIST_SIZES)
    rows = [k % len(Y) for k in range(steps)]
    Xs = jnp.asarray(np.ascontiguousarray(np.asarray(X, dtype=np.float64)[rows]))
    Ys = jnp.asarray(np.asarray(Y, dtype=np.int64)[rows])

    def make():
        def loss_fn(layers, x, label):
            logits = _forward(layers, MNIST_ACTS, x)
            return jax.nn.logsumexp(logits) - logits[label]  # softmax cross-entropy
        value_and_grad = jax.value_and_grad(loss_fn)

        def train(layers, Xs, Ys):
            def step(layers, sample):
                loss, grads = value_and_grad(layers, *sample)
                return _sgd(jax, layers, grads, lr), loss
            return jax.lax.scan(step, layers, (Xs, Ys))
        return train

    seconds, (_, losses), compile_seconds = _run(("mnist", steps, lr), make, layers, Xs, Ys)
    out = _mnist_result(seconds, losses.tolist(), batch, steps)
    out["compile_seconds"] = compile_seconds
    return out
