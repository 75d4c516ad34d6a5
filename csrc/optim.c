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
    if (!pg__config_ok(cfg) || n < 0 || (n > 0 && !params) || n > (int64_t)UINT32_MAX) {
        if (status) *status = PG_EBADOP;
        return NULL;
    }
    size_t count = n ? (size_t)n : 1;
    pg__lock(); /* pg__realloc's test hook is the arena's */
    pg_optim *o = pg__realloc(NULL, sizeof *o);
    uint32_t *slot = pg__realloc(NULL, count * sizeof(uint32_t));
    double *m = pg__realloc(NULL, count * sizeof(double));
    double *v = pg__realloc(NULL, count * sizeof(double));
    /* The optimizer holds a reference to each parameter (one per listing). */
    pg__handles h = {params, n, 2, 0};
    uint32_t *found;
    int st = !o || !slot || !m || !v ? PG_ENOMEM : pg__many(&h, 1, slot, 0, n, 0, &found, NULL);
    if (st == PG_OK) {
        *o = (pg_optim){*cfg, n, 0, slot, m, v, 0};
        for (int64_t i = 0; i < n; i++) {
            pg__A.nodes[slot[i]].refs++;
            m[i] = v[i] = 0.0;
        }
    }
    pg__unlock();
    if (st != PG_OK) {
        free(o), free(slot), free(m), free(v);
        o = NULL;
    }
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
    pg__optim_update(o);
    pg__unlock();
    return PG_OK;
}

void pg__optim_zero_grads(pg_optim *o) {
    pg_node *nodes = pg__A.nodes;
    for (int64_t i = 0; i < o->n; i++) nodes[o->slot[i]].grad = 0.0;
}

/* torch.optim.SGD: g += wd * p; buf = momentum * buf + (1 - dampening) * g
 * (buf = g on the first step); g = nesterov ? g + momentum * buf : buf;
 * p -= lr * g. */
static void pg__sgd(pg_optim *o) {
    const pg_optim_config c = o->cfg;
    pg_node *nodes = pg__A.nodes;
    int first = !o->have_m;
    for (int64_t i = 0; i < o->n; i++) {
        pg_node *p = &nodes[o->slot[i]];
        double g = p->grad;
        if (c.weight_decay != 0.0) g = g + c.weight_decay * p->data;
        if (c.momentum != 0.0) {
            o->m[i] = first ? g : o->m[i] * c.momentum + (1.0 - c.dampening) * g;
            g = c.nesterov ? g + c.momentum * o->m[i] : o->m[i];
        }
        p->data -= c.lr * g;
    }
    if (c.momentum != 0.0) o->have_m = 1;
}

/* torch.optim.Adam: m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g * g;
 * p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps). */
static void pg__adam(pg_optim *o) {
    const pg_optim_config c = o->cfg;
    pg_node *nodes = pg__A.nodes;
    double t = (double)o->steps;
    double step_size = c.lr / (1.0 - pow(c.beta1, t));
    double bc2_sqrt = sqrt(1.0 - pow(c.beta2, t));
    double w = 1.0 - c.beta1; /* torch's lerp weight, and its two formulas */
    for (int64_t i = 0; i < o->n; i++) {
        pg_node *p = &nodes[o->slot[i]];
        double g = p->grad;
        if (c.weight_decay != 0.0) g = g + c.weight_decay * p->data;
        double m = o->m[i];
        m = w < 0.5 ? m + w * (g - m) : g - (g - m) * (1.0 - w);
        double v = o->v[i] * c.beta2 + (1.0 - c.beta2) * g * g;
        o->m[i] = m;
        o->v[i] = v;
        p->data += -step_size * (m / (sqrt(v) / bc2_sqrt + c.eps));
    }
}

void pg__optim_update(pg_optim *o) {
    o->steps++;
    if (o->cfg.kind == PG_SGD) pg__sgd(o);
    else pg__adam(o);
}
