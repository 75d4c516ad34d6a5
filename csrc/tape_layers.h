/* tape_layers.h: the kernels of a layer step (tape_replay.c; tape_compile.c,
 * "Layers"): its forward (each neuron's dot product, its activation) and its
 * backward (the weights' and inputs' grads, or an SGD step taken as it
 * goes); and, in tape_batches.h, those of a batch step. Written once,
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
    uint32_t j0 = 0;
    if (act == PG_OP_relu) /* eight at a time (PG__RELU: relu_forward, lane by lane), the rest below */
        for (; j0 + 8 <= J; j0 += 8) PG__STORE(out + j0, PG__RELU(PG__LOAD(sum + j0)));
    switch (act) {
#define PG__CASE(name, symbol, arity, takes_k, doc)                       \
    case PG_OP_##name:                                               \
        for (uint32_t j = j0; j < J; j++) {                          \
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

/* 0.0 + relu's backward for eight outputs out and their grads gout (PG__POS:
 * relu_backward's factor, lane by lane). */
static inline pg__v8 PG__ISA(pg__relu_grads8)(const double *out, const double *gout) {
    return PG__ADD(PG__SPLAT(0.0), PG__MUL(PG__POS(PG__LOAD(out)), PG__LOAD(gout)));
}

/* gs[j] = 0.0 + act's backward for neuron j's output grad gout[j]: the grad
 * of its s_n, a first contribution (one parent), for j < J. */
static inline void PG__ISA(pg__act_grads)(int act, uint32_t J, const double *restrict sum,
                                          const double *restrict out, double k, const double *restrict gout,
                                          double *restrict gs) {
    uint32_t j0 = 0;
    if (act == PG_OP_relu) /* eight at a time, the rest below */
        for (; j0 + 8 <= J; j0 += 8) PG__STORE(gs + j0, PG__ISA(pg__relu_grads8)(out + j0, gout + j0));
    switch (act) {
#define PG__CASE(name, symbol, arity, takes_k, doc)                       \
    case PG_OP_##name:                                               \
        for (uint32_t j = j0; j < J; j++) {                          \
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
