"""Saving and loading a model's parameters: `model.save(path)`, `model.load(path)`.

The file format
---------------
A numpy ``.npz`` archive (a zip of ``.npy`` arrays, readable with plain
``numpy.load(path)`` and no pygrad), written exactly at the path given, with:

==========  =====================================================================
``format``  the string ``"pygrad.parameters"``
``version`` the integer 1
``model``   the model's shape: ``repr(model)``, e.g. ``"MLP of [Layer of [TanhNeuron(3), ...], ...]"``,
            or, for a class without a ``__repr__`` of its own, ``"<class name> with <n> parameters"``
``data``    a 1-D float64 array: every parameter's data, in ``model.parameters()`` order
==========  =====================================================================

Only the numbers are saved, to the bit (NaN and inf included); grads and the
graph are not. Loading checks the file against the model before it changes
anything: a file that is not such an archive, or that was saved from a model
of another shape (another parameter count, or another ``repr``: layer sizes
and activations), raises ValueError naming both models, and leaves every
parameter as it was. Files are read without unpickling anything
(``allow_pickle=False``).

For a whole model object (structure and numbers), pickle works too:
``pickle.dumps(model)``; this format is for the numbers alone, across
versions, engines (``pygrad.reference``'s models save and load the same files)
and programs.
"""
from __future__ import annotations

import io
import os
import zipfile
import zlib
from typing import IO, TYPE_CHECKING, Union

import numpy

from .arrays import get_data, set_data

if TYPE_CHECKING:
    from .nn import Module

#: What save and load take: a path, or a binary file object.
File = Union[str, "os.PathLike[str]", IO[bytes]]

FORMAT = "pygrad.parameters"
VERSION = 1


def describe(module: Module) -> str:
    """The model's shape as saved: its repr, unless that is object's (an address)."""
    if getattr(type(module), "__repr__") is object.__repr__:
        return f"{type(module).__qualname__} with {len(module.parameters())} parameters"
    return repr(module)


def _values(module: Module) -> numpy.ndarray:
    """The module's parameters' data, as a float64 array (one C call on pygrad)."""
    h = getattr(module, "_handles", lambda: None)()  # (C handles on pygrad; None elsewhere)
    if h is not None:
        return get_data(h)
    return numpy.array([p.data for p in module.parameters()], dtype="float64")


def save(module: Module, file: File) -> None:
    """Write module's parameters to file (a path or a binary file object)."""
    if isinstance(file, (str, os.PathLike)):
        # Made in memory first, so a model that fails to save leaves an old
        # file whole; opened here, as numpy.savez would add ".npz" to the path.
        whole = io.BytesIO()
        save(module, whole)
        with open(file, "wb") as f:
            f.write(whole.getvalue())
        return
    numpy.savez(file, format=numpy.array(FORMAT), version=numpy.array(VERSION),
                model=numpy.array(describe(module)), data=_values(module))


def _read(file: File) -> tuple[str, numpy.ndarray]:
    """The (model repr, data) of a parameter file, or ValueError."""
    try:
        z = numpy.load(file, allow_pickle=False)
    except (EOFError, ValueError, zipfile.BadZipFile) as e:  # the file's own errors (OSError passes)
        raise ValueError(f"{file!r} is not a pygrad parameter file ({e})") from None
    if not isinstance(z, numpy.lib.npyio.NpzFile):  # a bare .npy: one array
        raise ValueError(f"{file!r} is not a pygrad parameter file (a single array)")
    try:
        with z:
            arrays = {k: z[k] for k in ("format", "version", "model", "data") if k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error) as e:  # a damaged member
        raise ValueError(f"{file!r} is not a pygrad parameter file ({e})") from None
    if len(arrays) != 4 or str(arrays["format"]) != FORMAT:
        raise ValueError(f"{file!r} is not a pygrad parameter file "
                         f"(it has {sorted(arrays)}, not format {FORMAT!r})")
    version = arrays["version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != VERSION:
        raise ValueError(f"{file!r} is a pygrad parameter file of version {version}; "
                         f"this pygrad reads version {VERSION}")
    data = arrays["data"]
    if data.dtype != numpy.float64 or data.ndim != 1:
        raise ValueError(f"{file!r}: parameters must be a 1-D float64 array, "
                         f"not {data.dtype} of shape {data.shape}")
    return str(arrays["model"]), data


def load(module: Module, file: File) -> None:
    """Set module's parameters from file, which save() wrote for a model of
    the same shape. ValueError, with nothing changed, if it does not fit."""
    saved, data = _read(file)
    params = module.parameters()
    if saved != describe(module) or len(data) != len(params):
        raise ValueError(f"{file!r} holds {len(data)} parameters of {saved}; "
                         f"this model has {len(params)}: {describe(module)}")
    h = getattr(module, "_handles", lambda: None)()
    if h is not None:
        set_data(h, data)
    else:
        for p, x in zip(params, data.tolist()):
            p.data = x
