/* pygrad.h: the public C API of the pygrad scalar autograd engine.
 *
 * This header is also the cffi cdef: the build drops its preprocessor lines
 * and hands the rest to cffi, so keep it plain C declarations (no macros).
 *
 * Handles. A node is named by a pg_id: the low 32 bits are its arena index,
 * the high bits its generation, which changes when the node is freed, so a
 * stale handle is detected instead of reading another node. 0 is never a
 * valid handle, and a negative pg_id returned by a function is a pg_status.
 *
 * Ownership. Every function that returns a new handle gives the caller one
 * reference to it; pg_release() gives it back. A node also holds a reference
 * to each of its children, so a graph stays alive while its root is held.
 *
 * Threads. Every function takes the arena's lock, so any thread may call any
 * function at any time. The library never calls exit() or abort().
 */
#ifndef PYGRAD_H
#define PYGRAD_H
#include <stdint.h>

typedef int64_t pg_id;

enum pg_status {
    PG_OK = 0,
    PG_ENOMEM = -1,    /* an allocation failed */
    PG_ELIMIT = -2,    /* the arena's node limit is reached */
    PG_EBADID = -3,    /* not a live node handle */
    PG_EBADOP = -4,    /* no such op, or the op does not take these operands */
    PG_EDOM = -5,      /* math domain error: the result would not be real */
    PG_ERANGE = -6,    /* math range error: a finite input overflowed */
    PG_EZERODIV = -7   /* zero raised to a negative power */
};

/* A message for a status code; never NULL. */
const char *pg_strerror(int status);

/* ---- the op table (one row per op, see ops.c) ---------------------------- */
int pg_op_count(void);
const char *pg_op_name(int op);    /* method name: "add", "tanh", ... */
const char *pg_op_symbol(int op);  /* micrograd's _op string: "+", "ReLU", ... */
int pg_op_arity(int op);           /* children: 0 leaf, 1 unary, 2 binary */
int pg_op_takes_k(int op);         /* 1 if the op keeps a constant (a ** k) */

/* ---- building nodes (each returns a new handle or a negative status) ----- */
pg_id pg_leaf(double data);
/* A unary op of a, or an op with a constant: pg_apply1k(POWK, a, 3.0) is a**3. */
pg_id pg_apply1(int op, pg_id a);
pg_id pg_apply1k(int op, pg_id a, double k);
/* A binary op of two nodes. */
pg_id pg_apply2(int op, pg_id a, pg_id b);
/* A binary op of a node and a number: like micrograd, the number becomes a
 * new leaf node, the op's second child (it is freed with the result). */
pg_id pg_apply2n(int op, pg_id a, double b);

/* ---- reading and writing nodes ------------------------------------------ */
/* data and grad of a node; NaN for a bad handle (pg_valid tells them apart). */
double pg_data(pg_id id);
double pg_grad(pg_id id);
int pg_set_data(pg_id id, double data);
int pg_set_grad(pg_id id, double grad);
int pg_valid(pg_id id);            /* 1 for a live handle, else 0 */
int pg_op(pg_id id);               /* op code, or a negative status */
double pg_k(pg_id id);             /* the op constant (NaN for a bad handle) */
/* Child i (0 or 1) of a node: its handle, 0 if none, or a negative status.
 * No reference is added: call pg_retain() to keep it. */
pg_id pg_child(pg_id id, int i);
int pg_retain(pg_id id);
int pg_release(pg_id id);

/* ---- autograd ----------------------------------------------------------- */
/* micrograd's backward: root.grad = 1, then every node's local backward in
 * reverse topological order, accumulating with +=. No recursion. */
int pg_backward(pg_id root);
/* One node's local backward, once (micrograd's Value._backward()). */
int pg_backward_node(pg_id id);

/* ---- the arena ---------------------------------------------------------- */
int64_t pg_live_nodes(void);       /* nodes in use */
int64_t pg_capacity(void);         /* nodes the arena has memory for */
/* Cap the number of live nodes (0: no cap beyond the index range).
 * Building past the cap fails with PG_ELIMIT. */
int pg_set_node_limit(int64_t max_nodes);
int64_t pg_node_limit(void);
/* Test hook: make the n-th allocation from now fail (0 turns it off). */
void pg_debug_fail_alloc(int64_t n);

#endif
