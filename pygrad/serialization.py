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
graph are not. Saving to a path is atomic (pygrad/_files.py): the archive is
written beside the path and renamed over it, so a save that fails (a full
disk, a model that raises) leaves the old file whole.

Loading checks the file against the model before it changes anything: a
file that is not such an archive, is damaged, or was saved from a model of
another shape (another parameter count, or another ``repr``: layer sizes and
activations), raises ValueError naming both models, and leaves every
parameter as it was. It reads the file only as far as the model needs, so
its time and memory are proportional to the model, not to what the file
claims: a file larger than this model's could be is refused unread, each
member's sizes and its ``.npy`` header (dtype, shape) are checked before its
data is decompressed, and no more is inflated than the model needs. Nothing
is unpickled. Members stored or deflated (``numpy.savez``,
``numpy.savez_compressed``) are read; encrypted ones and other compressions
are refused.

For a whole model object (structure and numbers), pickle works too:
``pickle.dumps(model)``; this format is for the numbers alone, across
versions, engines (``pygrad.reference``'s models save and load the same files)
and programs.
"""
from __future__ import annotations

import ast
import io
import os
import re
import struct
import zipfile
import zlib
from typing import IO, TYPE_CHECKING, Any, NoReturn, Union

if TYPE_CHECKING:
    import numpy
else:  # (imported at its first use: `import pygrad` loads no numpy)
    from ._lazy import numpy

from ._files import atomic_write
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
    """Write module's parameters to file (a path or a binary file object);
    to a path atomically. (Opened here: numpy.savez would add ".npz" to a path.)"""
    if isinstance(file, (str, os.PathLike)):
        with atomic_write(file) as f:
            save(module, f)
        return
    numpy.savez(file, format=numpy.array(FORMAT), version=numpy.array(VERSION),
                model=numpy.array(describe(module)), data=_values(module))


def load(module: Module, file: File) -> None:
    """Set module's parameters from file, which save() wrote for a model of
    the same shape. ValueError, with nothing changed, if it does not fit."""
    params = module.parameters()
    data = _read(file, describe(module), len(params))
    h = getattr(module, "_handles", lambda: None)()  # (C handles on pygrad; None elsewhere)
    if h is not None:
        set_data(h, data)
    else:
        for p, x in zip(params, data.tolist()):
            p.data = x


# ---- reading a file, bounded by the model -----------------------------------
#
# Every limit below is what the model being loaded needs, plus a constant
# margin: a file is read into memory only up to _file_limit, a member only
# up to its header and the payload its checks allow. Whatever the file
# says, loading costs time and memory proportional to the model.

HEADER_MAX = 4096  # bytes of an .npy header (numpy writes 128; it refuses past 10,000)
SLACK = 64 * 1024  # bytes of room in a file for what another zip tool may add
# What zipfile raises for a damaged archive in memory (no disk is involved:
# an OSError is the buffer's bad seek, a RuntimeError or NotImplementedError
# an encryption or a zip version it does not read).
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError,
            OSError, RuntimeError, NotImplementedError, struct.error)


class _Damaged(Exception):
    """What is wrong with the file: becomes the ValueError that names it."""


def _read(file: File, ours: str, n: int) -> numpy.ndarray:
    """The n parameters a file holds for the model described as ours, as
    a float64 array; ValueError, with the file named, if it holds anything else."""
    limit = _file_limit(ours, n)
    raw = _read_at_most(file, limit + 1)
    try:
        return _parse(raw, ours, n, limit)
    except _Damaged as e:
        raise ValueError(f"{file!r} {e}") from None


def _file_limit(ours: str, n: int) -> int:
    """The most bytes a parameter file of n parameters and description ours
    takes: its members' payloads (text is 4 bytes a character), headers, and
    the zip's records for each, stored or deflated (deflate adds at most a
    few bytes per 16 KB), and SLACK."""
    payloads = 4 * len(FORMAT) + 64 + _model_limit(ours) + 8 * n
    return payloads + payloads // 2 + 4 * (HEADER_MAX + 1024) + SLACK


def _model_limit(ours: str) -> int:
    """The most bytes of a saved description read: room for another model's
    description to be shown in the error, up to 4,096 characters longer."""
    return 4 * (len(ours) + 4096)


def _read_at_most(file: File, limit: int) -> bytes:
    """Up to limit bytes of file (a path, or a binary file from its position)."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return _read_at_most(f, limit)
    chunks, left = [], limit
    while left > 0:
        chunk = file.read(min(left, 1 << 20))
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError(f"load needs a path or a binary file (open(path, 'rb')), "
                            f"not a file whose read() gives {type(chunk).__name__!r}")
        if not chunk:
            break
        chunks.append(bytes(chunk))
        left -= len(chunk)
    return b"".join(chunks)


