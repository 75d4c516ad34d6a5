/* arena.c: the node arena (see the legend in arena.h): the lock, allocation,
 * making and freeing nodes, giving memory back, the public calls that read
 * and write nodes, and pg__many, the way in of every call on many nodes. */
#include "arena.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* The arena lock. Python calls the library holding the GIL (see
 * pygrad/_ffi_build.py), so it is rarely contended; it guards C callers and
 * any cffi that releases the GIL. (A spinlock measured no faster.) */
#ifdef _WIN32
#include <windows.h>
static SRWLOCK pg__mutex = SRWLOCK_INIT;
void pg__lock(void) { AcquireSRWLockExclusive(&pg__mutex); }
void pg__unlock(void) { ReleaseSRWLockExclusive(&pg__mutex); }
#else
#include <pthread.h>
static pthread_mutex_t pg__mutex = PTHREAD_MUTEX_INITIALIZER;
void pg__lock(void) { pthread_mutex_lock(&pg__mutex); }
void pg__unlock(void) { pthread_mutex_unlock(&pg__mutex); }
#endif

pg__arena pg__A = {.epoch = 1, .fresh_gen = 1};

/* Slots are indexed by uint32_t and index 0 is reserved. */
#define PG__MAX_SLOTS ((uint32_t)0xFFFFFFFFu)
#define PG__MIN_SLOTS 1024u
/* Arenas smaller than this (3 MB of nodes) are never trimmed. */
#define PG__TRIM_MIN_SLOTS (1u << 16)

// ----------------------------------------------------------------------------
// allocation

/* Counts down to a forced failure when positive (pg_debug_fail_alloc). */
static int64_t pg__fail_countdown = 0;

int64_t pg_debug_fail_alloc(int64_t n) {
    pg__lock();
    int64_t left = pg__fail_countdown;
    pg__fail_countdown = n > 0 ? n : 0;
    pg__unlock();
    return left;
}

void *pg__realloc(void *p, size_t bytes) {
    if (pg__fail_countdown > 0 && --pg__fail_countdown == 0) return NULL;
    return realloc(p, bytes);
}

int pg__grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return PG_OK;
    size_t want = *cap ? *cap : 64;
    while (want < need) {
        if (want > SIZE_MAX / 2) return PG_ENOMEM;
        want *= 2;
    }
    if (want > SIZE_MAX / elem) return PG_ENOMEM;
    void *p = pg__realloc(*buf, want * elem);
    if (!p) return PG_ENOMEM;
    *buf = p;
    *cap = want;
    return PG_OK;
}

// ----------------------------------------------------------------------------
// making and freeing nodes

/* The next generation of a slot: 31 bits, so a handle is never negative. */
static uint32_t pg__next_gen(uint32_t gen) { return gen == 0x7FFFFFFFu ? 1 : gen + 1; }

int pg__reserve(uint32_t n) {
    if (pg__A.limit > 0 && pg__A.live + n > pg__A.limit) return PG_ELIMIT;
    /* Every slot handed out (but slot 0) is live or on the free list. */
    int64_t nfree = pg__A.size ? (int64_t)pg__A.size - 1 - pg__A.live : 0;
    uint32_t fresh = nfree >= n ? 0 : n - (uint32_t)nfree;
    if (fresh == 0) return PG_OK;
    if (pg__A.size > PG__MAX_SLOTS - fresh) return PG_ELIMIT;
    size_t need = (size_t)pg__A.size + fresh;
    if (pg__A.size == 0) need += 1; /* slot 0 is reserved */
    if (need <= pg__A.cap) return PG_OK;
    size_t cap = pg__A.cap;
    if (need < PG__MIN_SLOTS) need = PG__MIN_SLOTS;
    void *nodes = pg__A.nodes;
    int status = pg__grow(&nodes, &cap, need, sizeof(pg_node));
    if (status != PG_OK) return status;
    if (cap > PG__MAX_SLOTS) cap = PG__MAX_SLOTS;
    pg__A.nodes = nodes;
    pg__A.cap = (uint32_t)cap;
    pg__A.trim_at = cap >= PG__TRIM_MIN_SLOTS ? (int64_t)(cap / 4) : 0;
    if (pg__A.size == 0) {
        memset(&pg__A.nodes[0], 0, sizeof(pg_node));
        pg__A.nodes[0].op = PG_OP_FREE;
        pg__A.size = pg__A.free_above = 1;
    }
    return PG_OK;
}

