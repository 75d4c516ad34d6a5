/* tape_compile.c: the tape compiler. From the graph under a root it makes
 * the program that tape_replay.c runs (tape.h): the topological order, the
 * neurons found in it, neurons side by side in layers, and the layout of
 * the tape's slots. It works in steps of a bounded number of node-visits
 * (pg_tape_compile), keeping all its state in a job of its own, so that a
 * caller can stop it between steps (Ctrl-C) and other calls can run in
 * between: nothing here relies on the arena's marks or scratch.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "optim.h"
#include "tape.h"

#define PG__NONE_POS UINT32_MAX
/* Provisional slots carry their region: the weights' (laid out first, so
 * that a model's parameters are one run of slots) or the rest's. */
#define PG__REGION_W 0x80000000u
#define PG__MAX_SLOTS 0x7FFFFFF0u
/* No slot: becomes slot 0 (which holds 0.0) when slots are final. */
#define PG__NOSLOT 0x7FFFFFFFu

/* Test hooks (pygrad.h). */
static int pg__fuse = 1, pg__layers = 1, pg__refuse = -1;

void pg_debug_tape_fusion(int on) {
    pg__lock();
    pg__fuse = on != 0;
    pg__unlock();
}

void pg_debug_tape_layers(int on) {
    pg__lock();
    pg__layers = on != 0;
    pg__unlock();
}

void pg_debug_tape_refuse(int op) {
    pg__lock();
    pg__refuse = op;
    pg__unlock();
}

/* Whether a tape can run node n: every op of the table can but a custom op's
 * (its data and backward are Python's) and one marked as having its backward
 * in Python (pg_set_python_backward). */
static int pg__replayable(const pg_node *n) {
    return n->op != pg__refuse && n->op != PG_OP_custom && n->op != PG_OP_group &&
           !(n->flags & PG__PYTHON);
}

/* Whether op is a unary op (one child: a neuron's activation). */
static int pg__unary(int op) { return pg_op_arity(op) == 1; }

/* ---- the job ------------------------------------------------------------- */

/* A neuron found, by graph position (see "Neurons" below). */
typedef struct pg__found {
    uint32_t top;     /* position of its output */
    uint32_t b;       /* position of b */
    uint32_t term, n; /* its terms, job->fterms[term .. term + n), bottom up */
    uint8_t act, bfirst;
} pg__found;

/* A term of a found neuron, by graph position. */
typedef struct pg__fterm {
    uint32_t a, b;     /* the product's operands, in operand order */
    uint32_t mul, sum; /* the product and the sum that adds it */
    uint8_t first;     /* first-contribution bits of a and b */
} pg__fterm;

/* A step of the program before slots are given: the position of a plain
 * node (found = PG__NONE_POS) or a neuron's top, with its record. */
typedef struct pg__pstep {
    uint32_t pos, found;
    uint8_t first;
} pg__pstep;

enum pg__phase { PG__SORT, PG__PREPARE, PG__PARENTS, PG__NEURONS, PG__PROGRAM, PG__EMIT,
                 PG__FINISH };

typedef struct pg__job {
    int phase;
    int64_t i;          /* where the current phase goes on */
    pg__sorter sort;    /* the graph's nodes in topological order (sort.order, sort.n),
                         * and each one's position + 1 (sort.pos) */
    /* the finder's arrays, per position */
    uint32_t *next;     /* per position and operand: the operand's next parent */
    uint32_t *owner;    /* the position of the neuron it is in (first: of its first parent) */
    uint32_t *uses;     /* how many operands it is, over the graph */
    uint32_t *found_at; /* a neuron's top: its record; later: the slot given to the node */
    pg__found *found;
    size_t nfound, found_cap;
    pg__fterm *fterms;
    size_t nfterms, fterms_cap;
    pg__pstep *program;
    size_t nprogram, program_cap;
    uint32_t *leaves;        /* the leaves' provisional slots */
    size_t nleaves, leaves_cap;
    uint32_t *stamp;    /* per position: the last layer candidate that looked at it */
    uint32_t stamps;
    /* what is emitted: growable copies of the tape's arrays */
    pg__step *steps;
    size_t nsteps, steps_cap;
    pg__neuron *neurons;
    size_t nneurons, neurons_cap;
    pg__term *terms;
    size_t nterms, terms_cap;
    pg__layer *layers;
    size_t nlayers, layers_cap;
    uint32_t *index;
    size_t nindex, index_cap;
    uint8_t *bytes;
    size_t nbytes, bytes_cap;
    uint32_t *inner;
    size_t ninner, inner_cap;
    uint32_t *wnode, *rnode; /* per provisional slot of each region: its arena slot */
    size_t nw, nw_cap, nr, nr_cap;
    struct pg__const {       /* the op constants' slots (of the rest) and values */
        uint32_t slot;
        double k;
    } *consts;
    size_t nconsts, consts_cap;
    size_t widest;           /* the most inputs or neurons of a layer */
    uint32_t *items;         /* scratch of a layer candidate */
    size_t items_cap;
    uint8_t *roles;
    size_t roles_cap;
} pg__job;


void pg__job_free(pg__job *j) {
    if (!j) return;
    free(j->sort.pos), free(j->sort.stack), free(j->sort.order), free(j->next), free(j->owner), free(j->uses);
    free(j->found_at), free(j->found), free(j->fterms), free(j->program), free(j->stamp);
    free(j->steps), free(j->neurons), free(j->terms), free(j->layers), free(j->index);
    free(j->bytes), free(j->inner), free(j->wnode), free(j->rnode), free(j->consts);
    free(j->items), free(j->roles), free(j->leaves);
    free(j);
}

void pg__tape_free_program(pg_tape *t) {
    free(t->steps), free(t->neurons), free(t->terms), free(t->layers), free(t->index);
    free(t->bytes), free(t->inner), free(t->leaves), free(t->node), free(t->mem), free(t->bmem);
    free(t->plain);
    t->bscratch = NULL, t->bmem = NULL, t->plain = NULL;
    t->steps = NULL, t->neurons = NULL, t->terms = NULL, t->layers = NULL, t->index = NULL;
    t->bytes = NULL, t->inner = NULL, t->leaves = NULL, t->node = NULL, t->mem = NULL;
}

