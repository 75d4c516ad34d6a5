/* tape.c: replay. A tape is the recorded topological order of a graph; the
 * graph can then be run again (forward, backward, or whole training loops)
 * without building anything, since a node's children never change: only
 * leaves' data does.
 *
 * The tape is a program of steps, in topological order. A step is one node
 * (its op and its children's slots, copied out of the node), or a neuron: a
 * whole chain act(((b + w1*x1) + w2*x2) + ... + wn*xn) run as one step, its
 * running sum kept in a register (see "Neurons" below). Both kinds give
 * every node the data and grad, to the bit, that the node-by-node replay
 * (and so a rebuild, and micrograd) gives it.
 */
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "kernels.h"
#include "optim.h"

#define PG__NONE UINT32_MAX

/* One step of a replay. */
typedef struct pg__step {
    uint32_t node;   /* the node it computes: a neuron's output */
    uint32_t a, b;   /* the node's children (b 0 if none); a neuron: its b, and its term count */
    uint8_t op;      /* the node's op; a neuron: its activation (PG_OP_leaf: none) */
    uint8_t first;   /* first-contribution bits of a and b (kernels.h); a neuron: bit 0, its b */
    uint8_t neuron;  /* 1 for a neuron, 2 for a neuron whose first sum is m1 + b */
} pg__step;

/* One term wi*xi of a neuron: the product node and the sum it is added into. */
typedef struct pg__term {
    uint32_t a, b;   /* the product's children (wi and xi in operand order) */
    uint32_t mul;    /* the product a * b */
    uint32_t sum;    /* the running sum that adds it */
    uint8_t first;   /* first-contribution bits of a and b */
} pg__term;

struct pg_tape {
    uint32_t root;   /* the root's slot; the tape holds a reference to it */
    int64_t n;       /* nodes in the graph */
    int64_t nsteps;
    pg__step *steps; /* the program, in topological order */
    int64_t nterms;
    pg__term *terms; /* the neurons' terms, neuron after neuron, each bottom up */
    int64_t nneurons;
    double *saved;   /* every non-leaf node's data before a forward, in the order
                      * the forward writes them, to undo a failed one */
};

/* Neurons can be turned off, to test them against the node-by-node replay. */
static int pg__fuse = 1;

void pg_debug_tape_fusion(int on) {
    pg__lock();
    pg__fuse = on != 0;
    pg__unlock();
}

/* ---- Neurons ----------------------------------------------------------------
 *
 * A neuron is the chain that micrograd's Neuron builds (and pg_mlp, and the
 * tutorials' own classes):
 *
 *     s1 = b + m1   (or m1 + b)       m_k = a_k * b_k   (mul, operands in any role)
 *     s_k = s_{k-1} + m_k, k = 2..n
 *     out = act(s_n)                  any unary op, or none: out = s_n
 *
 * Contract. The nodes m_k, s_k (and s_n when there is an activation) are the
 * neuron's inner nodes: each is used exactly once in the graph, by the next
 * node of the chain. b, a_k and b_k (the outer operands) are any nodes. The
 * step runs where out sits in the topological order:
 *   forward   acc = b; for each k: p = a_k * b_k, acc = acc + p (m1 + b for
 *             the swapped form); every inner node's data is stored as the
 *             node-by-node forward stores it; then out = act(acc).
 *   backward  with g the grad of s_n (out's, through act's kernel), each
 *             inner node's grad is what the chain of adds would give it:
 *             0.0 + g, a first contribution (one parent), and since
 *             0.0 + (0.0 + g) == 0.0 + g to the bit, that is one number for
 *             the whole chain. The outer operands receive their
 *             contributions in the node-by-node order: m_n's (a_n, then
 *             b_n), m_{n-1}'s, ..., then b (from s1), then m1's.
 * Every kernel is kernels.h's, so the arithmetic is the same operation for
 * operation; only the memory traffic of the chain goes.
 *
 * When it applies. Running the neuron's nodes together at out's place moves
 * the forward of an inner node later (harmless: only the chain reads it) and
 * its backward earlier, ahead of the steps that sit between the inner node
 * and out in the order (the first neuron of a layer has the whole previous
 * layer there, reached through its inputs). That keeps the order of every
 * grad's contributions, and so the bits, unless one of those steps is a
 * parent of one of the neuron's outer operands. So a chain becomes a neuron
 * only if, for each inner node at position p with an outer operand c, c's
 * next parent after p is out or after it, or another inner node of the same
 * neuron (whose own next parent is checked in turn).
 */

