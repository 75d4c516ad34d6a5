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
        static uint64_t serials = 0; /* (a tape's session knows its optimizer by it) */
        *o = (pg_optim){*cfg, n, 0, slot, m, v, 0, ++serials};
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

int64_t pg__valid_lrs(const pg_optim *o, const double *lrs, int64_t n) {
    pg_optim_config c = o->cfg;
    for (int64_t i = 0; i < n; i++) {
        c.lr = lrs[i];
        if (!pg__config_ok(&c)) return i;
    }
    return n;
}

int64_t pg_optim_check_lrs(const pg_optim *o, const double *lrs, int64_t n) {
    if (!o || n < 0 || (n > 0 && !lrs)) return PG_EBADOP;
    pg__lock();
    int64_t valid = pg__valid_lrs(o, lrs, n);
    pg__unlock();
    return valid;
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

/* ---- the steps (Tape.train's fused loop calls pg__optim_update too) -------- */

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
