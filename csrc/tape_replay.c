/* tape_replay.c: runs a compiled tape (tape.h): forward, backward and whole
 * training loops over the tape's own arrays, and writing the numbers back
 * into the graph's nodes when anyone can read them.
 *
 * ---- Buffers ------------------------------------------------------------------
 * The tape has two buffers of values, val[0] and val[1], and one of grads.
 * val[f] holds the last forward's numbers (when PG__HAVE_FWD), and val[f ^ 1]
 * the leaves' current data: a forward runs in val[f ^ 1] and only then
 * becomes val[f], so a forward that fails, or stops between chunks, leaves
 * val[f] as it was: nothing to undo. Every leaf that no run changes has the
 * same data in both; an optimizer reads its parameters from val[f] and
 * writes them to val[f ^ 1], which the next iteration's forward reads.
 *
 * ---- Writing back -------------------------------------------------------------
 * After a call the tape's numbers are newer than its graph's nodes
 * (PG__DATA_NEW, PG__GRAD_NEW) and the tape is the arena's pending tape:
 * before anything looks a node up (pg__lookup) or an optimizer steps, they
 * are written back (pg__tape_settle), so every reader sees what a
 * node-by-node replay would have left in the nodes. The inner nodes of
 * neurons are recomputed then, from the slots, by the same kernels; the
 * grads of a layer's inputs that only the write-back can read (leaves
 * nothing else uses: a training loop's data) are computed then too.
 *
 * ---- Steps in the backward ----------------------------------------------------
 * Plain SGD (no momentum) needs no state, so where an optimizer's parameters
 * are exactly the weights and biases of layers that have them to
 * themselves (own_w: a model's, its samples one layer step each), a layer's
 * backward takes the step as it goes: each weight's grad is one
 * contribution, 0.0 + x * g, and its new data p - lr * grad goes straight
 * to the next buffer, as the optimizer would write it. Those grads are left
 * out of grad[]; the write-back recomputes them, to the same bits.
 *
 * ---- Sessions -----------------------------------------------------------------
 * Consecutive calls with the same optimizer and inputs (or none: forward and
 * backward) go on from the tape's arrays without reading the graph again.
 * Anything else first writes the tape back and reads the leaves afresh.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "optim.h"
#include "tape.h"

int pg__tape_alloc(pg_tape *t, size_t scratch) {
    size_t n = (t->nslots + 7) / 8 * 8; /* each array from a 64-byte line, as the kernels' vectors like */
    t->mem = pg__realloc(NULL, (3 * n + scratch) * sizeof(double) + 64);
    t->s.how = pg__realloc(NULL, (size_t)(t->nlayers ? t->nlayers : 1) + 1);
    if (!t->mem || !t->s.how) return PG_ENOMEM;
    double *a = pg__align64(t->mem);
    t->val[0] = a, t->val[1] = a + n, t->grad = a + 2 * n;
    t->scratch = a + 3 * n;
    return PG_OK;
}

void pg__session_free(pg__session *s) {
    free(s->at), free(s->outside), free(s->in), free(s->in_node), free(s->in_special);
    free(s->in_saved);
    uint8_t *how = s->how; /* (the tape's, kept) */
    *s = (pg__session){0};
    s->how = how;
}

/* ---- kernels ------------------------------------------------------------------
 * Neurons add and multiply inline: kernels.h's add and mul are IEEE a + b
 * and a * b, so these are the same operations. Every other op goes through
 * kernels.h's dispatch. */

/* The operands of a node step as kernels.h sees them: b and the op constant
 * share the step's b slot (a unary op reads neither b, a binary op no k). */
static inline pg__vals pg__node_vals(const pg__step *s, const double *v) {
    return (pg__vals){v[s->a], v[s->b], v[s->b], v[s->out]};
}

static inline int pg__node_forward(const pg__step *s, double *v) {
    pg__vals x = pg__node_vals(s, v);
    int status = pg__forward(s->op, &x);
    v[s->out] = x.out;
    return status;
}

static inline void pg__node_backward(const pg__step *s, const double *v, double *g) {
    pg__vals x = pg__node_vals(s, v);
    pg__grads d = pg__backward(s->op, &x, g[s->out]);
    g[s->a] = (s->first & PG__FIRST_A ? 0.0 : g[s->a]) + d.a;
    if (s->binary) g[s->b] = (s->first & PG__FIRST_B ? 0.0 : g[s->b]) + d.b;
}

/* act(sum) into *out; PG_OK or the activation's math error. */
static inline int pg__activate(int act, double sum, double k, double *out) {
    pg__vals x = {sum, 0.0, k, 0.0};
    int status = pg__forward(act, &x);
    *out = x.out;
    return status;
}

/* The grad of s_n from its neuron's output grad go (a first contribution). */
static inline double pg__act_grad(int act, double sum, double k, double out, double go) {
    pg__vals x = {sum, 0.0, k, out};
    return 0.0 + pg__backward(act, &x, go).a;
}

static inline int pg__neuron_forward(const pg_tape *t, const pg__neuron *N, int act, double *v) {
    const pg__term *term = t->terms + N->term;
    double acc = v[N->b];
    uint32_t k = 0;
    if (t->order == PG_ORDER_FAST && N->n >= 8) {
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        for (; k + 4 <= N->n; k += 4) {
            a0 = a0 + v[term[k].a] * v[term[k].b];
            a1 = a1 + v[term[k + 1].a] * v[term[k + 1].b];
            a2 = a2 + v[term[k + 2].a] * v[term[k + 2].b];
            a3 = a3 + v[term[k + 3].a] * v[term[k + 3].b];
        }
        acc = acc + ((a0 + a2) + (a1 + a3));
    }
    for (; k < N->n; k++) acc = acc + v[term[k].a] * v[term[k].b];
    if (act == PG_OP_leaf) {
        v[N->out] = acc;
        return PG_OK;
    }
    v[N->sum] = acc;
    return pg__activate(act, acc, v[N->k], &v[N->out]);
}

