/* tape_layers.h: the kernels of a layer step (tape_replay.c; tape_compile.c,
 * "Layers"): its forward (each neuron's dot product, its activation) and its
 * backward (the weights' and inputs' grads, or an SGD step taken as it
 * goes); and of a batch step (tape_batch.c; "Batches" below). Written once,
 * included three times by tape_replay.c, which defines PG__ISA(name) to name
 * each function after the instruction set it is compiled for: plain C, and
 * AVX2 and AVX-512 where the compiler can target them. No include guard, on
 * purpose. */

/* b + w[0]*x[0] + ... + w[n-1]*x[n-1]: in micrograd's order (exact), or
 * (fast) as eight partial sums, term k in sum k % 8, then added pairwise,
 * then the last n % 8 terms in order: any order is within the bound
 * pygrad.h states. The compiler keeps the eight sums in vector registers
 * (this form of the loop, the lanes an array, is what it vectorizes); each
 * is a chain of adds in order either way, so the bits do not depend on it. */
static inline double PG__ISA(pg__dot)(double b, const double *w, const double *x, uint32_t n, int fast) {
    uint32_t k = 0;
    if (fast && n >= 16) {
        double a[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
        uint32_t m = n / 8;
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t l = 0; l < 8; l++) a[l] = a[l] + w[8 * i + l] * x[8 * i + l];
        b = b + (((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])));
        k = 8 * m;
    }
    for (; k < n; k++) b = b + w[k] * x[k];
    return b;
}

/* Four neurons' sums side by side, each in micrograd's order: weights at w,
 * w + ws, ..., inputs at x, x + xs, ... (xs 0: shared). Four chains of adds
 * instead of one keep the adder busy without changing a bit. */
