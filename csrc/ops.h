/* ops.h: the list of scalar ops, written once, and the private call that
 * builds one node of any op (pg__apply, in ops.c).
 *
 * PG_OP_LIST(X) calls X(name, symbol, arity, takes_k) for each op:
 *   name     the method name, and the stem of its kernels in kernels.h:
 *            name##_forward and name##_backward
 *   symbol   micrograd's _op string for a node made by this op
 *   arity    number of child nodes (0 for a leaf)
 *   takes_k  1 if the op keeps a constant in the node (a ** k)
 * The enum, the op table, the kernel dispatch and (through pg_op_*) the
 * Python methods and the tests all derive from this list.
 */
#ifndef PG_OPS_H
#define PG_OPS_H
#include <stdint.h>
#include "arena.h"

#define PG_OP_LIST(X)                    \
    X(leaf, "", 0, 0)                    \
    X(add, "+", 2, 0)                    \
    X(mul, "*", 2, 0)                    \
    X(pow, "**", 2, 0)                   \
    X(powk, "**", 1, 1)                  \
    X(relu, "ReLU", 1, 0)                \
    X(tanh, "tanh", 1, 0)                \
    X(sigmoid, "sigmoid", 1, 0)          \
    X(exp, "exp", 1, 0)                  \
    X(log, "log", 1, 0)                  \
    X(sqrt, "sqrt", 1, 0)                \
    X(abs, "abs", 1, 0)                  \
    X(sin, "sin", 1, 0)                  \
    X(cos, "cos", 1, 0)

enum pg_op {
#define PG__ENUM(name, symbol, arity, takes_k) PG_OP_##name,
    PG_OP_LIST(PG__ENUM)
#undef PG__ENUM
    PG_OP_COUNT /* below PG_OP_FREE (arena.h), the op of a free slot */
};

/* The operands of one node as its kernels see them. */
typedef struct pg__vals {
    double a, b; /* the children's data (b is 0 for a unary op) */
    double k;    /* the op constant */
    double out;  /* the node's data: written by forward, read by backward */
} pg__vals;

/* What one node's backward adds to its children's grads. */
typedef struct pg__grads {
    double a, b;
} pg__grads;

/* 1 if op is an op code of the table. */
int pg__op_ok(int op);

/* What pg__apply is given besides the first operand. */
enum pg__second { PG__UNARY, PG__K, PG__NODE, PG__NUMBER };

/* Make the node op(a, second), a a slot index. second is nothing
 * (PG__UNARY), the op constant x (a ** k), the slot b, or a number x that
 * becomes a new leaf, micrograd's Value(x). Every check on op and operands
 * is here, and an error changes nothing. Returns a handle (one reference,
 * the caller's) or a status. */
pg_id pg__apply(int op, uint32_t a, enum pg__second second, uint32_t b, double x);

#endif
