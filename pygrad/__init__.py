"""pygrad: micrograd's API with the graph, the sort and the kernels in C.

    from pygrad import Value          # instead of: from micrograd.engine import Value
    from pygrad.nn import MLP         # instead of: from micrograd.nn import MLP

`pygrad.reference` is the same API in pure Python (the tests' oracle).
"""
from . import nn
from .engine import Value, live_nodes
from .nn import MLP, Layer, Module, Neuron

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "nn", "live_nodes"]
__version__ = "0.1.0"