static inline void PG__ISA(pg__dot4)(double acc[4], const double *w, size_t ws, const double *x, size_t xs,
                            uint32_t n) {
    double a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const double *w1 = w + ws, *w2 = w1 + ws, *w3 = w2 + ws;
    const double *x1 = x + xs, *x2 = x1 + xs, *x3 = x2 + xs;
    for (uint32_t k = 0; k < n; k++) {
        a0 = a0 + w[k] * x[k];
        a1 = a1 + w1[k] * x1[k];
        a2 = a2 + w2[k] * x2[k];
        a3 = a3 + w3[k] * x3[k];
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* out[j] = act(sum[j]) for j < J, by act's forward kernel, the op chosen
 * once for the layer; PG_OK, or the first failure's status (*bad = j). */
static inline int PG__ISA(pg__activate_all)(int act, uint32_t J, const double *restrict sum, double k,
                                            double *restrict out, uint32_t *bad) {
    switch (act) {
#define PG__CASE(name, symbol, arity, takes_k, doc)                       \
    case PG_OP_##name:                                               \
        for (uint32_t j = 0; j < J; j++) {                           \
            pg__vals x = {sum[j], 0.0, k, 0.0};                      \
            int status = name##_forward(&x);                         \
            if (status != PG_OK) return *bad = j, status;            \
            out[j] = x.out;                                          \
        }                                                            \
        return PG_OK;
        PG_OP_LIST(PG__CASE)
#undef PG__CASE
    default: return PG_EBADOP;
    }
}

/* gs[j] = 0.0 + act's backward for neuron j's output grad gout[j]: the grad
 * of its s_n, a first contribution (one parent), for j < J. */
static inline void PG__ISA(pg__act_grads)(int act, uint32_t J, const double *restrict sum,
                                          const double *restrict out, double k, const double *restrict gout,
                                          double *restrict gs) {
    switch (act) {
#define PG__CASE(name, symbol, arity, takes_k, doc)                       \
    case PG_OP_##name:                                               \
        for (uint32_t j = 0; j < J; j++) {                           \
            pg__vals x = {sum[j], 0.0, k, out[j]};                   \
            gs[j] = 0.0 + name##_backward(&x, gout[j]).a;            \
        }                                                            \
        break;
        PG_OP_LIST(PG__CASE)
#undef PG__CASE
    }
}

static int PG__ISA(pg__layer_forward)(const pg_tape *t, const pg__layer *L, int act, double *v, uint32_t *failed) {
    size_t xs, ws = L->wstride;
    const double *x = pg__layer_x(t, L, v, &xs);
    const double *w = v + L->w;
    uint32_t J = L->nneurons, n = L->n, j = 0;
    double *sum = v + L->sum;
    if (t->order == PG_ORDER_FAST) {
        for (; j < J; j++) sum[j] = PG__ISA(pg__dot)(v[pg__layer_b(t, L, j)], w + j * ws, x + j * xs, n, 1);
    } else {
        for (; j + 4 <= J; j += 4) {
            double acc[4];
            for (uint32_t l = 0; l < 4; l++) acc[l] = v[pg__layer_b(t, L, j + l)];
            PG__ISA(pg__dot4)(acc, w + j * ws, ws, x + j * xs, xs, n);
            for (uint32_t l = 0; l < 4; l++) sum[j + l] = acc[l];
        }
        for (; j < J; j++) sum[j] = PG__ISA(pg__dot)(v[pg__layer_b(t, L, j)], w + j * ws, x + j * xs, n, 0);
    }
    return act == PG_OP_leaf ? PG_OK : PG__ISA(pg__activate_all)(act, J, sum, v[L->k], v + L->out, failed);
}

/* The grads one neuron of a layer gives its weights (mul's backward: x * g)
 * and, unless gx is NULL, its inputs (w * g), g its inner grad; first:
 * assign (0.0 + ...) instead of add. restrict: weights, inputs and grads
 * are distinct slots (tape_compile.c, "Layers"). */
static inline void PG__ISA(pg__neuron_grads)(double *restrict gw, double *restrict gx, const double *restrict w,
                                    const double *restrict x, double g, uint32_t n, int wfirst,
                                    int xfirst) {
    if (!gx) {
        if (wfirst) for (uint32_t k = 0; k < n; k++) gw[k] = 0.0 + x[k] * g;
        else for (uint32_t k = 0; k < n; k++) gw[k] = gw[k] + x[k] * g;
    } else if (wfirst && !xfirst) {
        for (uint32_t k = 0; k < n; k++) {
            gw[k] = 0.0 + x[k] * g;
            gx[k] = gx[k] + w[k] * g;
        }
    } else if (!xfirst) {
        for (uint32_t k = 0; k < n; k++) {
            gw[k] = gw[k] + x[k] * g;
            gx[k] = gx[k] + w[k] * g;
        }
    } else {
        for (uint32_t k = 0; k < n; k++) {
            gw[k] = (wfirst ? 0.0 : gw[k]) + x[k] * g;
            gx[k] = 0.0 + w[k] * g;
        }
    }
}

/* pg__neuron_grads for a neuron whose weights are stepped in the backward
 * (see "Steps in the backward"): their new data goes to next, their grads
 * (first contributions) nowhere. */
static inline void PG__ISA(pg__neuron_step)(double *restrict next, double *restrict gx, const double *restrict w,
                                   const double *restrict x, double g, uint32_t n,
                                   const pg_optim_config *c) {
    const pg_optim_config cfg = *c; /* a copy: stores to next cannot change it, so it stays in registers */
    if (gx) {
        for (uint32_t k = 0; k < n; k++) {
            next[k] = pg__sgd_step(&cfg, w[k], 0.0 + x[k] * g, NULL, 0);
            gx[k] = gx[k] + w[k] * g;
        }
    } else if (cfg.weight_decay == 0.0) {
        double lr = cfg.lr;
        for (uint32_t k = 0; k < n; k++) next[k] = w[k] - lr * (0.0 + x[k] * g);
    } else {
        for (uint32_t k = 0; k < n; k++) next[k] = pg__sgd_step(&cfg, w[k], 0.0 + x[k] * g, NULL, 0);
    }
}

/* A layer's backward (tape_compile.c, "Layers"), its neurons last to first:
 * their weights' grads and, unless they wait for the write-back (defer),
 * their inputs'. Shared inputs' grads are added up in place (contiguous)
 * or in scratch (gathered), starting from the grad each held or, for a
 * first contribution, from 0.0. With grads_only only the inputs' grads are
 * due, from the grads the s_n slots hold (the write-back). With step (not
 * NULL) the weights and biases are stepped into next instead. */

static void PG__ISA(pg__layer_backward)(const pg_tape *t, const pg__layer *L, int act, const double *v, double *g,
                               int defer, int grads_only, const pg__step_into *step) {
    size_t xs, ws = L->wstride;
    const double *x = pg__layer_x(t, L, v, &xs);
    const double *w = v + L->w;
    uint32_t J = L->nneurons, n = L->n;
    int own = L->xkind == PG__X_OWN, xfirst = own && L->xownfirst;
    double *gx = L->xkind == PG__X_GATHER ? t->scratch + t->widest : g + L->x;
    if (!defer && !own) {
        const uint8_t *first = t->bytes + L->xfirst;
        if (L->xkind == PG__X_SHARED) {
            for (uint32_t k = 0; k < n; k++)
                if (first[k]) gx[k] = 0.0;
        } else {
            for (uint32_t k = 0; k < n; k++) gx[k] = first[k] ? 0.0 : g[t->index[L->x + k]];
        }
    }
    if (!grads_only && act != PG_OP_leaf)
        PG__ISA(pg__act_grads)(act, J, v + L->sum, v + L->out, v[L->k], g + L->out, g + L->sum);
    for (uint32_t j = J; j-- > 0;) {
        double gs = g[L->sum + j], gg = 0.0 + gs;
        const double *wj = w + j * ws;
        double *gxj = gx + j * xs;
        if (grads_only) {
            for (uint32_t k = 0; k < n; k++) gxj[k] = (xfirst ? 0.0 : gxj[k]) + wj[k] * gg;
            continue;
        }
        uint32_t b = pg__layer_b(t, L, j); /* from s1 */
        if (step) {
            step->next[b] = pg__sgd_step(step->cfg, v[b], 0.0 + (n == 1 ? gs : gg), NULL, 0);
            PG__ISA(pg__neuron_step)(step->next + L->w + j * ws, defer ? NULL : gxj, wj, x + j * xs, gg, n, step->cfg);
            continue;
        }
        g[b] = (L->bfirst ? 0.0 : g[b]) + (n == 1 ? gs : gg);
        PG__ISA(pg__neuron_grads)(g + L->w + j * ws, defer ? NULL : gxj, wj, x + j * xs, gg, n, L->wfirst, xfirst);
    }
    if (!defer && L->xkind == PG__X_GATHER)
        for (uint32_t k = 0; k < n; k++) g[t->index[L->x + k]] = gx[k];
}


/* ---- Batches (tape_batch.c) ----------------------------------------------
 * A batch step runs layers first .. first + B - 1, one per sample, with the
 * same weights: its members. Every number it computes is computed as the
 * member's own layer step computes it, by the same operations in the same
 * order; only what goes side by side in a vector (pg__v8, tape_replay.c)
 * differs:
 *   forward   samples in the lanes (the last one repeated to fill a block
 *             of eight), four neurons at a time: each neuron's
 *             b + w[0]*x[0] + ... in micrograd's order; then the
 *             activation, member by member;
 *   backward  each weight's and bias's grad, eight neurons in the lanes (or
 *             eight inputs, for fewer than eight neurons), its contributions
 *             added members last to first, the backward order; then each
 *             member's inputs' grads, inputs in the lanes, neurons last to
 *             first.
 * The batch's scratch (t->bscratch) holds a block's inputs in the forward,
 * and each member's neurons' inner grads 0.0 + g (rows of J rounded up to
 * eight) in the backward. */

static int PG__ISA(pg__batch_forward)(const pg_tape *t, uint32_t first, uint32_t B, int act, double *v,
                                      uint32_t *member, uint32_t *bad) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n;
    size_t ws = L0->wstride;
    const double *w = v + L0->w;
    double *X = t->bscratch, out[4][8];
    for (uint32_t m0 = 0; m0 < B; m0 += 8) {
        uint32_t lanes = B - m0 < 8 ? B - m0 : 8;
        const double *xl[8]; /* each lane's inputs, where they are contiguous */
        int shared = 1;
        for (uint32_t l = 0; l < 8; l++) {
            const pg__layer *L = &t->layers[first + m0 + (l < lanes ? l : lanes - 1)];
            xl[l] = v + L->x;
            shared &= L->xkind == PG__X_SHARED;
        }
        if (shared) {
            for (uint32_t k = 0; k < n; k++)
                for (uint32_t l = 0; l < 8; l++) X[k * 8 + l] = xl[l][k];
        } else {
            for (uint32_t l = 0; l < 8; l++) {
                const pg__layer *L = &t->layers[first + m0 + (l < lanes ? l : lanes - 1)];
                for (uint32_t k = 0; k < n; k++) X[k * 8 + l] = v[pg__layer_xslot(t, L, k)];
            }
        }
        for (uint32_t j = 0; j < J; j += 4) {
            uint32_t nq = J - j < 4 ? J - j : 4;
            pg__v8 a0 = PG__SPLAT(v[pg__layer_b(t, L0, j)]), a1 = a0, a2 = a0, a3 = a0;
            if (nq == 4) {
                const double *w0 = w + j * ws, *w1 = w0 + ws, *w2 = w1 + ws, *w3 = w2 + ws;
                a1 = PG__SPLAT(v[pg__layer_b(t, L0, j + 1)]);
                a2 = PG__SPLAT(v[pg__layer_b(t, L0, j + 2)]);
                a3 = PG__SPLAT(v[pg__layer_b(t, L0, j + 3)]);
                for (uint32_t k = 0; k < n; k++) {
                    pg__v8 x = PG__LOAD(X + k * 8);
                    a0 = PG__ADD(a0, PG__MUL(PG__SPLAT(w0[k]), x));
                    a1 = PG__ADD(a1, PG__MUL(PG__SPLAT(w1[k]), x));
                    a2 = PG__ADD(a2, PG__MUL(PG__SPLAT(w2[k]), x));
                    a3 = PG__ADD(a3, PG__MUL(PG__SPLAT(w3[k]), x));
                }
            } else {
                for (uint32_t q = 0; q < nq; q++) {
                    pg__v8 a = PG__SPLAT(v[pg__layer_b(t, L0, j + q)]);
                    const double *wq = w + (j + q) * ws;
                    for (uint32_t k = 0; k < n; k++) a = PG__ADD(a, PG__MUL(PG__SPLAT(wq[k]), PG__LOAD(X + k * 8)));
                    PG__STORE(out[q], a);
                }
            }
            if (nq == 4) PG__STORE(out[0], a0), PG__STORE(out[1], a1), PG__STORE(out[2], a2), PG__STORE(out[3], a3);
            for (uint32_t l = 0; l < lanes; l++) {
                double *sum = v + t->layers[first + m0 + l].sum + j;
                for (uint32_t q = 0; q < nq; q++) sum[q] = out[q][l];
            }
        }
    }
    if (act == PG_OP_leaf) return PG_OK;
    for (uint32_t m = 0; m < B; m++) {
        const pg__layer *L = &t->layers[first + m];
        int status = PG__ISA(pg__activate_all)(act, J, v + L->sum, v[L0->k], v + L->out, bad);
        if (status != PG_OK) return *member = m, status;
    }
    return PG_OK;
}

/* The weights' and biases' grads of a batch of at least eight neurons:
 * eight neurons in the lanes, the weights of four inputs (or the biases) at
 * a time. */
static void PG__ISA(pg__batch_wgrads)(const pg_tape *t, uint32_t first, uint32_t B, const double *v, double *g,
                                      const double *G, uint32_t J8) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n;
    size_t ws = L0->wstride;
    double acc[4][8];
    for (uint32_t j0 = 0; j0 < J; j0 += 8) {
        uint32_t nj = J - j0 < 8 ? J - j0 : 8;
        for (uint32_t k0 = 0; k0 <= n; k0 += 4) {
            uint32_t nk = n + 1 - k0 < 4 ? n + 1 - k0 : 4, kw = k0 + 4 <= n ? 4 : n - k0; /* kw weights, then a bias */
            for (uint32_t q = 0; q < 4; q++)
                for (uint32_t l = 0; l < 8; l++)
                    acc[q][l] = q >= nk || l >= nj ? 0.0
                                : g[k0 + q < n ? L0->w + (j0 + l) * ws + k0 + q : pg__layer_b(t, L0, j0 + l)];
            pg__v8 a0 = PG__LOAD(acc[0]), a1 = PG__LOAD(acc[1]), a2 = PG__LOAD(acc[2]), a3 = PG__LOAD(acc[3]);
            for (uint32_t m = B; m-- > 0;) {
                const pg__layer *L = &t->layers[first + m];
                pg__v8 gm = PG__LOAD(G + (size_t)m * J8 + j0), zero = PG__SPLAT(0.0);
                double x[4] = {0.0, 0.0, 0.0, 0.0};
                if (L->xkind == PG__X_SHARED && kw == 4) memcpy(x, v + L->x + k0, sizeof x);
                else for (uint32_t q = 0; q < kw; q++) x[q] = v[pg__layer_xslot(t, L, k0 + q)];
                if (L->wfirst) { /* the first contribution: assigned (0.0 + c) */
                    if (kw > 0) a0 = zero;
                    if (kw > 1) a1 = zero;
                    if (kw > 2) a2 = zero;
                    if (kw > 3) a3 = zero;
                }
                if (kw < 4 && L->bfirst) { /* the bias's lane row is kw */
                    if (kw == 0) a0 = zero;
                    if (kw == 1) a1 = zero;
                    if (kw == 2) a2 = zero;
                    if (kw == 3) a3 = zero;
                }
                /* rows below kw: x * g; row kw (if < 4): the bias, + g; rows past it: unused */
                a0 = PG__ADD(a0, kw > 0 ? PG__MUL(PG__SPLAT(x[0]), gm) : gm);
                if (nk > 1) a1 = PG__ADD(a1, kw > 1 ? PG__MUL(PG__SPLAT(x[1]), gm) : gm);
                if (nk > 2) a2 = PG__ADD(a2, kw > 2 ? PG__MUL(PG__SPLAT(x[2]), gm) : gm);
                if (nk > 3) a3 = PG__ADD(a3, kw > 3 ? PG__MUL(PG__SPLAT(x[3]), gm) : gm);
            }
            PG__STORE(acc[0], a0), PG__STORE(acc[1], a1), PG__STORE(acc[2], a2), PG__STORE(acc[3], a3);
            for (uint32_t q = 0; q < nk; q++)
                for (uint32_t l = 0; l < nj; l++)
                    g[k0 + q < n ? L0->w + (j0 + l) * ws + k0 + q : pg__layer_b(t, L0, j0 + l)] = acc[q][l];
        }
    }
}