void pg__release(uint32_t index) {
    if (--pg__A.nodes[index].refs || pg__A.nodes[index].handles) return;
    /* Nodes whose last reference is gone wait on a stack linked through
     * their `next` field, so a chain of any length is freed without
     * recursion and without allocating. */
    pg__A.nodes[index].next = 0;
    uint32_t pending = index;
    while (pending) {
        pg_node *n = &pg__A.nodes[pending];
        uint32_t freed = pending;
        pending = n->next;
        for (int c = 0; c < 2; c++) {
            uint32_t ch = n->child[c];
            if (ch && --pg__A.nodes[ch].refs == 0 && !pg__A.nodes[ch].handles) {
                pg__A.nodes[ch].next = pending;
                pending = ch;
            }
        }
        n->op = PG_OP_FREE;
        n->gen = pg__next_gen(n->gen);
        n->next = pg__A.free_head;
        pg__A.free_head = freed;
        pg__A.live--;
        pg__A.freed++;
    }
}

void pg__unhold(uint32_t index) {
    pg_node *n = &pg__A.nodes[index];
    if (--n->handles || n->refs) return;
    n->refs = 1; /* freed as the last of its references goes */
    pg__release(index);
}

/* Release scratch buffers bigger than an arena of cap slots needs. */
static void pg__drop_scratch(void **buf, size_t *cap, size_t keep) {
    if (*cap > keep) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
    }
}

/* Live nodes fell below a quarter of the arena: if the slots above the
 * highest live one are three quarters of it, give them back (and the sort's
 * scratch buffers that a graph that big needed). Slots are never moved, so
 * every handle stays valid; a slot given back is handed out later at a
 * generation above any it had, so a stale handle never comes alive.
 *
 * Cost. The search for the highest live slot goes down from free_above, so
 * no slot is looked at twice unless a node was made above it in between;
 * and it runs only while the slots looked at are fewer than the nodes freed,
 * so it costs O(1) per free, amortized. Giving back rebuilds the free list
 * of the slots kept: O(slots kept), a quarter of those given back. */
static void pg__trim(void) {
    uint32_t top = pg__A.free_above;
    while (top > 1 && pg__A.nodes[top - 1].op == PG_OP_FREE) {
        top--;
        if (pg__A.nodes[top].gen >= pg__A.fresh_gen)
            pg__A.fresh_gen = pg__next_gen(pg__A.nodes[top].gen);
    }
    /* top: one past the highest live slot (1 if none is live). */
    pg__A.scanned += pg__A.free_above - top;
    pg__A.free_above = top;
    if ((size_t)top > pg__A.cap / 4) return;
    pg__A.size = top;
    pg__A.free_head = 0;
    for (uint32_t i = top; i-- > 1;) { /* lowest first: new nodes fill the bottom */
        if (pg__A.nodes[i].op == PG_OP_FREE) {
            pg__A.nodes[i].next = pg__A.free_head;
            pg__A.free_head = i;
        }
    }
    size_t cap = 2 * (size_t)top < PG__MIN_SLOTS ? PG__MIN_SLOTS : 2 * (size_t)top;
    void *nodes = pg__realloc(pg__A.nodes, cap * sizeof(pg_node));
    if (nodes) { /* else the bigger block stays: still correct */
        pg__A.nodes = nodes;
        pg__A.cap = (uint32_t)cap;
    }
    pg__A.trim_at = pg__A.cap >= PG__TRIM_MIN_SLOTS ? (int64_t)(pg__A.cap / 4) : 0;
    void *buf = pg__A.stack;
    pg__drop_scratch(&buf, &pg__A.stack_cap, cap);
    pg__A.stack = buf;
    buf = pg__A.order;
    pg__drop_scratch(&buf, &pg__A.order_cap, cap);
    pg__A.order = buf;
    buf = pg__A.scratch;
    pg__drop_scratch(&buf, &pg__A.scratch_cap, cap);
    pg__A.scratch = buf;
}

void pg__trim_check(void) {
    if (pg__A.live < pg__A.trim_at && pg__A.scanned <= pg__A.freed) pg__trim();
}

// ----------------------------------------------------------------------------
// public: reading and writing nodes

/* Run `expr` on the node named by `id` under the lock; `fail` if bad. */
#define PG__WITH_NODE(id, fail, expr)          \
    do {                                       \
        pg__lock();                            \
        uint32_t i_ = pg__lookup(id);          \
        if (!i_) {                             \
            pg__unlock();                      \
            return (fail);                     \
        }                                      \
        pg_node *n_ = &pg__A.nodes[i_];        \
        (void)n_;                              \
        expr;                                  \
    } while (0)

/* Return expr (of the node n_, slot i_), computed under the lock; fail if
 * id is not a live handle. */
