/* tape_batches.h: the kernels of a batch step (tape_batch.c), included
 * after tape_layers.h, whose helpers they use, three times by tape_replay.c
 * (see tape_layers.h). No include guard, on purpose.
 *
 * A batch step runs layers first .. first + B - 1, one per sample, with the
 * same weights: its members. Every number it computes is computed as the
 * member's own layer step computes it, by the same operations in the same
 * order; only what goes side by side in a vector (pg__v8, tape_replay.c)
 * differs:
 *   forward   eight neurons in the lanes, four members at a time, each
 *             neuron's b + w[0]*x[0] + ... in micrograd's order (fewer than
 *             eight neurons: one by one, four members at a time); then the
 *             activation (relu: as the sums are stored);
 *   backward  each weight's and bias's grad, eight neurons in the lanes (or
 *             eight inputs, for fewer than eight neurons), its contributions
 *             added members last to first, the backward order; then each
 *             member's inputs' grads, inputs in the lanes, neurons last to
 *             first (two members at a time where neither shares an input).
 * The batch's scratch (t->bscratch, 64-byte aligned) holds the weights
 * transposed in the forward, and each member's neurons' inner grads 0.0 + g
 * (rows of J rounded up to eight) in the backward. The compiler puts each
 * layer's block of eight or more outputs (and sums) on a 64-byte line
 * (pg__align_slots, tape_compile.c), so that the vectors that load and store
 * them do not straddle two. */

/* Up to four members from layer first on, of which left remain in the
 * batch, into L (the last one again, to fill four): returns how many are
 * real; *shared: all four have their inputs contiguous. */
static inline uint32_t PG__ISA(pg__four_members)(const pg_tape *t, uint32_t first, uint32_t left,
                                                 const pg__layer *L[4], int *shared) {
    uint32_t nm = left < 4 ? left : 4;
    *shared = 1;
    for (uint32_t q = 0; q < 4; q++) {
        L[q] = &t->layers[first + (q < nm ? q : nm - 1)];
        *shared &= L[q]->xkind == PG__X_SHARED;
    }
    return nm;
}

/* The sums of a batch of at least eight neurons: eight neurons in the
 * lanes, four members at a time (four chains of adds), from the weights
 * transposed into scratch (row k: each neuron's weight of input k, rows of
 * J8; then a row of biases), each member's inputs read where they are. */
static void PG__ISA(pg__batch_sums_wide)(const pg_tape *t, uint32_t first, uint32_t B, int relu, double *v) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n, J8 = (J + 7) / 8 * 8;
    size_t ws = L0->wstride;
    double *W = t->bscratch, out[8];
    const double *bias = W + (size_t)n * J8;
    for (uint32_t j = 0; j < J8; j++) {
        for (uint32_t k = 0; k < n; k++) W[(size_t)k * J8 + j] = j < J ? v[L0->w + j * ws + k] : 0.0;
        W[(size_t)n * J8 + j] = j < J ? v[pg__layer_b(t, L0, j)] : 0.0;
    }
    for (uint32_t m0 = 0; m0 < B; m0 += 4) {
        const pg__layer *L[4];
        int shared;
        uint32_t nm = PG__ISA(pg__four_members)(t, first + m0, B - m0, L, &shared);
        for (uint32_t j0 = 0; j0 < J8; j0 += 8) {
            pg__v8 a0 = PG__LOAD(bias + j0), a1 = a0, a2 = a0, a3 = a0;
            if (shared) {
                const double *x0 = v + L[0]->x, *x1 = v + L[1]->x, *x2 = v + L[2]->x, *x3 = v + L[3]->x;
                for (uint32_t k = 0; k < n; k++) {
                    pg__v8 wk = PG__LOAD(W + (size_t)k * J8 + j0);
                    a0 = PG__ADD(a0, PG__MUL(wk, PG__SPLAT(x0[k])));
                    a1 = PG__ADD(a1, PG__MUL(wk, PG__SPLAT(x1[k])));
                    a2 = PG__ADD(a2, PG__MUL(wk, PG__SPLAT(x2[k])));
                    a3 = PG__ADD(a3, PG__MUL(wk, PG__SPLAT(x3[k])));
                }
            } else {
                for (uint32_t k = 0; k < n; k++) {
                    pg__v8 wk = PG__LOAD(W + (size_t)k * J8 + j0);
                    a0 = PG__ADD(a0, PG__MUL(wk, PG__SPLAT(v[pg__layer_xslot(t, L[0], k)])));
                    a1 = PG__ADD(a1, PG__MUL(wk, PG__SPLAT(v[pg__layer_xslot(t, L[1], k)])));
                    a2 = PG__ADD(a2, PG__MUL(wk, PG__SPLAT(v[pg__layer_xslot(t, L[2], k)])));
                    a3 = PG__ADD(a3, PG__MUL(wk, PG__SPLAT(v[pg__layer_xslot(t, L[3], k)])));
                }
            }
            uint32_t nj = J - j0 < 8 ? J - j0 : 8;
            pg__v8 a[4] = {a0, a1, a2, a3};
            for (uint32_t q = 0; q < nm; q++) {
                if (nj == 8) {
                    PG__STORE(v + L[q]->sum + j0, a[q]);
                    if (relu) PG__STORE(v + L[q]->out + j0, PG__RELU(a[q]));
                    continue;
                }
                PG__STORE(out, a[q]);
                memcpy(v + L[q]->sum + j0, out, nj * sizeof(double));
                if (!relu) continue;
                PG__STORE(out, PG__RELU(a[q]));
                memcpy(v + L[q]->out + j0, out, nj * sizeof(double));
            }
        }
    }
}

