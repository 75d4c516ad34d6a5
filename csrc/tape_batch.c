/* tape_batch.c: the batcher. It reorders a compiled program (tape.h) so
 * that the layer steps that apply the same weights to different samples
 * (an MLP called on each row of a batch, the rows' graphs summed into one
 * loss) run as one batch step, side by side in the machine's vectors
 * (tape_batches.h). The numbers do not change, to the bit.
 *
 * The members of a batch are layer steps with the same weights and biases
 * (the same slots), the same shape and activation, and inputs of their
 * own kind (shared or gathered, not numbers written into the expression),
 * at the same depth in the program (the longest path to them from the
 * leaves), which makes them independent of one another.
 *
 * The new order: each step runs at the earliest "time" T at or after its
 * place in the old order that its inputs allow,
 *     T(s) = max(pos(s), T(p) + 1 for each step p that makes an input of s),
 * a batch at the latest T of its members; steps are sorted by (T, pos) and
 * each batch's members are replaced by the batch at its first member's place
 * (a step of the same T neither feeds a member nor is fed by one).
 *
 * Why the bits stay. A forward computes each number from the same operands
 * by the same kernel in any valid order. A backward adds each node's
 * contributions from its parents in reverse program order, so the new order
 * must keep the order of every node's parents: the batcher checks that, for
 * every slot, and keeps the old program if any moves. Inside a batch every
 * weight's contributions go members last to first, as they went in the old
 * order, and no member's input may be a weight of the batch. The program
 * before is kept (t->plain): a forward that fails is run again in it, so
 * that the failure reported is the one the old order meets first.
 */
#include <stdlib.h>
#include <string.h>

#include "tape.h"

/* Test hook (pygrad.h). */
static int pg__batches = 1;

void pg_debug_tape_batches(int on) {
    pg__lock();
    pg__batches = on != 0;
    pg__unlock();
}

#define PG__NO UINT32_MAX

/* Calls f(ctx, slot) for each slot step s reads as an operand (the slots
 * its backward gives grads to, and its forward reads); stops at nonzero. */
typedef int (*pg__visit)(void *ctx, uint32_t slot);

static int pg__reads(const pg_tape *t, const pg__step *s, pg__visit f, void *ctx) {
    int r = 0;
    if (s->kind == PG__STEP_NODE) {
        r = f(ctx, s->a);
        if (!r && s->binary) r = f(ctx, s->b);
        return r;
    }
    if (s->kind == PG__STEP_NEURON) {
        const pg__neuron *N = &t->neurons[s->out];
        r = f(ctx, N->b);
        for (uint32_t k = 0; k < N->n && !r; k++) {
            r = f(ctx, t->terms[N->term + k].a);
            if (!r) r = f(ctx, t->terms[N->term + k].b);
        }
        return r;
    }
    const pg__layer *L = &t->layers[s->out]; /* (the batcher sees layer steps only) */
    for (uint32_t j = 0; j < L->nneurons && !r; j++) {
        for (uint32_t k = 0; k < L->n && !r; k++) r = f(ctx, L->w + j * L->wstride + k);
        if (!r) r = f(ctx, pg__layer_b(t, L, j));
    }
    if (L->xkind == PG__X_OWN) {
        for (uint32_t k = 0; k < L->n * L->nneurons && !r; k++) r = f(ctx, L->x + k);
    } else {
        for (uint32_t k = 0; k < L->n && !r; k++) r = f(ctx, pg__layer_xslot(t, L, k));
    }
    return r;
}

/* The slots step s writes: [*first, *first + *n) and, if *n2, [*first2, *first2 + *n2). */
static void pg__writes(const pg_tape *t, const pg__step *s, uint32_t *a, uint32_t *na, uint32_t *b,
                       uint32_t *nb) {
    *nb = 0, *b = 0;
    if (s->kind == PG__STEP_NODE) {
        *a = s->out, *na = 1;
    } else if (s->kind == PG__STEP_NEURON) {
        const pg__neuron *N = &t->neurons[s->out];
        *a = N->out, *na = 1;
        if (N->sum != N->out) *b = N->sum, *nb = 1;
    } else {
        const pg__layer *L = &t->layers[s->out];
        *a = L->out, *na = L->nneurons;
        if (L->sum != L->out) *b = L->sum, *nb = L->nneurons;
    }
}

/* ---- the batcher's state ------------------------------------------------- */

