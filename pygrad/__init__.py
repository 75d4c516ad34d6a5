"""pygrad: micrograd's API with the graph, the sort and the kernels in C.

    from pygrad import Value          # instead of: from micrograd.engine import Value
    from pygrad.nn import MLP         # instead of: from micrograd.nn import MLP
"""
from . import nn
from .engine import Value, live_nodes

__all__ = ["Value", "nn", "live_nodes"]
__version__ = "0.1.0"