/* See tape_compile.c, "Neurons": every contribution in the node-by-node order. */
static inline void pg__neuron_backward(const pg_tape *t, const pg__neuron *N, int act,
                                       const double *v, double *g) {
    const pg__term *term = t->terms + N->term;
    double gs = g[N->out];
    if (act != PG_OP_leaf) gs = g[N->sum] = pg__act_grad(act, v[N->sum], v[N->k], v[N->out], gs);
    double gg = 0.0 + gs; /* every inner node's grad */
    for (uint32_t k = N->n; k-- > 0;) {
        if (k == 0) g[N->b] = (N->bfirst ? 0.0 : g[N->b]) + (N->n == 1 ? gs : gg); /* from s1 */
        const pg__term *m = &term[k];
        double da = v[m->b] * gg, db = v[m->a] * gg; /* mul's backward */
        g[m->a] = (m->first & PG__FIRST_A ? 0.0 : g[m->a]) + da;
        g[m->b] = (m->first & PG__FIRST_B ? 0.0 : g[m->b]) + db;
    }
}

/* Where a layer's inputs are: x[k] (neuron j's at x[j * xs + k]). */
static inline const double *pg__layer_x(const pg_tape *t, const pg__layer *L, const double *v, size_t *xs) {
    *xs = L->xkind == PG__X_OWN ? L->n : 0;
    if (L->xkind != PG__X_GATHER) return v + L->x;
    for (uint32_t k = 0; k < L->n; k++) t->scratch[k] = v[t->index[L->x + k]];
    return t->scratch;
}


/* ---- layer kernels -------------------------------------------------------------
 * tape_layers.h and tape_batches.h, compiled once as plain C and, on x86 with GCC or clang,
 * once more for AVX2 (four doubles a vector instead of two) and once for
 * AVX-512 (eight); the tape calls the widest the CPU runs (pg__kernels). Each lane of a vector does
 * what the plain code does to one number (no fused multiply-add: the
 * library is built with -ffp-contract=off), so both give the same bits. */
typedef struct pg__step_into {
    double *next;
    const pg_optim_config *cfg;
} pg__step_into;

/* Eight doubles side by side, the batch kernels' vectors: two of GCC's and
 * clang's vectors of four (an AVX2 register each, or two SSE2 ones), else
 * an array. Lane by lane, + and * are IEEE's, as on one double.
 * aligned(8): loads and stores at any double. */
#if defined(__GNUC__) || defined(__clang__)
typedef double pg__v4 __attribute__((vector_size(32), aligned(8)));
typedef struct pg__v8 {
    pg__v4 lo, hi;
} pg__v8;
#define PG__LOAD(p) ((pg__v8){*(const pg__v4 *)(p), *(const pg__v4 *)((p) + 4)})
#define PG__STORE(p, x) (*(pg__v4 *)(p) = (x).lo, *(pg__v4 *)((p) + 4) = (x).hi)
#define PG__SPLAT(x) __extension__({ double s_ = (x); (pg__v8){{s_, s_, s_, s_}, {s_, s_, s_, s_}}; })
#define PG__ADD(a, b) __extension__({ pg__v8 a_ = (a), b_ = (b); (pg__v8){a_.lo + b_.lo, a_.hi + b_.hi}; })
#define PG__MUL(a, b) __extension__({ pg__v8 a_ = (a), b_ = (b); (pg__v8){a_.lo * b_.lo, a_.hi * b_.hi}; })
/* relu's kernels lane by lane (kernels.h): x < 0.0 ? 0.0 : x, and (double)(x > 0.0), by masks */
typedef long long pg__m4 __attribute__((vector_size(32), aligned(8)));
#define PG__RELU4(x) ((pg__v4)((pg__m4)(x) & ~(pg__m4)((x) < (pg__v4){0.0, 0.0, 0.0, 0.0})))
#define PG__POS4(x) ((pg__v4)((pg__m4)((x) > (pg__v4){0.0, 0.0, 0.0, 0.0}) & (pg__m4)(pg__v4){1.0, 1.0, 1.0, 1.0}))
#define PG__RELU(x) __extension__({ pg__v8 x_ = (x); (pg__v8){PG__RELU4(x_.lo), PG__RELU4(x_.hi)}; })
#define PG__POS(x) __extension__({ pg__v8 x_ = (x); (pg__v8){PG__POS4(x_.lo), PG__POS4(x_.hi)}; })
#else
typedef struct pg__v8 {
    double d[8];
} pg__v8;
static inline pg__v8 pg__load8(const double *p) {
    pg__v8 r;
    memcpy(r.d, p, sizeof r.d);
    return r;
}
static inline pg__v8 pg__splat8(double x) {
    pg__v8 r;
    for (int l = 0; l < 8; l++) r.d[l] = x;
    return r;
}
static inline pg__v8 pg__add8(pg__v8 a, pg__v8 b) {
    for (int l = 0; l < 8; l++) a.d[l] = a.d[l] + b.d[l];
    return a;
}
static inline pg__v8 pg__mul8(pg__v8 a, pg__v8 b) {
    for (int l = 0; l < 8; l++) a.d[l] = a.d[l] * b.d[l];
    return a;
}
static inline pg__v8 pg__relu8(pg__v8 a) {
    for (int l = 0; l < 8; l++) a.d[l] = a.d[l] < 0.0 ? 0.0 : a.d[l];
    return a;
}
static inline pg__v8 pg__pos8(pg__v8 a) {
    for (int l = 0; l < 8; l++) a.d[l] = (double)(a.d[l] > 0.0);
    return a;
}
#define PG__LOAD(p) pg__load8(p)
#define PG__STORE(p, x) memcpy((p), (x).d, sizeof(pg__v8))
#define PG__SPLAT(x) pg__splat8(x)
#define PG__ADD(a, b) pg__add8((a), (b))
#define PG__MUL(a, b) pg__mul8((a), (b))
#define PG__RELU(x) pg__relu8(x)
#define PG__POS(x) pg__pos8(x)
#endif