/* What the search for neurons needs, for a graph of n nodes. A node's
 * position is its index in the topological order pg__A.order; while a tape
 * is compiled, each node's mark holds it (pg__compile puts the marks back). */
typedef struct pg__finder {
    const uint32_t *order; /* the nodes, in topological order */
    uint32_t *next;        /* per position and operand: the operand's next parent */
    uint32_t *owner;       /* per position: the position of the neuron it is in (first,
                            * while next is found: the position of its first parent) */
    uint8_t *uses;         /* per position: operands it is, over the graph (up to 2) */
} pg__finder;

/* The finder's arrays, kept from one compile to the next (as the sort keeps
 * its stack): fresh memory for each would cost a page fault per 4 KB. Only
 * up to PG__FINDER_KEPT positions are kept; a bigger graph's are freed. */
#define PG__FINDER_KEPT ((size_t)1 << 20)
/* (pg__A.finder and pg__A.finder_cap: the arena owns them, so pg__trim
 * hands them back with the sort's buffers.) */

/* The position of the node in slot s. */
static inline uint32_t pg__pos(uint32_t s) { return pg__A.nodes[s].mark; }

/* The first-contribution bits (kernels.h) of the node at position p: its
 * contribution to a child comes first in backward order where no parent of
 * that child comes later in the order (for a + a, the first operand's).
 * Every node but the root has a parent, so with these a backward pass sets
 * every grad without zeroing them first. */
static uint8_t pg__first_bits(const pg__finder *f, uint32_t p) {
    const pg_node *n = &pg__A.nodes[f->order[p]];
    uint8_t bits = 0;
    if (n->child[0] && f->next[2 * (size_t)p] == PG__NONE) bits |= 1;
    if (n->child[1] && n->child[1] != n->child[0] && f->next[2 * (size_t)p + 1] == PG__NONE) bits |= 2;
    return bits;
}

/* Whether op is a unary op (one child; an activation of a neuron). */
static int pg__unary(int op) {
    return pg_op_arity(op) == 1;
}

/* Whether slot c is used once in the graph: by one parent, as one operand. */
static int pg__used_once(const pg__finder *f, uint32_t c) { return f->uses[pg__pos(c)] == 1; }

/* If slot s is an add with a product used only by it, that product (the term)
 * and the other operand (the rest of the chain below), and whether the product
 * is the first operand (the swapped form, allowed only for s1). */
static int pg__term_of(const pg__finder *f, uint32_t s, uint32_t *mul, uint32_t *below,
                       int *swapped) {
    const pg_node *nodes = pg__A.nodes;
    if (nodes[s].op != PG_OP_add) return 0;
    for (int c = 1; c >= 0; c--) {
        uint32_t m = nodes[s].child[c];
        if (nodes[m].op == PG_OP_mul && pg__used_once(f, m)) {
            *mul = m, *below = nodes[s].child[1 - c], *swapped = c == 0;
            return 1;
        }
    }
    return 0;
}

/* Whether the next parent of the operand in slot c of the node at position p
 * comes at or after out (position top), or is in the same neuron. */
static int pg__keeps_order(const pg__finder *f, uint32_t p, int c, uint32_t top) {
    uint32_t q = f->next[2 * (size_t)p + c];
    return q == PG__NONE || q >= top || f->owner[q] == top;
}

/* Find the neuron whose out is at position top, if there is one: its terms
 * go to terms[0 .. n) top down, its step to *step; owner marks its nodes.
 * Returns n, 0 for none. */