#define PG__NODE_GET(type, id, fail, expr)       \
    do {                                         \
        type r_;                                 \
        PG__WITH_NODE(id, fail, r_ = (expr));    \
        pg__unlock();                            \
        return r_;                               \
    } while (0)

double pg_data(pg_id id) { PG__NODE_GET(double, id, NAN, n_->data); }
double pg_grad(pg_id id) { PG__NODE_GET(double, id, NAN, n_->grad); }
double pg_k(pg_id id) { PG__NODE_GET(double, id, NAN, n_->k); }
int pg_set_data(pg_id id, double data) { PG__NODE_GET(int, id, PG_EBADID, (n_->data = data, PG_OK)); }
int pg_set_grad(pg_id id, double grad) { PG__NODE_GET(int, id, PG_EBADID, (n_->grad = grad, PG_OK)); }
int pg_valid(pg_id id) { PG__NODE_GET(int, id, 0, 1); }
int pg_op(pg_id id) { PG__NODE_GET(int, id, PG_EBADID, n_->op); }

pg_id pg_child(pg_id id, int c) {
    if (c < 0 || c > 1) return PG_EBADOP;
    PG__NODE_GET(pg_id, id, PG_EBADID, n_->child[c] ? pg__handle(n_->child[c]) : 0);
}

int pg_retain(pg_id id) {
    int r = PG_OK;
    PG__WITH_NODE(id, PG_EBADID,
                  if (n_->handles < PG__MAX_HANDLES) n_->handles++; else r = PG_ELIMIT);
    pg__unlock();
    return r;
}

int pg_release(pg_id id) {
    int r = PG_OK;
    PG__WITH_NODE(id, PG_EBADID, if (!n_->handles) r = PG_EBADID; else pg__unhold(i_));
    pg__trim_check();
    pg__unlock();
    return r;
}

int pg_set_python_backward(pg_id id, int on) {
    PG__WITH_NODE(id, PG_EBADID,
                  n_->flags = (uint8_t)(on ? n_->flags | PG__PYTHON : n_->flags & ~PG__PYTHON));
    pg__unlock();
    return PG_OK;
}

// ----------------------------------------------------------------------------
// calls on many nodes

/* See arena.h. */
int pg__many(const pg__handles *arrays, int count, uint32_t *buf, int64_t spare, int64_t refs,
             int64_t nodes, uint32_t **slots, pg_where *where) {
    int64_t total = 0;
    for (int a = 0; a < count; a++) {
        const pg__handles *h = &arrays[a];
        if (h->n < 0) return pg__blame(where, PG_ESIZE, h->arg, -1);
        if (h->n > 0 && !h->ids) return pg__blame(where, PG_EBADOP, h->arg, -1);
        if (h->n > (int64_t)(SIZE_MAX / sizeof(uint32_t) / 2) - total)
            return pg__blame(where, PG_ENOMEM, 0, -1);
        total += h->n;
    }
    if (!buf) { /* (at least one slot: the slots are never a NULL pointer) */
        void *scratch = pg__A.scratch;
        int status = spare < 0 || spare > (int64_t)(SIZE_MAX / sizeof(uint32_t) / 2) - total
                         ? PG_ENOMEM
                         : pg__grow(&scratch, &pg__A.scratch_cap, (size_t)(total + spare) + 1,
                                    sizeof(uint32_t));
        pg__A.scratch = scratch;
        if (status != PG_OK) return pg__blame(where, status, 0, -1);
        buf = pg__A.scratch;
    }
    uint32_t *out = buf;
    for (int a = 0; a < count; a++) {
        const pg__handles *h = &arrays[a];
        for (int64_t i = 0; i < h->n; i++) {
            uint32_t slot = pg__lookup(h->ids[i]);
            if (!slot && !(h->zero_ok && h->ids[i] == 0))
                return pg__blame(where, PG_EBADID, h->arg, i);
            if (slot && !pg__ref_room(slot, refs))
                return pg__blame(where, PG_ELIMIT, h->arg, i);
            *out++ = slot;
        }
    }
    int status = nodes < 0 || nodes > (int64_t)UINT32_MAX ? PG_ELIMIT : pg__reserve((uint32_t)nodes);
    if (status != PG_OK) return pg__blame(where, status, 0, -1);
    *slots = buf;
    return PG_OK;
}

// ----------------------------------------------------------------------------
// public: many nodes in one call

/* pg_gather and pg_scatter: the slots of the n handles ids, in the scratch,
 * and out or src of length nvals (src may be NULL: the fill). */
