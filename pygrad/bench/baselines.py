"""Baseline implementations of the benchmark workloads (docs/pages/workloads.md).

Plain functions that pygrad/bench/run.py times side by side with pygrad: PyTorch
eager, hand-vectorized numpy, hand-written C loops (pygrad/bench/loops.c, compiled
on the spot by build_c()), and the real `micrograd` package for W2 (run.py runs it through
pygrad.workloads.train_w2, the demo loop itself). torch,
numpy and micrograd are imported inside the functions that use them, so this
module imports without them.

Conventions:
- `params` is a flat list of floats in micrograd's parameters() order: for each
  layer, for each neuron, w[0..nin-1] then b. A network is given as micrograd's
  MLP(nin, nouts). init_params() draws them as micrograd does.
- Everything is float64.
- Each function returns a dict with at least "seconds" (wall time of the
  training loop only, by time.perf_counter, or by clock_gettime inside the C
  program, so without process start, compilation, data setup or model
  construction), "final_loss" and "losses" (every iteration's or step's loss,
  taken before that iteration's update). The C functions return None when no
  C compiler is found.
- torch and numpy's BLAS run with the thread settings of the environment.
  run.py's main() sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
  MKL_NUM_THREADS to 1 unless they are set: more threads only pay off on the
  batched MNIST-shaped runs, and when another process keeps a core busy they
  slow the small workloads down 10-100x (threads waiting on each other).
"""
import atexit
import math
import os
import random
import shlex
import shutil
import subprocess
import tempfile
import time

from ..workloads import W1_XS, W1_YS, W2_ALPHA, w2_learning_rate

HERE = os.path.dirname(os.path.abspath(__file__))

# The workloads' data, L2 strength and schedule: pygrad/workloads.py. Sizes:
# W1 (seed 000) MLP(3, [4, 4, 1]); W2 (micrograd's demo) MLP(2, [16, 16, 1]).
W1_SIZES = (3, [4, 4, 1])
W2_SIZES = (2, [16, 16, 1])

# W5 MNIST-shaped: MLP(784, [128, 10]).
MNIST_SIZES = (784, [128, 10])


# ---------------------------------------------------------------- parameters

def param_count(nin, nouts):
    """The number of parameters of micrograd's MLP(nin, nouts)."""
    sizes = [nin] + list(nouts)
    return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(nouts)))


def init_params(nin, nouts, seed=0, zero_bias=False):
    """Parameters drawn as micrograd does after random.seed(seed): for each layer,
    for each neuron, nin draws of random.uniform(-1, 1) for w, then one for b
    (the W1 tutorial's init), or b = 0 without a draw if zero_bias (micrograd's
    own Neuron). Uses its own random.Random(seed), which gives the same numbers
    as the module-level functions after random.seed(seed), without touching them."""
    rng = random.Random(seed)
    params = []
    sizes = [nin] + list(nouts)
    for i in range(len(nouts)):
        for _ in range(sizes[i + 1]):
            params += [rng.uniform(-1, 1) for _ in range(sizes[i])]
            params.append(0.0 if zero_bias else rng.uniform(-1, 1))
    return params


def _check_params(params, nin, nouts):
    expected = param_count(nin, nouts)
    if len(params) != expected:
        raise ValueError(f"MLP({nin}, {list(nouts)}) has {expected} parameters, "
                         f"got {len(params)}")
    return [float(p) for p in params]


def _layer_blocks(flat, nin, nouts):
    """Split a flat parameter array (numpy or torch, micrograd's order) into one
    (nout, nin + 1) view per layer: row j is neuron j's w[0..nin-1] then b."""
    blocks, start = [], 0
    for nout in nouts:
        size = nout * (nin + 1)
        blocks.append(flat[start:start + size].reshape(nout, nin + 1))
        start += size
        nin = nout
    return blocks


# ---------------------------------------------------------------- C loops

_c_binary = None   # path of the compiled loops, once built
_c_tried = False   # build_c() runs the compiler at most once per process


