/* optim.h: the optimizers' internals, for the fused training loop (tape.c).
 * Callers hold the arena lock. */
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
};

/* Zero the parameters' grads. */
void pg__optim_zero_grads(pg_optim *o);
/* One step over every parameter. */
void pg__optim_update(pg_optim *o);

#endif
