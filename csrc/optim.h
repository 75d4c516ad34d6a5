/* optim.h: the optimizers' internals, for the fused training loop
 * (tape_replay.c). Callers hold the arena lock. */
#ifndef PG_OPTIM_H
#define PG_OPTIM_H
#include "arena.h"

struct pg_optim {
    pg_optim_config cfg;
    int64_t n;       /* parameters */
    int64_t steps;   /* steps taken */
    uint32_t *slot;  /* the parameters' slots (the optimizer holds a reference to each) */
    double *m;       /* SGD: the momentum buffer; Adam: the first moment */
    double *v;       /* Adam: the second moment */
    int have_m;      /* SGD: the momentum buffer holds a first step */
    uint64_t serial; /* this optimizer's number, never reused (a tape names its optimizer so) */
};

/* Where pg__optim_update finds the parameters when they are a tape's: with
 * s = slot[i] (first + i where slot is NULL), parameter i's data is read
 * from data[s] and its new data written to next[s] (next may be data), its
 * grad read from grad[s]; but where outside is not NULL and outside[i] is
 * not 0, parameter i is the arena node outside[i], updated in place. */
typedef struct pg__params {
    const double *data;
    double *next;
    const double *grad;
    const uint32_t *slot;
    uint32_t first;
    const uint32_t *outside;
} pg__params;

/* How many of lrs[0 .. n) are valid learning rates for o's config, from the
 * first on (n: all of them; pg_optim_check's rule). */
int64_t pg__valid_lrs(const pg_optim *o, const double *lrs, int64_t n);

/* One step over every parameter: the arena's nodes o->slot[i] where p is
 * NULL, else where p says. */
void pg__optim_update(pg_optim *o, const pg__params *p);

/* torch.optim.SGD's step of one parameter p with grad g: g += wd * p;
 * buf = momentum * buf + (1 - dampening) * g (buf = g on the first step);
 * g = nesterov ? g + momentum * buf : buf; p -= lr * g. m is its momentum
 * buffer (unused with momentum 0: then the step needs no state, and a tape
 * may take it in its backward, tape_replay.c). */
static inline double pg__sgd_step(const pg_optim_config *c, double p, double g, double *m, int first) {
    if (c->weight_decay != 0.0) g = g + c->weight_decay * p;
    if (c->momentum != 0.0) {
        *m = first ? g : *m * c->momentum + (1.0 - c->dampening) * g;
        g = c->nesterov ? g + c->momentum * *m : *m;
    }
    return p - c->lr * g;
}

#endif
