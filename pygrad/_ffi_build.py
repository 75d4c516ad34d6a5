"""Generate the cffi (API mode) C source of the extension _pygrad from csrc/pygrad.h.

The build (CMakeLists.txt) runs this at build time:
    python pygrad/_ffi_build.py csrc/pygrad.h OUT.c
and compiles OUT.c together with the C library into one extension module.
The header is the cdef: its preprocessor lines are dropped, the rest is plain
C declarations. Nothing here runs when pygrad is imported.
"""
import sys

from cffi import FFI


# cffi releases and retakes the GIL around every call, and saves and restores
# errno through its own module: measured 72 ns -> 42 ns for pg_data, about 30 ns
# of every call. pygrad's functions are short, never block and
# never call back into Python, so they run holding the GIL; nothing in them
# sets errno that Python reads (ffi.errno is not kept). The arena keeps its
# own lock, so this is a cost, never a safety, decision: if cffi ever stops
# using these macros, calls just release the GIL again.
#
# A free-threaded CPython (Py_GIL_DISABLED; docs/pages/free-threading.md) keeps
# cffi's macros: there they do not release a GIL but detach the thread from
# the interpreter, and a thread that stays attached through a long call
# (backward over a big graph, Tape.train) or while it waits for the arena's
# lock holds up every stop-the-world pause (the garbage collector's), so
# every other Python thread, until the call returns. (What detaching costs
# there is not measured: the project's machine has no free-threaded CPython.)
#
# cffi turns an int into int64_t with PyLong_AsLongLong, which in CPython 3.11
# goes through _PyLong_AsByteArray, byte by byte, for every int above 2**30:
# every handle is one (its generation sits above bit 32), measured 9 ns a
# call. Where long is 64 bits, PyLong_AsLong gives the same result digit by
# digit; an exact int takes that path, anything else cffi's own. Likewise an
# exact int becoming a double goes straight to PyLong_AsDouble, which is what
# float(int) calls, without the temporary float (6 ns). Same numbers, same
# errors (tests/test_binding.py).
PREAMBLE = """
#include "pygrad.h"
#ifndef Py_GIL_DISABLED
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
#endif
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void)0)
#define _cffi_save_errno() ((void)0)

#include <limits.h>
#if LONG_MAX == 0x7FFFFFFFFFFFFFFFL
static long long pg__cffi_to_c_i64(PyObject *o) { return _cffi_to_c_i64(o); }
static long long pg__to_c_i64(PyObject *o) {
    return PyLong_CheckExact(o) ? PyLong_AsLong(o) : pg__cffi_to_c_i64(o);
}
#undef _cffi_to_c_i64
#define _cffi_to_c_i64 pg__to_c_i64
#endif
static double pg__cffi_to_c_double(PyObject *o) { return _cffi_to_c_double(o); }
static double pg__to_c_double(PyObject *o) {
    return PyLong_CheckExact(o) ? PyLong_AsDouble(o) : pg__cffi_to_c_double(o);
}
#undef _cffi_to_c_double
#define _cffi_to_c_double pg__to_c_double
"""


def make_ffi(header_path):
    with open(header_path) as f:
        cdef = "".join(line for line in f if not line.lstrip().startswith("#"))
    ffi = FFI()
    ffi.cdef(cdef)
    ffi.set_source("_pygrad", PREAMBLE)
    return ffi


if __name__ == "__main__":
    header, out = sys.argv[1:3]
    make_ffi(header).emit_c_code(out)