static int pg__fields(const pg_id *ids, int64_t n, int field, const double *vals, int64_t nvals,
                      int vals_optional, uint32_t **slots, pg_where *where) {
    if (field != PG_DATA && field != PG_GRAD) return pg__blame(where, PG_EBADOP, 3, -1);
    if (vals || !vals_optional) {
        if (nvals != n) return pg__blame(where, PG_ESIZE, 4, -1);
        if (n > 0 && !vals) return pg__blame(where, PG_EBADOP, 4, -1);
    }
    pg__handles h = {ids, n, 1, 0};
    return pg__many(&h, 1, NULL, 0, 0, 0, slots, where);
}

int pg_gather(const pg_id *ids, int64_t n, int field, double *out, int64_t nout, pg_where *where) {
    uint32_t *slot;
    pg__lock();
    int status = pg__fields(ids, n, field, out, nout, 0, &slot, where);
    if (status == PG_OK) {
        for (int64_t i = 0; i < n; i++) {
            const pg_node *node = &pg__A.nodes[slot[i]];
            out[i] = field == PG_DATA ? node->data : node->grad;
        }
    }
    pg__unlock();
    return status;
}

int pg_scatter(const pg_id *ids, int64_t n, int field, const double *src, int64_t nsrc,
               double fill, pg_where *where) {
    uint32_t *slot;
    pg__lock();
    int status = pg__fields(ids, n, field, src, nsrc, 1, &slot, where);
    if (status == PG_OK) {
        for (int64_t i = 0; i < n; i++) {
            pg_node *node = &pg__A.nodes[slot[i]];
            *(field == PG_DATA ? &node->data : &node->grad) = src ? src[i] : fill;
        }
    }
    pg__unlock();
    return status;
}

// ----------------------------------------------------------------------------
// public: the arena

/* Return expr, read under the lock. */
#define PG__LOCKED(type, expr)     \
    do {                           \
        pg__lock();                \
        type r_ = (expr);          \
        pg__unlock();              \
        return r_;                 \
    } while (0)

int64_t pg_live_nodes(void) { PG__LOCKED(int64_t, pg__A.live); }
/* (slot 0 is reserved) */
int64_t pg_capacity(void) { PG__LOCKED(int64_t, pg__A.cap ? (int64_t)pg__A.cap - 1 : 0); }
int64_t pg_node_limit(void) { PG__LOCKED(int64_t, pg__A.limit); }

int pg_set_node_limit(int64_t max_nodes) {
    if (max_nodes < 0) return PG_EBADOP;
    PG__LOCKED(int, (pg__A.limit = max_nodes, PG_OK));
}

// ----------------------------------------------------------------------------
// test hook: the arena's invariants

int64_t pg_debug_check(void) {
    pg__lock();
    int64_t bad = 0, nfree = 0, nlive = 0;
    uint32_t size = pg__A.size;
    /* parents[i]: references to slot i from the child fields of live nodes. */
    uint32_t *parents = calloc(size ? size : 1, sizeof *parents);
    if (!parents) {
        pg__unlock();
        return PG_ENOMEM;
    }
    for (uint32_t i = pg__A.free_head; i && nfree <= (int64_t)size; i = pg__A.nodes[i].next) {
        bad += i >= size || pg__A.nodes[i].op != PG_OP_FREE;
        if (i >= size) break;
        nfree++;
    }
    for (uint32_t i = 1; i < size; i++) {
        const pg_node *n = &pg__A.nodes[i];
        if (n->op == PG_OP_FREE) continue;
        nlive++;
        if (!pg__op_ok(n->op) || (n->refs == 0 && n->handles == 0) || n->gen == 0) {
            bad++;
            continue;
        }
        int arity = pg_op_arity(n->op);
        for (int c = 0; c < 2; c++) {
            uint32_t ch = n->child[c];
            /* (a custom node's children, any number of them, fill child[0] first) */
            int expected = arity < 0 ? (c == 0 ? n->child[1] != 0 || ch != 0 : ch != 0) : c < arity;
            if ((ch != 0) != expected || ch >= size || (ch && pg__A.nodes[ch].op == PG_OP_FREE))
                bad++;
            else if (ch)
                parents[ch]++;
        }
    }
    for (uint32_t i = 1; i < size; i++)
        bad += pg__A.nodes[i].op != PG_OP_FREE && pg__A.nodes[i].refs < parents[i];
    bad += nlive != pg__A.live || (size && nfree != (int64_t)size - 1 - nlive);
    bad += pg__A.cap < size;
    free(parents);
    pg__unlock();
    return bad;
}