/* Append one element to a growable array of the job (doubling it when full). */
#define PG__PUSH(arr, len, cap, value)                                                  \
    do {                                                                                \
        if ((len) == (cap)) {                                                           \
            void *buf_ = (arr);                                                         \
            if (pg__grow(&buf_, &(cap), (len) + 1, sizeof *(arr)) != PG_OK) return PG_ENOMEM; \
            (arr) = buf_;                                                               \
        }                                                                               \
        (arr)[(len)++] = (value);                                                       \
    } while (0)

/* Grow a job buffer (a T* held as *buf) to hold need elements of elem bytes. */
static int pg__room(void *buf, size_t *cap, size_t need, size_t elem) {
    void *p = *(void **)buf;
    int status = pg__grow(&p, cap, need, elem);
    *(void **)buf = p;
    return status;
}

/* The position of the node in arena slot s (a node of the graph). */
static inline uint32_t pg__posn(const pg__job *j, uint32_t s) { return j->sort.pos[s] - 1; }
static inline const pg_node *pg__at(const pg__job *j, uint32_t p) { return &pg__A.nodes[j->sort.order[p]]; }

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
 *   forward   acc = b; for each k: p = a_k * b_k, acc = acc + p (p + b for
 *             the swapped form: the same bits); then out = act(acc). The
 *             inner nodes' data is what the node-by-node forward gives them.
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

/* The first-contribution bits of the node at position p: its contribution
 * to a child comes first in backward order where no parent of that child
 * comes later in the order (for a + a, the first operand's). Every node but
 * the root has a parent, so with these a backward pass sets every grad
 * without zeroing them first. */
static uint8_t pg__first_bits(const pg__job *j, uint32_t p) {
    const pg_node *n = pg__at(j, p);
    uint8_t bits = 0;
    if (n->child[0] && j->next[2 * (size_t)p] == PG__NONE_POS) bits |= PG__FIRST_A;
    if (n->child[1] && n->child[1] != n->child[0] && j->next[2 * (size_t)p + 1] == PG__NONE_POS)
        bits |= PG__FIRST_B;
    return bits;
}

/* Whether the node at position p is used once in the graph: by one parent, as one operand. */
static int pg__used_once(const pg__job *j, uint32_t p) { return j->uses[p] == 1; }

/* If the node at position s is an add with a product used only by it, that
 * product (the term) and the other operand (the rest of the chain below),
 * and whether the product is the first operand (the swapped form, allowed
 * only for s1). */
static int pg__term_of(const pg__job *j, uint32_t s, uint32_t *mul, uint32_t *below, int *swapped) {
    const pg_node *n = pg__at(j, s);
    if (n->op != PG_OP_add) return 0;
    for (int c = 1; c >= 0; c--) {
        uint32_t m = pg__posn(j, n->child[c]);
        if (pg__at(j, m)->op == PG_OP_mul && pg__used_once(j, m)) {
            *mul = m, *below = pg__posn(j, n->child[1 - c]), *swapped = c == 0;
            return 1;
        }
    }
    return 0;
}

/* Whether the next parent of the operand in slot c of the node at position p
 * comes at or after out (position top), or is in the same neuron. */
static int pg__keeps_order(const pg__job *j, uint32_t p, int c, uint32_t top) {
    uint32_t q = j->next[2 * (size_t)p + c];
    return q == PG__NONE_POS || q >= top || j->owner[q] == top;
}

/* Find the neuron whose out is at position top, if there is one: its terms
 * go to job->fterms, its record to job->found; owner marks its nodes.
 * Returns its term count (0 for none), or PG_ENOMEM. */
static int64_t pg__find_neuron(pg__job *j, uint32_t top) {
    const pg_node *out = pg__at(j, top);
    uint32_t s = top, mul, below;
    int act = out->op, swapped;
    if (pg__unary(act)) {
        s = pg__posn(j, out->child[0]);
        if (!pg__used_once(j, s)) return 0;
    } else if (act == PG_OP_add) {
        act = PG_OP_leaf;
    } else {
        return 0;
    }
    if (!pg__term_of(j, s, &mul, &below, &swapped)) return 0;
    size_t first = j->nfterms, n = 0;
    for (;;) { /* top down; reversed below */
        const pg_node *m = pg__at(j, mul);
        pg__fterm term = {pg__posn(j, m->child[0]), pg__posn(j, m->child[1]), mul, s, 0};
        PG__PUSH(j->fterms, j->nfterms, j->fterms_cap, term);
        n++;
        j->owner[mul] = j->owner[s] = top;
        uint32_t m2, b2;
        int sw2;
        if (swapped || !pg__used_once(j, below) || !pg__term_of(j, below, &m2, &b2, &sw2)) break;
        s = below, mul = m2, below = b2, swapped = sw2;
    }
    j->owner[top] = top;
    pg__fterm *terms = j->fterms + first;
    /* The outer operands: both of each product's, and b (of s1, the last sum). */
    int ok = pg__keeps_order(j, terms[n - 1].sum, swapped, top);
    for (size_t k = 0; k < n && ok; k++) {
        ok = pg__keeps_order(j, terms[k].mul, 0, top) && pg__keeps_order(j, terms[k].mul, 1, top);
        terms[k].first = pg__first_bits(j, terms[k].mul);
    }
    if (!ok) {
        for (size_t k = 0; k < n; k++) j->owner[terms[k].mul] = j->owner[terms[k].sum] = PG__NONE_POS;
        j->owner[top] = PG__NONE_POS;
        j->nfterms = first;
        return 0;
    }
    for (size_t a = 0, b = n - 1; a < b; a++, b--) { /* bottom up */
        pg__fterm swap = terms[a];
        terms[a] = terms[b], terms[b] = swap;
    }
    uint8_t bfirst = (uint8_t)((pg__first_bits(j, terms[0].sum) >> swapped) & 1);
    pg__found f = {top, below, (uint32_t)first, (uint32_t)n, (uint8_t)act, bfirst};
    j->found_at[top] = (uint32_t)j->nfound;
    PG__PUSH(j->found, j->nfound, j->found_cap, f);
    return (int64_t)n;
}