#define PG__ISA(name) name##_plain
#include "tape_layers.h"
#include "tape_batches.h"
#undef PG__ISA
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
/* The functions between PG__TARGET(isa) and PG__TARGET_END are compiled for isa. */
#define PG__PRAGMA(x) _Pragma(#x)
#ifdef __clang__
#define PG__TARGET(isa) PG__PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define PG__TARGET_END PG__PRAGMA(clang attribute pop)
#else
#define PG__TARGET(isa) PG__PRAGMA(GCC push_options) PG__PRAGMA(GCC target(isa))
#define PG__TARGET_END PG__PRAGMA(GCC pop_options)
#endif
#define PG__HAVE_AVX2 1
PG__TARGET("avx2")
#define PG__ISA(name) name##_avx2
#include "tape_layers.h"
#include "tape_batches.h"
#undef PG__ISA
PG__TARGET_END
/* Once more for AVX-512, eight doubles one register. */
#define PG__HAVE_AVX512 1
typedef double pg__v8w __attribute__((vector_size(64), aligned(8)));
#define pg__v8 pg__v8w
#undef PG__LOAD
#undef PG__STORE
#undef PG__SPLAT
#undef PG__ADD
#undef PG__MUL
#undef PG__RELU
#undef PG__POS
typedef long long pg__m8w __attribute__((vector_size(64), aligned(8)));
#define PG__LOAD(p) (*(const pg__v8w *)(p))
#define PG__STORE(p, x) (*(pg__v8w *)(p) = (x))
#define PG__SPLAT(x) __extension__({ double s_ = (x); (pg__v8w){s_, s_, s_, s_, s_, s_, s_, s_}; })
#define PG__ADD(a, b) ((a) + (b))
#define PG__MUL(a, b) ((a) * (b))
#define PG__RELU(x) __extension__({ pg__v8w x_ = (x); (pg__v8w)((pg__m8w)x_ & ~(pg__m8w)(x_ < PG__SPLAT(0.0))); })
#define PG__POS(x) __extension__({ pg__v8w x_ = (x); (pg__v8w)((pg__m8w)(x_ > PG__SPLAT(0.0)) & (pg__m8w)PG__SPLAT(1.0)); })
PG__TARGET("avx512f")
#define PG__ISA(name) name##_avx512
#include "tape_layers.h"
#include "tape_batches.h"
#undef PG__ISA
PG__TARGET_END
#undef pg__v8
#endif

typedef struct pg__layer_kernels {
    int (*forward)(const pg_tape *t, const pg__layer *L, int act, double *v, uint32_t *failed);
    void (*backward)(const pg_tape *t, const pg__layer *L, int act, const double *v, double *g, int defer,
                     int grads_only, const pg__step_into *step);
    int (*batch_forward)(const pg_tape *t, uint32_t first, uint32_t B, int act, double *v, uint32_t *member,
                         uint32_t *bad);
    void (*batch_backward)(const pg_tape *t, uint32_t first, uint32_t B, int act, const double *v, double *g,
                           const uint8_t *how);
} pg__layer_kernels;

/* Test hook: 0 for the plain kernels, 1 for the best the CPU runs. */
static int pg__use_simd = 1;

void pg_debug_tape_simd(int on) {
    pg__lock();
    pg__use_simd = on != 0;
    pg__unlock();
}

static const pg__layer_kernels pg__plain = {pg__layer_forward_plain, pg__layer_backward_plain,
                                            pg__batch_forward_plain, pg__batch_backward_plain};

/* The kernels for layers of at least PG__WIDE terms (smaller ones run the
 * plain kernels faster: a vector loop over three or four terms costs more
 * than it saves), and for every batch (its lanes are neurons or inputs). */
#define PG__WIDE 16
static const pg__layer_kernels *pg__wide_kernels(void) {
#ifdef PG__HAVE_AVX2
    static const pg__layer_kernels avx2 = {pg__layer_forward_avx2, pg__layer_backward_avx2,
                                           pg__batch_forward_avx2, pg__batch_backward_avx2};
    static int has_avx2 = -1; /* (set under the arena lock) */
    if (has_avx2 < 0) has_avx2 = __builtin_cpu_supports("avx2") != 0;
    static const pg__layer_kernels avx512 = {pg__layer_forward_avx512, pg__layer_backward_avx512,
                                             pg__batch_forward_avx512, pg__batch_backward_avx512};
    static int has_avx512 = -1;
    if (has_avx512 < 0) has_avx512 = __builtin_cpu_supports("avx512f") != 0;
    if (has_avx512 && pg__use_simd) return &avx512;
    if (has_avx2 && pg__use_simd) return &avx2;
#endif
    return &pg__plain;
}

static inline const pg__layer_kernels *pg__kernels_for(const pg__layer *L, const pg__layer_kernels *wide) {
    return L->n >= PG__WIDE ? wide : &pg__plain;
}

/* ---- passes -------------------------------------------------------------------- */

