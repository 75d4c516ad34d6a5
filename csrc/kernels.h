/* kernels.h: the forward and backward kernel of every scalar op, side by
 * side (private to the library; included by ops.c, which builds nodes, and
 * by tape.c, which replays graphs, so both inline the same code).
 *
 * Forward kernels follow Python's float and math-module rules, so a program
 * that raises with a pure-Python engine raises the same error here: a
 * non-real result is PG_EDOM (ValueError), a finite input that overflows is
 * PG_ERANGE (OverflowError), 0.0 ** negative is PG_EZERODIV.
 *
 * Backward kernels return dout * d(out)/d(child) for each child, written as
 * micrograd writes them (so results match it to the bit) and, for ops that
 * micrograd lacks, as PyTorch defines them. Build without fast-math and with
 * -ffp-contract=off: a fused multiply-add would change the last bits.
 */
#ifndef PG_KERNELS_H
#define PG_KERNELS_H
#include <math.h>

#include "ops.h"

/* Backward kernels never raise, so they meet non-real powers and division by
 * zero that a forward kernel would reject. x86 makes those NaNs -NaN; the
 * reference engine (pygrad/reference.py: _ieee_pow, _div) gives math.nan,
 * +NaN. To match it to the bit, these two return NAN in exactly its cases.
 * A NaN base comes back as it is, sign and all, as Python's float ** gives
 * it (C's pow may return a NaN of the other sign). */
static inline double pg__real_pow(double a, double k) {
    if (isnan(a)) return k == 0.0 ? 1.0 : a;
    if (a < 0.0 && isfinite(a) && isfinite(k) && k != floor(k)) return NAN;
    return pow(a, k);
}

/* Python's float ** rule, shared by pow and powk. */
static inline int pg__pow(double a, double k, double *out) {
    if (a == 0.0 && k < 0.0 && isfinite(k)) return PG_EZERODIV;
    if (a < 0.0 && isfinite(a) && isfinite(k) && k != floor(k)) return PG_EDOM;
    double r = pg__real_pow(a, k);
    if (isinf(r) && isfinite(a) && isfinite(k)) return PG_ERANGE;
    *out = r;
    return PG_OK;
}

static inline double pg__div(double a, double b) {
    return (b == 0.0 && (a == 0.0 || isnan(a))) ? NAN : a / b;
}

/* d(a**k)/da: micrograd's (k * a**(k-1)); 0 where k == 0, as in PyTorch. */
static inline double pg__dpow(double a, double k) {
    if (k == 0.0) return 0.0;
    if (k == 2.0) return k * a; /* pow(a, 1.0) is a, exactly: the same bits, without the call */
    return k * pg__real_pow(a, k - 1.0);
}

// ----------------------------------------------------------------------------
// leaf: a number the user made; nothing to compute

static inline int leaf_forward(pg__vals *v) { (void)v; return PG_OK; }
static inline pg__grads leaf_backward(const pg__vals *v, double dout) {
    (void)v; (void)dout;
    return (pg__grads){0.0, 0.0};
}

// ----------------------------------------------------------------------------
// add: out = a + b

static inline int add_forward(pg__vals *v) { v->out = v->a + v->b; return PG_OK; }
static inline pg__grads add_backward(const pg__vals *v, double dout) {
    (void)v;
    return (pg__grads){dout, dout};
}

// ----------------------------------------------------------------------------
// mul: out = a * b

static inline int mul_forward(pg__vals *v) { v->out = v->a * v->b; return PG_OK; }
static inline pg__grads mul_backward(const pg__vals *v, double dout) {
    return (pg__grads){v->b * dout, v->a * dout};
}

// ----------------------------------------------------------------------------
// pow: out = a ** b, both nodes. d/db = out * log(a), 0 where a == 0 and
// b >= 0 (PyTorch's rule, which keeps 0 ** b from giving NaN gradients).

static inline int pow_forward(pg__vals *v) { return pg__pow(v->a, v->b, &v->out); }
static inline pg__grads pow_backward(const pg__vals *v, double dout) {
    double log_a = v->a > 0.0 ? log(v->a) : v->a == 0.0 ? -INFINITY : NAN;
    double db = (v->a == 0.0 && v->b >= 0.0) ? 0.0 : v->out * log_a;
    return (pg__grads){pg__dpow(v->a, v->b) * dout, db * dout};
}

// ----------------------------------------------------------------------------
// powk: out = a ** k, k a constant kept in the node