/* ---- slots --------------------------------------------------------------- */

/* A new slot for the node at position p (PG__NONE_POS: a number), in the
 * weights' region or the rest's; *slot receives it. */
static int pg__new_slot(pg__job *j, uint32_t p, int weights, uint32_t *slot) {
    uint32_t node = p == PG__NONE_POS ? 0 : j->sort.order[p];
    if (j->nw + j->nr >= PG__MAX_SLOTS) return PG_ELIMIT;
    if (weights) {
        *slot = PG__REGION_W | (uint32_t)j->nw;
        PG__PUSH(j->wnode, j->nw, j->nw_cap, node);
    } else {
        *slot = (uint32_t)j->nr;
        PG__PUSH(j->rnode, j->nr, j->nr_cap, node);
    }
    if (p == PG__NONE_POS) return PG_OK;
    j->found_at[p] = *slot;
    if (pg__at(j, p)->op == PG_OP_leaf) PG__PUSH(j->leaves, j->nleaves, j->leaves_cap, *slot);
    return PG_OK;
}

/* The slot of the node at position p, given one in the rest's region if it
 * has none yet. (Once PG__PROGRAM is done, found_at holds slots.) */
static int pg__slot(pg__job *j, uint32_t p, uint32_t *slot) {
    if (j->found_at[p] != PG__NONE_POS) {
        *slot = j->found_at[p];
        return PG_OK;
    }
    return pg__new_slot(j, p, 0, slot);
}

/* Before a block of n slots in the rest's region: for n >= 8, slots holding
 * nothing (node 0) up to a multiple of eight, so that the block starts a
 * 64-byte line of the tape's arrays (its region does, pg__finish; the
 * arrays do, pg__tape_alloc), where the kernels' vectors load and store it
 * whole instead of across two lines. */
static int pg__align_slots(pg__job *j, uint32_t n) {
    uint32_t slot;
    int status = PG_OK;
    while (n >= 8 && j->nr % 8 && status == PG_OK) status = pg__new_slot(j, PG__NONE_POS, 0, &slot);
    return status;
}

/* A slot holding the number k (an op constant). */
static int pg__const_slot(pg__job *j, double k, uint32_t *slot) {
    int status = pg__new_slot(j, PG__NONE_POS, 0, slot);
    if (status == PG_OK) {
        struct pg__const c = {*slot, k};
        PG__PUSH(j->consts, j->nconsts, j->consts_cap, c);
    }
    return status;
}

/* The slot of the op constant of the node at position p, if its op takes one; else 0. */
static int pg__k_slot(pg__job *j, uint32_t p, uint32_t *slot) {
    const pg_node *n = pg__at(j, p);
    *slot = PG__NOSLOT;
    return pg_op_takes_k(n->op) == 1 ? pg__const_slot(j, n->k, slot) : PG_OK;
}

static int pg__assigned(const pg__job *j, uint32_t p) { return j->found_at[p] != PG__NONE_POS; }

/* ---- Layers -----------------------------------------------------------------
 *
 * A layer step runs neurons N_0 .. N_{J-1} that follow one another in the
 * program (no step between them) side by side. In each, term k is
 * w[j][k] * x[k]: the operands that differ from neuron to neuron are the
 * weights w, the others, the same node for every neuron, the inputs x
 * (PG__X_SHARED, an MLP's layer); or both differ (PG__X_OWN: numbers
 * written into the expression, a fresh leaf per use, as micrograd makes
 * them). It gives the bits of the neurons run one after the other because:
 *   - forward: each neuron's sum is still its own chain in micrograd's order;
 *     a neuron's operands are all made before the layer (the only nodes made
 *     in between are the layer's own outputs, which no neuron of it may use);
 *   - backward: every operand of the layer is distinct (no node is two
 *     weights, a weight and an input, ...) but the shared x[k], which get
 *     one contribution from each neuron, added in the neuron-by-neuron
 *     order (N_{J-1}'s first); the order of contributions to distinct nodes
 *     does not matter;
 *   - the first-contribution bits of the weights (and of the biases, and of
 *     own inputs) are the same for every neuron, so one flag says them.
 * The weights (and biases) get their slots neuron after neuron when the
 * first layer that uses them is laid out; a later layer over the same
 * weights (the next sample of a batch) must find them laid out so.
 */

/* A layer being put together: neurons from program step `step` on. */
typedef struct pg__cand {
    size_t step;       /* the program step of its first neuron */
    uint32_t J, n;     /* neurons so far, terms each */
    uint8_t own;       /* PG__X_OWN: every neuron its own inputs */
    uint8_t *xrole;    /* per term: the operand (0: a, 1: b) that is x; w is the other */
    uint8_t act, wfirst, bfirst, xownfirst;
    double k;          /* the activation's constant */
    uint32_t S, T;     /* stamps: claimed by the layer, claimed by the neuron joining it */
    uint32_t *items;   /* the joining neuron's claims */
} pg__cand;

/* The record of the neuron of program step i, or NULL if it is a plain node. */
static const pg__found *pg__neuron_at(const pg__job *j, size_t i) {
    return i < j->nprogram && j->program[i].found != PG__NONE_POS ? &j->found[j->program[i].found] : NULL;
}

/* Operand `role` (0: a, 1: b) of term k of neuron f, and its first-contribution bit. */
static inline uint32_t pg__operand(const pg__job *j, const pg__found *f, uint32_t k, int role) {
    const pg__fterm *t = &j->fterms[f->term + k];
    return role ? t->b : t->a;
}
static inline uint8_t pg__term_first(const pg__job *j, const pg__found *f, uint32_t k, int role) {
    return (j->fterms[f->term + k].first >> role) & 1;
}
static inline uint32_t pg__w_of(const pg__job *j, const pg__cand *c, const pg__found *f, uint32_t k) {
    return pg__operand(j, f, k, 1 - c->xrole[k]);
}
static inline uint32_t pg__x_of(const pg__job *j, const pg__cand *c, const pg__found *f, uint32_t k) {
    return pg__operand(j, f, k, c->xrole[k]);
}
/* s_n of neuron f: the sum its activation takes (its output without one). */
static inline uint32_t pg__sum_of(const pg__job *j, const pg__found *f) {
    return j->fterms[f->term + f->n - 1].sum;
}

