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

/* ---- settings: the one place their rules are written ------------------- */

/* Each setting's rule, as a message says it. pg_optim_check tests exactly
 * these; Python reports them (pygrad/optim.py) and checks nothing itself.
 * The rules are torch.optim's (it raises ValueError for a negative lr,
 * momentum, weight_decay or eps, betas outside [0, 1), and Nesterov without
 * momentum or with dampening), plus: every number finite (NaN or infinity
 * would make every parameter NaN at the first step). */
static const struct { const char *name, *rule; } pg__settings[] = {
    [PG_OPTIM_KIND] = {"kind", "PG_SGD or PG_ADAM"},
    [PG_OPTIM_LR] = {"lr", "a finite number >= 0"},
    [PG_OPTIM_MOMENTUM] = {"momentum", "a finite number >= 0"},
    [PG_OPTIM_DAMPENING] = {"dampening", "a finite number"},
    [PG_OPTIM_WEIGHT_DECAY] = {"weight_decay", "a finite number >= 0"},
    [PG_OPTIM_NESTEROV] = {"nesterov", "false unless momentum > 0 and dampening is 0"},
    [PG_OPTIM_BETA1] = {"beta1", "a number in [0, 1)"},
    [PG_OPTIM_BETA2] = {"beta2", "a number in [0, 1)"},
    [PG_OPTIM_EPS] = {"eps", "a finite number >= 0"},
};
#define PG__NSETTINGS ((int)(sizeof pg__settings / sizeof pg__settings[0]))

static int pg__finite_non_negative(double x) { return x >= 0.0 && isfinite(x); }
static int pg__unit(double x) { return x >= 0.0 && x < 1.0; } /* NaN fails */

int pg_optim_check(const pg_optim_config *c) {
    if (!c || (c->kind != PG_SGD && c->kind != PG_ADAM)) return PG_OPTIM_KIND;
    if (!pg__finite_non_negative(c->lr)) return PG_OPTIM_LR;
    if (!pg__finite_non_negative(c->weight_decay)) return PG_OPTIM_WEIGHT_DECAY;
    if (c->kind == PG_SGD) {
        if (!pg__finite_non_negative(c->momentum)) return PG_OPTIM_MOMENTUM;
        if (!isfinite(c->dampening)) return PG_OPTIM_DAMPENING;
        if (c->nesterov && !(c->momentum > 0.0 && c->dampening == 0.0)) return PG_OPTIM_NESTEROV;
        return PG_OPTIM_VALID;
    }
    if (!pg__unit(c->beta1)) return PG_OPTIM_BETA1;
    if (!pg__unit(c->beta2)) return PG_OPTIM_BETA2;
    if (!pg__finite_non_negative(c->eps)) return PG_OPTIM_EPS;
    return PG_OPTIM_VALID;
}

const char *pg_optim_setting_name(int setting) {
    return setting > 0 && setting < PG__NSETTINGS ? pg__settings[setting].name : "";
}

const char *pg_optim_rule(int setting) {
    return setting > 0 && setting < PG__NSETTINGS ? pg__settings[setting].rule : "";
}

static int pg__config_ok(const pg_optim_config *c) { return pg_optim_check(c) == PG_OPTIM_VALID; }

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

/* ---- state, for checkpoints: new functions, kept apart from the steps ---- */

int64_t pg_optim_size(const pg_optim *o) {
    return o ? o->n : PG_EBADOP;
}

int pg_optim_get_state(const pg_optim *o, int64_t *steps, int *has_momentum, double *m, double *v,
                       int64_t n) {
    if (!o || !steps || !has_momentum || n != o->n || (n > 0 && (!m || !v))) return PG_EBADOP;
    pg__lock();
    *steps = o->steps;
    *has_momentum = o->have_m;
    for (int64_t i = 0; i < n; i++) m[i] = o->m[i], v[i] = o->v[i];
    pg__unlock();
    return PG_OK;
}

int pg_optim_set_state(pg_optim *o, int64_t steps, int has_momentum, const double *m,
                       const double *v, int64_t n) {
    if (!o || steps < 0 || (has_momentum != 0 && has_momentum != 1) || n != o->n ||
        (n > 0 && (!m || !v)))
        return PG_EBADOP;
    for (int64_t i = 0; i < n; i++) /* a second moment is a sum of squares (or NaN) */
        if (v[i] < 0.0) return PG_EBADOP;
    pg__lock();
    o->steps = steps;
    o->have_m = has_momentum;
    for (int64_t i = 0; i < n; i++) o->m[i] = m[i], o->v[i] = v[i];
    pg__unlock();
    return PG_OK;
}

/* ---- the steps (the fused loop in tape.c calls these too) ---------------- */

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
