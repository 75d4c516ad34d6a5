/* ops.c: the op table, and the calls that build one node (or micrograd's
 * composed two) with the kernels of kernels.h. */
#include "ops.h"

#include "kernels.h"

// ----------------------------------------------------------------------------
// dispatch and the op table

static const struct {
    const char *name, *symbol;
    int arity, takes_k;
    const char *doc;
} pg__ops[PG_OP_COUNT] = {
#define PG__ROW(name, symbol, arity, takes_k, doc) {#name, symbol, arity, takes_k, doc},
    PG_OP_LIST(PG__ROW)
#undef PG__ROW
};

int pg_op_count(void) { return PG_OP_COUNT; }
int pg__op_ok(int op) { return op >= 0 && op < PG_OP_COUNT; }
const char *pg_op_name(int op) { return pg__op_ok(op) ? pg__ops[op].name : ""; }
const char *pg_op_symbol(int op) { return pg__op_ok(op) ? pg__ops[op].symbol : ""; }
int pg_op_arity(int op) { return pg__op_ok(op) ? pg__ops[op].arity : PG_EBADOP; }
int pg_op_takes_k(int op) { return pg__op_ok(op) ? pg__ops[op].takes_k : PG_EBADOP; }
const char *pg_op_doc(int op) { return pg__op_ok(op) ? pg__ops[op].doc : ""; }

// ----------------------------------------------------------------------------
// building nodes: check, compute, then commit (an error changes nothing)

/* See ops.h. */
pg_id pg__apply(int op, uint32_t a, enum pg__second second, uint32_t b, double x) {
    if (!pg__op_ok(op) || pg__ops[op].arity < 1) return PG_EBADOP; /* a leaf, custom, group */
    int binary = second == PG__NODE || second == PG__NUMBER;
    if ((pg__ops[op].arity == 2) != binary || pg__ops[op].takes_k != (second == PG__K))
        return PG_EBADOP;
    /* (a node used as both operands gains two references) */
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
    pg_id r = status == PG_OK ? pg__give(pg__new_node(PG_OP_leaf, data, 0.0, 0, 0)) : status;
    pg__unlock();
    return r;
}

/* pg__apply on the live handles a (and b, for PG__NODE), under the lock.
 * (Inline: second is a constant in each entry point below, so each compiles
 * to its own straight path.) */
static inline pg_id pg__apply_ids(int op, pg_id a, enum pg__second second, pg_id b, double x) {
    pg__lock();
    uint32_t ia = pg__lookup(a), ib = second == PG__NODE ? pg__lookup(b) : 0;
    pg_id r = ia && (ib || second != PG__NODE) ? pg__apply(op, ia, second, ib, x) : PG_EBADID;
    if (r > 0) r = pg__give(pg__index(r));
    pg__unlock();
    return r;
}

pg_id pg_apply1(int op, pg_id a) { return pg__apply_ids(op, a, PG__UNARY, 0, 0.0); }
pg_id pg_apply1k(int op, pg_id a, double k) { return pg__apply_ids(op, a, PG__K, 0, k); }
pg_id pg_apply2(int op, pg_id a, pg_id b) { return pg__apply_ids(op, a, PG__NODE, b, 0.0); }
pg_id pg_apply2n(int op, pg_id a, double b) { return pg__apply_ids(op, a, PG__NUMBER, 0, b); }

pg_id pg_apply_composed(int op, pg_id first, int inner, pg_id a, double x, double number) {
    if (inner != PG_OP_mul && inner != PG_OP_powk) return PG_EBADOP;
    pg__lock();
    uint32_t ia = pg__lookup(a), ifirst = first ? pg__lookup(first) : 0;
    enum pg__second second = inner == PG_OP_mul ? PG__NUMBER : PG__K;
    pg_id r = ia && (ifirst || !first) ? pg__apply(inner, ia, second, 0, x) : PG_EBADID;
    if (r > 0) {
        uint32_t mid = pg__index(r);
        r = ifirst ? pg__apply(op, ifirst, PG__NODE, mid, 0.0)
                   : pg__apply(op, mid, PG__NUMBER, 0, number);
        pg__release(mid); /* the result holds it, or it goes */
        if (r > 0) r = pg__give(pg__index(r));
    }
    pg__unlock();
    return r;
}

/* See pygrad.h. The node is custom(c0, group(c1, group(c2, ... c[n-1]))):
 * n - 2 group nodes for n > 2 children (ops.h). */
pg_id pg_custom(double data, const pg_id *children, int64_t n, pg_where *where) {
    if (n < 0) return pg__blame(where, PG_ESIZE, 2, -1);
    pg__lock();
    pg__handles h = {children, n, 2, 0};  /* children: the 2nd argument */
    uint32_t *c;
    /* each child gains a reference (two, if it is listed twice: a bound of n) */
    int status = pg__many(&h, 1, NULL, 0, n, n > 2 ? n - 1 : 1, &c, where);
    pg_id r = status;
    if (status == PG_OK) {
        uint32_t rest = n > 1 ? c[n - 1] : 0;
        for (int64_t i = n - 2; i >= 1; i--) { /* the chain, from its end */
            uint32_t g = pg__new_node(PG_OP_group, 0.0, 0.0, c[i], rest);
            if (i < n - 2) pg__A.nodes[rest].refs--; /* the new group holds it now */
            rest = g;
        }
        uint32_t out = pg__new_node(PG_OP_custom, data, 0.0, n > 0 ? c[0] : 0, rest);
        if (n > 2) pg__A.nodes[rest].refs--;
        r = pg__give(out);
    }
    pg__unlock();
    return r;
}
