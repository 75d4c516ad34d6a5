/* ops.h: the list of scalar ops, written once, and the private call that
 * builds one node of any op (pg__apply, in ops.c).
 *
 * PG_OP_LIST(X) calls X(name, symbol, arity, takes_k, doc) for each op:
 *   name     the method name, and the stem of its kernels in kernels.h:
 *            name##_forward and name##_backward
 *   symbol   micrograd's _op string for a node made by this op
 *   arity    number of child nodes (0 for a leaf; -1: any, see below)
 *   takes_k  1 if the op keeps a constant in the node (a ** k)
 *   doc      what it computes, and its gradient where micrograd's or
 *            PyTorch's rule needs saying (the methods' docstrings)
 * The enum, the op table, the kernel dispatch and (through pg_op_*) the
 * Python methods, their docstrings and the tests all derive from this list.
 *
 * Two ops are not computations: a custom node (pg_custom) is one whose data
 * and backward are Python's (micrograd's Value(data, children, op) with its
 * own _backward), with any number of children: the first in child[0], the
 * rest in a chain of group nodes from child[1] (group(c1, group(c2, ...)),
 * the last group's child[1] the last child; two children need no group), so
 * that the sort meets them in order. Both compute nothing in C.
 */
#ifndef PG_OPS_H
#define PG_OPS_H
#include <stdint.h>
#include "arena.h"

#define PG_OP_LIST(X)                                                                  \
    X(leaf, "", 0, 0, "a number")                                                      \
    X(add, "+", 2, 0, "a + b")                                                         \
    X(mul, "*", 2, 0, "a * b")                                                         \
    X(pow, "**", 2, 0, "a ** b, both Values; d/db is 0 where a == 0 and b >= 0")       \
    X(powk, "**", 1, 1, "a ** k, k a number")                                          \
    X(relu, "ReLU", 1, 0, "max(x, 0); its gradient is 0 at 0")                         \
    X(tanh, "tanh", 1, 0, "tanh(x); gradient 1 - tanh(x)**2")                          \
    X(sigmoid, "sigmoid", 1, 0, "1 / (1 + exp(-x)), never overflowing")                \
    X(exp, "exp", 1, 0, "e ** x; OverflowError where it overflows")                    \
    X(log, "log", 1, 0, "the natural log; ValueError for x <= 0")                      \
    X(sqrt, "sqrt", 1, 0, "the square root; ValueError for x < 0")                     \
    X(abs, "abs", 1, 0, "|x|; its gradient is sign(x), 0 at 0")                        \
    X(sin, "sin", 1, 0, "sin(x); ValueError for an infinite x")                        \
    X(cos, "cos", 1, 0, "cos(x); ValueError for an infinite x")                        \
    X(custom, "", -1, 0, "an op of the user's: data and backward from Python")         \
    X(group, "", -1, 0, "more children of a custom node (not a node of the graph)")

enum pg_op {
#define PG__ENUM(name, symbol, arity, takes_k, doc) PG_OP_##name,
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
