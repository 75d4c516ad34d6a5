"""pygrad: micrograd's API with the graph, the sort and the kernels in C.

    from pygrad import Value          # instead of: from micrograd.engine import Value
    from pygrad.nn import MLP         # instead of: from micrograd.nn import MLP

`pygrad.reference` is the same API in pure Python (the tests' oracle).
"""
from . import losses, nn, optim, serialization
from .draw import draw_dot
from .arrays import get_data, get_grad, set_data, set_grad
from .engine import Value, live_nodes, node_limit, set_node_limit
from .nn import MLP, Layer, Module, Neuron
from .replay import Tape

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "nn", "optim", "losses", "Tape", "live_nodes",
           "set_node_limit", "node_limit", "get_data", "get_grad", "set_data", "set_grad",
           "draw_dot"]
__version__ = "0.1.0"
