/* losses.c: the tutorials' losses, each built as one call (see pygrad.h).
 *
 * Every loss is a composition of the ops in ops.h, made node by node in the
 * order Python would make them for the expression in pygrad/losses.py, so
 * that backward gives exactly the numbers of the expression written out.
 */
#include <math.h>
#include <stdlib.h>

#include "arena.h"
#include "ops.h"

/* A builder: every node made so far is either released into a parent or is
 * the current result. `status` keeps the first error; once set, every step
 * is skipped and the result is released. */
typedef struct pg__b {
    int status;
} pg__b;

/* op(a, second), releasing the caller's references to the owned operands. */
static uint32_t pg__step(pg__b *b, int op, uint32_t a, int own_a, enum pg__second second,
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
static uint32_t pg__sum_add(pg__b *b, uint32_t acc, uint32_t term) {
    if (!acc) return pg__step(b, PG_OP_add, term, 1, PG__NUMBER, 0, 0, 0.0);
    return pg__step(b, PG_OP_add, acc, 1, PG__NODE, term, 1, 0.0);
}

/* y - p, as Value's __rsub__: (p * -1) + y. */
static uint32_t pg__rsub(pg__b *b, double y, uint32_t p) {
    uint32_t neg = pg__step(b, PG_OP_mul, p, 0, PG__NUMBER, 0, 0, -1.0);
    return pg__step(b, PG_OP_add, neg, 1, PG__NUMBER, 0, 0, y);
}

static uint32_t pg__squares(pg__b *b, const uint32_t *p, const double *y, int64_t n) {
    uint32_t acc = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t d = pg__rsub(b, y[i], p[i]);
        acc = pg__sum_add(b, acc, pg__step(b, PG_OP_powk, d, 1, PG__K, 0, 0, 2.0));
    }
    return acc;
}

static uint32_t pg__hinge(pg__b *b, const uint32_t *p, const double *y, int64_t n,
                          const uint32_t *w, int64_t nw, double alpha) {
    uint32_t acc = 0;
    for (int64_t i = 0; i < n; i++) { /* (1 + -y * p).relu() */
        uint32_t m = pg__step(b, PG_OP_mul, p[i], 0, PG__NUMBER, 0, 0, -y[i]);
        uint32_t s = pg__step(b, PG_OP_add, m, 1, PG__NUMBER, 0, 0, 1.0);
        acc = pg__sum_add(b, acc, pg__step(b, PG_OP_relu, s, 1, PG__NONE, 0, 0, 0.0));
    }
    acc = pg__step(b, PG_OP_mul, acc, 1, PG__NUMBER, 0, 0, 1.0 / (double)n);
    if (nw == 0) return acc;
    uint32_t reg = 0;
    for (int64_t i = 0; i < nw; i++)
        reg = pg__sum_add(b, reg, pg__step(b, PG_OP_mul, w[i], 0, PG__NODE, w[i], 0, 0.0));
    reg = pg__step(b, PG_OP_mul, reg, 1, PG__NUMBER, 0, 0, alpha); /* alpha * reg */
    return pg__step(b, PG_OP_add, acc, 1, PG__NODE, reg, 1, 0.0);
}

static uint32_t pg__cross_entropy(pg__b *b, const uint32_t *z, const double *cls, int64_t n,
                                  int64_t nclass) {
    int64_t rows = n / nclass;
    uint32_t acc = 0;
    for (int64_t r = 0; r < rows; r++) {
        const uint32_t *row = z + r * nclass;
        double m = -INFINITY;
        for (int64_t j = 0; j < nclass; j++)
            if (pg__A.nodes[row[j]].data > m) m = pg__A.nodes[row[j]].data;
        uint32_t s = 0;
        for (int64_t j = 0; j < nclass; j++) { /* (z - m).exp() */
            uint32_t d = pg__step(b, PG_OP_add, row[j], 0, PG__NUMBER, 0, 0, -m);
            s = pg__sum_add(b, s, pg__step(b, PG_OP_exp, d, 1, PG__NONE, 0, 0, 0.0));
        }
        uint32_t lse = pg__step(b, PG_OP_log, s, 1, PG__NONE, 0, 0, 0.0);
        uint32_t zc = pg__step(b, PG_OP_add, row[(int64_t)cls[r]], 0, PG__NUMBER, 0, 0, -m);
        uint32_t neg = pg__step(b, PG_OP_mul, zc, 1, PG__NUMBER, 0, 0, -1.0); /* lse - zc */
        acc = pg__sum_add(b, acc, pg__step(b, PG_OP_add, lse, 1, PG__NODE, neg, 1, 0.0));
    }
    return pg__step(b, PG_OP_mul, acc, 1, PG__NUMBER, 0, 0, 1.0 / (double)rows);
}

/* Slot indices of n handles into a new array (*out), or a status. */
static int pg__slots(const pg_id *ids, int64_t n, uint32_t **out) {
    *out = pg__realloc(NULL, (size_t)(n ? n : 1) * sizeof(uint32_t));
    return *out ? pg__lookup_n(ids, n, *out, 0) : PG_ENOMEM;
}

pg_id pg_loss(int kind, const pg_id *pred, const double *target, int64_t n, int64_t nclass,
              const pg_id *params, int64_t nparams, double alpha) {
    if (n < 1 || !pred || !target || nparams < 0 || (nparams && !params)) return PG_EBADOP;
    if (kind == PG_LOSS_CROSS_ENTROPY) {
        if (nclass < 1 || n % nclass) return PG_EBADOP;
        for (int64_t r = 0; r < n / nclass; r++)
            if (!(target[r] >= 0.0 && target[r] < (double)nclass && target[r] == floor(target[r])))
                return PG_EBADOP;
    } else if (kind < PG_LOSS_SUM_SQUARES || kind > PG_LOSS_HINGE) {
        return PG_EBADOP;
    }
    uint32_t *p = NULL, *w = NULL;
    pg__b b = {PG_OK};
    pg__lock();
    b.status = pg__slots(pred, n, &p);
    if (b.status == PG_OK) b.status = pg__slots(params, nparams, &w);
    uint32_t out = 0;
    if (b.status == PG_OK) {
        switch (kind) {
        case PG_LOSS_HINGE: out = pg__hinge(&b, p, target, n, w, nparams, alpha); break;
        case PG_LOSS_CROSS_ENTROPY: out = pg__cross_entropy(&b, p, target, n, nclass); break;
        default:
            out = pg__squares(&b, p, target, n);
            if (kind == PG_LOSS_MSE)
                out = pg__step(&b, PG_OP_mul, out, 1, PG__NUMBER, 0, 0, 1.0 / (double)n);
            else if (kind == PG_LOSS_ROOT_SUM_SQUARES)
                out = pg__step(&b, PG_OP_powk, out, 1, PG__K, 0, 0, 0.5);
        }
    }
    pg_id r = b.status == PG_OK ? pg__handle(out) : b.status;
    pg__unlock();
    free(p);
    free(w);
    return r;
}
