/* optim.c: SGD and Adam, one step over every parameter per call.
 *
 * Each update is PyTorch's (torch/optim/sgd.py and adam.py, the single-tensor
 * path), operation for operation, so a model trained here and with
 * torch.optim agrees to rounding; plain SGD is the tutorials'
 * p.data -= lr * p.grad to the bit.
 */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

/* Settings torch.optim would accept (it raises ValueError otherwise). NaN
 * fails every test, as in torch. */
static int pg__config_ok(const pg_optim_config *c) {
    if (!c || (c->kind != PG_SGD && c->kind != PG_ADAM)) return 0;
    if (!(c->lr >= 0.0) || !(c->weight_decay >= 0.0) || isinf(c->lr)) return 0;
    if (c->kind == PG_SGD)
        return c->momentum >= 0.0 && isfinite(c->dampening) &&
               (!c->nesterov || (c->momentum > 0.0 && c->dampening == 0.0));
    return c->beta1 >= 0.0 && c->beta1 < 1.0 && c->beta2 >= 0.0 && c->beta2 < 1.0 && c->eps >= 0.0;
}

pg_optim *pg_optim_new(const pg_optim_config *cfg, const pg_id *params, int64_t n, int *status) {
    int st = PG_OK;
    pg_optim *o = NULL;
    if (!pg__config_ok(cfg) || n < 0 || (n > 0 && !params) || n > (int64_t)UINT32_MAX) {
        st = PG_EBADOP;
        goto done;
    }
    o = pg__realloc(NULL, sizeof *o);
    size_t count = n ? (size_t)n : 1;
    uint32_t *slot = pg__realloc(NULL, count * sizeof(uint32_t));
    double *m = pg__realloc(NULL, count * sizeof(double));
    double *v = pg__realloc(NULL, count * sizeof(double));
    if (!o || !slot || !m || !v) {
        free(o), free(slot), free(m), free(v);
        o = NULL;
        st = PG_ENOMEM;
        goto done;
    }
    *o = (pg_optim){*cfg, n, 0, slot, m, v, 0, 0};
    pg__lock();
    static uint64_t serials = 0;
    o->serial = ++serials;
    st = pg__lookup_n(params, n, slot, 0);
    for (int64_t i = 0; i < n && st == PG_OK; i++)
        if (pg__A.nodes[slot[i]].refs > UINT32_MAX - (uint32_t)n) st = PG_ELIMIT;
    if (st == PG_OK)
        for (int64_t i = 0; i < n; i++) {
            pg__A.nodes[slot[i]].refs++;
            m[i] = v[i] = 0.0;
        }
    pg__unlock();
    if (st != PG_OK) {
        free(o), free(slot), free(m), free(v);
        o = NULL;
    }
done:
    if (status) *status = st;
    return o;
}

void pg_optim_free(pg_optim *o) {
    if (!o) return;
    pg__lock();
    for (int64_t i = 0; i < o->n; i++) pg__release(o->slot[i]);
    pg__unlock();
    free(o->slot), free(o->m), free(o->v), free(o);
}

int pg_optim_configure(pg_optim *o, const pg_optim_config *cfg) {
    if (!o || !pg__config_ok(cfg) || cfg->kind != o->cfg.kind) return PG_EBADOP;
    pg__lock();
    o->cfg = *cfg;
    pg__unlock();
    return PG_OK;
}

int64_t pg_optim_steps(const pg_optim *o) {
    if (!o) return PG_EBADOP;
    pg__lock();
    int64_t r = o->steps;
    pg__unlock();
    return r;
}

int pg_optim_step(pg_optim *o) {
    if (!o) return PG_EBADOP;
    pg__lock();
    if (pg__A.pending) pg__tape_settle(); /* the parameters' grads may be in a tape's arrays */
    pg__optim_update(o, NULL);
    pg__unlock();
    return PG_OK;
}

/* Parameter i of o: where its data is read and its new data written, and its grad. */
static inline void pg__param(const pg_optim *o, const pg__params *p, int64_t i, const double **data,
                             double **next, double *grad) {
    if (!p || (p->outside && p->outside[i])) {
        pg_node *n = &pg__A.nodes[p ? p->outside[i] : o->slot[i]];
        *data = *next = &n->data;
        *grad = n->grad;
    } else {
        uint32_t s = p->slot ? p->slot[i] : p->first + (uint32_t)i;
        *data = p->data + s, *next = p->next + s;
        *grad = p->grad[s];
    }
}

static void pg__sgd(pg_optim *o, const pg__params *p) {
    const pg_optim_config c = o->cfg;
    int first = !o->have_m;
    if (p && !p->slot && !p->outside && c.momentum == 0.0) {
        /* a tape's parameters in one run of slots (an MLP's): a plain loop */
        const double *data = p->data + p->first, *grad = p->grad + p->first;
        double *next = p->next + p->first;
        for (int64_t i = 0; i < o->n; i++) next[i] = pg__sgd_step(&c, data[i], grad[i], NULL, 0);
    } else if (p && !p->outside && c.momentum == 0.0) { /* a tape's, anywhere */
        for (int64_t i = 0; i < o->n; i++) {
            uint32_t at = p->slot[i];
            p->next[at] = pg__sgd_step(&c, p->data[at], p->grad[at], NULL, 0);
        }
    } else {
        for (int64_t i = 0; i < o->n; i++) {
            const double *data;
            double *next, grad;
            pg__param(o, p, i, &data, &next, &grad);
            *next = pg__sgd_step(&c, *data, grad, &o->m[i], first);
        }
    }
    if (c.momentum != 0.0) o->have_m = 1;
}

/* torch.optim.Adam: m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g * g;
 * p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps). */
static void pg__adam(pg_optim *o, const pg__params *p) {
    const pg_optim_config c = o->cfg;
    double t = (double)o->steps;
    double step_size = c.lr / (1.0 - pow(c.beta1, t));
    double bc2_sqrt = sqrt(1.0 - pow(c.beta2, t));
    double w = 1.0 - c.beta1; /* torch's lerp weight, and its two formulas */
    for (int64_t i = 0; i < o->n; i++) {
        const double *data;
        double *next, g;
        pg__param(o, p, i, &data, &next, &g);
        if (c.weight_decay != 0.0) g = g + c.weight_decay * *data;
        double m = o->m[i];
        m = w < 0.5 ? m + w * (g - m) : g - (g - m) * (1.0 - w);
        double v = o->v[i] * c.beta2 + (1.0 - c.beta2) * g * g;
        o->m[i] = m;
        o->v[i] = v;
        *next = *data + -step_size * (m / (sqrt(v) / bc2_sqrt + c.eps));
    }
}

void pg__optim_update(pg_optim *o, const pg__params *p) {
    o->steps++;
    if (o->cfg.kind == PG_SGD) pg__sgd(o, p);
    else pg__adam(o, p);
}