typedef struct pg__batcher {
    const pg_tape *t;
    uint32_t *made;   /* per slot: the step that writes it, or PG__NO */
    uint32_t *depth;  /* per step */
    uint64_t *when;   /* per step: T */
    uint32_t *group;  /* per step: its batch group, or PG__NO */
    uint32_t *newpos; /* per step: its place in the new program (a batch's members: the batch's) */
    uint32_t *rank;   /* per step: its index among its batch's members (else 0) */
    uint64_t *last;   /* per slot: the new place (pos << 32 | rank) + 1 of its last reader */
    uint64_t acc;     /* (the visitors' result) */
    uint32_t at, r;
    int bad;
} pg__batcher;

static int pg__depth_of(void *ctx, uint32_t slot) {
    pg__batcher *b = ctx;
    uint32_t p = b->made[slot];
    if (p != PG__NO && b->depth[p] + 1 > b->acc) b->acc = b->depth[p] + 1;
    return 0;
}

static int pg__when_of(void *ctx, uint32_t slot) {
    pg__batcher *b = ctx;
    uint32_t p = b->made[slot];
    if (p != PG__NO && b->when[p] + 1 > b->acc) b->acc = b->when[p] + 1;
    return 0;
}

/* A read of slot by the step at new place (at, r): after the slot's last
 * reader so far (in the old order), else the order of its grads changed. */
static int pg__keeps(void *ctx, uint32_t slot) {
    pg__batcher *b = ctx;
    if (!b->t->node[slot]) return 0; /* a number, not a node: no grad anyone reads */
    uint64_t place = ((uint64_t)b->at << 32 | b->r) + 1;
    if (b->last[slot] > place) return b->bad = 1; /* (equal: one step reads it twice, a * a) */
    b->last[slot] = place;
    return 0;
}

/* Whether layers A and B can be in one batch (same weights, shape, activation). */
static int pg__alike(const pg_tape *t, const pg__layer *A, const pg__layer *B, int actA, int actB) {
    if (A->w != B->w || A->wstride != B->wstride || A->n != B->n || A->nneurons != B->nneurons ||
        actA != actB || A->xkind == PG__X_OWN || B->xkind == PG__X_OWN)
        return 0;
    if (memcmp(&t->val[0][A->k], &t->val[0][B->k], sizeof(double)) != 0) return 0;
    for (uint32_t j = 0; A->wstride == A->n && j < A->nneurons; j++)
        if (t->index[A->b + j] != t->index[B->b + j]) return 0;
    return 1;
}

/* No input of a member is a weight or bias of its batch (their grads are
 * added up in another order). in_w: per slot, 1 for the batch's weights. */
static int pg__inputs_apart(const pg_tape *t, const pg__layer *L, const uint8_t *in_w) {
    for (uint32_t k = 0; k < L->n; k++)
        if (in_w[pg__layer_xslot(t, L, k)]) return 0;
    return 1;
}

typedef struct pg__key {
    uint64_t a, b; /* sort keys, most significant first */
    uint32_t i;
} pg__key;