/* The same for fewer than eight neurons: neuron by neuron, four members at
 * a time, each sum a chain of its own (no lanes: lanes of samples would
 * need each member's inputs gathered, which costs more than they save). */
static void PG__ISA(pg__batch_sums_narrow)(const pg_tape *t, uint32_t first, uint32_t B, double *v) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n;
    size_t ws = L0->wstride;
    for (uint32_t m0 = 0; m0 < B; m0 += 4) {
        const pg__layer *L[4];
        int shared;
        uint32_t nm = PG__ISA(pg__four_members)(t, first + m0, B - m0, L, &shared);
        for (uint32_t j = 0; j < J; j++) {
            const double *wj = v + L0->w + j * ws;
            double a0 = v[pg__layer_b(t, L0, j)], a1 = a0, a2 = a0, a3 = a0;
            if (shared) {
                const double *x0 = v + L[0]->x, *x1 = v + L[1]->x, *x2 = v + L[2]->x, *x3 = v + L[3]->x;
                for (uint32_t k = 0; k < n; k++) {
                    a0 = a0 + wj[k] * x0[k];
                    a1 = a1 + wj[k] * x1[k];
                    a2 = a2 + wj[k] * x2[k];
                    a3 = a3 + wj[k] * x3[k];
                }
            } else {
                for (uint32_t k = 0; k < n; k++) {
                    a0 = a0 + wj[k] * v[pg__layer_xslot(t, L[0], k)];
                    a1 = a1 + wj[k] * v[pg__layer_xslot(t, L[1], k)];
                    a2 = a2 + wj[k] * v[pg__layer_xslot(t, L[2], k)];
                    a3 = a3 + wj[k] * v[pg__layer_xslot(t, L[3], k)];
                }
            }
            double a[4] = {a0, a1, a2, a3};
            for (uint32_t q = 0; q < nm; q++) v[L[q]->sum + j] = a[q];
        }
    }
}

static int PG__ISA(pg__batch_forward)(const pg_tape *t, uint32_t first, uint32_t B, int act, double *v,
                                      uint32_t *member, uint32_t *bad) {
    const pg__layer *L0 = &t->layers[first];
    int wide = L0->nneurons >= 8;
    if (wide) PG__ISA(pg__batch_sums_wide)(t, first, B, act == PG_OP_relu, v); /* (and relu's outputs) */
    else PG__ISA(pg__batch_sums_narrow)(t, first, B, v);
    if (act == PG_OP_leaf || (wide && act == PG_OP_relu)) return PG_OK;
    for (uint32_t m = 0; m < B; m++) {
        const pg__layer *L = &t->layers[first + m];
        int status = PG__ISA(pg__activate_all)(act, L0->nneurons, v + L->sum, v[L0->k], v + L->out, bad);
        if (status != PG_OK) return *member = m, status;
    }
    return PG_OK;
}

/* The weights' and biases' grads of a batch of at least eight neurons:
 * eight neurons in the lanes, the weights of four inputs (or the biases) at
 * a time, their contributions added members last to first. */