/* Whether neuron f (the candidate's next) joins it: same shape, same bits,
 * and its own nodes (b, weights, own inputs, output) distinct from each
 * other and from every node the layer has claimed, which they then join. */
static int pg__joins(pg__job *j, pg__cand *c, const pg__found *f) {
    const pg__found *f0 = pg__neuron_at(j, c->step);
    if (f->n != c->n || f->act != c->act || pg__at(j, f->top)->k != c->k || f->bfirst != c->bfirst)
        return 0;
    size_t m = 0;
    c->items[m++] = f->b;
    c->items[m++] = f->top;
    for (uint32_t k = 0; k < c->n; k++) {
        int r = c->xrole[k];
        if (pg__term_first(j, f, k, 1 - r) != c->wfirst) return 0;
        c->items[m++] = pg__w_of(j, c, f, k);
        if (!c->own) {
            if (c->J > 0 && pg__x_of(j, c, f, k) != pg__x_of(j, c, f0, k)) return 0;
        } else {
            if (pg__term_first(j, f, k, r) != c->xownfirst) return 0;
            c->items[m++] = pg__x_of(j, c, f, k);
        }
    }
    for (size_t i = 0; i < m; i++) {
        uint32_t s = j->stamp[c->items[i]];
        if (s == c->S || s == c->T) return 0;
        j->stamp[c->items[i]] = c->T;
    }
    for (size_t i = 0; i < m; i++) j->stamp[c->items[i]] = c->S;
    c->J++;
    return 1;
}

/* The roles of a candidate starting with neuron f0, f1 the neuron after it
 * (or NULL): with f1, x is the operand the two share (an MLP's layer) or,
 * if they share none, the one used once (a number written into the
 * expression); alone, w is the operand that can be laid out as a weight. */
static void pg__roles(const pg__job *j, pg__cand *c, const pg__found *f0, const pg__found *f1) {
    int shared = 0, own = 0;
    c->own = 0;
    if (f1 && (f1->n != c->n || f1->act != c->act)) f1 = NULL;
    for (uint32_t k = 0; k < c->n && f1; k++) {
        uint32_t a = pg__operand(j, f0, k, 0), b = pg__operand(j, f0, k, 1);
        if (pg__operand(j, f1, k, 0) == a) c->xrole[k] = 0, shared++;
        else if (pg__operand(j, f1, k, 1) == b) c->xrole[k] = 1, shared++;
        else c->xrole[k] = j->uses[a] == 1 && j->uses[b] != 1 ? 0 : 1, own++;
    }
    if (f1 && !(shared && own)) {
        c->own = own > 0;
        return;
    }
    for (uint32_t k = 0; k < c->n; k++) { /* alone */
        uint32_t a = pg__operand(j, f0, k, 0);
        c->xrole[k] = !pg__assigned(j, a) || (j->found_at[a] & PG__REGION_W) ? 1 : 0;
    }
}

/* Put together the longest layer from program step i on; c->J is its
 * neuron count (0 if not even the first neuron makes one). */
static void pg__candidate(pg__job *j, pg__cand *c, size_t i) {
    const pg__found *f0 = pg__neuron_at(j, i), *f1 = pg__neuron_at(j, i + 1);
    c->step = i, c->J = 0, c->n = f0->n, c->act = f0->act, c->k = pg__at(j, f0->top)->k;
    c->bfirst = f0->bfirst;
    c->S = ++j->stamps, c->T = ++j->stamps;
    pg__roles(j, c, f0, f1);
    c->wfirst = pg__term_first(j, f0, 0, 1 - c->xrole[0]);
    c->xownfirst = pg__term_first(j, f0, 0, c->xrole[0]);
    if (!pg__joins(j, c, f0)) return;
    while (pg__neuron_at(j, i + c->J) && pg__joins(j, c, pg__neuron_at(j, i + c->J))) {}
    if (c->own && c->J == 1) { /* f1 did not join: the roles were for it */
        c->J = 0;
        c->own = 0;
        c->S = ++j->stamps, c->T = ++j->stamps;
        pg__roles(j, c, f0, NULL);
        c->wfirst = pg__term_first(j, f0, 0, 1 - c->xrole[0]);
        if (!pg__joins(j, c, f0)) return;
    }
    if (!c->own) /* the shared inputs: distinct, and none of the neurons' own nodes */
        for (uint32_t k = 0; k < c->n; k++) {
            uint32_t x = pg__x_of(j, c, f0, k);
            if (j->stamp[x] == c->S) {
                c->J = 0;
                return;
            }
            j->stamp[x] = c->S;
        }
}

/* Whether the candidate's weights are all without a slot (1: to be laid out
 * now) or all laid out as a layer (2: *base, *wstride say how), else 0. */
static int pg__weights_layout(const pg__job *j, const pg__cand *c, uint32_t *base, uint32_t *wstride) {
    const pg__found *f0 = pg__neuron_at(j, c->step);
    uint32_t w0 = pg__w_of(j, c, f0, 0);
    if (!pg__assigned(j, w0)) {
        *wstride = c->n + 1; /* biases follow their weights if they are all new leaves */
        for (uint32_t jj = 0; jj < c->J; jj++) {
            const pg__found *f = pg__neuron_at(j, c->step + jj);
            for (uint32_t k = 0; k < c->n; k++)
                if (pg__assigned(j, pg__w_of(j, c, f, k))) return 0;
            if (pg__assigned(j, f->b) || pg__at(j, f->b)->op != PG_OP_leaf) *wstride = c->n;
        }
        return 1;
    }
    *base = j->found_at[w0];
    if (!(*base & PG__REGION_W)) return 0;
    *wstride = pg__assigned(j, f0->b) && j->found_at[f0->b] == *base + c->n ? c->n + 1 : c->n;
    for (uint32_t jj = 0; jj < c->J; jj++) {
        const pg__found *f = pg__neuron_at(j, c->step + jj);
        uint32_t row = *base + jj * *wstride;
        for (uint32_t k = 0; k < c->n; k++)
            if (j->found_at[pg__w_of(j, c, f, k)] != row + k) return 0;
        if (*wstride > c->n && j->found_at[f->b] != row + c->n) return 0;
    }
    return 2;
}