static int pg__by_key(const void *x, const void *y) {
    const pg__key *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* The batcher's arrays, freed together. */
static void pg__batcher_free(pg__batcher *b, pg__key *keys, uint8_t *in_w) {
    free(b->made), free(b->depth), free(b->when), free(b->group), free(b->newpos), free(b->rank);
    free(b->last), free(keys), free(in_w);
}

/* Reorder t's program into batches where it can (see above). PG_OK also
 * when it cannot (then nothing changed), or PG_ENOMEM (nothing changed). */
int pg__tape_batch(pg_tape *t) {
    size_t ns = (size_t)t->nsteps, nslots = t->nslots;
    if (!pg__batches || t->nlayers < 2 || ns < 2) return PG_OK;
    pg__batcher b = {0};
    b.t = t;
    pg__key *keys = pg__realloc(NULL, ns * sizeof *keys);
    uint8_t *in_w = pg__realloc(NULL, nslots);
    b.made = pg__realloc(NULL, nslots * sizeof(uint32_t));
    b.depth = pg__realloc(NULL, ns * sizeof(uint32_t));
    b.when = pg__realloc(NULL, ns * sizeof(uint64_t));
    b.group = pg__realloc(NULL, ns * sizeof(uint32_t));
    b.newpos = pg__realloc(NULL, ns * sizeof(uint32_t));
    b.rank = pg__realloc(NULL, ns * sizeof(uint32_t));
    b.last = pg__realloc(NULL, nslots * sizeof(uint64_t));
    pg__step *steps = pg__realloc(NULL, ns * sizeof(pg__step));
    pg__layer *layers = pg__realloc(NULL, (size_t)t->nlayers * sizeof(pg__layer));
    uint32_t *renumber = pg__realloc(NULL, (size_t)t->nlayers * sizeof(uint32_t)); /* old layer -> new */
    if (!keys || !in_w || !b.made || !b.depth || !b.when || !b.group || !b.newpos || !b.rank || !b.last ||
        !steps || !layers || !renumber) {
        pg__batcher_free(&b, keys, in_w);
        free(steps), free(layers), free(renumber);
        return PG_ENOMEM;
    }
    int status = PG_OK, changed = 0;
    size_t nsteps = 0, nlayers = 0;
    uint64_t *gwhen = (uint64_t *)b.last; /* per group, while last is not in use */
    /* depths, and who makes each slot */
    for (size_t s = 0; s < nslots; s++) b.made[s] = PG__NO, in_w[s] = 0, b.last[s] = 0;
    for (size_t i = 0; i < ns; i++) {
        b.acc = 1;
        pg__reads(t, &t->steps[i], pg__depth_of, &b);
        b.depth[i] = (uint32_t)b.acc, b.group[i] = PG__NO, b.rank[i] = 0;
        uint32_t a, na, c, nc;
        pg__writes(t, &t->steps[i], &a, &na, &c, &nc);
        for (uint32_t k = 0; k < na; k++) b.made[a + k] = (uint32_t)i;
        for (uint32_t k = 0; k < nc; k++) b.made[c + k] = (uint32_t)i;
    }
    /* groups: layer steps by (weights, depth), then alike with the first */
    size_t nk = 0, groups = 0;
    for (size_t i = 0; i < ns; i++)
        if (t->steps[i].kind == PG__STEP_LAYER && t->layers[t->steps[i].out].n >= 2)
            keys[nk++] = (pg__key){t->layers[t->steps[i].out].w, b.depth[i], (uint32_t)i};
    qsort(keys, nk, sizeof *keys, pg__by_key);
    for (size_t g = 0; g < nk;) {
        size_t e = g + 1;
        const pg__step *s0 = &t->steps[keys[g].i];
        const pg__layer *L0 = &t->layers[s0->out];
        while (e < nk && keys[e].a == keys[g].a && keys[e].b == keys[g].b) e++;
        for (uint32_t j = 0; j < L0->nneurons; j++) { /* the weights, to keep inputs apart from */
            for (uint32_t k = 0; k < L0->n; k++) in_w[L0->w + j * L0->wstride + k] = 1;
            in_w[pg__layer_b(t, L0, j)] = 1;
        }
        size_t members = 0;
        for (size_t m = g; m < e; m++) {
            const pg__step *s = &t->steps[keys[m].i];
            const pg__layer *L = &t->layers[s->out];
            if (pg__alike(t, L0, L, s0->op, s->op) && pg__inputs_apart(t, L, in_w)) {
                b.group[keys[m].i] = (uint32_t)groups;
                members++;
            }
        }
        for (uint32_t j = 0; j < L0->nneurons; j++) {
            for (uint32_t k = 0; k < L0->n; k++) in_w[L0->w + j * L0->wstride + k] = 0;
            in_w[pg__layer_b(t, L0, j)] = 0;
        }
        if (members < 2) /* no batch of one */
            for (size_t m = g; m < e; m++) b.group[keys[m].i] = PG__NO;
        else
            groups++;
        g = e;
    }
    if (!groups) goto done;
    /* T, depth by depth (a group's members share theirs): steps by (depth, pos) */
    for (size_t i = 0; i < ns; i++) keys[i] = (pg__key){b.depth[i], i, (uint32_t)i};
    qsort(keys, ns, sizeof *keys, pg__by_key);
    for (size_t g = 0; g < groups; g++) gwhen[g] = 0;
    for (size_t d = 0; d < ns;) {
        size_t e = d;
        while (e < ns && keys[e].a == keys[d].a) e++;
        for (size_t m = d; m < e; m++) {
            uint32_t i = keys[m].i;
            b.acc = i;
            pg__reads(t, &t->steps[i], pg__when_of, &b);
            b.when[i] = b.acc;
            if (b.group[i] != PG__NO && b.acc > gwhen[b.group[i]]) gwhen[b.group[i]] = b.acc;
        }
        for (size_t m = d; m < e; m++)
            if (b.group[keys[m].i] != PG__NO) b.when[keys[m].i] = gwhen[b.group[keys[m].i]];
        d = e;
    }
    /* the new order, each batch at its first member's place */
    for (size_t i = 0; i < ns; i++) keys[i] = (pg__key){b.when[i], i, (uint32_t)i};
    qsort(keys, ns, sizeof *keys, pg__by_key);
    for (size_t g = 0; g < groups; g++) gwhen[g] = PG__NO; /* per group: its batch's place, once made */
    for (size_t m = 0; m < ns; m++) {
        uint32_t i = keys[m].i, grp = b.group[i];
        const pg__step *s = &t->steps[i];
        if (grp == PG__NO) {
            steps[nsteps] = *s;
            if (s->kind == PG__STEP_LAYER) {
                renumber[s->out] = steps[nsteps].out = (uint32_t)nlayers;
                layers[nlayers++] = t->layers[s->out];
            }
            b.newpos[i] = (uint32_t)nsteps++;
            continue;
        }
        if (gwhen[grp] != PG__NO) continue; /* its batch is made */
        gwhen[grp] = nsteps;
        uint64_t cost = 0;
        uint32_t count = 0, first = (uint32_t)nlayers;
        for (size_t q = m; q < ns && b.when[keys[q].i] == b.when[i]; q++) { /* its members, in order */
            uint32_t mi = keys[q].i;
            if (b.group[mi] != grp) continue;
            b.newpos[mi] = (uint32_t)nsteps, b.rank[mi] = count++;
            renumber[t->steps[mi].out] = (uint32_t)nlayers;
            pg__layer *L = &layers[nlayers++];
            *L = t->layers[t->steps[mi].out];
            L->xallfirst = 1;
            for (uint32_t k = 0; k < L->n; k++) L->xallfirst &= t->bytes[L->xfirst + k] != 0;
            cost += t->steps[mi].a;
        }
        steps[nsteps++] = (pg__step){PG__STEP_BATCH, s->op, 0, 0, first,
                                     cost > UINT32_MAX ? UINT32_MAX : (uint32_t)cost, count};
    }
    /* every node's parents in the old order */
    for (size_t s = 0; s < nslots; s++) b.last[s] = 0;
    for (size_t i = 0; i < ns && !b.bad; i++) {
        b.at = b.newpos[i], b.r = b.rank[i];
        pg__reads(t, &t->steps[i], pg__keeps, &b);
    }
    if (b.bad) goto done;
    t->plain = pg__realloc(NULL, ns * sizeof *steps); /* the old program, for failures */
    if (!t->plain) {
        status = PG_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < ns; i++) {
        t->plain[i] = t->steps[i];
        if (t->plain[i].kind == PG__STEP_LAYER) t->plain[i].out = renumber[t->plain[i].out];
    }
    t->nplain = (int64_t)ns;
    memcpy(t->steps, steps, nsteps * sizeof *steps);
    memcpy(t->layers, layers, nlayers * sizeof *layers);
    t->nsteps = (int64_t)nsteps;
    changed = 1;
done:
    if (changed) {
        size_t widest = 0; /* the batch kernels' scratch */
        for (size_t i = 0; i < nsteps; i++) {
            if (steps[i].kind != PG__STEP_BATCH) continue;
            const pg__layer *L = &layers[steps[i].out];
            /* rows of J rounded up to eight (tape_batches.h): the backward's inner grads, one
             * per member, or the forward's weights transposed, one per input and the biases */
            size_t J8 = ((size_t)L->nneurons + 7) / 8 * 8, rows = (size_t)L->n + 1;
            size_t need = ((size_t)steps[i].b > rows ? (size_t)steps[i].b : rows) * J8;
            if (need > widest) widest = need;
        }
        t->bmem = pg__realloc(NULL, widest * sizeof(double) + 64);
        if (t->bmem) t->bscratch = pg__align64(t->bmem);
        else status = PG_ENOMEM; /* (the program stays batched: the caller frees the tape) */
    }
    pg__batcher_free(&b, keys, in_w);
    free(steps), free(layers), free(renumber);
    return status;
}

int64_t pg_tape_batches(const pg_tape *t) {
    if (!t || t->job) return PG_EBADOP;
    int64_t n = 0;
    for (int64_t i = 0; i < t->nsteps; i++) n += t->steps[i].kind == PG__STEP_BATCH;
    return n;
}
