/* tape.h: a compiled tape, private to the library. The compiler
 * (tape_compile.c) turns a graph into this program; the replay
 * (tape_replay.c) runs it. Callers hold the arena lock.
 *
 * ---- Slots ------------------------------------------------------------------
 * A tape computes in its own arrays, not in the arena's 48-byte nodes. Each
 * number it keeps has a slot s:
 *     val[0][s], val[1][s]  its data, in the two buffers (tape_replay.c,
 *                           "Buffers": a failed replay never touches the last
 *                           good one)
 *     grad[s]               its grad
 *     node[s]               the arena slot of its node; 0 for a number that
 *                           is no node (slot 0, which holds 0.0; op constants)
 * A slot is kept for every leaf, every step's output, and the sum s_n of a
 * neuron that has an activation. The products and partial sums inside a
 * neuron have no slot: they are recomputed, to the bit, when the tape writes
 * its numbers back into the graph (tape_replay.c, "Writing back").
 * Weights (and the biases after them) of a layer step are laid out neuron
 * after neuron, in micrograd's parameters() order, so that an MLP's
 * parameters are one run of slots in the order an optimizer lists them.
 *
 * ---- Steps, in topological order ---------------------------------------------
 * PG__STEP_NODE    one node: out = op(a, b)
 * PG__STEP_NEURON  a neuron (tape_compile.c, "Neurons"): act(b + a1*b1 + ...
 *                  + an*bn), its terms any slots
 * PG__STEP_LAYER   neurons side by side (tape_compile.c, "Layers") that share
 *                  their inputs (a layer of an MLP) or have their own (numbers
 *                  written into the expression): weights contiguous, inputs
 *                  and outputs contiguous; its kernels are tape_layers.h
 * PG__STEP_BATCH   layer steps with the same weights, one per sample of a
 *                  batch (tape_batch.c), run with the samples side by side
 * The steps give every node the data and grad that a node-by-node replay,
 * and so a rebuild and micrograd, give it, bit for bit; the fast order
 * (PG_ORDER_FAST) reassociates the sum inside each neuron.
 */
#ifndef PG_TAPE_H
#define PG_TAPE_H
#include "arena.h"
#include "pygrad.h"

enum pg__step_kind { PG__STEP_NODE, PG__STEP_NEURON, PG__STEP_LAYER, PG__STEP_BATCH };

/* Bits of pg__step.first and pg__term.first: the node's contribution to its
 * operand a (1) or b (2) is that operand's first in backward order, so it is
 * assigned (as 0.0 + g) instead of added (kernels.h, pg__backward_into). */
enum { PG__FIRST_A = 1, PG__FIRST_B = 2 };

typedef struct pg__step {
    uint8_t kind;    /* enum pg__step_kind */
    uint8_t op;      /* NODE: its op; NEURON, LAYER: the activation (PG_OP_leaf: none) */
    uint8_t first;   /* NODE: first-contribution bits */
    uint8_t binary;  /* NODE: its op has two operands */
    uint32_t out;    /* NODE: its slot; NEURON, LAYER: the index of its descriptor */
    uint32_t a, b;   /* NODE: its operands' slots: b is 0 for a unary op, and the
                      * slot of the op constant for powk; NEURON, LAYER, BATCH: a is
                      * the step's cost in node-steps (for chunking, at most
                      * UINT32_MAX); BATCH: its members are layers out .. out + b - 1 */
} pg__step;

/* One term a*b of a neuron: its operands' slots, in operand order. */
typedef struct pg__term {
    uint32_t a, b;
    uint32_t first;  /* first-contribution bits of a and b */
} pg__term;

typedef struct pg__neuron {
    uint32_t out, sum; /* slots of its output and of s_n (the same slot without an activation) */
    uint32_t b, k;     /* slots of b and of the activation's constant (powk; else slot 0) */
    uint32_t term, n;  /* its terms, t->terms[term .. term + n), bottom up (m1 first) */
    uint32_t inner;    /* t->inner[inner ..]: arena slots of each term's product and sum */
    uint8_t bfirst;    /* b's contribution (from s1) is its first */
} pg__neuron;

/* How a layer reads its inputs x (each neuron's term k is w[j][k] * x[k]). */
enum pg__xkind {
    PG__X_SHARED,  /* every neuron the same x[k]: slot x + k */
    PG__X_GATHER,  /* the same, from the slots t->index[x + k] */
    PG__X_OWN      /* neuron j its own: slot x + j * n + k */
};

typedef struct pg__layer {
    uint32_t nneurons, n; /* J neurons of n terms */
    uint32_t w;           /* neuron j's weights at slots w + j * wstride + k */
    uint32_t wstride;     /* n, or n + 1: neuron j's b then at w + j * wstride + n */
    uint32_t b;           /* wstride n: neuron j's b at slot t->index[b + j] */
    uint32_t x;           /* see enum pg__xkind */
    uint32_t out, sum;    /* neuron j's output at slot out + j, s_n at sum + j (out without act) */
    uint32_t k;           /* slot of the activation's constant (powk; else slot 0) */
    uint32_t xfirst;      /* PG__X_SHARED/GATHER: t->bytes[xfirst + k], x[k]'s first-contribution bit */
    uint32_t inner;       /* t->inner[inner + 2 * (j * n + k) ..]: term k's product and sum */
    uint8_t xkind;
    uint8_t wfirst, bfirst, xownfirst; /* first-contribution bits, the same for every neuron */
    uint8_t defer;        /* x are leaves nothing else uses: their grads can wait (tape_replay.c) */
    uint8_t xallfirst;    /* a batch member (tape_batch.c): every x[k] has its first-contribution bit */
    uint8_t own_w;        /* no other layer has these weights, and no other step adds to
                           * their grads or their biases': an SGD step can be taken in the
                           * backward (tape_replay.c, "Steps in the backward") */
} pg__layer;