/* Emit the candidate as a layer step if its slots can be laid out so:
 * returns 1 if it was, 0 if not (nothing emitted), or a status. */
static int pg__emit_layer(pg__job *j, const pg__cand *c) {
    const pg__found *f0 = pg__neuron_at(j, c->step);
    uint32_t J = c->J, n = c->n, base = 0, wstride = 0, slot;
    int layout = pg__weights_layout(j, c, &base, &wstride);
    if (!layout) return 0;
    for (uint32_t jj = 0; jj < J && c->own; jj++) /* own inputs are laid out with the layer */
        for (uint32_t k = 0; k < n; k++)
            if (pg__assigned(j, pg__x_of(j, c, pg__neuron_at(j, c->step + jj), k))) return 0;
    pg__layer L = {0};
    L.nneurons = J, L.n = n, L.wstride = wstride;
    L.wfirst = c->wfirst, L.bfirst = c->bfirst, L.xownfirst = c->xownfirst;
    int status = PG_OK;
#define PG__TRY(call) do { if (status == PG_OK) status = (call); } while (0)
    if (layout == 1) { /* the weights (and biases), neuron after neuron */
        for (uint32_t jj = 0; jj < J; jj++) {
            const pg__found *f = pg__neuron_at(j, c->step + jj);
            for (uint32_t k = 0; k < n; k++) {
                PG__TRY(pg__new_slot(j, pg__w_of(j, c, f, k), 1, &slot));
                if (jj == 0 && k == 0) base = slot;
            }
            if (wstride > n) PG__TRY(pg__new_slot(j, f->b, 1, &slot));
        }
    }
    L.w = base;
    if (wstride == n) { /* biases apart */
        L.b = (uint32_t)j->nindex;
        for (uint32_t jj = 0; jj < J && status == PG_OK; jj++) {
            PG__TRY(pg__slot(j, pg__neuron_at(j, c->step + jj)->b, &slot));
            if (status == PG_OK) PG__PUSH(j->index, j->nindex, j->index_cap, slot);
        }
    }
    if (c->own) {
        L.xkind = PG__X_OWN;
        L.defer = c->xownfirst;
        for (uint32_t jj = 0; jj < J; jj++)
            for (uint32_t k = 0; k < n; k++) {
                uint32_t x = pg__x_of(j, c, pg__neuron_at(j, c->step + jj), k);
                PG__TRY(pg__new_slot(j, x, 0, &slot));
                if (jj == 0 && k == 0) L.x = slot;
                L.defer &= pg__at(j, x)->op == PG_OP_leaf && j->uses[x] == 1;
            }
    } else {
        /* x[k]'s first contribution is from the last neuron's term k */
        const pg__found *last = pg__neuron_at(j, c->step + J - 1);
        uint32_t x0 = pg__x_of(j, c, f0, 0);
        int fresh = 1, run = pg__assigned(j, x0);
        L.xfirst = (uint32_t)j->nbytes;
        L.defer = 1;
        for (uint32_t k = 0; k < n && status == PG_OK; k++) {
            uint32_t x = pg__x_of(j, c, f0, k);
            uint8_t bit = pg__term_first(j, last, k, c->xrole[k]);
            PG__PUSH(j->bytes, j->nbytes, j->bytes_cap, bit);
            fresh &= !pg__assigned(j, x);
            run &= pg__assigned(j, x) && j->found_at[x] == j->found_at[x0] + k;
            /* their grads can wait for the write-back if they are leaves that
             * only this layer uses, and this is their first contribution */
            L.defer &= pg__at(j, x)->op == PG_OP_leaf && j->uses[x] == J && bit;
        }
        L.xkind = fresh || run ? PG__X_SHARED : PG__X_GATHER;
        if (L.xkind == PG__X_GATHER) L.x = (uint32_t)j->nindex;
        for (uint32_t k = 0; k < n && status == PG_OK; k++) {
            PG__TRY(pg__slot(j, pg__x_of(j, c, f0, k), &slot));
            if (L.xkind == PG__X_SHARED && k == 0) L.x = slot;
            if (L.xkind == PG__X_GATHER && status == PG_OK) PG__PUSH(j->index, j->nindex, j->index_cap, slot);
        }
    }
    /* the outputs, and the sums before an activation, side by side */
    PG__TRY(pg__align_slots(j, J));
    for (uint32_t jj = 0; jj < J; jj++) {
        PG__TRY(pg__new_slot(j, pg__neuron_at(j, c->step + jj)->top, 0, &slot));
        if (jj == 0) L.out = slot;
    }
    L.sum = L.out, L.k = PG__NOSLOT;
    if (c->act != PG_OP_leaf) {
        PG__TRY(pg__align_slots(j, J));
        for (uint32_t jj = 0; jj < J; jj++) {
            PG__TRY(pg__new_slot(j, pg__sum_of(j, pg__neuron_at(j, c->step + jj)), 0, &slot));
            if (jj == 0) L.sum = slot;
        }
        PG__TRY(pg__k_slot(j, f0->top, &L.k));
    }
#undef PG__TRY
    L.inner = (uint32_t)j->ninner;
    for (uint32_t jj = 0; jj < J && status == PG_OK; jj++) {
        const pg__found *f = pg__neuron_at(j, c->step + jj);
        for (uint32_t k = 0; k < n; k++) {
            const pg__fterm *t = &j->fterms[f->term + k];
            PG__PUSH(j->inner, j->ninner, j->inner_cap, j->sort.order[t->mul]);
            PG__PUSH(j->inner, j->ninner, j->inner_cap, j->sort.order[t->sum]);
        }
    }
    if (status != PG_OK) return status;
    if (J > j->widest) j->widest = J;
    if (n > j->widest) j->widest = n;
    uint64_t cost = (2 * (uint64_t)n + 2) * J;
    pg__step step = {PG__STEP_LAYER, c->act, 0, 0, (uint32_t)j->nlayers,
                     cost > UINT32_MAX ? UINT32_MAX : (uint32_t)cost, 0};
    PG__PUSH(j->layers, j->nlayers, j->layers_cap, L);
    PG__PUSH(j->steps, j->nsteps, j->steps_cap, step);
    return 1;
}

