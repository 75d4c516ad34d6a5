"""pygrad._files: writing a file so that a failure never leaves it half written.

    with atomic_write(path) as f:        # f: a binary file, a new file beside path
        numpy.savez(f, ...)              # or f.write(png), fig.savefig(f, format="png")

The data goes to a temporary file in path's directory. When the block ends
without an exception, the temporary is flushed and fsync'ed, then renamed
over path in one step (os.replace), and the directory is fsync'ed so that
the rename itself survives a crash. On any failure (an exception in the
block, a full disk, a quota, RLIMIT_FSIZE, a read-only directory,
KeyboardInterrupt) the temporary is removed and path is as it was: the old
file whole, or no file.

What it cannot keep: a file replaced this way is a new file, so other hard
links to the old one keep the old contents, and its owner is the writer (its
permission bits are copied). A path that names something other than a
regular file (/dev/null, a FIFO) is written in place, as open() would: there
is no file there to replace.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from typing import IO, Iterator, Union

#: What atomic_write takes: a path.
Path = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """A binary file to write path's new contents to; see the module's doc."""
    # Through a symbolic link: the file it names is replaced, the link kept.
    target = os.path.realpath(os.fspath(path))
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    if old is not None and stat.S_ISDIR(old.st_mode):  # as open(path, "wb") says, before any work
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    if old is not None and not stat.S_ISREG(old.st_mode):  # a device or a FIFO: in place
        with open(target, "wb") as f:
            yield f
        return
    directory, name = os.path.split(target)
    try:
        fd, temp = _create_beside(directory, name)
    except OSError as e:  # named as the file the caller asked for, not the temporary
        raise type(e)(e.errno, e.strerror, os.fspath(path)) from None
    done = False
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            _fsync(f.fileno())
        if old is not None:  # keep the old file's permission bits (best effort: some
            with contextlib.suppress(OSError):  # filesystems have none to set)
                os.chmod(temp, stat.S_IMODE(old.st_mode))
        os.replace(temp, target)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):  # the first error is the one to report
                os.unlink(temp)
    _fsync_directory(directory)


def _create_beside(directory: str, name: str) -> tuple[int, str]:
    """A new file .<name>.<random>.tmp in directory, opened for writing: its
    file descriptor and path. Created with mode 0o666 less the umask, as
    open() creates files (tempfile.mkstemp's 0o600 would make a saved model
    readable by its owner alone)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = os.path.join(directory, f".{name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", directory)


def _fsync(fd: int) -> None:
    """Flush fd's data to the disk (on macOS fsync alone leaves it in the
    drive's cache; F_FULLFSYNC does not)."""
    if sys.platform == "darwin":
        import fcntl
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
            return
    os.fsync(fd)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable. Best effort: the new file is in place
    already, so a filesystem that cannot sync a directory (or Windows, where
    a directory cannot be opened) is no reason to report a failure."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