static uint32_t pg__find_neuron(pg__finder *f, uint32_t top, pg__term *terms, pg__step *step) {
    const pg_node *nodes = pg__A.nodes;
    uint32_t out = f->order[top], s = out, mul, below;
    int act = nodes[out].op, swapped;
    if (pg__unary(act)) {
        s = nodes[out].child[0];
        if (!pg__used_once(f, s)) return 0;
    } else if (act == PG_OP_add) {
        act = PG_OP_leaf;
    } else {
        return 0;
    }
    if (!pg__term_of(f, s, &mul, &below, &swapped)) return 0;
    uint32_t n = 0;
    for (;;) {
        terms[n++] = (pg__term){nodes[mul].child[0], nodes[mul].child[1], mul, s, 0};
        f->owner[pg__pos(mul)] = f->owner[pg__pos(s)] = top;
        uint32_t m2, b2;
        int sw2;
        if (swapped || !pg__used_once(f, below) || !pg__term_of(f, below, &m2, &b2, &sw2)) break;
        s = below, mul = m2, below = b2, swapped = sw2;
    }
    f->owner[top] = top;
    /* The outer operands: both of each product's, and b (of s1, the last sum). */
    int ok = pg__keeps_order(f, pg__pos(terms[n - 1].sum), swapped, top);
    for (uint32_t k = 0; k < n && ok; k++) {
        uint32_t p = pg__pos(terms[k].mul);
        ok = pg__keeps_order(f, p, 0, top) && pg__keeps_order(f, p, 1, top);
        terms[k].first = pg__first_bits(f, p);
    }
    if (!ok) {
        for (uint32_t k = 0; k < n; k++)
            f->owner[pg__pos(terms[k].mul)] = f->owner[pg__pos(terms[k].sum)] = PG__NONE;
        f->owner[top] = PG__NONE;
        return 0;
    }
    uint8_t bfirst = pg__first_bits(f, pg__pos(terms[n - 1].sum));
    *step = (pg__step){out, below, n, (uint8_t)act, (uint8_t)((bfirst >> swapped) & 1),
                       (uint8_t)(1 + swapped)};
    return n;
}

/* Compile the graph in pg__A.order[0 .. n) into t's steps and terms. */
static int pg__compile(pg_tape *t, int64_t n) {
    pg_node *nodes = pg__A.nodes;
    const uint32_t *order = pg__A.order;
    size_t count = (size_t)(n ? n : 1);
    const size_t per = 3 * sizeof(uint32_t) + 1; /* bytes per position */
    int status = pg__grow(&pg__A.finder, &pg__A.finder_cap, count, per);
    uint32_t *scratch = pg__A.finder;
    /* Upper bounds, trimmed at the end: a term holds two non-leaf nodes. */
    t->steps = pg__realloc(NULL, count * sizeof(pg__step));
    t->terms = pg__realloc(NULL, (count / 2 + 1) * sizeof(pg__term));
    t->saved = pg__realloc(NULL, count * sizeof(double));
    if (status != PG_OK || !t->steps || !t->terms || !t->saved) return PG_ENOMEM;
    size_t cap = pg__A.finder_cap;
    pg__finder f = {order, scratch, scratch + 2 * cap, (uint8_t *)(scratch + 3 * cap)};
    uint32_t *firstuse = f.owner;
    for (uint32_t i = 0; i < n; i++) {
        nodes[order[i]].mark = i;
        firstuse[i] = PG__NONE;
        f.uses[i] = 0;
    }
    for (uint32_t i = (uint32_t)n; i-- > 0;) { /* each operand's next parent */
        const pg_node *node = &nodes[order[i]];
        for (int c = 0; c < 2; c++)
            f.next[2 * (size_t)i + c] = node->child[c] ? firstuse[nodes[node->child[c]].mark] : PG__NONE;
        for (int c = 0; c < 2; c++) {
            if (!node->child[c]) continue;
            uint32_t p = nodes[node->child[c]].mark;
            firstuse[p] = i;
            f.uses[p] += f.uses[p] < 2;
        }
    }
    for (uint32_t i = 0; i < n; i++) f.owner[i] = PG__NONE;
    /* Neurons, from the top of the order down, so each is found whole: their
     * steps go to the end of t->steps, their terms (each neuron's top down)
     * to t->terms, so that the whole of t->terms is the reverse of the
     * program's order. */
    pg__step *steps = t->steps;
    int64_t nterms = 0, nneurons = 0, nsteps = 0, ncode = 0;
    for (uint32_t i = (uint32_t)n; pg__fuse && i-- > 0;) {
        if (f.owner[i] != PG__NONE) continue;
        uint32_t k = pg__find_neuron(&f, i, t->terms + nterms, &steps[count - 1 - nneurons]);
        nterms += k;
        nneurons += k > 0;
    }
    for (int64_t i = 0, j = nterms - 1; i < j; i++, j--) {
        pg__term swap = t->terms[i];
        t->terms[i] = t->terms[j], t->terms[j] = swap;
    }
    /* The program: plain steps and neurons, in topological order. */
    for (uint32_t i = 0, neuron = (uint32_t)nneurons; i < n; i++) {
        const pg_node *node = &nodes[order[i]];
        if (node->op == PG_OP_leaf) continue;
        ncode++;
        if (f.owner[i] == PG__NONE)
            steps[nsteps++] = (pg__step){order[i], node->child[0], node->child[1], node->op,
                                         pg__first_bits(&f, i), 0};
        else if (f.owner[i] == i) /* the neurons were found last first */
            steps[nsteps++] = steps[count - neuron--];
    }
    for (uint32_t i = 0; i < n; i++) nodes[order[i]].mark = pg__A.epoch; /* as the sort left them */
    if (pg__A.finder_cap > PG__FINDER_KEPT) {
        free(pg__A.finder);
        pg__A.finder = NULL, pg__A.finder_cap = 0;
    }
    t->nsteps = nsteps, t->nterms = nterms, t->nneurons = nneurons;
    void *fit = realloc(t->steps, (size_t)(nsteps ? nsteps : 1) * sizeof(pg__step));
    if (fit) t->steps = fit;
    if ((fit = realloc(t->terms, (size_t)(nterms ? nterms : 1) * sizeof(pg__term)))) t->terms = fit;
    if ((fit = realloc(t->saved, (size_t)(ncode ? ncode : 1) * sizeof(double)))) t->saved = fit;
    return PG_OK;
}

