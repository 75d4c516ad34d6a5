/* ops.c: the forward and backward kernel of every scalar op, side by side,
 * and the functions that build nodes with them.
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
#include "ops.h"

#include <math.h>

/* Python's float ** rule, shared by pow and powk. */
static int pg__pow(double a, double k, double *out) {
    if (a == 0.0 && k < 0.0 && isfinite(k)) return PG_EZERODIV;
    if (a < 0.0 && isfinite(a) && isfinite(k) && k != floor(k)) return PG_EDOM;
    double r = pow(a, k);
    if (isinf(r) && isfinite(a) && isfinite(k)) return PG_ERANGE;
    *out = r;
    return PG_OK;
}

/* Backward kernels never raise, so they meet non-real powers and division by
 * zero that a forward kernel would reject. x86 makes those NaNs -NaN; the
 * reference engine (pygrad/reference.py: _ieee_pow, _div) gives math.nan,
 * +NaN. To match it to the bit, these two return NAN in exactly its cases. */
static double pg__real_pow(double a, double k) {
    if (a < 0.0 && isfinite(a) && isfinite(k) && k != floor(k)) return NAN;
    return pow(a, k);
}

static double pg__div(double a, double b) {
    return (b == 0.0 && (a == 0.0 || isnan(a))) ? NAN : a / b;
}

/* d(a**k)/da: micrograd's (k * a**(k-1)); 0 where k == 0, as in PyTorch. */
static double pg__dpow(double a, double k) {
    return k == 0.0 ? 0.0 : k * pg__real_pow(a, k - 1.0);
}

// ----------------------------------------------------------------------------
// leaf: a number the user made; nothing to compute

static int leaf_forward(pg__vals *v) { (void)v; return PG_OK; }
static pg__grads leaf_backward(const pg__vals *v, double dout) {
    (void)v; (void)dout;
    return (pg__grads){0.0, 0.0};
}

// ----------------------------------------------------------------------------
// add: out = a + b

static int add_forward(pg__vals *v) { v->out = v->a + v->b; return PG_OK; }
static pg__grads add_backward(const pg__vals *v, double dout) {
    (void)v;
    return (pg__grads){dout, dout};
}

// ----------------------------------------------------------------------------
// mul: out = a * b

static int mul_forward(pg__vals *v) { v->out = v->a * v->b; return PG_OK; }
static pg__grads mul_backward(const pg__vals *v, double dout) {
    return (pg__grads){v->b * dout, v->a * dout};
}

// ----------------------------------------------------------------------------
// pow: out = a ** b, both nodes. d/db = out * log(a), 0 where a == 0 and
// b >= 0 (PyTorch's rule, which keeps 0 ** b from giving NaN gradients).

static int pow_forward(pg__vals *v) { return pg__pow(v->a, v->b, &v->out); }
static pg__grads pow_backward(const pg__vals *v, double dout) {
    double log_a = v->a > 0.0 ? log(v->a) : v->a == 0.0 ? -INFINITY : NAN;
    double db = (v->a == 0.0 && v->b >= 0.0) ? 0.0 : v->out * log_a;
    return (pg__grads){pg__dpow(v->a, v->b) * dout, db * dout};
}

// ----------------------------------------------------------------------------
// powk: out = a ** k, k a constant kept in the node

