"""pygrad._signals: Ctrl-C is never lost inside pygrad's own bookkeeping.

Python raises KeyboardInterrupt wherever the main thread happens to be when
its SIGINT handler runs. Inside a Value's finalizer that exception would be
printed and dropped ("Exception ignored in ...") and the node leaked; between
a C call that makes a node and the Value that takes it, the node would leak.

So pygrad replaces Python's default SIGINT handler (only that one: a handler
of the user's, IPython's, asyncio's, is left alone) with one that behaves the
same, except while the main thread is in the code of one of pygrad's own
modules that keep nodes (those below): there it asks for the signal again a
millisecond later (_thread.interrupt_main, from a thread of its own), and
KeyboardInterrupt is raised then, outside them. The long loops that must
stop at once (backward() over a huge graph, Tape.train) run in chunks of C
calls from functions marked interruptible(), where the exception is raised
between two chunks.
"""
from __future__ import annotations

import _thread
import os
import signal
import threading
import time
from typing import Any, Callable, TypeVar

#: pygrad's modules whose code keeps nodes: an interrupt waits until it leaves them.
GUARDED = {"pygrad.engine", "pygrad._c", "pygrad._fastpath", "pygrad.losses", "pygrad.arrays",
           "pygrad.optim", "pygrad.replay", "pygrad._signals"}
_allowed: set[Any] = set()  # code objects in those modules where an interrupt may land

F = TypeVar("F", bound=Callable[..., Any])


def interruptible(fn: F) -> F:
    """Mark fn (a function of a guarded module) as a place where KeyboardInterrupt
    may be raised: its loop calls C in chunks and owns nothing between them."""
    _allowed.add(fn.__code__)
    return fn


def _guarded(frame: Any) -> bool:
    return frame is not None and frame.f_globals.get("__name__") in GUARDED \
        and frame.f_code not in _allowed


def _handler(signum: int, frame: Any) -> None:
    if _guarded(frame):  # the signal again in a moment: see _redeliver
        try:
            os.write(_wake[1], b"!")
        except OSError:  # (the pipe is full: a signal is on its way already)
            pass
        return
    raise KeyboardInterrupt


_wake: tuple[int, int] = (-1, -1)  # a pipe: the handler writes, _redeliver reads


def _redeliver() -> None:
    """A thread of its own: for each deferred signal, the signal again a
    millisecond later. (From this thread, not the handler: in the main thread
    it would be handled at once, in the handler; and the handler itself runs
    no Python code that a second Ctrl-C could interrupt.)"""
    while True:
        os.read(_wake[0], 4096)
        time.sleep(0.001)
        _thread.interrupt_main()


def _start() -> None:
    global _wake
    _wake = os.pipe()
    os.set_blocking(_wake[1], False)
    threading.Thread(target=_redeliver, name="pygrad-sigint", daemon=True).start()


def install() -> bool:
    """Put the handler in place of Python's default SIGINT handler; whether it is."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False
        _start()
        os.register_at_fork(after_in_child=_start)  # (the thread is not forked)
        signal.signal(signal.SIGINT, _handler)
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        return False
    return True