pg_tape *pg_tape_new(pg_id root, int *status) {
    pg_tape *t = NULL;
    pg__lock();
    uint32_t r = pg__lookup(root);
    int64_t n = !r ? PG_EBADID : pg__A.nodes[r].refs == UINT32_MAX ? PG_ELIMIT : pg__topo_sort(r);
    int st = n < 0 ? (int)n : PG_OK;
    for (int64_t i = 0; st == PG_OK && i < n; i++) { /* (Python's backwards are not replayable) */
        const pg_node *node = &pg__A.nodes[pg__A.order[i]];
        if (node->op == PG_OP_custom || node->op == PG_OP_group || (node->flags & PG__PYTHON))
            st = PG_EBADOP;
    }
    if (st == PG_OK) {
        t = pg__realloc(NULL, sizeof *t);
        if (!t) {
            st = PG_ENOMEM;
        } else {
            *t = (pg_tape){r, n, 0, NULL, 0, NULL, 0, NULL};
            st = pg__compile(t, n);
            if (st != PG_OK) {
                free(t->steps), free(t->terms), free(t->saved), free(t);
                t = NULL;
            } else {
                pg__A.nodes[r].refs++;
            }
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
    free(t->steps), free(t->terms), free(t->saved);
    free(t);
}

int64_t pg_tape_size(const pg_tape *t) { return t ? t->n : PG_EBADOP; }

int64_t pg_tape_neurons(const pg_tape *t) { return t ? t->nneurons : PG_EBADOP; }

/* ---- running the program ---------------------------------------------------- */

/* A neuron's forward (see "Neurons"): terms t[0 .. n), the old data of the
 * nodes it writes to saved, in order. */
static inline int pg__neuron_forward(pg_node *nodes, const pg__step *s, const pg__term *t,
                                     double *saved) {
    uint32_t n = s->b;
    pg__vals v = {nodes[t[0].a].data, nodes[t[0].b].data, 0.0, 0.0};
    mul_forward(&v);
    double p = v.out, b = nodes[s->a].data;
    v = s->neuron == 2 ? (pg__vals){p, b, 0.0, 0.0} : (pg__vals){b, p, 0.0, 0.0};
    for (uint32_t k = 0;;) {
        add_forward(&v);
        double acc = v.out;
        *saved++ = nodes[t[k].mul].data;
        nodes[t[k].mul].data = p;
        *saved++ = nodes[t[k].sum].data;
        nodes[t[k].sum].data = acc;
        if (++k == n) break;
        v = (pg__vals){nodes[t[k].a].data, nodes[t[k].b].data, 0.0, 0.0};
        mul_forward(&v);
        p = v.out;
        v = (pg__vals){acc, p, 0.0, 0.0};
    }
    if (s->op == PG_OP_leaf) return PG_OK;
    *saved = nodes[s->node].data;
    return pg__forward_into(nodes, &nodes[s->node], t[n - 1].sum, 0, s->op);
}

/* A neuron's backward (see "Neurons"). */
static inline void pg__neuron_backward(pg_node *nodes, const pg__step *s, const pg__term *t) {
    uint32_t n = s->b, top = t[n - 1].sum;
    if (s->op != PG_OP_leaf) pg__backward_into(nodes, &nodes[s->node], top, 0, s->op, 1);
    double gs = nodes[top].grad; /* s_n's, complete */
    pg__vals v = {0.0, 0.0, 0.0, 0.0};
    double g = 0.0 + add_backward(&v, gs).a; /* every other inner node's grad */
    for (uint32_t k = n; k-- > 0;) {
        const pg__term *m = &t[k];
        nodes[m->mul].grad = g;
        if (k > 0) {
            nodes[t[k - 1].sum].grad = g;
        } else { /* s1 gives b its grad */
            pg_node *b = &nodes[s->a];
            pg__grads d = add_backward(&v, n == 1 ? gs : g);
            b->grad = (s->first & 1 ? 0.0 : b->grad) + (s->neuron == 2 ? d.b : d.a);
        }
        pg_node *ma = &nodes[m->a], *mb = &nodes[m->b];
        v = (pg__vals){ma->data, mb->data, 0.0, nodes[m->mul].data};
        pg__grads d = mul_backward(&v, g);
        ma->grad = (m->first & 1 ? 0.0 : ma->grad) + d.a;
        mb->grad = (m->first & 2 ? 0.0 : mb->grad) + d.b;
    }
}

/* Put back the data saved before the first nsteps steps wrote it. */
static void pg__tape_undo(pg_tape *t, int64_t nsteps) {
    pg_node *nodes = pg__A.nodes;
    const double *saved = t->saved;
    const pg__term *term = t->terms;
    for (int64_t i = 0; i < nsteps; i++) {
        const pg__step *s = &t->steps[i];
        if (s->neuron) {
            for (uint32_t k = 0; k < s->b; k++, term++) {
                nodes[term->mul].data = *saved++;
                nodes[term->sum].data = *saved++;
            }
            if (s->op == PG_OP_leaf) continue;
        }
        nodes[s->node].data = *saved++;
    }
}

/* Forward over the program; on a math error, say what failed (if failed is
 * not NULL) and undo. */
static int pg__tape_forward(pg_tape *t, pg_failure *failed) {
    pg_node *nodes = pg__A.nodes;
    double *saved = t->saved;
    const pg__term *term = t->terms;
    for (int64_t i = 0; i < t->nsteps; i++) {
        const pg__step *s = &t->steps[i];
        int status;
        if (s->neuron) {
            status = pg__neuron_forward(nodes, s, term, saved);
            term += s->b;
            saved += 2 * s->b;
            if (s->op == PG_OP_leaf) continue;
        } else {
            *saved = nodes[s->node].data;
            status = pg__forward_into(nodes, &nodes[s->node], s->a, s->b, s->op);
        }
        saved++;
        if (status != PG_OK) {
            const pg_node *n = &nodes[s->node];
            if (failed)
                *failed = (pg_failure){pg__handle(s->node), nodes[n->child[0]].data,
                                       n->child[1] ? nodes[n->child[1]].data : 0.0};
            pg__tape_undo(t, i + 1);
            return status;
        }
    }
    return PG_OK;
}

static void pg__tape_backward(pg_tape *t) {
    pg_node *nodes = pg__A.nodes;
    const pg__term *end = t->terms + t->nterms;
    nodes[t->root].grad = 1.0; /* every other grad is set by its first contribution */
    for (int64_t i = t->nsteps; i-- > 0;) {
        const pg__step *s = &t->steps[i];
        if (s->neuron) {
            end -= s->b;
            pg__neuron_backward(nodes, s, end);
        } else {
            pg__backward_into(nodes, &nodes[s->node], s->a, s->b, s->op, s->first);
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
