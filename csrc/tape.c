/* tape.c: replay. A tape is the recorded topological order of a graph; the
 * graph can then be run again (forward, backward, or whole training loops)
 * without building anything, since a node's children never change: only
 * leaves' data does.
 */
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "kernels.h"
#include "optim.h"

struct pg_tape {
    uint32_t root;   /* the root's slot; the tape holds a reference to it */
    int64_t n;       /* nodes in the graph */
    uint32_t *all;   /* every node, in topological order */
    int64_t ncode;
    uint32_t *code;  /* the non-leaf nodes, in topological order */
    uint8_t *muladd; /* 1 where code[i] is a mul and code[i + 1] an add */
    uint8_t *first;  /* code[i]'s first-contribution bits (kernels.h) */
    double *saved;   /* their data before a forward, to undo a failed one */
};

/* The pairs (a * b, then c + d) that neurons are made of run as one step of
 * known ops, without dispatch: the same kernels in the same order. */
static void pg__find_pairs(pg_tape *t) {
    const pg_node *nodes = pg__A.nodes;
    for (int64_t i = 0; i < t->ncode; i++) {
        t->muladd[i] = i + 1 < t->ncode && nodes[t->code[i]].op == PG_OP_mul &&
                       nodes[t->code[i + 1]].op == PG_OP_add;
        if (t->muladd[i]) t->muladd[++i] = 0;
    }
}

/* Which contributions come first to each child, in backward order. Every
 * node but the root has a parent in the graph, so with these the backward
 * pass sets every grad without zeroing them first. */
static void pg__find_firsts(pg_tape *t) {
    pg_node *nodes = pg__A.nodes;
    uint32_t stamp = pg__new_epoch();
    for (int64_t i = t->ncode; i-- > 0;) {
        const pg_node *n = &nodes[t->code[i]];
        t->first[i] = 0;
        for (int c = 0; c < 2; c++) {
            uint32_t ch = n->child[c];
            if (ch && nodes[ch].mark != stamp) {
                nodes[ch].mark = stamp;
                t->first[i] |= (uint8_t)(1 << c);
            }
        }
    }
}

pg_tape *pg_tape_new(pg_id root, int *status) {
    pg_tape *t = NULL;
    pg__lock();
    uint32_t r = pg__lookup(root);
    int64_t n = !r ? PG_EBADID : pg__A.nodes[r].refs == UINT32_MAX ? PG_ELIMIT : pg__topo_sort(r);
    int st = n < 0 ? (int)n : PG_OK;
    if (st == PG_OK) {
        t = pg__realloc(NULL, sizeof *t);
        uint32_t *all = pg__realloc(NULL, (size_t)n * sizeof(uint32_t));
        uint32_t *code = pg__realloc(NULL, (size_t)n * sizeof(uint32_t));
        uint8_t *muladd = pg__realloc(NULL, (size_t)n);
        uint8_t *first = pg__realloc(NULL, (size_t)n);
        double *saved = pg__realloc(NULL, (size_t)n * sizeof(double));
        if (!t || !all || !code || !muladd || !first || !saved) {
            free(t), free(all), free(code), free(muladd), free(first), free(saved);
            t = NULL;
            st = PG_ENOMEM;
        } else {
            *t = (pg_tape){r, n, all, 0, code, muladd, first, saved};
            memcpy(all, pg__A.order, (size_t)n * sizeof(uint32_t));
            for (int64_t i = 0; i < n; i++)
                if (pg__A.nodes[all[i]].op != PG_OP_leaf) code[t->ncode++] = all[i];
            pg__find_pairs(t);
            pg__find_firsts(t);
            pg__A.nodes[r].refs++;
        }
    }
    pg__unlock();
    if (status) *status = st;
    return t;
}

void pg_tape_free(pg_tape *t) {
    if (!t) return;
    pg__lock();
    pg__release(t->root);
    pg__unlock();
    free(t->all), free(t->code), free(t->muladd), free(t->first), free(t->saved);
    free(t);
}

int64_t pg_tape_size(const pg_tape *t) { return t ? t->n : PG_EBADOP; }

/* Forward over the recorded order; on a math error, say what failed (if
 * failed is not NULL) and undo. */
static int pg__tape_forward(pg_tape *t, pg_failure *failed) {
    pg_node *nodes = pg__A.nodes;
    const uint32_t *code = t->code;
    double *saved = t->saved;
    for (int64_t i = 0; i < t->ncode; i++) {
        saved[i] = nodes[code[i]].data;
        if (t->muladd[i]) { /* neither can fail */
            saved[i + 1] = nodes[code[i + 1]].data;
            pg__forward_node(nodes, code[i], PG_OP_mul);
            pg__forward_node(nodes, code[++i], PG_OP_add);
            continue;
        }
        int status = pg__forward_node(nodes, code[i], nodes[code[i]].op);
        if (status != PG_OK) {
            const pg_node *n = &nodes[code[i]];
            if (failed)
                *failed = (pg_failure){pg__handle(code[i]), nodes[n->child[0]].data,
                                       n->child[1] ? nodes[n->child[1]].data : 0.0};
            while (i-- > 0) nodes[code[i]].data = saved[i];
            return status;
        }
    }
    return PG_OK;
}

static void pg__tape_backward(pg_tape *t) {
    pg_node *nodes = pg__A.nodes;
    const uint32_t *code = t->code;
    const uint8_t *first = t->first;
    nodes[t->root].grad = 1.0; /* every other grad is set by its first contribution */
    for (int64_t i = t->ncode; i-- > 0;) {
        if (i > 0 && t->muladd[i - 1]) {
            pg__backward_node(nodes, code[i], PG_OP_add, first[i]);
            --i;
            pg__backward_node(nodes, code[i], PG_OP_mul, first[i]);
        } else {
            pg__backward_node(nodes, code[i], nodes[code[i]].op, first[i]);
        }
    }
}

int pg_tape_forward(pg_tape *t, pg_failure *failed) {
    if (!t) return PG_EBADOP;
    pg__lock();
    int status = pg__tape_forward(t, failed);
    pg__unlock();
    return status;
}

int pg_tape_backward(pg_tape *t) {
    if (!t) return PG_EBADOP;
    pg__lock();
    pg__tape_backward(t);
    pg__unlock();
    return PG_OK;
}

int pg_tape_train(pg_tape *t, pg_optim *o, int64_t iters, const pg_id *inputs, int64_t ninputs,
                  const double *data, int64_t nrows, double *losses, int64_t *done,
                  pg_failure *failed) {
    if (done) *done = 0;
    if (!t || iters < 0 || (iters > 0 && !losses) || ninputs < 0 ||
        (ninputs > 0 && (!inputs || !data || nrows < 1)))
        return PG_EBADOP;
    uint32_t *in = pg__realloc(NULL, (size_t)(ninputs ? ninputs : 1) * sizeof(uint32_t));
    if (!in) return PG_ENOMEM;
    pg__lock();
    int status = pg__lookup_n(inputs, ninputs, in, 0);
    int64_t i = 0;
    for (; i < iters && status == PG_OK; i++) {
        pg_node *nodes = pg__A.nodes;
        const double *row = ninputs ? data + (i % nrows) * ninputs : NULL;
        for (int64_t j = 0; j < ninputs; j++) nodes[in[j]].data = row[j];
        status = pg__tape_forward(t, failed);
        if (status != PG_OK) break;
        losses[i] = nodes[t->root].data;
        if (o) pg__optim_zero_grads(o);
        pg__tape_backward(t);
        if (o) pg__optim_update(o);
    }
    pg__unlock();
    free(in);
    if (done) *done = i;
    return status;
}