static void PG__ISA(pg__batch_wgrads)(const pg_tape *t, uint32_t first, uint32_t B, const double *v, double *g,
                                      const double *G, uint32_t J8) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n;
    size_t ws = L0->wstride;
    double acc[4][8];
    int shared = 1;
    for (uint32_t m = 0; m < B; m++) shared &= t->layers[first + m].xkind == PG__X_SHARED;
    for (uint32_t j0 = 0; j0 < J; j0 += 8) {
        uint32_t nj = J - j0 < 8 ? J - j0 : 8;
        for (uint32_t k0 = 0; k0 <= n; k0 += 4) {
            uint32_t nk = n + 1 - k0 < 4 ? n + 1 - k0 : 4, kw = k0 + 4 <= n ? 4 : n - k0; /* kw weights, then a bias */
            for (uint32_t q = 0; q < 4; q++)
                for (uint32_t l = 0; l < 8; l++)
                    acc[q][l] = q >= nk || l >= nj ? 0.0
                                : g[k0 + q < n ? L0->w + (j0 + l) * ws + k0 + q : pg__layer_b(t, L0, j0 + l)];
            pg__v8 a0 = PG__LOAD(acc[0]), a1 = PG__LOAD(acc[1]), a2 = PG__LOAD(acc[2]), a3 = PG__LOAD(acc[3]);
            pg__v8 zero = PG__SPLAT(0.0);
            if (kw == 4 && shared) { /* four weights, each member's inputs contiguous */
                for (uint32_t m = B; m-- > 0;) {
                    const pg__layer *L = &t->layers[first + m];
                    const double *x = v + L->x + k0;
                    pg__v8 gm = PG__LOAD(G + (size_t)m * J8 + j0);
                    if (L->wfirst) a0 = a1 = a2 = a3 = zero; /* the first contribution: assigned (0.0 + c) */
                    a0 = PG__ADD(a0, PG__MUL(PG__SPLAT(x[0]), gm));
                    a1 = PG__ADD(a1, PG__MUL(PG__SPLAT(x[1]), gm));
                    a2 = PG__ADD(a2, PG__MUL(PG__SPLAT(x[2]), gm));
                    a3 = PG__ADD(a3, PG__MUL(PG__SPLAT(x[3]), gm));
                }
            } else if (kw == 0) { /* the biases alone */
                for (uint32_t m = B; m-- > 0;)
                    a0 = PG__ADD(t->layers[first + m].bfirst ? zero : a0, PG__LOAD(G + (size_t)m * J8 + j0));
            } else {
                for (uint32_t m = B; m-- > 0;) {
                    const pg__layer *L = &t->layers[first + m];
                    pg__v8 gm = PG__LOAD(G + (size_t)m * J8 + j0);
                    double x[4] = {0.0, 0.0, 0.0, 0.0};
                    for (uint32_t q = 0; q < kw; q++) x[q] = v[shared ? L->x + k0 + q : pg__layer_xslot(t, L, k0 + q)];
                    if (L->wfirst) { /* (kw is 1 to 3 here) */
                        a0 = zero;
                        if (kw > 1) a1 = zero;
                        if (kw > 2) a2 = zero;
                        if (kw > 3) a3 = zero;
                    }
                    if (kw < 4 && L->bfirst) { /* the bias's lane row is kw */
                        if (kw == 1) a1 = zero;
                        if (kw == 2) a2 = zero;
                        if (kw == 3) a3 = zero;
                    }
                    /* rows below kw: x * g; row kw (if < 4): the bias, + g; rows past it: unused */
                    a0 = PG__ADD(a0, PG__MUL(PG__SPLAT(x[0]), gm));
                    if (nk > 1) a1 = PG__ADD(a1, kw > 1 ? PG__MUL(PG__SPLAT(x[1]), gm) : gm);
                    if (nk > 2) a2 = PG__ADD(a2, kw > 2 ? PG__MUL(PG__SPLAT(x[2]), gm) : gm);
                    if (nk > 3) a3 = PG__ADD(a3, kw > 3 ? PG__MUL(PG__SPLAT(x[3]), gm) : gm);
                }
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

/* A member whose inputs are contiguous and each get their first contribution from it. */
static inline int PG__ISA(pg__fresh)(const pg__layer *L) { return L->xkind == PG__X_SHARED && L->xallfirst; }

/* Inputs k0 .. n - 1 of member L's grads from its neurons' inner grads Gm:
 * inputs in the lanes, neurons last to first. */
static void PG__ISA(pg__member_xgrads)(const pg_tape *t, const pg__layer *L, const double *w, double *g,
                                       const double *Gm, uint32_t k0) {
    uint32_t J = L->nneurons, n = L->n;
    size_t ws = L->wstride;
    const uint8_t *xfirst = t->bytes + L->xfirst;
    int fresh = PG__ISA(pg__fresh)(L); /* contiguous, each from 0.0 */
    double acc[8];
    if (fresh)
        for (; k0 + 16 <= n; k0 += 16) { /* sixteen at a time: each grad splat once for both */
            pg__v8 a = PG__SPLAT(0.0), b = a;
            for (uint32_t j = J; j-- > 0;) {
                pg__v8 gj = PG__SPLAT(Gm[j]);
                a = PG__ADD(a, PG__MUL(PG__LOAD(w + j * ws + k0), gj));
                b = PG__ADD(b, PG__MUL(PG__LOAD(w + j * ws + k0 + 8), gj));
            }
            PG__STORE(g + L->x + k0, a), PG__STORE(g + L->x + k0 + 8, b);
        }
    for (; k0 + 8 <= n; k0 += 8) {
        if (!fresh)
            for (uint32_t l = 0; l < 8; l++) acc[l] = xfirst[k0 + l] ? 0.0 : g[pg__layer_xslot(t, L, k0 + l)];
        pg__v8 a = fresh ? PG__SPLAT(0.0) : PG__LOAD(acc);
        for (uint32_t j = J; j-- > 0;) a = PG__ADD(a, PG__MUL(PG__LOAD(w + j * ws + k0), PG__SPLAT(Gm[j])));
        if (fresh) {
            PG__STORE(g + L->x + k0, a);
            continue;
        }
        PG__STORE(acc, a);
        for (uint32_t l = 0; l < 8; l++) g[pg__layer_xslot(t, L, k0 + l)] = acc[l];
    }
    for (; k0 < n; k0++) { /* the last few, one by one */
        uint32_t s = pg__layer_xslot(t, L, k0);
        double a = xfirst[k0] ? 0.0 : g[s];
        for (uint32_t j = J; j-- > 0;) a = a + w[j * ws + k0] * Gm[j];
        g[s] = a;
    }
}

static void PG__ISA(pg__batch_backward)(const pg_tape *t, uint32_t first, uint32_t B, int act, const double *v,
                                        double *g, const uint8_t *how) {
    const pg__layer *L0 = &t->layers[first];
    uint32_t J = L0->nneurons, n = L0->n, J8 = (J + 7) / 8 * 8;
    size_t ws = L0->wstride;
    const double *w = v + L0->w;
    double *G = t->bscratch;
    for (uint32_t m = 0; m < B; m++) {
        const pg__layer *L = &t->layers[first + m];
        double *Gm = G + (size_t)m * J8;
        if (act == PG_OP_relu && J % 8 == 0) { /* act_grads's, inline */
            for (uint32_t j0 = 0; j0 < J; j0 += 8) {
                pg__v8 gs = PG__ISA(pg__relu_grads8)(v + L->out + j0, g + L->out + j0);
                PG__STORE(g + L->sum + j0, gs), PG__STORE(Gm + j0, gs);
            }
            continue;
        }
        PG__STORE(Gm + J8 - 8, PG__SPLAT(0.0)); /* (the lanes past J stay 0.0) */
        if (act != PG_OP_leaf) { /* (its grads are 0.0 + ... already) */
            PG__ISA(pg__act_grads)(act, J, v + L->sum, v + L->out, v[L0->k], g + L->out, g + L->sum);
            memcpy(Gm, g + L->sum, J * sizeof(double));
        } else {
            for (uint32_t j = 0; j < J; j++) Gm[j] = 0.0 + g[L->sum + j];
        }
    }
    if (J >= 8) PG__ISA(pg__batch_wgrads)(t, first, B, v, g, G, J8);
    else PG__ISA(pg__batch_wgrads_narrow)(t, first, B, v, g, G, J8);
    /* each member's inputs, members last to first (one input can be two members') */
    for (uint32_t m = B; m-- > 0;) {
        if (how[first + m] & PG__DEFER_X) continue;
        const pg__layer *L = &t->layers[first + m], *P = m > 0 ? L - 1 : NULL;
        const double *Gm = G + (size_t)m * J8;
        uint32_t k0 = 0;
        if (PG__ISA(pg__fresh)(L) && P && !(how[first + m - 1] & PG__DEFER_X) && PG__ISA(pg__fresh)(P)) {
            /* and the next member alongside: four chains of adds instead of two (each input's
             * first contribution is its member's, so neither member has the other's inputs) */
            const double *Gp = Gm - J8;
            for (; k0 + 16 <= n; k0 += 16) {
                pg__v8 a = PG__SPLAT(0.0), b = a, c = a, d = a;
                for (uint32_t j = J; j-- > 0;) {
                    pg__v8 w0 = PG__LOAD(w + j * ws + k0), w1 = PG__LOAD(w + j * ws + k0 + 8);
                    pg__v8 gm = PG__SPLAT(Gm[j]), gp = PG__SPLAT(Gp[j]);
                    a = PG__ADD(a, PG__MUL(w0, gm));
                    b = PG__ADD(b, PG__MUL(w1, gm));
                    c = PG__ADD(c, PG__MUL(w0, gp));
                    d = PG__ADD(d, PG__MUL(w1, gp));
                }
                PG__STORE(g + L->x + k0, a), PG__STORE(g + L->x + k0 + 8, b);
                PG__STORE(g + P->x + k0, c), PG__STORE(g + P->x + k0 + 8, d);
            }
            if (k0 < n) PG__ISA(pg__member_xgrads)(t, L, w, g, Gm, k0), PG__ISA(pg__member_xgrads)(t, P, w, g, Gp, k0);
            m--;
            continue;
        }
        PG__ISA(pg__member_xgrads)(t, L, w, g, Gm, k0);
    }
}