/* Node-steps a step costs, for chunking. */
static inline int64_t pg__step_cost(const pg__step *s) { return s->kind == PG__STEP_NODE ? 1 : s->a; }

/* Forward over steps[from .. nsteps) in buffer v until budget is spent:
 * returns PG_OK with *stop the step to go on from (nsteps when done), or a
 * math error with *failed filled in. */
static int pg__forward_steps(const pg_tape *t, const pg__step *steps, int64_t nsteps, double *v, int64_t from,
                             int64_t budget, int64_t *stop, pg_failure *failed) {
    const pg__layer_kernels *wide = pg__wide_kernels();
    int64_t i = from;
    for (; i < nsteps && budget > 0; i++) {
        const pg__step *s = &steps[i];
        int status;
        uint32_t bad = 0, member = 0;
        switch (s->kind) {
        case PG__STEP_NODE: status = pg__node_forward(s, v); break;
        case PG__STEP_NEURON: status = pg__neuron_forward(t, &t->neurons[s->out], s->op, v); break;
        case PG__STEP_BATCH: {
            uint32_t m = 0;
            status = wide->batch_forward(t, s->out, s->b, s->op, v, &m, &bad);
            if (status != PG_OK) member = s->out + m;
            break;
        }
        default: {
            const pg__layer *L = &t->layers[s->out];
            status = pg__kernels_for(L, wide)->forward(t, L, s->op, v, &bad);
        }
        }
        budget -= pg__step_cost(s);
        if (status != PG_OK) { /* the failing node and its operands */
            uint32_t out = s->out, a = s->a;
            if (s->kind == PG__STEP_NEURON) out = t->neurons[s->out].out, a = t->neurons[s->out].sum;
            if (s->kind == PG__STEP_LAYER) out = t->layers[s->out].out + bad, a = t->layers[s->out].sum + bad;
            if (s->kind == PG__STEP_BATCH) out = t->layers[member].out + bad, a = t->layers[member].sum + bad;
            if (failed)
                *failed = (pg_failure){pg__handle(t->node[out]), v[a],
                                       s->kind == PG__STEP_NODE && s->binary ? v[s->b] : 0.0};
            return status;
        }
    }
    *stop = i;
    return PG_OK;
}

/* The forward of the program. When a batched one fails, the failure
 * reported is the one the program before batching meets first (its
 * order, tape_batch.c), found by running that one over the same buffer. */
static int pg__forward_pass(const pg_tape *t, double *v, int64_t from, int64_t budget, int64_t *stop,
                            pg_failure *failed) {
    int status = pg__forward_steps(t, t->steps, t->nsteps, v, from, budget, stop, failed);
    if (status != PG_OK && t->plain) {
        int64_t end;
        int first = pg__forward_steps(t, t->plain, t->nplain, v, 0, INT64_MAX, &end, failed);
        if (first != PG_OK) status = first; /* (it fails on the same numbers; in fast order its lone
                                               * layers may round otherwise: if it does not, the batched
                                               * program's failure stands) */
    }
    return status;
}

/* Backward in buffer v: the root's grad 1, then steps (nsteps - from) down
 * to 0 until budget is spent; *stop receives how many steps are done. */
static void pg__backward_pass(const pg_tape *t, const double *v, int64_t from, int64_t budget,
                              int64_t *stop, const uint8_t *how, const pg__step_into *step) {
    const pg__layer_kernels *wide = pg__wide_kernels();
    double *g = t->grad;
    if (from == 0) g[t->root_slot] = 1.0; /* every other grad is set by its first contribution */
    int64_t i = t->nsteps - from;
    for (; i > 0 && budget > 0; i--) {
        const pg__step *s = &t->steps[i - 1];
        switch (s->kind) {
        case PG__STEP_NODE: pg__node_backward(s, v, g); break;
        case PG__STEP_NEURON: pg__neuron_backward(t, &t->neurons[s->out], s->op, v, g); break;
        case PG__STEP_BATCH: wide->batch_backward(t, s->out, s->b, s->op, v, g, how); break;
        default: {
            const pg__layer *L = &t->layers[s->out];
            pg__kernels_for(L, wide)->backward(t, L, s->op, v, g, how[s->out] & PG__DEFER_X, 0,
                                               how[s->out] & PG__STEP_W ? step : NULL);
        }
        }
        budget -= pg__step_cost(s);
    }
    *stop = t->nsteps - i;
}

/* ---- writing back ----------------------------------------------------------------- */

/* A neuron's inner nodes (tape_compile.c, "Neurons"): each product and
 * partial sum but s_n (which has a slot), given product k's operands.
 * Their data is recomputed as its forward computed it, in micrograd's
 * order; their grad is gg. */
typedef struct pg__inner {
    pg_node *nodes;
    const uint32_t *inner; /* product k's and sum k's arena slots at 2k, 2k + 1 */
    uint32_t n;
    int data, grad;
    double gg;
} pg__inner;

static inline void pg__put_inner(const pg__inner *in, uint32_t k, double *acc, double p) {
    pg_node *m = &in->nodes[in->inner[2 * k]], *s = &in->nodes[in->inner[2 * k + 1]];
    *acc = *acc + p;
    if (in->data) m->data = p;
    if (in->grad) m->grad = in->gg;
    if (k + 1 == in->n) return;
    if (in->data) s->data = *acc;
    if (in->grad) s->grad = in->gg;
}