/* The same for fewer than eight neurons: eight inputs in the lanes. */
static void PG__ISA(pg__batch_wgrads_narrow)(const pg_tape *t, uint32_t first, uint32_t B, const double *v,
                                             double *g, const double *G, uint32_t J8) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n;
    size_t ws = L0->wstride;
    double acc[8], x[8];
    for (uint32_t j = 0; j < J; j++) {
        double *gw = g + L0->w + j * ws;
        for (uint32_t k0 = 0; k0 < n; k0 += 8) {
            uint32_t nk = n - k0 < 8 ? n - k0 : 8;
            for (uint32_t l = 0; l < 8; l++) acc[l] = l < nk ? gw[k0 + l] : 0.0, x[l] = 0.0;
            pg__v8 a = PG__LOAD(acc);
            for (uint32_t m = B; m-- > 0;) {
                const pg__layer *L = &t->layers[first + m];
                if (L->xkind == PG__X_SHARED && nk == 8) {
                    memcpy(x, v + L->x + k0, sizeof x);
                } else {
                    for (uint32_t l = 0; l < nk; l++) x[l] = v[pg__layer_xslot(t, L, k0 + l)];
                }
                if (L->wfirst) a = PG__SPLAT(0.0);
                a = PG__ADD(a, PG__MUL(PG__LOAD(x), PG__SPLAT(G[(size_t)m * J8 + j])));
            }
            PG__STORE(acc, a);
            for (uint32_t l = 0; l < nk; l++) gw[k0 + l] = acc[l];
        }
        uint32_t b = pg__layer_b(t, L0, j);
        double gb = g[b];
        for (uint32_t m = B; m-- > 0;) gb = (t->layers[first + m].bfirst ? 0.0 : gb) + G[(size_t)m * J8 + j];
        g[b] = gb;
    }
}