def _find_compiler():
    """The C compiler as an argument list: $CC if set, else cc, gcc or clang."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def build_c():
    """Compile loops.c, beside this file (once per process) and return the binary's path,
    or None if there is no C compiler. A compiler that fails raises RuntimeError."""
    global _c_binary, _c_tried
    if _c_tried:
        return _c_binary
    _c_tried = True
    compiler = _find_compiler()
    if compiler is None:
        return None
    build_dir = tempfile.mkdtemp(prefix="pygrad-loops-")
    atexit.register(shutil.rmtree, build_dir, ignore_errors=True)
    binary = os.path.join(build_dir, "loops")
    cmd = compiler + ["-O2", "-ffp-contract=off", "-fno-fast-math", "-o", binary,
                      os.path.join(HERE, "loops.c"), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling loops.c failed: {shlex.join(cmd)}\n{proc.stderr}")
    _c_binary = binary
    return _c_binary


def _format_numbers(values):
    """Numbers as text that C's strtod reads back exactly (Python's repr)."""
    return " ".join(repr(float(v)) for v in values)


def _format_mlp(params, nin, nouts, acts):
    """The network as loops.c's mlp_read() expects it."""
    codes = {"linear": 0, "tanh": 1, "relu": 2}
    return (f"{len(nouts)} {nin} {' '.join(map(str, nouts))} "
            f"{' '.join(str(codes[a]) for a in acts)}\n"
            f"{len(params)} {_format_numbers(params)}\n")


def _run_c(workload, text):
    """Run the compiled loops on one workload with `text` on stdin; return its
    key=value lines as a dict (a "losses" value as a list of floats), or None
    without a compiler."""
    binary = build_c()
    if binary is None:
        return None
    proc = subprocess.run([binary, workload], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"loops {workload} failed: {proc.stderr.strip()}")
    result = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        result[key] = [float(v) for v in value.split()] if key == "losses" else float(value)
    return result


# ---------------------------------------------------------------- numpy and torch MLPs

def _numpy_forward(blocks, acts, x):
    """Forward pass over a batch x (rows are samples); returns every layer's
    outputs, x first."""
    import numpy as np
    outs = [x]
    for block, act in zip(blocks, acts):
        nin = block.shape[1] - 1
        z = outs[-1] @ block[:, :nin].T + block[:, nin]
        if act == "tanh":
            z = np.tanh(z)
        elif act == "relu":
            z = np.maximum(z, 0.0)
        outs.append(z)
    return outs


def _numpy_backward(blocks, grad_blocks, acts, outs, gout):
    """Backward pass: from d(loss)/d(last outputs), writes each layer's gradient
    into grad_blocks (views of the flat gradient array)."""
    g = gout
    for l in reversed(range(len(blocks))):
        out, nin = outs[l + 1], blocks[l].shape[1] - 1
        if acts[l] == "tanh":
            g = g * (1.0 - out * out)
        elif acts[l] == "relu":
            g = g * (out > 0)
        grad_blocks[l][:, :nin] = g.T @ outs[l]
        grad_blocks[l][:, nin] = g.sum(axis=0)
        if l:
            g = g @ blocks[l][:, :nin]


def _torch_layers(params, nin, nouts):
    """Leaf tensors (W, b) per layer, like torch.nn.Linear's, from flat params."""
    import torch
    flat = torch.tensor(params, dtype=torch.float64)
    return [(block[:, :-1].clone().requires_grad_(), block[:, -1].clone().requires_grad_())
            for block in _layer_blocks(flat, nin, nouts)]


def _torch_forward(layers, acts, x):
    import torch
    import torch.nn.functional as F
    for (W, b), act in zip(layers, acts):
        x = F.linear(x, W, b)
        if act == "tanh":
            x = torch.tanh(x)
        elif act == "relu":
            x = torch.relu(x)
    return x


def _torch_sgd(layers, lr):
    """p -= lr * p.grad for every parameter, then clear the gradients (set them
    to None, as torch's own zero_grad() does by default)."""
    import torch
    with torch.no_grad():
        for W, b in layers:
            W -= lr * W.grad
            b -= lr * b.grad
            W.grad = None
            b.grad = None


def _result(seconds, losses, **extra):
    return {"seconds": seconds, "final_loss": losses[-1] if losses else None,
            "losses": losses, **extra}


# ---------------------------------------------------------------- W1

W1_ACTS = ["tanh", "tanh", "tanh"]


