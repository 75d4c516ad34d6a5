"""pygrad's benchmark suite (`pygrad bench`): run.py times every workload on
pygrad beside the reference engine, micrograd, PyTorch, numpy, JAX and C;
timing.py is how (warm-up, interleaved repeats, medians); baselines.py holds
the other implementations, jax_loops.py the JAX ones, loops.c the C loops."""
from .run import main

__all__ = ["main"]