/* Write layer L's numbers into its nodes: outputs, sums, inner nodes. */
static void pg__put_layer(const pg_tape *t, const pg__layer *L, const double *v, const double *g, int data,
                          int grad) {
    pg_node *nodes = pg__A.nodes;
    size_t xs;
    const double *x = pg__layer_x(t, L, v, &xs);
    for (uint32_t j = 0; j < L->nneurons; j++) {
        pg_node *o = &nodes[t->node[L->out + j]], *sn = &nodes[t->node[L->sum + j]];
        if (data) o->data = v[L->out + j], sn->data = v[L->sum + j];
        if (grad) o->grad = g[L->out + j], sn->grad = g[L->sum + j];
        pg__inner in = {nodes, t->inner + L->inner + 2 * (size_t)j * L->n, L->n, data, grad,
                        0.0 + g[L->sum + j]};
        const double *w = v + L->w + j * L->wstride, *xj = x + j * xs;
        double acc = v[pg__layer_b(t, L, j)];
        for (uint32_t k = 0; k < L->n; k++) pg__put_inner(&in, k, &acc, w[k] * xj[k]);
    }
}

/* Write the tape's new numbers into its graph's nodes (what: the flags to
 * write, PG__DATA_NEW and PG__GRAD_NEW). */
static void pg__write_back(pg_tape *t, unsigned what) {
    what &= t->flags;
    if (!what) return;
    pg_node *nodes = pg__A.nodes;
    const double *v = t->val[t->f], *now = t->val[t->f ^ 1];
    double *g = t->grad;
    int data = (what & PG__DATA_NEW) != 0, grad = (what & PG__GRAD_NEW) != 0;
    if (grad) /* the grads left for now */
        for (int64_t l = 0; l < t->nlayers; l++) {
            const pg__layer *L = &t->layers[l];
            if (t->s.how[l] & PG__DEFER_X) pg__layer_backward_plain(t, L, 0, v, g, 0, 1, NULL);
            if (!t->stepped || !(t->s.how[l] & PG__STEP_W)) continue;
            size_t xs; /* the weights' and biases' grads, the backward's first contributions */
            const double *x = pg__layer_x(t, L, v, &xs);
            for (uint32_t j = 0; j < L->nneurons; j++) {
                double gs = g[L->sum + j], gg = 0.0 + gs;
                double *gw = g + L->w + j * L->wstride;
                for (uint32_t k = 0; k < L->n; k++) gw[k] = 0.0 + x[j * xs + k] * gg;
                gw[L->n] = 0.0 + (L->n == 1 ? gs : gg);
            }
        }
    for (int64_t i = 0; i < t->nleaves; i++) {
        pg_node *n = &nodes[t->node[t->leaves[i]]];
        if (data) n->data = now[t->leaves[i]];
        if (grad) n->grad = g[t->leaves[i]];
    }
#define PG__PUT(slot)                                     \
    do {                                                  \
        pg_node *n_ = &nodes[t->node[slot]];              \
        if (data) n_->data = v[slot];                     \
        if (grad) n_->grad = g[slot];                     \
    } while (0)
    for (int64_t i = 0; i < t->nsteps; i++) {
        const pg__step *s = &t->steps[i];
        if (s->kind == PG__STEP_NODE) {
            PG__PUT(s->out);
        } else if (s->kind == PG__STEP_NEURON) {
            const pg__neuron *N = &t->neurons[s->out];
            PG__PUT(N->out);
            if (N->sum != N->out) PG__PUT(N->sum);
            const pg__term *term = t->terms + N->term;
            pg__inner in = {nodes, t->inner + N->inner, N->n, data, grad, 0.0 + g[N->sum]};
            double acc = v[N->b];
            for (uint32_t k = 0; k < N->n; k++) pg__put_inner(&in, k, &acc, v[term[k].a] * v[term[k].b]);
        } else {
            for (uint32_t m = 0; m < (s->kind == PG__STEP_BATCH ? s->b : 1); m++)
                pg__put_layer(t, &t->layers[s->out + m], v, g, data, grad);
        }
    }
#undef PG__PUT
    t->flags &= ~what;
}

void pg__tape_settle(void) {
    pg_tape *t = pg__A.pending;
    pg__A.pending = NULL;
    pg__write_back(t, PG__DATA_NEW | PG__GRAD_NEW);
    t->resume = -1;
}

/* ---- sessions ---------------------------------------------------------------------- */

/* Read the leaves' data into both buffers; with all, the other nodes' into
 * val[f] too (a backward with no forward before it). */
static void pg__gather(pg_tape *t, int all) {
    const pg_node *nodes = pg__A.nodes;
    for (int64_t i = 0; i < t->nleaves; i++) {
        uint32_t s = t->leaves[i];
        t->val[0][s] = t->val[1][s] = nodes[t->node[s]].data;
    }
    t->flags = 0;
    if (!all) return;
    double *v = t->val[t->f];
    for (uint32_t s = 1; s < t->nslots; s++)
        if (t->node[s] && nodes[t->node[s]].op != PG_OP_leaf) v[s] = nodes[t->node[s]].data;
    /* inner nodes have no slots; a layer's and a neuron's sums do */
    t->flags = PG__HAVE_FWD;
}

/* Whether o and the nodes inputs are what the tape's session was made for. */
static int pg__same_session(const pg_tape *t, pg_optim *o, const pg_id *inputs, int64_t ninputs) {
    const pg__session *s = &t->s;
    if (s->serial != (o ? o->serial : 0) || s->ninputs != ninputs) return 0;
    for (int64_t j = 0; j < ninputs; j++)
        if (pg__lookup(inputs[j]) != s->in_node[j]) return 0;
    return 1;
}

/* The slot of each node of the graph in its arena mark (inner nodes: nslots
 * + their index), or, with restore, the marks as the sort leaves them. */
