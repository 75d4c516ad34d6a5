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

/* One step over every parameter: the arena's nodes o->slot[i] where p is
 * NULL, else where p says. */
void pg__optim_update(pg_optim *o, const pg__params *p);

#endif