def w1_torch(params, iters, lr=0.01):
    """W1 in PyTorch eager: the 4 samples as one 4x3 float64 tensor, tanh on
    every layer, loss sqrt(sum((y - ypred)**2)), autograd, manual SGD under
    no_grad. Returns seconds, final_loss, losses."""
    import torch
    params = _check_params(params, *W1_SIZES)
    X = torch.tensor(W1_XS, dtype=torch.float64)
    Y = torch.tensor(W1_YS, dtype=torch.float64)
    layers = _torch_layers(params, *W1_SIZES)
    losses = []
    start = time.perf_counter()
    for _ in range(iters):
        ypred = _torch_forward(layers, W1_ACTS, X)[:, 0]
        loss = ((Y - ypred) ** 2).sum().sqrt()
        loss.backward()
        _torch_sgd(layers, lr)
        losses.append(loss.item())
    return _result(time.perf_counter() - start, losses)


def w1_numpy(params, iters, lr=0.01):
    """W1 in numpy, forward and backward written by hand over the 4x3 batch.
    Returns seconds, final_loss, losses."""
    import numpy as np
    params = _check_params(params, *W1_SIZES)
    X = np.array(W1_XS, dtype=np.float64)
    Y = np.array(W1_YS, dtype=np.float64)
    flat = np.array(params, dtype=np.float64)
    grad = np.zeros_like(flat)
    blocks, grad_blocks = _layer_blocks(flat, *W1_SIZES), _layer_blocks(grad, *W1_SIZES)
    losses = []
    start = time.perf_counter()
    for _ in range(iters):
        outs = _numpy_forward(blocks, W1_ACTS, X)
        diff = Y - outs[-1][:, 0]
        total = float(diff @ diff)
        loss = math.sqrt(total)
        # d loss/d ypred = d sqrt(S)/dS * dS/d diff * d diff/d ypred
        gout = -(2.0 * diff * (0.5 / loss))
        _numpy_backward(blocks, grad_blocks, W1_ACTS, outs, gout[:, None])  # overwrites grad
        flat -= lr * grad
        losses.append(loss)
    return _result(time.perf_counter() - start, losses)


def w1_c(params, iters, lr=0.01):
    """W1 as a hand-written C loop (loops.c), op for op the pure-Python engine's
    arithmetic, so its losses match pygrad.reference to the bit. Returns seconds
    (timed inside C), final_loss, losses; None without a C compiler."""
    params = _check_params(params, *W1_SIZES)
    text = (f"{int(iters)} {float(lr)!r}\n" + _format_mlp(params, *W1_SIZES, W1_ACTS)
            + f"{len(W1_XS)}\n{_format_numbers(v for row in W1_XS for v in row)}\n"
            + f"{_format_numbers(W1_YS)}\n")
    out = _run_c("w1", text)
    return None if out is None else _result(out["seconds"], out["losses"])


# ---------------------------------------------------------------- W2

W2_ACTS = ["relu", "relu", "linear"]


def w2_torch(params, X, y, steps=100):
    """W2 (micrograd's demo) in PyTorch eager, full batch: hinge loss
    mean(relu(1 - y*score)) + 1e-4 * sum(p*p), SGD with the demo's schedule.
    X: n [x0, x1] rows, y: n labels +-1. Returns seconds, final_loss, losses
    (before each step's update) and accuracy (of the last step's scores)."""
    import torch
    params = _check_params(params, *W2_SIZES)
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    layers = _torch_layers(params, *W2_SIZES)
    losses = []
    start = time.perf_counter()
    for k in range(steps):
        scores = _torch_forward(layers, W2_ACTS, Xt)[:, 0]
        data_loss = torch.relu(1.0 - yt * scores).mean()
        reg_loss = W2_ALPHA * sum((W * W).sum() + (b * b).sum() for W, b in layers)
        loss = data_loss + reg_loss
        loss.backward()
        _torch_sgd(layers, w2_learning_rate(k))
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    accuracy = ((yt > 0) == (scores > 0)).double().mean().item() if steps else None
    return _result(seconds, losses, accuracy=accuracy)


def w2_numpy(params, X, y, steps=100):
    """W2 in numpy, forward and backward written by hand, full batch. Returns
    seconds, final_loss, losses and accuracy, as w2_torch."""
    import numpy as np
    params = _check_params(params, *W2_SIZES)
    Xa = np.array(X, dtype=np.float64)
    ya = np.array(y, dtype=np.float64)
    flat = np.array(params, dtype=np.float64)
    grad = np.zeros_like(flat)
    blocks, grad_blocks = _layer_blocks(flat, *W2_SIZES), _layer_blocks(grad, *W2_SIZES)
    n = len(ya)
    losses = []
    start = time.perf_counter()
    for k in range(steps):
        outs = _numpy_forward(blocks, W2_ACTS, Xa)
        scores = outs[-1][:, 0]
        margins = 1.0 - ya * scores
        loss = float(np.maximum(margins, 0.0).mean() + W2_ALPHA * (flat @ flat))
        gout = -ya * (margins > 0) / n                    # d data_loss / d score
        _numpy_backward(blocks, grad_blocks, W2_ACTS, outs, gout[:, None])
        grad += 2.0 * W2_ALPHA * flat                     # d reg_loss / d p
        flat -= w2_learning_rate(k) * grad
        losses.append(loss)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean((ya > 0) == (scores > 0))) if steps else None
    return _result(seconds, losses, accuracy=accuracy)