static void pg__mark_graph(const pg_tape *t, int restore, int inner) {
    pg_node *nodes = pg__A.nodes;
    for (uint32_t s = 1; s < t->nslots; s++)
        if (t->node[s]) nodes[t->node[s]].mark = restore ? pg__A.epoch : s;
    for (int64_t i = 0; inner && i < t->ninner; i++)
        nodes[t->inner[i]].mark = restore ? pg__A.epoch : t->nslots + (uint32_t)i;
}

/* The slot of arena node a in the graph (0 if not in it); *inner: it is an
 * inner node of a neuron (which has no slot). */
static uint32_t pg__slot_of(const pg_tape *t, uint32_t a, int *inner) {
    uint32_t m = pg__A.nodes[a].mark;
    *inner = pg__A.nodes[a].op != PG_OP_leaf && m >= t->nslots && m - t->nslots < t->ninner && t->inner[m - t->nslots] == a;
    return m < t->nslots && t->node[m] == a ? m : 0;
}

/* Make the session for optimizer o and the nodes inputs (looked up into
 * in_node): each parameter's and input's slot, or its node outside the
 * graph. A node of the graph that is not a leaf cannot be either
 * (PG_EBADOP, *bad naming it). Nothing changes on failure. */
static int pg__install(pg_tape *t, pg_optim *o, const pg_id *inputs, int64_t ninputs, uint32_t *bad) {
    pg__session s = {0};
    s.serial = o ? o->serial : 0, s.ninputs = ninputs, s.how = t->s.how;
    int status = PG_OK;
    int64_t np = o ? o->n : 0;
    size_t pn = np ? (size_t)np : 1, in = ninputs ? (size_t)ninputs : 1;
    uint8_t *seen = NULL;
    if (np) {
        s.nparams = np;
        s.at = pg__realloc(NULL, pn * sizeof(uint32_t));
        s.outside = pg__realloc(NULL, pn * sizeof(uint32_t));
        seen = pg__realloc(NULL, t->nslots);
        if (!s.at || !s.outside || !seen) status = PG_ENOMEM;
    }
    if (ninputs && status == PG_OK) {
        s.in = pg__realloc(NULL, in * sizeof(uint32_t));
        s.in_node = pg__realloc(NULL, in * sizeof(uint32_t));
        s.in_special = pg__realloc(NULL, in);
        s.in_saved = pg__realloc(NULL, in * sizeof(double));
        if (!s.in || !s.in_node || !s.in_special || !s.in_saved) status = PG_ENOMEM;
        if (status == PG_OK) {
            pg__handles h = {inputs, ninputs, 3, 0};
            uint32_t *found;
            status = pg__many(&h, 1, s.in_node, 0, 0, 0, &found, NULL);
        }
    }
    if (status != PG_OK) {
        free(seen);
        pg__session_free(&s);
        return status;
    }
    if (seen) memset(seen, 0, t->nslots);
    int inner = 0; /* inner nodes need marks only to be told from nodes outside the graph */
    for (int64_t i = 0; i < np; i++) inner |= pg__A.nodes[o->slot[i]].op != PG_OP_leaf;
    for (int64_t j = 0; j < ninputs; j++) inner |= pg__A.nodes[s.in_node[j]].op != PG_OP_leaf;
    if (np || ninputs) pg__mark_graph(t, 0, inner);
    int outside = 0, identity = np > 0;
    for (int64_t i = 0; i < np && status == PG_OK; i++) {
        int in_chain;
        uint32_t a = o->slot[i], at = pg__slot_of(t, a, &in_chain);
        if (in_chain || (at && pg__A.nodes[a].op != PG_OP_leaf)) status = PG_EBADOP, *bad = a;
        s.at[i] = at, s.outside[i] = at ? 0 : a;
        outside |= !at;
        if (at && seen[at]) s.dup = 1;
        if (at) seen[at] = 1;
        identity &= at && at == s.at[0] + (uint32_t)i;
    }
    for (int64_t j = 0; j < ninputs && status == PG_OK; j++) {
        int in_chain;
        uint32_t a = s.in_node[j], at = pg__slot_of(t, a, &in_chain);
        if (in_chain || (at && pg__A.nodes[a].op != PG_OP_leaf)) status = PG_EBADOP, *bad = a;
        s.in[j] = at;
        s.in_special[j] = !at || (seen && seen[at]);
        s.special |= s.in_special[j];
    }
    if (np || ninputs) pg__mark_graph(t, 1, inner);
    /* a layer's input grads wait for the write-back unless the optimizer reads them */
    for (int64_t l = 0; l < t->nlayers; l++) {
        const pg__layer *L = &t->layers[l];
        int defer = L->defer;
        for (uint32_t k = 0; k < L->n * (L->xkind == PG__X_OWN ? L->nneurons : 1) && defer && seen; k++) {
            uint32_t x = L->xkind == PG__X_GATHER ? t->index[L->x + k] : L->x + k;
            defer = !seen[x];
        }
        s.how[l] = (uint8_t)defer;
    }
    /* fusable: the parameters are own_w layers' weights and biases, each once */
    int64_t covered = 0;
    for (int64_t l = 0; l < t->nlayers && seen && !s.dup && !outside; l++) {
        const pg__layer *L = &t->layers[l];
        int all = L->own_w;
        for (uint32_t k = 0; all && k < L->nneurons * L->wstride; k++) all = seen[L->w + k];
        if (all) covered += (int64_t)L->nneurons * L->wstride;
        if (all) s.how[l] |= PG__STEP_W;
    }
    s.fusable = np > 0 && covered == np && o->cfg.kind == PG_SGD;
    free(seen);
    if (status != PG_OK) { /* the flags are the null session's again: so is t's session */
        for (int64_t l = 0; l < t->nlayers; l++) s.how[l] = t->layers[l].defer;
        pg__session_free(&s);
        pg__session_free(&t->s);
        return status;
    }
    if (identity) {
        s.first = s.at[0];
        free(s.at), s.at = NULL;
    }
    if (!outside) free(s.outside), s.outside = NULL;
    pg__session_free(&t->s);
    t->s = s;
    return PG_OK;
}