/* The state of a tape's numbers relative to its graph (tape_replay.c). */
enum {
    PG__HAVE_FWD = 1,  /* val[f] holds a whole forward's numbers */
    PG__DATA_NEW = 2,  /* ... newer than the graph's: to be written back */
    PG__GRAD_NEW = 4   /* grad[] holds grads newer than the graph's */
};

/* A session's flags per layer (pg__session.how). */
enum { PG__DEFER_X = 1, PG__STEP_W = 2 };

/* What a training run updates and feeds: its optimizer's parameters and
 * its inputs, by slot (tape_replay.c, "Sessions"). */
typedef struct pg__session {
    uint64_t serial;      /* the optimizer it was made for (pg_optim.serial; 0: none) */
    int64_t nparams;
    uint32_t *at;         /* parameter i's slot, or 0 for a node outside the graph */
    uint32_t *outside;    /* ... then its arena slot here (else 0); NULL if none is */
    uint32_t first;       /* at == NULL: parameter i is slot first + i */
    int dup;              /* a parameter is listed twice: update in place */
    int64_t ninputs;
    uint32_t *in;         /* input j's slot, or 0 outside the graph (then in_node[j]) */
    uint32_t *in_node;    /* input j's arena slot */
    uint8_t *in_special;  /* 1: also a parameter, or outside the graph: saved before each load */
    double *in_saved;
    int special;          /* some input is special */
    uint8_t *how;         /* per layer: PG__DEFER_X, its inputs' grads wait for the
                           * write-back; PG__STEP_W, its weights are parameters */
    int fusable;          /* the parameters are exactly some layers' own_w weights: a plain
                           * SGD steps them in the backward */
} pg__session;

struct pg__job;

struct pg_tape {
    uint32_t root;        /* the root's arena slot; the tape holds a reference */
    uint32_t root_slot;
    int64_t n;            /* nodes in the graph */
    int64_t nneurons;     /* neurons found (in NEURON and LAYER steps) */
    int64_t cost;         /* node-steps of one forward and backward (for chunking) */
    int order;            /* PG_ORDER_EXACT or PG_ORDER_FAST */
    struct pg__job *job;  /* the compiler's state until compiled (tape_compile.c) */
    pg_id refused;        /* a node the replay cannot run (pg_tape_compile) */

    /* the program */
    int64_t nsteps;
    pg__step *steps;
    pg__step *plain;      /* with batch steps: the program before (tape_batch.c), its layer
                           * steps renumbered; a failed forward is reported in its order */
    int64_t nplain;
    pg__neuron *neurons;
    pg__term *terms;
    pg__layer *layers;
    int64_t nlayers;
    uint32_t *index;      /* slot lists of layers (gathered inputs, biases) */
    uint8_t *bytes;       /* first-contribution bits of layers' inputs */
    uint32_t *inner;      /* arena slots of neurons' products and sums */
    int64_t ninner;
    uint32_t *leaves;     /* the slots of the graph's leaves */
    int64_t nleaves;

    /* the numbers */
    uint32_t nslots;
    uint32_t *node;
    double *mem;          /* one block: val[0], val[1], grad, scratch (from pg__align64(mem)) */
    double *val[2], *grad;
    double *scratch;      /* 3 * widest: a layer's inputs, their grads, its neurons' grads */
    uint32_t widest;      /* the most inputs or neurons of a layer */
    double *bscratch;     /* the batch steps' scratch (tape_batch.c), or NULL */
    double *bmem;         /* (its block, which bscratch is in, 64-byte aligned) */

    /* the replay's state (tape_replay.c) */
    int f;                /* the buffer of the last forward */
    unsigned flags;       /* PG__HAVE_FWD | PG__DATA_NEW | PG__GRAD_NEW */
    int64_t resume;       /* next step of a forward or backward split in chunks; -1 none */
    int resume_kind;
    int stepped;          /* the last backward stepped the own_w layers' weights (their
                           * grads are not in grad[]) */
    pg__session s;
};

/* The slot of neuron j's b: after its weights, or listed apart. */
static inline uint32_t pg__layer_b(const pg_tape *t, const pg__layer *L, uint32_t j) {
    return L->wstride > L->n ? L->w + j * L->wstride + L->n : t->index[L->b + j];
}

/* The slot of input k of a layer whose neurons share their inputs. */
static inline uint32_t pg__layer_xslot(const pg_tape *t, const pg__layer *L, uint32_t k) {
    return L->xkind == PG__X_GATHER ? t->index[L->x + k] : L->x + k;
}

/* p rounded up to a 64-byte line: a block allocated 64 bytes longer holds
 * what it was for from there. */
static inline double *pg__align64(double *p) { return (double *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/* tape_compile.c */
void pg__tape_free_program(pg_tape *t);
void pg__job_free(struct pg__job *j);
/* tape_batch.c: the program reordered into batch steps where it can be. */
int pg__tape_batch(pg_tape *t);
/* tape_replay.c: the replay's buffers, once the program is compiled. */
int pg__tape_alloc(pg_tape *t, size_t scratch);
void pg__session_free(pg__session *s);

#endif
