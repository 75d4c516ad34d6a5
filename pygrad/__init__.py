"""pygrad: micrograd's API with the graph, the sort and the kernels in C.

    from pygrad import Value          # instead of: from micrograd.engine import Value
    from pygrad.nn import MLP         # instead of: from micrograd.nn import MLP

`pygrad.reference` is the same API in pure Python (the tests' oracle).
"""
from typing import TYPE_CHECKING

from . import losses, nn, optim
from .draw import draw_dot
from .arrays import get_data, get_grad, set_data, set_grad
from .engine import Value, live_nodes, node_limit, set_node_limit
from .nn import MLP, Layer, Module, Neuron
from .replay import Tape

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "nn", "optim", "losses", "Tape", "live_nodes",
           "set_node_limit", "node_limit", "get_data", "get_grad", "set_data", "set_grad",
           "draw_dot"]
__version__ = "0.1.0"

# Submodules that `import pygrad` does not import (they are not needed to
# build and train a model, and some load more: numpy, the workloads) are
# imported on first use, so `pygrad.datasets.load_digits()` works after a
# plain `import pygrad`, as it does after `import pygrad.datasets`.
_SUBMODULES = ("bench", "cli", "datasets", "plot", "reference", "runs", "serialization", "sweep",
               "workloads")

if TYPE_CHECKING:  # type checkers see them as the modules they are
    from . import (bench, cli, datasets, plot, reference, runs, serialization,  # noqa: F401
                   sweep, workloads)
else:  # (and do not see this, so that a misspelt name stays an error)
    def __getattr__(name):  # PEP 562: called only for a name not found otherwise
        if name in _SUBMODULES:
            import importlib
            return importlib.import_module(f"{__name__}.{name}")  # which sets pygrad.<name>
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(globals()) | set(_SUBMODULES))