/* Begin a call on t with optimizer o and inputs (none for forward and
 * backward): the pending tape, if another, written back; t's session made
 * if it is a new one; the leaves read unless t goes on from its arrays. */
static int pg__begin(pg_tape *t, pg_optim *o, const pg_id *inputs, int64_t ninputs, pg_failure *failed) {
    if (t->job || !t->mem) return PG_EBADOP; /* not compiled (or failed to) */
    if (pg__A.pending && pg__A.pending != t) pg__tape_settle();
    int going_on = pg__A.pending == t;
    pg__A.pending = NULL; /* t's own lookups must not write it back */
    if (!pg__same_session(t, o, inputs, ninputs)) {
        pg__write_back(t, PG__DATA_NEW | PG__GRAD_NEW);
        going_on = 0;
        uint32_t bad = 0;
        int status = pg__install(t, o, inputs, ninputs, &bad);
        if (status != PG_OK) {
            if (bad && failed) *failed = (pg_failure){pg__handle(bad), 0.0, 0.0};
            t->resume = -1;
            return status;
        }
    }
    if (!going_on) { /* the graph is the truth: read it */
        pg__gather(t, 0);
        t->resume = -1;
    }
    return PG_OK;
}

/* End a call: t is pending while its numbers are newer than the graph's, or
 * a pass over it goes on in chunks (so that a read in between is noticed). */
static void pg__end(pg_tape *t) {
    if ((t->flags & (PG__DATA_NEW | PG__GRAD_NEW)) || t->resume >= 0) pg__A.pending = t;
}

/* ---- public ------------------------------------------------------------------------ */

void pg_tape_free(pg_tape *t) {
    if (!t) return;
    pg__lock();
    if (pg__A.pending == t) pg__tape_settle();
    pg__release(t->root);
    pg__trim_check();
    pg__unlock();
    pg__job_free(t->job);
    pg__tape_free_program(t);
    pg__session_free(&t->s);
    free(t->s.how);
    free(t);
}

int pg_tape_forward_chunk(pg_tape *t, int64_t budget, int64_t *next, double *root, pg_failure *failed) {
    if (!t || !next) return PG_EBADOP;
    pg__lock();
    int status = pg__begin(t, NULL, NULL, 0, failed);
    if (status == PG_OK) {
        int64_t from = *next, stop;
        if (from != 0 && !(from == t->resume && t->resume_kind == 0)) /* changed: start again, whole */
            from = 0, budget = 0;
        int cur = t->f ^ 1;
        status = pg__forward_pass(t, t->val[cur], from, budget > 0 ? budget : INT64_MAX, &stop, failed);
        t->resume = -1;
        if (status == PG_OK && stop < t->nsteps) {
            t->resume = *next = stop, t->resume_kind = 0;
        } else if (status == PG_OK) {
            t->f = cur;
            t->flags |= PG__HAVE_FWD | PG__DATA_NEW;
            *next = -1;
            if (root) *root = t->val[cur][t->root_slot];
        }
    }
    pg__end(t);
    pg__unlock();
    return status;
}

int pg_tape_backward_chunk(pg_tape *t, int64_t budget, int64_t *next) {
    if (!t || !next) return PG_EBADOP;
    pg__lock();
    int status = pg__begin(t, NULL, NULL, 0, NULL);
    if (status == PG_OK) {
        int64_t from = *next, stop;
        if (from != 0 && !(from == t->resume && t->resume_kind == 1)) from = 0, budget = 0;
        if (budget <= 0) budget = INT64_MAX;
        if (from == 0) {
            if (!(t->flags & PG__HAVE_FWD)) pg__gather(t, 1);
            /* a backward in chunks overwrites the grads as it goes: the
             * graph must hold the last ones until it is done */
            if (budget < t->cost) pg__write_back(t, PG__GRAD_NEW);
        }
        pg__backward_pass(t, t->val[t->f], from, budget, &stop, t->s.how, NULL);
        if (from == 0) t->stepped = 0;
        t->resume = -1;
        if (stop < t->nsteps) {
            t->resume = *next = stop, t->resume_kind = 1;
        } else {
            t->flags |= PG__GRAD_NEW;
            *next = -1;
        }
    }
    pg__end(t);
    pg__unlock();
    return status;
}

int pg_tape_forward(pg_tape *t, pg_failure *failed) {
    int64_t next = 0;
    return pg_tape_forward_chunk(t, 0, &next, NULL, failed);
}

int pg_tape_backward(pg_tape *t) {
    int64_t next = 0;
    return pg_tape_backward_chunk(t, 0, &next);
}

/* The inputs of an iteration: save the special ones (to put back if it
 * fails), then load the row into the others' slots of v, or their nodes. */
static void pg__load_row(const pg_tape *t, double *v, const pg_feed *feeds, int64_t nfeeds, int64_t row) {
    const pg__session *s = &t->s;
    pg_node *nodes = pg__A.nodes;
    if (s->special)
        for (int64_t j = 0; j < s->ninputs; j++)
            if (s->in_special[j]) s->in_saved[j] = s->in[j] ? v[s->in[j]] : nodes[s->in_node[j]].data;
    int64_t j = 0;
    for (int64_t f = 0; f < nfeeds; f++) {
        const double *src = feeds[f].data + row * feeds[f].stride;
        for (int64_t c = 0; c < feeds[f].cols; c++, j++) {
            if (s->in[j]) v[s->in[j]] = src[c];
            else nodes[s->in_node[j]].data = src[c];
        }
    }
}