def w2_c(params, X, y, steps=100):
    """W2 as a hand-written C loop (loops.c), per sample in micrograd's order.
    Returns seconds (timed inside C), final_loss, losses and accuracy, as
    w2_torch; None without a C compiler."""
    params = _check_params(params, *W2_SIZES)
    text = (f"{int(steps)} {W2_ALPHA!r}\n" + _format_mlp(params, *W2_SIZES, W2_ACTS)
            + f"{len(X)}\n{_format_numbers(v for row in X for v in row)}\n"
            + f"{_format_numbers(y)}\n")
    out = _run_c("w2", text)
    if out is None:
        return None
    return _result(out["seconds"], out["losses"], accuracy=out["accuracy"] if steps else None)


# ---------------------------------------------------------------- W5: chain

def chain_c(steps, a=0.5, b=0.25, y0=0.1):
    """A chain of `steps` steps y = tanh(y * a + b) (3 nodes each: mul, add,
    tanh) as a hand-written C loop over plain double arrays: forward stores every
    node's value, backward (including zeroing the gradient array) propagates
    d(last) = 1 back to the shared leaves a, b and to y0. The arrays are
    allocated and their pages touched before timing.
    Returns seconds_forward, seconds_backward, seconds (their sum), nodes
    (3 * steps), final_value, grad_a, grad_b, grad_y0; None without a C compiler."""
    if steps < 1:
        raise ValueError(f"the chain needs at least one step, not {steps}")
    out = _run_c("chain", f"{int(steps)} {_format_numbers([a, b, y0])}\n")
    if out is None:
        return None
    return {"seconds_forward": out["seconds_forward"],
            "seconds_backward": out["seconds_backward"],
            "seconds": out["seconds_forward"] + out["seconds_backward"],
            "nodes": 3 * int(steps),
            "final_value": out["final_value"], "grad_a": out["grad_a"],
            "grad_b": out["grad_b"], "grad_y0": out["grad_y0"]}


# ---------------------------------------------------------------- W5: MNIST-shaped

MNIST_ACTS = ["relu", "linear"]


def synthetic_mnist(n, seed=0):
    """Synthetic data of MNIST's shape (real MNIST cannot be downloaded here):
    X, an (n, 784) float64 array uniform in [0, 1), and labels, an (n,) int64
    array in 0..9. The label is the argmax of a fixed random linear map of the
    centred pixels, so the task is learnable and the classes roughly balanced."""
    import numpy as np
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784))
    projection = rng.standard_normal((784, 10))
    labels = np.argmax((X - 0.5) @ projection, axis=1).astype(np.int64)
    return X, labels


def mnist_params(seed=0):
    """Parameters of MLP(784, [128, 10]) in micrograd's order, drawn like
    torch.nn.Linear's default: uniform(-1/sqrt(nin), 1/sqrt(nin)) for w and b
    (micrograd's uniform(-1, 1) would saturate a 784-input layer)."""
    rng = random.Random(seed)
    params = []
    sizes = [MNIST_SIZES[0]] + MNIST_SIZES[1]
    for nin, nout in zip(sizes, sizes[1:]):
        bound = 1.0 / math.sqrt(nin)
        params += [rng.uniform(-bound, bound) for _ in range(nout * (nin + 1))]
    return params


def _batch_slices(n, batch, steps):
    """The samples of each step: (k * batch + i) mod n for i < batch, as a slice
    when they do not wrap around, else as an index list."""
    batches: "list[slice | list[int]]" = []
    for k in range(steps):
        first = (k * batch) % n
        if first + batch <= n:
            batches.append(slice(first, first + batch))
        else:
            batches.append([(first + i) % n for i in range(batch)])
    return batches