def _parse(raw: bytes, ours: str, n: int, limit: int) -> numpy.ndarray:
    """The parameters in raw, the bytes of a file; _Damaged if it is not a
    parameter file of the model described as ours with n parameters."""
    if len(raw) > limit:
        raise _Damaged(f"is larger than a parameter file of this model can be (more than "
                       f"{limit:,} bytes for {n} parameters of {ours}): a file of another "
                       "model, or not a parameter file")
    if raw.startswith(b"\x93NUMPY"):
        raise _Damaged("is not a pygrad parameter file (a single array)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except _DAMAGED as e:
        raise _Damaged(f"is not a pygrad parameter file ({e})") from None
    with archive:
        _check_layout(archive)
        members = {info.filename[:-4]: info for info in archive.infolist()
                   if info.filename.endswith(".npy")}
        have = sorted(name for name in members if name in ("format", "version", "model", "data"))
        if len(have) != 4 or _scalar(archive, members["format"], 4 * len(FORMAT)) != FORMAT:
            raise _Damaged(f"is not a pygrad parameter file (it has {have}, not format {FORMAT!r})")
        version = _scalar(archive, members["version"], 64)
        if type(version) is not int:
            raise _Damaged(f"is not a pygrad parameter file of a version this pygrad reads: "
                           f"its version is {_show(version)}, not the integer {VERSION}")
        if version != VERSION:
            raise _Damaged(f"is a pygrad parameter file of version {version}; "
                           f"this pygrad reads version {VERSION}")
        with _Member(archive, members["data"]) as data:
            if data.descr not in ("<f8", ">f8") or len(data.shape) != 1:
                raise _Damaged(f"is not a pygrad parameter file: parameters must be a 1-D "
                               f"float64 array, not {data.descr} of shape {data.shape}")
            saved = _scalar(archive, members["model"], _model_limit(ours))
            if not isinstance(saved, str) and not (isinstance(saved, _Shown) and saved.text_too_long):
                raise _Damaged(f"is not a pygrad parameter file: its model is {_show(saved)}, "
                               "not a description")
            if saved != ours or data.shape[0] != n:
                raise _Damaged(f"holds {data.shape[0]} parameters of {_show(saved, plain=True)}; "
                               f"this model has {n}: {ours}")
            return numpy.frombuffer(data.payload(8 * n), dtype=data.descr).astype("float64")


def _check_layout(archive: zipfile.ZipFile) -> None:
    """_Damaged if two members overlap (each takes at least a 30-byte header
    and its compressed size): a zip bomb's trick, which zipfile refuses only
    in part, and from Python 3.12 (two entries sharing one header it only
    warns about)."""
    infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
    for a, b in zip(infos, infos[1:]):
        if a.header_offset + 30 + a.compress_size > b.header_offset:
            raise _Damaged(f"is not a pygrad parameter file (its {a.filename} and "
                           f"{b.filename} overlap)")


class _Shown:
    """What a member holds that was not read as a value (for a message):
    not a scalar of a kind read, or text too long to read."""

    def __init__(self, text: str, text_too_long: bool = False) -> None:
        self.text = text
        self.text_too_long = text_too_long


def _show(value: Any, plain: bool = False) -> str:
    """A member's value for a message: 'the text 1', or (plain) a string as it is."""
    if isinstance(value, _Shown):
        return value.text
    if plain and isinstance(value, str):
        return value
    kind = {str: "the text", float: "the float", bool: "the bool", int: "the integer"}
    return f"{kind[type(value)]} {value!r}"


def _scalar(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> Any:
    """The value of a member holding one scalar: a str, int, float or bool,
    else a _Shown saying what it holds. Its payload is read only if it is at
    most limit bytes."""
    with _Member(archive, info) as m:
        kind, size, little = m.kind()
        what = f"{m.descr!r} of shape {m.shape}"
        if m.shape != () or kind is None:
            return _Shown(f"an array of dtype {what}")
        if size > limit:
            if kind == "U":
                return _Shown(f"another model (a description of {size // 4:,} characters)", True)
            return _Shown(f"{size:,} bytes of {what}")
        raw = m.payload(size)
    if kind == "U":  # UTF-32, padded with NULs (numpy's own decoding of a bad code point crashes)
        try:
            return raw.decode("utf-32-le" if little else "utf-32-be").rstrip("\0")
        except UnicodeDecodeError:
            raise _Damaged(f"is not a pygrad parameter file (its {info.filename} "
                           "is not valid text)") from None
    if kind == "f":
        return float(numpy.frombuffer(raw, dtype=m.descr)[0])
    value = int.from_bytes(raw, "little" if little else "big", signed=kind == "i")
    return bool(value) if kind == "b" else value


# An .npy header: a Python dict literal of descr, fortran_order and shape.
# Only these characters: no operators, so ast.literal_eval meets no deep
# nesting beyond the parser's own bracket limit.
_HEADER_TEXT = re.compile(r"[{}()\[\]':, A-Za-z0-9_<>|=.\n]*")
_DESCR = re.compile(r"([<>|=]?)([biufU])([0-9]{1,9})")  # the dtypes read: bool, int, float, text


class _Member:
    """One .npy member of the archive, opened and its header parsed: descr
    (its dtype string, not yet understood), shape, and payload(nbytes) for
    its data. A context manager (closes the member)."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        self.info = info
        self.name = info.filename
        if info.flag_bits & 0x61:  # encrypted, strongly encrypted, patched (zipfile raises
            self._fail("is encrypted")  # RuntimeError or NotImplementedError)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            self._fail(f"has compression {info.compress_type}, not stored or deflated")
        try:
            self.stream = archive.open(info)
        except _DAMAGED as e:
            self._fail(f"cannot be read: {e}")
        try:
            self._header()
        except BaseException:
            self.stream.close()
            raise

    def __enter__(self) -> _Member:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    def _fail(self, why: str) -> NoReturn:
        raise _Damaged(f"is not a pygrad parameter file (its {self.name} {why})")

    def _exactly(self, nbytes: int) -> bytes:
        """The next nbytes of the member: never more inflated than that (and
        zipfile's 4 KB read-ahead)."""
        try:
            data = self.stream.read(nbytes)
        except _DAMAGED as e:
            self._fail(f"cannot be read: {e}")
        if len(data) != nbytes:
            self._fail("is cut short")
        return data

    def _header(self) -> None:
        start = self._exactly(8)
        major = start[6]
        if start[:6] != b"\x93NUMPY" or major not in (1, 2, 3):
            self._fail("is not an .npy array")
        width = 2 if major == 1 else 4
        (size,) = struct.unpack("<H" if width == 2 else "<I", self._exactly(width))
        if size > HEADER_MAX:
            self._fail(f"has a header of {size:,} bytes")
        try:
            text = self._exactly(size).decode("latin1" if major < 3 else "utf8")
        except UnicodeDecodeError:
            self._fail("has a header that is not text")
        if not _HEADER_TEXT.fullmatch(text):
            self._fail("has a header that is not an .npy header")
        try:
            header = ast.literal_eval(text)
        except (SyntaxError, ValueError, TypeError, RecursionError):
            self._fail("has a header that is not an .npy header")
        if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
            self._fail("has a header that is not an .npy header")
        descr, shape = header["descr"], header["shape"]
        if (not isinstance(descr, str) or not isinstance(header["fortran_order"], bool)
                or not isinstance(shape, tuple) or len(shape) > 64
                or not all(type(s) is int and s >= 0 for s in shape)):
            self._fail("has a header that is not an .npy header")
        self.descr, self.shape = descr, shape
        self.offset = 8 + width + size

    def kind(self) -> tuple[str | None, int, bool]:
        """(kind letter or None for a dtype not read, payload bytes, little-endian)."""
        m = _DESCR.fullmatch(self.descr)
        if m is None:
            return None, 0, True
        order, kind, digits = m.groups()
        width = int(digits)
        if (kind != "U" and width not in (1, 2, 4, 8)) or (kind == "f" and width == 1) \
                or (kind == "b" and width != 1) or width == 0:
            return None, 0, True
        count = 1
        for s in self.shape:
            count *= s
        return kind, count * width * (4 if kind == "U" else 1), order != ">"

    def payload(self, nbytes: int) -> bytes:
        """The member's data, nbytes after the header, checked against the
        sizes the zip declares before anything more is inflated."""
        if self.info.file_size != self.offset + nbytes:
            self._fail(f"is {self.info.file_size:,} bytes, not the {self.offset + nbytes:,} "
                       "its header needs")
        data = self._exactly(nbytes)
        if self._read_rest():
            self._fail("is longer than its header says")
        return data

    def _read_rest(self) -> bytes:
        """One byte past the end (none, if the member is whole): reading to
        the end is what makes zipfile check the CRC."""
        try:
            return self.stream.read(1)
        except _DAMAGED as e:
            self._fail(f"cannot be read: {e}")