static inline int powk_forward(pg__vals *v) { return pg__pow(v->a, v->k, &v->out); }
static inline pg__grads powk_backward(const pg__vals *v, double dout) {
    return (pg__grads){pg__dpow(v->a, v->k) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// relu: out = max(a, 0); derivative 0 at 0 (micrograd: (out > 0) * dout)

static inline int relu_forward(pg__vals *v) { v->out = v->a < 0.0 ? 0.0 : v->a; return PG_OK; }
static inline pg__grads relu_backward(const pg__vals *v, double dout) {
    return (pg__grads){(double)(v->out > 0.0) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// tanh: out = tanh(a); derivative 1 - out**2

static inline int tanh_forward(pg__vals *v) { v->out = tanh(v->a); return PG_OK; }
static inline pg__grads tanh_backward(const pg__vals *v, double dout) {
    return (pg__grads){(1.0 - v->out * v->out) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// sigmoid: out = 1 / (1 + exp(-a)), written so that exp never overflows

static inline int sigmoid_forward(pg__vals *v) {
    if (v->a >= 0.0) {
        v->out = 1.0 / (1.0 + exp(-v->a));
    } else {
        double e = exp(v->a);
        v->out = e / (1.0 + e);
    }
    return PG_OK;
}
static inline pg__grads sigmoid_backward(const pg__vals *v, double dout) {
    return (pg__grads){v->out * (1.0 - v->out) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// exp: out = e ** a (micrograd: out.data * out.grad)

static inline int exp_forward(pg__vals *v) {
    v->out = exp(v->a);
    return (isinf(v->out) && isfinite(v->a)) ? PG_ERANGE : PG_OK;
}
static inline pg__grads exp_backward(const pg__vals *v, double dout) {
    return (pg__grads){v->out * dout, 0.0};
}

// ----------------------------------------------------------------------------
// log: natural log; a <= 0 (also -0.0 and -inf) is a domain error

static inline int log_forward(pg__vals *v) {
    if (v->a <= 0.0) return PG_EDOM;
    v->out = log(v->a);
    return PG_OK;
}
static inline pg__grads log_backward(const pg__vals *v, double dout) {
    return (pg__grads){pg__div(dout, v->a), 0.0};
}

// ----------------------------------------------------------------------------
// sqrt: a < 0 is a domain error (sqrt(-0.0) is -0.0)

static inline int sqrt_forward(pg__vals *v) {
    if (v->a < 0.0) return PG_EDOM;
    v->out = sqrt(v->a);
    return PG_OK;
}
static inline pg__grads sqrt_backward(const pg__vals *v, double dout) {
    return (pg__grads){pg__div(dout, 2.0 * v->out), 0.0};
}

// ----------------------------------------------------------------------------
// abs: derivative sign(a), 0 at 0 (PyTorch's rule)

static inline int abs_forward(pg__vals *v) { v->out = fabs(v->a); return PG_OK; }
static inline pg__grads abs_backward(const pg__vals *v, double dout) {
    double sign = v->a > 0.0 ? 1.0 : v->a < 0.0 ? -1.0 : v->a == 0.0 ? 0.0 : v->a;
    return (pg__grads){sign * dout, 0.0};
}

// ----------------------------------------------------------------------------
// sin, cos: an infinite input is a domain error (as math.sin)

static inline int sin_forward(pg__vals *v) {
    if (isinf(v->a)) return PG_EDOM;
    v->out = sin(v->a);
    return PG_OK;
}
static inline pg__grads sin_backward(const pg__vals *v, double dout) {
    return (pg__grads){cos(v->a) * dout, 0.0};
}

static inline int cos_forward(pg__vals *v) {
    if (isinf(v->a)) return PG_EDOM;
    v->out = cos(v->a);
    return PG_OK;
}
static inline pg__grads cos_backward(const pg__vals *v, double dout) {
    return (pg__grads){-sin(v->a) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// custom, group: a user's op (its data and backward are Python's) and its
// extra children; nothing to compute here

static inline int custom_forward(pg__vals *v) { (void)v; return PG_OK; }
static inline pg__grads custom_backward(const pg__vals *v, double dout) {
    (void)v; (void)dout;
    return (pg__grads){0.0, 0.0};
}
static inline int group_forward(pg__vals *v) { (void)v; return PG_OK; }
static inline pg__grads group_backward(const pg__vals *v, double dout) {
    (void)v; (void)dout;
    return (pg__grads){0.0, 0.0};
}

// ----------------------------------------------------------------------------
// dispatch

/* Compute v->out for op; PG_OK or a math error status. */
static inline int pg__forward(int op, pg__vals *v) {
    switch (op) {
#define PG__CASE(name, symbol, arity, takes_k, doc) \
    case PG_OP_##name: return name##_forward(v);
        PG_OP_LIST(PG__CASE)
#undef PG__CASE
    default: return PG_EBADOP;
    }
}

/* What op's backward adds to its children's grads, for the node's grad dout. */
static inline pg__grads pg__backward(int op, const pg__vals *v, double dout) {
    switch (op) {
#define PG__CASE(name, symbol, arity, takes_k, doc) \
    case PG_OP_##name: return name##_backward(v, dout);
        PG_OP_LIST(PG__CASE)
#undef PG__CASE
    default: return (pg__grads){0.0, 0.0};
    }
}

/* The local backward of node n, whose op is op and whose children are the
 * slots a and b (b 0 for none), += into its children, in operand order one
 * after the other, as micrograd's closures do (for a + a both land on the
 * same node). Called with a constant op, the dispatch folds away.
 * first: bit 0 (1) if this is the first contribution to child a's grad in
 * this backward pass, bit 1 (2) the same for b; a first contribution is
 * assigned as 0.0 + g (exactly what += into a zeroed grad gives, -0.0
 * included), so a replay need not zero the grads first. */
static inline void pg__backward_into(pg_node *nodes, const pg_node *n, uint32_t a, uint32_t b,
                                     int op, int first) {
    pg_node *na = &nodes[a];
    pg_node *nb = b ? &nodes[b] : NULL;
    pg__vals v = {na->data, nb ? nb->data : 0.0, n->k, n->data};
    pg__grads g = pg__backward(op, &v, n->grad);
    na->grad = (first & 1 ? 0.0 : na->grad) + g.a;
    if (nb) nb->grad = (first & 2 ? 0.0 : nb->grad) + g.b;
}

/* The same for the node in slot index, its children read from the node,
 * accumulating into both (backward() and _backward(): nothing comes first). */
static inline void pg__backward_step(pg_node *nodes, uint32_t index) {
    const pg_node *n = &nodes[index];
    /* (a leaf, a custom node and a group add nothing: not even a 0.0, which
     * would turn a -0.0 grad into 0.0) */
    if (n->op == PG_OP_leaf || n->op == PG_OP_custom || n->op == PG_OP_group) return;
    pg__backward_into(nodes, n, n->child[0], n->child[1], n->op, 0);
}

#endif
