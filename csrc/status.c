/* status.c: what each status code of pygrad.h (enum pg_status) means, as
 * the message pg_strerror gives it; Python puts it after the failed call's
 * name (pygrad/_c.py: error). */
#include "pygrad.h"

const char *pg_strerror(int status) {
    switch (status) {
    case PG_OK: return "ok";
    case PG_ENOMEM: return "out of memory";
    case PG_ELIMIT: return "the arena's node limit (or a node's reference count limit) is reached";
    case PG_EBADID: return "not a live node (its handle is stale or invalid)";
    case PG_EBADOP: return "bad op or operand";
    case PG_EDOM: return "math domain error";
    case PG_ERANGE: return "math range error";
    case PG_EZERODIV: return "0.0 cannot be raised to a negative power";
    case PG_ESIZE: return "an array's length does not match what the call reads";
    case PG_MORE: return "more to do: call again";
    case PG_PYTHON: return "a node whose backward is the caller's";
    case PG_WALK: return "run this backward as a walk";
    default: return "unknown status";
    }
}