/* After an iteration failed in buffer v (or at the end of a chunk): the
 * inputs as the last completed iteration left them. */
static void pg__restore_inputs(const pg_tape *t, double *v, int failed) {
    const pg__session *s = &t->s;
    const double *last = t->val[t->f];
    for (int64_t j = 0; j < s->ninputs; j++) {
        if (s->in_special[j]) {
            if (!failed) continue;
            if (s->in[j]) v[s->in[j]] = s->in_saved[j];
            else pg__A.nodes[s->in_node[j]].data = s->in_saved[j];
        } else if (t->flags & PG__HAVE_FWD) {
            v[s->in[j]] = last[s->in[j]];
        }
    }
}

int pg_tape_train_chunk(pg_tape *t, pg_optim *o, const pg_id *inputs, int64_t ninputs,
                        const pg_feed *feeds, int64_t nfeeds, int64_t nrows, int64_t start,
                        int64_t iters, int64_t budget, double *losses, int64_t nlosses,
                        const double *lrs, int64_t nlrs, int64_t *done, pg_failure *failed) {
    int64_t cols = 0;
    for (int64_t f = 0; feeds && f < nfeeds; f++) {
        if (feeds[f].cols < 0 || !feeds[f].data || feeds[f].stride < feeds[f].cols) return PG_EBADOP;
        cols += feeds[f].cols;
    }
    if (!t || !done || iters < 0 || start < 0 || (iters > 0 && !losses) || ninputs < 0 || nfeeds < 0 ||
        (ninputs > 0 && (!inputs || !feeds || nrows < 1 || cols != ninputs)))
        return PG_EBADOP;
    if (nlosses < iters || (lrs && nlrs < iters)) return PG_ESIZE;
    if (lrs && !o) return PG_EBADOP;
    for (int64_t f = 0; ninputs > 0 && f < nfeeds; f++) { /* the last row's end within n */
        const pg_feed *d = &feeds[f];
        if (d->n < d->cols || (d->stride > 0 && nrows - 1 > (d->n - d->cols) / d->stride)) return PG_ESIZE;
    }
    pg__lock();
    int status = pg__begin(t, o, inputs, ninputs, failed);
    int64_t count = iters;
    if (budget > 0 && budget / (t->cost ? t->cost : 1) < count) count = budget / (t->cost ? t->cost : 1);
    if (count < 1 && iters > 0) count = 1;
    int64_t valid = lrs && status == PG_OK ? pg__valid_lrs(o, lrs, count) : count; /* (only those it runs) */
    if (valid < count) {
        if (failed) *failed = (pg_failure){0, lrs[valid], (double)valid};
        status = PG_EBADOP;
    }
    pg__session *s = &t->s;
    for (int64_t i = 0; i < count && status == PG_OK; i++) {
        int cur = t->f ^ 1;
        double *v = t->val[cur];
        if (ninputs) pg__load_row(t, v, feeds, nfeeds, (start + i) % nrows);
        int64_t stop;
        status = pg__forward_pass(t, v, 0, INT64_MAX, &stop, failed);
        if (status != PG_OK) {
            if (ninputs) pg__restore_inputs(t, v, 1);
            break;
        }
        t->f = cur;
        t->flags |= PG__HAVE_FWD | PG__DATA_NEW;
        losses[i] = v[t->root_slot];
        if (lrs) o->cfg.lr = lrs[i]; /* this iteration's step: its learning rate */
        /* plain SGD over own_w layers: stepped in the backward */
        int stepping = o && s->fusable && o->cfg.momentum == 0.0;
        pg__step_into step = {t->val[cur ^ 1], o ? &o->cfg : NULL};
        pg__backward_pass(t, v, 0, INT64_MAX, &stop, s->how, stepping ? &step : NULL);
        t->flags |= PG__GRAD_NEW;
        t->stepped = stepping;
        if (stepping) {
            o->steps++; /* (the step pg__optim_update would count) */
        } else if (o) {
            if (s->outside && i == 0) /* zero_grad for parameters outside the graph */
                for (int64_t p = 0; p < o->n; p++)
                    if (s->outside[p]) pg__A.nodes[s->outside[p]].grad = 0.0;
            double *next = t->val[cur ^ 1];
            if (s->dup) { /* a parameter listed twice is updated twice, in place */
                for (int64_t p = 0; p < o->n; p++) {
                    uint32_t at = s->at ? s->at[p] : s->first + (uint32_t)p;
                    if (at) next[at] = v[at];
                }
            }
            pg__params where = {s->dup ? next : v, next, t->grad, s->at, s->first, s->outside};
            pg__optim_update(o, &where);
        }
        (*done)++;
    }
    if (ninputs && (t->flags & PG__HAVE_FWD)) pg__restore_inputs(t, t->val[t->f ^ 1], 0);
    pg__end(t);
    pg__unlock();
    return status;
}

int pg_tape_train(pg_tape *t, pg_optim *o, int64_t iters, const pg_id *inputs, int64_t ninputs,
                  const double *data, int64_t ndata, int64_t nrows, double *losses, int64_t nlosses,
                  int64_t *done, pg_failure *failed) {
    int64_t n = 0;
    pg_feed feed = {data, ndata, ninputs, ninputs};
    int status = pg_tape_train_chunk(t, o, inputs, ninputs, data ? &feed : NULL, data ? 1 : 0, nrows, 0,
                                     iters, 0, losses, nlosses, NULL, 0, &n, failed);
    if (done) *done = n;
    return status;
}
