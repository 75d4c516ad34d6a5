"""pygrad._lazy: numpy, imported when first used, not by `import pygrad`.

Building and training a model needs no numpy; `import pygrad` stays quick
(tests/test_packaging.py checks that it loads no numpy). The modules that
use numpy (arrays, optim, replay, serialization) write `numpy.x` as usual;
the first such use imports it.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """A module imported by its first attribute lookup."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attr)


numpy: Any = LazyModule("numpy")