/* Emit neuron f as a neuron step. */
static int pg__emit_neuron(pg__job *j, const pg__found *f) {
    pg__neuron N = {0};
    N.k = PG__NOSLOT;
    int status = pg__slot(j, f->b, &N.b);
    N.term = (uint32_t)j->nterms, N.n = f->n, N.bfirst = f->bfirst;
    N.inner = (uint32_t)j->ninner;
    for (uint32_t k = 0; k < f->n && status == PG_OK; k++) {
        const pg__fterm *ft = &j->fterms[f->term + k];
        pg__term t = {0, 0, ft->first};
        status = pg__slot(j, ft->a, &t.a);
        if (status == PG_OK) status = pg__slot(j, ft->b, &t.b);
        if (status != PG_OK) break;
        PG__PUSH(j->terms, j->nterms, j->terms_cap, t);
        PG__PUSH(j->inner, j->ninner, j->inner_cap, j->sort.order[ft->mul]);
        PG__PUSH(j->inner, j->ninner, j->inner_cap, j->sort.order[ft->sum]);
    }
    if (status == PG_OK) status = pg__new_slot(j, f->top, 0, &N.out);
    N.sum = N.out;
    if (status == PG_OK && f->act != PG_OP_leaf) {
        status = pg__new_slot(j, j->fterms[f->term + f->n - 1].sum, 0, &N.sum);
        if (status == PG_OK) status = pg__k_slot(j, f->top, &N.k);
    }
    if (status != PG_OK) return status;
    uint64_t cost = 2 * (uint64_t)f->n + 2;
    pg__step step = {PG__STEP_NEURON, f->act, 0, 0, (uint32_t)j->nneurons,
                     cost > UINT32_MAX ? UINT32_MAX : (uint32_t)cost, 0};
    PG__PUSH(j->neurons, j->nneurons, j->neurons_cap, N);
    PG__PUSH(j->steps, j->nsteps, j->steps_cap, step);
    return PG_OK;
}

/* Emit program step i (and, for a layer, the neurons after it that join it);
 * *took receives the number of program steps emitted. */
static int pg__emit(pg__job *j, size_t i, size_t *took) {
    const pg__pstep *ps = &j->program[i];
    *took = 1;
    if (ps->found == PG__NONE_POS) { /* a plain node */
        const pg_node *node = pg__at(j, ps->pos);
        pg__step step = {PG__STEP_NODE, node->op, ps->first, node->child[1] != 0, 0, PG__NOSLOT, PG__NOSLOT};
        int status = PG_OK;
        if (node->child[0]) status = pg__slot(j, pg__posn(j, node->child[0]), &step.a);
        if (status == PG_OK && node->child[1]) status = pg__slot(j, pg__posn(j, node->child[1]), &step.b);
        if (status == PG_OK && !node->child[1]) status = pg__k_slot(j, ps->pos, &step.b);
        if (status == PG_OK) status = pg__new_slot(j, ps->pos, 0, &step.out);
        if (status == PG_OK) PG__PUSH(j->steps, j->nsteps, j->steps_cap, step);
        return status;
    }
    const pg__found *f0 = &j->found[ps->found];
    const pg__found *f1 = pg__neuron_at(j, i + 1);
    /* a layer needs a second neuron like it (and not fed by this one: a chain), or
     * a lone neuron of many terms */
    int like = f1 && f1->n == f0->n && f1->act == f0->act && f1->b != f0->top;
    for (uint32_t k = 0; like && k < f1->n; k++)
        like = pg__operand(j, f1, k, 0) != f0->top && pg__operand(j, f1, k, 1) != f0->top;
    if (pg__layers && (f0->n > 4 || like)) {
        size_t need = 2 * (size_t)f0->n + 2;
        if (pg__room(&j->items, &j->items_cap, need, sizeof(uint32_t)) != PG_OK ||
            pg__room(&j->roles, &j->roles_cap, f0->n, 1) != PG_OK)
            return PG_ENOMEM;
        pg__cand c = {.xrole = j->roles, .items = j->items};
        pg__candidate(j, &c, i);
        /* A lone neuron of a few terms runs faster as a neuron step. */
        int emitted = c.J > 1 || (c.J == 1 && c.n > 4) ? pg__emit_layer(j, &c) : 0;
        if (emitted < 0) return emitted;
        if (emitted) {
            *took = c.J;
            return PG_OK;
        }
    }
    return pg__emit_neuron(j, f0);
}

/* ---- the phases ---------------------------------------------------------- */

static int pg__alloc_positions(pg__job *j) {
    size_t n = j->sort.n ? j->sort.n : 1;
    j->next = pg__realloc(NULL, 2 * n * sizeof(uint32_t));
    j->owner = pg__realloc(NULL, n * sizeof(uint32_t));
    j->uses = pg__realloc(NULL, n * sizeof(uint32_t));
    j->found_at = pg__realloc(NULL, n * sizeof(uint32_t));
    j->stamp = pg__realloc(NULL, n * sizeof(uint32_t));
    if (!j->next || !j->owner || !j->uses || !j->found_at || !j->stamp) return PG_ENOMEM;
    free(j->sort.stack), j->sort.stack = NULL, j->sort.stack_cap = 0;
    return PG_OK;
}

/* Make the tape's arrays from the job's: slots relocated (the weights'
 * region first, after slot 0), the buffers allocated and the constants in. */