static void PG__ISA(pg__batch_backward)(const pg_tape *t, uint32_t first, uint32_t B, int act, const double *v,
                                        double *g, const uint8_t *how) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n, J8 = (J + 7) / 8 * 8;
    size_t ws = L0->wstride;
    const double *w = v + L0->w;
    double *G = t->bscratch, acc[8];
    for (uint32_t m = 0; m < B; m++) {
        const pg__layer *L = &t->layers[first + m];
        double *Gm = G + (size_t)m * J8;
        if (act != PG_OP_leaf) { /* (its grads are 0.0 + ... already) */
            PG__ISA(pg__act_grads)(act, J, v + L->sum, v + L->out, v[L0->k], g + L->out, g + L->sum);
            memcpy(Gm, g + L->sum, J * sizeof(double));
        } else {
            for (uint32_t j = 0; j < J; j++) Gm[j] = 0.0 + g[L->sum + j];
        }
        for (uint32_t j = J; j < J8; j++) Gm[j] = 0.0;
    }
    if (J >= 8) PG__ISA(pg__batch_wgrads)(t, first, B, v, g, G, J8);
    else PG__ISA(pg__batch_wgrads_narrow)(t, first, B, v, g, G, J8);
    /* each member's inputs, members last to first (one input can be two members') */
    for (uint32_t m = B; m-- > 0;) {
        if (how[first + m] & PG__DEFER_X) continue;
        const pg__layer *L = &t->layers[first + m];
        const double *Gm = G + (size_t)m * J8;
        const uint8_t *xfirst = t->bytes + L->xfirst;
        int fresh = L->xkind == PG__X_SHARED && L->xallfirst; /* contiguous, each from 0.0 */
        for (uint32_t k0 = 0; k0 < n; k0 += 8) {
            uint32_t nk = n - k0 < 8 ? n - k0 : 8;
            if (!fresh || nk < 8)
                for (uint32_t l = 0; l < 8; l++)
                    acc[l] = l >= nk || xfirst[k0 + l] ? 0.0 : g[pg__layer_xslot(t, L, k0 + l)];
            pg__v8 a = fresh && nk == 8 ? PG__SPLAT(0.0) : PG__LOAD(acc);
            if (nk == 8) {
                for (uint32_t j = J; j-- > 0;) a = PG__ADD(a, PG__MUL(PG__LOAD(w + j * ws + k0), PG__SPLAT(Gm[j])));
            } else {
                double wj[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
                for (uint32_t j = J; j-- > 0;) {
                    memcpy(wj, w + j * ws + k0, nk * sizeof(double));
                    a = PG__ADD(a, PG__MUL(PG__LOAD(wj), PG__SPLAT(Gm[j])));
                }
            }
            if (fresh && nk == 8) {
                PG__STORE(g + L->x + k0, a);
                continue;
            }
            PG__STORE(acc, a);
            for (uint32_t l = 0; l < nk; l++) g[pg__layer_xslot(t, L, k0 + l)] = acc[l];
        }
    }
}