static int powk_forward(pg__vals *v) { return pg__pow(v->a, v->k, &v->out); }
static pg__grads powk_backward(const pg__vals *v, double dout) {
    return (pg__grads){pg__dpow(v->a, v->k) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// relu: out = max(a, 0); derivative 0 at 0 (micrograd: (out > 0) * dout)

static int relu_forward(pg__vals *v) { v->out = v->a < 0.0 ? 0.0 : v->a; return PG_OK; }
static pg__grads relu_backward(const pg__vals *v, double dout) {
    return (pg__grads){(double)(v->out > 0.0) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// tanh: out = tanh(a); derivative 1 - out**2

static int tanh_forward(pg__vals *v) { v->out = tanh(v->a); return PG_OK; }
static pg__grads tanh_backward(const pg__vals *v, double dout) {
    return (pg__grads){(1.0 - v->out * v->out) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// sigmoid: out = 1 / (1 + exp(-a)), written so that exp never overflows

static int sigmoid_forward(pg__vals *v) {
    if (v->a >= 0.0) {
        v->out = 1.0 / (1.0 + exp(-v->a));
    } else {
        double e = exp(v->a);
        v->out = e / (1.0 + e);
    }
    return PG_OK;
}
static pg__grads sigmoid_backward(const pg__vals *v, double dout) {
    return (pg__grads){v->out * (1.0 - v->out) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// exp: out = e ** a (micrograd: out.data * out.grad)

static int exp_forward(pg__vals *v) {
    v->out = exp(v->a);
    return (isinf(v->out) && isfinite(v->a)) ? PG_ERANGE : PG_OK;
}
static pg__grads exp_backward(const pg__vals *v, double dout) {
    return (pg__grads){v->out * dout, 0.0};
}

// ----------------------------------------------------------------------------
// log: natural log; a <= 0 (also -0.0 and -inf) is a domain error

static int log_forward(pg__vals *v) {
    if (v->a <= 0.0) return PG_EDOM;
    v->out = log(v->a);
    return PG_OK;
}
static pg__grads log_backward(const pg__vals *v, double dout) {
    return (pg__grads){pg__div(dout, v->a), 0.0};
}

// ----------------------------------------------------------------------------
// sqrt: a < 0 is a domain error (sqrt(-0.0) is -0.0)

static int sqrt_forward(pg__vals *v) {
    if (v->a < 0.0) return PG_EDOM;
    v->out = sqrt(v->a);
    return PG_OK;
}
static pg__grads sqrt_backward(const pg__vals *v, double dout) {
    return (pg__grads){pg__div(dout, 2.0 * v->out), 0.0};
}

// ----------------------------------------------------------------------------
// abs: derivative sign(a), 0 at 0 (PyTorch's rule)

static int abs_forward(pg__vals *v) { v->out = fabs(v->a); return PG_OK; }
static pg__grads abs_backward(const pg__vals *v, double dout) {
    double sign = v->a > 0.0 ? 1.0 : v->a < 0.0 ? -1.0 : v->a == 0.0 ? 0.0 : v->a;
    return (pg__grads){sign * dout, 0.0};
}

// ----------------------------------------------------------------------------
// sin, cos: an infinite input is a domain error (as math.sin)

static int sin_forward(pg__vals *v) {
    if (isinf(v->a)) return PG_EDOM;
    v->out = sin(v->a);
    return PG_OK;
}
static pg__grads sin_backward(const pg__vals *v, double dout) {
    return (pg__grads){cos(v->a) * dout, 0.0};
}

static int cos_forward(pg__vals *v) {
    if (isinf(v->a)) return PG_EDOM;
    v->out = cos(v->a);
    return PG_OK;
}
static pg__grads cos_backward(const pg__vals *v, double dout) {
    return (pg__grads){-sin(v->a) * dout, 0.0};
}

// ----------------------------------------------------------------------------
// dispatch and the op table

int pg__forward(int op, pg__vals *v) {
    switch (op) {
#define PG__CASE(name, symbol, arity, takes_k) \
    case PG_OP_##name: return name##_forward(v);
        PG_OP_LIST(PG__CASE)
#undef PG__CASE
    default: return PG_EBADOP;
    }
}

void pg__backward_step(uint32_t index) {
    pg_node *nodes = pg__A.nodes;
    pg_node *n = &nodes[index];
    if (n->op == PG_OP_leaf) return;
    pg_node *a = &nodes[n->child[0]];
    pg_node *b = n->child[1] ? &nodes[n->child[1]] : NULL;
    pg__vals v = {a->data, b ? b->data : 0.0, n->k, n->data};
    pg__grads g = {0.0, 0.0};
    switch (n->op) {
#define PG__CASE(name, symbol, arity, takes_k) \
    case PG_OP_##name: g = name##_backward(&v, n->grad); break;
        PG_OP_LIST(PG__CASE)
#undef PG__CASE
    default: return;
    }
    /* In operand order, one after the other, as micrograd's closures do:
     * for a + a both land on the same node. */
    a->grad += g.a;
    if (b) b->grad += g.b;
}

static const struct {
    const char *name, *symbol;
    int arity, takes_k;
} pg__ops[PG_OP_COUNT] = {
#define PG__ROW(name, symbol, arity, takes_k) {#name, symbol, arity, takes_k},
    PG_OP_LIST(PG__ROW)
#undef PG__ROW
};

int pg_op_count(void) { return PG_OP_COUNT; }
static int pg__op_ok(int op) { return op >= 0 && op < PG_OP_COUNT; }
const char *pg_op_name(int op) { return pg__op_ok(op) ? pg__ops[op].name : ""; }
const char *pg_op_symbol(int op) { return pg__op_ok(op) ? pg__ops[op].symbol : ""; }
int pg_op_arity(int op) { return pg__op_ok(op) ? pg__ops[op].arity : PG_EBADOP; }
int pg_op_takes_k(int op) { return pg__op_ok(op) ? pg__ops[op].takes_k : PG_EBADOP; }

// ----------------------------------------------------------------------------
// building nodes: check, compute, then commit (an error changes nothing)

/* Room for `extra` more references on slot i (a node used as both operands
 * of one op gains two). */
static int pg__ref_room(uint32_t i, uint32_t extra) {
    return pg__A.nodes[i].refs <= UINT32_MAX - extra;
}

/* What the caller gives besides the first operand. */
enum pg__second { PG__NONE, PG__K, PG__NODE, PG__NUMBER };

/* Make the node op(a, second), a a slot index. second is nothing (a unary
 * op), the op constant x (a ** k), the slot b, or a number x that becomes a
 * new leaf, micrograd's Value(x). Every check on op and operands is here.
 * Returns a handle or a status. */
static pg_id pg__apply(int op, uint32_t a, enum pg__second second, uint32_t b, double x) {
    if (!pg__op_ok(op) || op == PG_OP_leaf) return PG_EBADOP;
    int binary = second == PG__NODE || second == PG__NUMBER;
    if ((pg__ops[op].arity == 2) != binary || pg__ops[op].takes_k != (second == PG__K))
        return PG_EBADOP;
    if (!pg__ref_room(a, a == b ? 2 : 1) || (b && !pg__ref_room(b, 1))) return PG_ELIMIT;
    double k = second == PG__K ? x : 0.0;
    pg__vals v = {pg__A.nodes[a].data, b ? pg__A.nodes[b].data : second == PG__NUMBER ? x : 0.0,
                  k, 0.0};
    int status = pg__forward(op, &v);
    if (status != PG_OK) return status;
    status = pg__reserve(second == PG__NUMBER ? 2 : 1);
    if (status != PG_OK) return status;
    if (second == PG__NUMBER) {
        b = pg__new_node(PG_OP_leaf, x, 0.0, 0, 0);
        pg__A.nodes[b].refs = 0; /* the parent's reference is its only one */
    }
    return pg__handle(pg__new_node((uint8_t)op, v.out, k, a, b));
}

pg_id pg_leaf(double data) {
    pg__lock();
    int status = pg__reserve(1);
    pg_id r = status == PG_OK ? pg__handle(pg__new_node(PG_OP_leaf, data, 0.0, 0, 0)) : status;
    pg__unlock();
    return r;
}

pg_id pg_apply1(int op, pg_id a) {
    pg__lock();
    uint32_t ia = pg__lookup(a);
    pg_id r = ia ? pg__apply(op, ia, PG__NONE, 0, 0.0) : PG_EBADID;
    pg__unlock();
    return r;
}

pg_id pg_apply1k(int op, pg_id a, double k) {
    pg__lock();
    uint32_t ia = pg__lookup(a);
    pg_id r = ia ? pg__apply(op, ia, PG__K, 0, k) : PG_EBADID;
    pg__unlock();
    return r;
}

pg_id pg_apply2(int op, pg_id a, pg_id b) {
    pg__lock();
    uint32_t ia = pg__lookup(a), ib = pg__lookup(b);
    pg_id r = (ia && ib) ? pg__apply(op, ia, PG__NODE, ib, 0.0) : PG_EBADID;
    pg__unlock();
    return r;
}

pg_id pg_apply2n(int op, pg_id a, double b) {
    pg__lock();
    uint32_t ia = pg__lookup(a);
    pg_id r = ia ? pg__apply(op, ia, PG__NUMBER, 0, b) : PG_EBADID;
    pg__unlock();
    return r;
}