def _mnist_result(seconds, losses, batch, steps):
    samples = batch * steps
    return _result(seconds, losses, samples=samples,
                   seconds_per_sample=seconds / samples if samples else None)


def mnist_torch(params, X, Y, batch=1, steps=100, lr=0.01):
    """MLP(784, [128, 10]) (ReLU hidden, linear logits) in PyTorch eager,
    softmax cross-entropy averaged over the batch, SGD. params: micrograd-order
    list, or None for mnist_params(0). X: (n, 784), Y: (n,) labels (numpy).
    Step k trains on samples (k * batch + i) mod n. Returns seconds, final_loss,
    losses (per step), samples and seconds_per_sample."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    params = _check_params(mnist_params(0) if params is None else params, *MNIST_SIZES)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
    Yt = torch.from_numpy(np.asarray(Y, dtype=np.int64))
    layers = _torch_layers(params, *MNIST_SIZES)
    batches = _batch_slices(len(Yt), batch, steps)
    losses = []
    start = time.perf_counter()
    for rows in batches:
        logits = _torch_forward(layers, MNIST_ACTS, Xt[rows])
        loss = F.cross_entropy(logits, Yt[rows])
        loss.backward()
        _torch_sgd(layers, lr)
        losses.append(loss.item())
    return _mnist_result(time.perf_counter() - start, losses, batch, steps)


def mnist_numpy(params, X, Y, batch=1, steps=100, lr=0.01):
    """The MNIST-shaped workload of mnist_torch, forward and backward written by
    hand in numpy. Same arguments and return keys."""
    import numpy as np
    params = _check_params(mnist_params(0) if params is None else params, *MNIST_SIZES)
    Xa = np.ascontiguousarray(X, dtype=np.float64)
    Ya = np.asarray(Y, dtype=np.int64)
    flat = np.array(params, dtype=np.float64)
    grad = np.zeros_like(flat)
    blocks, grad_blocks = _layer_blocks(flat, *MNIST_SIZES), _layer_blocks(grad, *MNIST_SIZES)
    batches = _batch_slices(len(Ya), batch, steps)
    losses = []
    start = time.perf_counter()
    for rows in batches:
        outs = _numpy_forward(blocks, MNIST_ACTS, Xa[rows])
        labels = Ya[rows]
        z = outs[-1]
        shifted = z - z.max(axis=1, keepdims=True)
        exps = np.exp(shifted)
        sums = exps.sum(axis=1)
        picked = np.arange(len(labels))
        loss = float(np.mean(np.log(sums) - shifted[picked, labels]))
        gout = exps / sums[:, None]                       # softmax
        gout[picked, labels] -= 1.0                       # - onehot
        gout /= len(labels)                               # the mean over the batch
        _numpy_backward(blocks, grad_blocks, MNIST_ACTS, outs, gout)
        flat -= lr * grad
        losses.append(loss)
    return _mnist_result(time.perf_counter() - start, losses, batch, steps)


def mnist_c(params, X, Y, batch=1, steps=100, lr=0.01):
    """The MNIST-shaped workload of mnist_torch as a hand-written C loop
    (loops.c), one sample at a time, each neuron's sum in micrograd's order. The
    data go through a temporary binary file (native float64 pixels, then int32
    labels: text would be ~1 GB for 60,000 samples). Same arguments and return
    keys; seconds timed inside C; None without a C compiler."""
    import numpy as np
    params = _check_params(mnist_params(0) if params is None else params, *MNIST_SIZES)
    Xa = np.ascontiguousarray(X, dtype=np.float64)
    Ya = np.asarray(Y)
    if Xa.ndim != 2 or Xa.shape[1] != MNIST_SIZES[0] or Ya.shape != (len(Xa),):
        raise ValueError(f"X must be (n, {MNIST_SIZES[0]}) and Y (n,), not {Xa.shape} and {Ya.shape}")
    if build_c() is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pygrad-mnist-") as tmp:
        path = os.path.join(tmp, "data.bin")
        with open(path, "wb") as f:
            Xa.tofile(f)
            Ya.astype(np.int32).tofile(f)
        text = (f"{int(batch)} {int(steps)} {float(lr)!r}\n"
                + _format_mlp(params, *MNIST_SIZES, MNIST_ACTS) + f"{len(Xa)}\n{path}\n")
        out = _run_c("mnist", text)
    return _mnist_result(out["seconds"], out["losses"], batch, steps)
