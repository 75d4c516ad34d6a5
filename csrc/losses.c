/* losses.c: the tutorials' losses, each built as one call (pg_loss, see
 * pygrad.h).
 *
 * Every loss is a composition of the ops in ops.h, made node by node in the
 * order Python would make them for the expression in pygrad/losses.py, so
 * that backward gives exactly the numbers of the expression written out.
 */
#include <math.h>

#include "arena.h"
#include "ops.h"

/* A builder: every node made so far is either released into a parent or is
 * the current result. `status` keeps the first error; once set, every node
 * is skipped and the result is released. */
typedef struct pg__builder {
    int status;
} pg__builder;

/* The node op(a, second), releasing the caller's references to the owned
 * operands. */
static uint32_t pg__build(pg__builder *b, int op, uint32_t a, int own_a, enum pg__second second,
                          uint32_t c, int own_c, double x) {
    uint32_t out = 0;
    if (b->status == PG_OK) {
        pg_id r = pg__apply(op, a, second, c, x);
        if (r < 0) b->status = (int)r;
        else out = (uint32_t)r;
    }
    if (own_a && a) pg__release(a);
    if (own_c && c) pg__release(c);
    return out;
}

/* acc + term as Python's sum() does it: the first term is added to int 0
 * (t + 0, through __radd__), the next ones to the running sum. */
static uint32_t pg__sum_add(pg__builder *b, uint32_t acc, uint32_t term) {
    if (!acc) return pg__build(b, PG_OP_add, term, 1, PG__NUMBER, 0, 0, 0.0);
    return pg__build(b, PG_OP_add, acc, 1, PG__NODE, term, 1, 0.0);
}

/* y - p, as Value's __rsub__: (p * -1) + y. */
static uint32_t pg__rsub(pg__builder *b, double y, uint32_t p) {
    uint32_t neg = pg__build(b, PG_OP_mul, p, 0, PG__NUMBER, 0, 0, -1.0);
    return pg__build(b, PG_OP_add, neg, 1, PG__NUMBER, 0, 0, y);
}

static uint32_t pg__squares(pg__builder *b, const uint32_t *p, const double *y, int64_t n) {
    uint32_t acc = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t d = pg__rsub(b, y[i], p[i]);
        acc = pg__sum_add(b, acc, pg__build(b, PG_OP_powk, d, 1, PG__K, 0, 0, 2.0));
    }
    return acc;
}

static uint32_t pg__hinge(pg__builder *b, const uint32_t *p, const double *y, int64_t n,
                          const uint32_t *w, int64_t nw, double alpha) {
    uint32_t acc = 0;
    for (int64_t i = 0; i < n; i++) { /* (1 + -y * p).relu() */
        uint32_t m = pg__build(b, PG_OP_mul, p[i], 0, PG__NUMBER, 0, 0, -y[i]);
        uint32_t s = pg__build(b, PG_OP_add, m, 1, PG__NUMBER, 0, 0, 1.0);
        acc = pg__sum_add(b, acc, pg__build(b, PG_OP_relu, s, 1, PG__UNARY, 0, 0, 0.0));
    }
    acc = pg__build(b, PG_OP_mul, acc, 1, PG__NUMBER, 0, 0, 1.0 / (double)n);
    if (nw == 0) return acc;
    uint32_t reg = 0;
    for (int64_t i = 0; i < nw; i++)
        reg = pg__sum_add(b, reg, pg__build(b, PG_OP_mul, w[i], 0, PG__NODE, w[i], 0, 0.0));
    reg = pg__build(b, PG_OP_mul, reg, 1, PG__NUMBER, 0, 0, alpha); /* alpha * reg */
    return pg__build(b, PG_OP_add, acc, 1, PG__NODE, reg, 1, 0.0);
}

/* Python's max(z.data for z in row): the first element, replaced by each
 * later one that compares greater. So a NaN first stays (nothing compares
 * greater than it), a later NaN is passed over, and of -0.0 and 0.0 the
 * first is kept. */
static double pg__python_max(const uint32_t *row, int64_t n) {
    double m = pg__A.nodes[row[0]].data;
    for (int64_t j = 1; j < n; j++)
        if (pg__A.nodes[row[j]].data > m) m = pg__A.nodes[row[j]].data;
    return m;
}

static uint32_t pg__cross_entropy(pg__builder *b, const uint32_t *z, const double *cls, int64_t n,
                                  int64_t nclass) {
    int64_t rows = n / nclass;
    uint32_t acc = 0;
    for (int64_t r = 0; r < rows; r++) {
        const uint32_t *row = z + r * nclass;
        double m = pg__python_max(row, nclass);
        uint32_t s = 0;
        for (int64_t j = 0; j < nclass; j++) { /* (z - m).exp() */
            uint32_t d = pg__build(b, PG_OP_add, row[j], 0, PG__NUMBER, 0, 0, -m);
            s = pg__sum_add(b, s, pg__build(b, PG_OP_exp, d, 1, PG__UNARY, 0, 0, 0.0));
        }
        uint32_t lse = pg__build(b, PG_OP_log, s, 1, PG__UNARY, 0, 0, 0.0);
        uint32_t zc = pg__build(b, PG_OP_add, row[(int64_t)cls[r]], 0, PG__NUMBER, 0, 0, -m);
        uint32_t neg = pg__build(b, PG_OP_mul, zc, 1, PG__NUMBER, 0, 0, -1.0); /* lse - zc */
        acc = pg__sum_add(b, acc, pg__build(b, PG_OP_add, lse, 1, PG__NODE, neg, 1, 0.0));
    }
    return pg__build(b, PG_OP_mul, acc, 1, PG__NUMBER, 0, 0, 1.0 / (double)rows);
}