static int pg__finish(pg_tape *t, pg__job *j) {
    size_t nw = j->nw, r0 = (1 + nw + 7) / 8 * 8, nslots = r0 + j->nr; /* the rest's region from slot r0 (see pg__align_slots) */
#define PG__FINAL(s) ((s) == PG__NOSLOT ? 0 : (s) & PG__REGION_W ? 1 + ((s) & ~PG__REGION_W) : (uint32_t)(r0 + (s)))
    size_t nleaves = j->nleaves;
    t->node = pg__realloc(NULL, nslots * sizeof(uint32_t));
    t->leaves = pg__realloc(NULL, (nleaves ? nleaves : 1) * sizeof(uint32_t));
    if (!t->node || !t->leaves) return PG_ENOMEM;
    t->nslots = (uint32_t)nslots;
    t->nlayers = (int64_t)j->nlayers;
    t->widest = (uint32_t)(j->widest ? j->widest : 1);
    int status = pg__tape_alloc(t, 3 * (size_t)t->widest);
    if (status != PG_OK) return status;
    for (size_t s = 0; s < r0; s++) t->node[s] = 0;
    for (size_t s = 0; s < nw; s++) t->node[1 + s] = j->wnode[s];
    for (size_t s = 0; s < j->nr; s++) t->node[r0 + s] = j->rnode[s];
    memset(t->val[0], 0, nslots * sizeof(double));
    memset(t->val[1], 0, nslots * sizeof(double));
    memset(t->grad, 0, nslots * sizeof(double));
    for (size_t i = 0; i < nleaves; i++) t->leaves[i] = PG__FINAL(j->leaves[i]);
    for (size_t i = 0; i < j->nconsts; i++) {
        uint32_t s = (uint32_t)r0 + j->consts[i].slot;
        t->val[0][s] = t->val[1][s] = j->consts[i].k;
    }
    t->nleaves = (int64_t)nleaves;
    for (size_t i = 0; i < j->nsteps; i++) {
        pg__step *s = &j->steps[i];
        if (s->kind == PG__STEP_NODE) s->out = PG__FINAL(s->out), s->a = PG__FINAL(s->a), s->b = PG__FINAL(s->b);
    }
    for (size_t i = 0; i < j->nneurons; i++) {
        pg__neuron *N = &j->neurons[i];
        N->out = PG__FINAL(N->out), N->sum = PG__FINAL(N->sum), N->b = PG__FINAL(N->b);
        N->k = PG__FINAL(N->k);
    }
    for (size_t i = 0; i < j->nterms; i++) j->terms[i].a = PG__FINAL(j->terms[i].a), j->terms[i].b = PG__FINAL(j->terms[i].b);
    for (size_t i = 0; i < j->nindex; i++) j->index[i] = PG__FINAL(j->index[i]);
    for (size_t i = 0; i < j->nlayers; i++) {
        pg__layer *L = &j->layers[i];
        L->w = PG__FINAL(L->w), L->out = PG__FINAL(L->out), L->sum = PG__FINAL(L->sum), L->k = PG__FINAL(L->k);
        if (L->xkind != PG__X_GATHER) L->x = PG__FINAL(L->x);
    }
    t->root_slot = PG__FINAL(j->found_at[j->sort.n - 1]);
#undef PG__FINAL
    /* The program moves from the job to the tape. */
    t->steps = j->steps, t->nsteps = (int64_t)j->nsteps, j->steps = NULL;
    t->neurons = j->neurons, j->neurons = NULL;
    t->terms = j->terms, j->terms = NULL;
    t->layers = j->layers, j->layers = NULL;
    t->index = j->index, j->index = NULL;
    t->bytes = j->bytes, j->bytes = NULL;
    t->inner = j->inner, t->ninner = (int64_t)j->ninner, j->inner = NULL;
    /* own_w: a layer whose weights no other layer has (j->found_at, no longer
     * needed, marks each block's first slot with its layer + 1) */
    for (size_t i = 0; i < j->sort.n; i++) j->found_at[i] = 0;
    uint32_t *block = j->found_at, nblock = j->sort.n < nslots ? (uint32_t)j->sort.n : (uint32_t)nslots;
    for (int64_t l = 0; l < t->nlayers; l++) {
        pg__layer *L = &t->layers[l];
        L->own_w = L->wfirst && L->bfirst && L->wstride > L->n;
        if (L->w >= nblock) { /* (a block beyond the positions: count it as shared) */
            L->own_w = 0;
        } else if (block[L->w]) {
            L->own_w = t->layers[block[L->w] - 1].own_w = 0;
        } else {
            block[L->w] = (uint32_t)l + 1;
        }
    }
    status = pg__tape_batch(t); /* (it reorders the layers) */
    if (status != PG_OK) return status;
    for (int64_t l = 0; l < t->nlayers; l++) t->s.how[l] = t->layers[l].defer; /* the session of none */
    t->nneurons = (int64_t)j->nfound;
    t->cost = (int64_t)j->sort.n;
    t->n = (int64_t)j->sort.n;
    t->root = j->sort.order[j->sort.n - 1];
    return PG_OK;
}

