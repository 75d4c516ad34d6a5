"""pygrad's benchmark suite (`pygrad bench`): run.py times every workload on
pygrad beside the reference engine, micrograd, PyTorch, numpy and C;
baselines.py holds those other implementations, loops.c the C loops."""
from .run import main

__all__ = ["main"]