/* The nodes each loss makes (pg__many reserves them all before the first),
 * counted from the builders above: a number operand is a leaf of its own,
 * and sum()'s first term is added to the number 0. With n predictions:
 *   squares  per term (p * -1) + y and ** 2: 5 nodes, plus 1 to add it to
 *            the sum (2 for the first): 6n + 1; mse * (1.0 / n): 2 more;
 *            root ** 0.5: 1 more
 *   hinge    per term (p * -y) + 1 and relu: 5, and the sum: 6n + 1; the
 *            mean: 2; the L2 term: per weight w * w and the sum (2w + 1),
 *            then * alpha (2) and + (1)
 *   cross-entropy, per row of c logits: (z - m).exp() and the sum: 4c + 1;
 *            log, (z_c - m) * -1 and the difference: 6; the sum over rows:
 *            1 (2 for the first); the mean: 2. */
static int64_t pg__loss_nodes(int kind, int64_t n, int64_t nclass, int64_t nparams) {
    switch (kind) {
    case PG_LOSS_SUM_SQUARES: return 6 * n + 1;
    case PG_LOSS_MSE: return 6 * n + 3;
    case PG_LOSS_ROOT_SUM_SQUARES: return 6 * n + 2;
    case PG_LOSS_HINGE: return 6 * n + 3 + (nparams ? 2 * nparams + 4 : 0);
    default: return n / nclass * (4 * nclass + 8) + 3;
    }
}

/* pg_loss's argument positions, for pg_where. */
enum { PG__KIND = 1, PG__PRED = 2, PG__TARGET = 4, PG__NCLASS = 6, PG__PARAMS = 7 };

pg_id pg_loss(int kind, const pg_id *pred, int64_t n, const double *target, int64_t ntarget,
              int64_t nclass, const pg_id *params, int64_t nparams, double alpha, pg_where *where) {
    if (kind < PG_LOSS_SUM_SQUARES || kind > PG_LOSS_CROSS_ENTROPY)
        return pg__blame(where, PG_EBADOP, PG__KIND, -1);
    if (n < 1) return pg__blame(where, PG_ESIZE, PG__PRED, -1);
    int64_t rows = n;
    if (kind == PG_LOSS_CROSS_ENTROPY) {
        if (nclass < 1) return pg__blame(where, PG_EBADOP, PG__NCLASS, -1);
        if (n % nclass) return pg__blame(where, PG_ESIZE, PG__PRED, -1);
        rows = n / nclass;
    }
    if (ntarget != rows) return pg__blame(where, PG_ESIZE, PG__TARGET, -1);
    if (!target) return pg__blame(where, PG_EBADOP, PG__TARGET, -1);
    if (kind == PG_LOSS_CROSS_ENTROPY)
        for (int64_t r = 0; r < rows; r++)
            if (!(target[r] >= 0.0 && target[r] < (double)nclass && target[r] == floor(target[r])))
                return pg__blame(where, PG_EBADOP, PG__TARGET, r);
    if (nparams < 0 || (nparams != 0 && kind != PG_LOSS_HINGE))
        return pg__blame(where, PG_ESIZE, PG__PARAMS, -1);
    if (n > UINT32_MAX || nparams > UINT32_MAX) /* more nodes than an arena holds */
        return pg__blame(where, PG_ELIMIT, 0, -1);
    /* A prediction gains a reference per use (a logit: two, as row[c]), a
     * weight two (w * w); a node may be listed more than once. */
    pg__handles args[2] = {{pred, n, PG__PRED, 0}, {params, nparams, PG__PARAMS, 0}};
    uint32_t *p = NULL;
    pg__builder b = {PG_OK};
    pg__lock();
    b.status = pg__many(args, 2, NULL, 0, 2 * n + 2 * nparams,
                        pg__loss_nodes(kind, n, nclass, nparams), &p, where);
    uint32_t out = 0;
    if (b.status == PG_OK) {
        const uint32_t *w = p + n;
        switch (kind) {
        case PG_LOSS_HINGE: out = pg__hinge(&b, p, target, n, w, nparams, alpha); break;
        case PG_LOSS_CROSS_ENTROPY: out = pg__cross_entropy(&b, p, target, n, nclass); break;
        default:
            out = pg__squares(&b, p, target, n);
            if (kind == PG_LOSS_MSE)
                out = pg__build(&b, PG_OP_mul, out, 1, PG__NUMBER, 0, 0, 1.0 / (double)n);
            else if (kind == PG_LOSS_ROOT_SUM_SQUARES)
                out = pg__build(&b, PG_OP_powk, out, 1, PG__K, 0, 0, 0.5);
        }
        if (b.status != PG_OK) pg__blame(where, b.status, 0, -1);
    }
    pg_id r = b.status == PG_OK ? pg__give(out) : b.status;
    pg__unlock();
    return r;
}