/* Run the job about budget node-visits further. */
static int pg__compile_some(pg_tape *t, int64_t budget) {
    pg__job *j = t->job;
    int status = PG_OK;
    while (budget > 0 && status == PG_OK) {
        switch (j->phase) {
        case PG__SORT: {
            uint32_t refused = 0;
            status = pg__sorter_run(&j->sort, &budget, pg__replayable, &refused);
            if (status == PG_EBADOP) t->refused = pg__handle(refused);
            if (status == PG_OK) j->phase = PG__PREPARE;
            else if (status == PG_MORE) return PG_MORE;
            break;
        }
        case PG__PREPARE:
            status = pg__alloc_positions(j);
            /* the nodes' positions are now kept as positions of their children */
            j->phase = PG__PARENTS, j->i = (int64_t)j->sort.n;
            for (size_t i = 0; i < j->sort.n && status == PG_OK; i++) {
                j->owner[i] = PG__NONE_POS, j->uses[i] = 0, j->found_at[i] = PG__NONE_POS;
                j->stamp[i] = 0;
            }
            budget -= (int64_t)j->sort.n;
            break;
        case PG__PARENTS: /* each operand's next parent, and uses, going down */
            for (; j->i > 0 && budget > 0; budget--) {
                uint32_t i = (uint32_t)--j->i;
                const pg_node *node = pg__at(j, i);
                for (int c = 0; c < 2; c++)
                    j->next[2 * (size_t)i + c] = node->child[c] ? j->owner[pg__posn(j, node->child[c])] : PG__NONE_POS;
                for (int c = 0; c < 2; c++) {
                    if (!node->child[c]) continue;
                    uint32_t p = pg__posn(j, node->child[c]);
                    j->owner[p] = i;
                    j->uses[p]++;
                }
            }
            if (j->i == 0) {
                for (size_t i = 0; i < j->sort.n; i++) j->owner[i] = PG__NONE_POS;
                j->phase = PG__NEURONS, j->i = (int64_t)j->sort.n;
                budget -= (int64_t)j->sort.n;
            }
            break;
        case PG__NEURONS: /* from the top down, so each is found whole */
            for (; j->i > 0 && budget > 0 && status == PG_OK; budget--) {
                uint32_t i = (uint32_t)--j->i;
                if (!pg__fuse || j->owner[i] != PG__NONE_POS) continue;
                int64_t k = pg__find_neuron(j, i);
                if (k < 0) status = (int)k;
                budget -= k;
            }
            if (j->i == 0 && status == PG_OK) j->phase = PG__PROGRAM;
            break;
        case PG__PROGRAM: /* plain steps and neurons, in topological order */
            for (; j->i < (int64_t)j->sort.n && budget > 0; budget--, j->i++) {
                uint32_t i = (uint32_t)j->i;
                if (pg__at(j, i)->op == PG_OP_leaf) continue;
                pg__pstep step = {i, j->owner[i] == i ? j->found_at[i] : PG__NONE_POS, 0};
                if (j->owner[i] == PG__NONE_POS) step.first = pg__first_bits(j, i);
                if (j->owner[i] == PG__NONE_POS || j->owner[i] == i)
                    PG__PUSH(j->program, j->nprogram, j->program_cap, step);
            }
            if (j->i == (int64_t)j->sort.n) {
                /* found_at now holds each node's slot */
                for (size_t i = 0; i < j->sort.n; i++) j->found_at[i] = PG__NONE_POS;
                free(j->next), j->next = NULL;
                j->phase = PG__EMIT, j->i = 0;
                budget -= (int64_t)j->sort.n;
            }
            break;
        case PG__EMIT:
            while (j->i < (int64_t)j->nprogram && budget > 0 && status == PG_OK) {
                size_t took;
                status = pg__emit(j, (size_t)j->i, &took);
                j->i += (int64_t)took;
                budget -= (int64_t)took * 4;
            }
            if (status == PG_OK && j->i == (int64_t)j->nprogram) j->phase = PG__FINISH;
            break;
        case PG__FINISH:
            if (!pg__assigned(j, (uint32_t)j->sort.n - 1)) { /* a lone leaf */
                uint32_t slot;
                status = pg__new_slot(j, (uint32_t)j->sort.n - 1, 0, &slot);
                if (status != PG_OK) break;
            }
            status = pg__finish(t, j);
            if (status == PG_OK) {
                pg__job_free(j);
                t->job = NULL;
                return PG_OK;
            }
            break;
        }
    }
    if (status != PG_OK) return status;
    return t->job ? 1 : PG_OK;
}

/* ---- public -------------------------------------------------------------- */

pg_tape *pg_tape_start(pg_id root, int order, int *status) {
    int st = PG_OK;
    pg_tape *t = NULL;
    if (order != PG_ORDER_EXACT && order != PG_ORDER_FAST) {
        if (status) *status = PG_EBADOP;
        return NULL;
    }
    pg__lock();
    pg__handles h = {&root, 1, 1, 0};
    uint32_t *found, r = 0;
    st = pg__many(&h, 1, NULL, 0, 1, 0, &found, NULL); /* the root, with room for one more reference */
    if (st == PG_OK) r = found[0];
    if (st == PG_OK) {
        t = pg__realloc(NULL, sizeof *t);
        pg__job *j = pg__realloc(NULL, sizeof *j);
        if (j) *j = (pg__job){0};
        if (!t || !j || pg__sorter_begin(&j->sort, r) != PG_OK) {
            free(t), free(j);
            t = NULL;
            st = PG_ENOMEM;
        } else {
            *t = (pg_tape){0};
            t->root = r, t->order = order, t->job = j, t->f = 0, t->resume = -1;
            pg__A.nodes[r].refs++; /* the tape holds the graph */
        }
    }
    pg__unlock();
    if (status) *status = st;
    return t;
}

int pg_tape_compile(pg_tape *t, int64_t budget, pg_id *refused) {
    if (!t) return PG_EBADOP;
    if (refused) *refused = 0;
    pg__lock();
    int status = t->job ? pg__compile_some(t, budget > 0 ? budget : INT64_MAX) : t->refused ? PG_EBADOP : PG_OK;
    if (status < 0 && t->job) { /* the tape is unusable: give its memory back now */
        pg__job_free(t->job);
        t->job = NULL;
        pg__tape_free_program(t);
        if (!t->refused) t->refused = -1;
    }
    if (status == PG_EBADOP && refused && t->refused > 0) *refused = t->refused;
    pg__unlock();
    return status;
}

pg_tape *pg_tape_new(pg_id root, int *status) {
    int st;
    pg_tape *t = pg_tape_start(root, PG_ORDER_EXACT, &st);
    if (t && (st = pg_tape_compile(t, 0, NULL)) != PG_OK) {
        pg_tape_free(t);
        t = NULL;
    }
    if (status) *status = st;
    return t;
}

int64_t pg_tape_size(const pg_tape *t) { return t && !t->job ? t->n : PG_EBADOP; }
int64_t pg_tape_neurons(const pg_tape *t) { return t && !t->job ? t->nneurons : PG_EBADOP; }
int64_t pg_tape_layers(const pg_tape *t) { return t && !t->job ? t->nlayers : PG_EBADOP; }
