/* arena.h: the node arena, private to the library: the nodes, their
 * handles and reference counts, the lock, and the one way in for calls on
 * many nodes (pg__many).
 *
 * Legend of a node (one slot of pg__arena.nodes):
 *   data      the forward value
 *   grad      d(root)/d(node), accumulated with += as micrograd does
 *   k         the op constant (the exponent of a ** k); 0 when unused
 *   child[2]  arena indices of the operands in order, 0 for none
 *   refs      references from inside the library: parents that list it,
 *             tapes and optimizers that hold it, a call building it
 *   gen       generation, bumped when the slot is freed (stale handles fail)
 *   mark      live slot: stamp of the last topological sort that visited it
 *   next      free slot: the next free slot (0 ends the list)
 *   op        enum pg_op (ops.h); PG_OP_FREE while the slot is free
 *   flags     PG__PYTHON: backward() hands the node to its caller (a Value
 *             whose _backward is a Python function)
 *   handles   references held by callers of the public API (a Value each):
 *             apart from refs, so that a caller can give back only what it
 *             was given (a forged or doubled pg_release fails, and never
 *             frees a node a parent still holds)
 * A node is freed when refs and handles are both 0.
 *
 * Index 0 is reserved so that 0 can mean "no node". A handle (pg_id) is
 * (gen << 32) | index. Slots are reused through the free list, so a loop
 * that builds and drops a graph each iteration runs in flat memory; and
 * once a big graph is gone, the free slots above the highest live one are
 * given back (pg__trim_check), so memory follows the live nodes down too.
 *
 * Locking: every public function takes the arena lock (pg__lock), and
 * every pg__ function here and in the other private headers expects it held:
 * pg__realloc too (every allocation goes through its test hook, whose
 * countdown is shared state). Plain free() needs no lock.
 */
#ifndef PG_ARENA_H
#define PG_ARENA_H
#include <stddef.h>
#include <stdint.h>
#include "pygrad.h"

/* The op of a slot on the free list (ops.h lists the ops of live ones, all
 * below it). */
#define PG_OP_FREE 0xFF

typedef struct pg_node {
    double data;
    double grad;
    double k;
    uint32_t child[2];
    uint32_t refs;
    uint32_t gen;
    union {
        uint32_t mark;
        uint32_t next;
    };
    uint8_t op;
    uint8_t flags;
    uint16_t handles;
} pg_node;

/* flags of a node */
#define PG__PYTHON 1u
#define PG__MAX_HANDLES 0xFFFFu

/* One frame of the iterative depth-first search in graph.c. */
typedef struct pg__frame {
    uint32_t node;
    uint32_t next_child;
} pg__frame;

typedef struct pg__arena {
    pg_node *nodes;      /* nodes[1 .. size-1] are live or free slots */
    uint32_t size;       /* slots handed out so far, including slot 0 */
    uint32_t cap;        /* slots allocated */
    uint32_t free_head;  /* first free slot, 0 if none */
    int64_t live;        /* live nodes */
    int64_t limit;       /* cap on live nodes; 0 means none */
    /* Giving memory back (pg__trim_check): */
    uint32_t free_above; /* slots free_above .. size-1 are all free */
    uint32_t fresh_gen;  /* generation of a slot handed out for the first time
                            (above that of every slot given back) */
    int64_t trim_at;     /* look for slots to give back when live < trim_at */
    int64_t freed;       /* nodes freed so far ... */
    int64_t scanned;     /* ... and slots looked at in looking: never more */
    uint32_t epoch;      /* stamp of the current topological sort (>= 1) */
    /* Scratch for the topological sort, kept between calls. */
    pg__frame *stack;
    size_t stack_cap;
    uint32_t *order;
    size_t order_cap;
    /* Scratch of slot indices for calls on many nodes (pg__many). */
    uint32_t *scratch;
    size_t scratch_cap;
    /* A tape whose arrays hold newer data or grads than its graph's nodes
     * (tape_replay.c), or NULL: pg__tape_settle writes them back. */
    struct pg_tape *pending;
} pg__arena;

extern pg__arena pg__A;

void pg__lock(void);
void pg__unlock(void);

/* realloc that the test hook can make fail; NULL on failure, p untouched. */
void *pg__realloc(void *p, size_t bytes);
/* Grow *buf (of *cap elements of elem bytes) to hold at least need elements,
 * doubling; commits the new capacity only once the allocation succeeded. */
int pg__grow(void **buf, size_t *cap, size_t need, size_t elem);

/* Write the pending tape's numbers back into its graph (tape_replay.c). */
void pg__tape_settle(void);

/* The slot index of a live handle, or 0. Whoever looks a node up may read or
 * write it, so a pending tape's numbers are written back first. */
static inline uint32_t pg__lookup(pg_id id) {
    if (pg__A.pending) pg__tape_settle();
    if (id <= 0) return 0;
    uint32_t index = (uint32_t)((uint64_t)id & 0xFFFFFFFFu);
    uint32_t gen = (uint32_t)((uint64_t)id >> 32);
    if (index == 0 || index >= pg__A.size) return 0;
    const pg_node *n = &pg__A.nodes[index];
    /* Free slots are never at their live generation (freeing bumps it),
     * but check op too, so that no stale handle can pass. */
    if (n->gen != gen || n->op == PG_OP_FREE) return 0;
    return index;
}

/* Whether slot i can take `extra` (>= 0) more references. */
static inline int pg__ref_room(uint32_t i, int64_t extra) {
    return (int64_t)pg__A.nodes[i].refs <= (int64_t)UINT32_MAX - extra;
}

/* ---- calls on many nodes ---------------------------------------------------
 *
 * One array of handles that a call reads: n handles at ids, the call's
 * argument number arg (its position in the public function's parameter
 * list, for pg_where). Where zero_ok, a 0 handle is allowed and stands for
 * "no node" (slot 0): pg_mlp's number inputs. */
typedef struct pg__handles {
    const pg_id *ids;
    int64_t n;
    int32_t arg;
    int zero_ok;
} pg__handles;

/* Every call on many nodes (pg_gather, pg_scatter, pg_mlp, pg_loss,
 * pg_optim_new, pg_custom, the tapes' roots and inputs) starts here, under the lock
 * that the caller holds.
 * pg__many:
 *   1. looks up the handles of arrays[0 .. count) into slots, one array after
 *      the other: into buf if it is not NULL (it must hold the sum of their n),
 *      else into the arena's scratch, grown to hold them and `spare` more
 *      slots after them for the caller's own use;
 *   2. checks that every slot found can take `refs` more references: a bound
 *      on what the call adds to any one node, in all;
 *   3. reserves `nodes` new nodes (pg__reserve), the call's nodes.
 * On success *slots is where the slots start (array i's after array i-1's)
 * and PG_OK is returned. Else nothing has changed (the scratch may have
 * grown) and the status is returned, with *where (if where is not NULL) the
 * argument and index to blame: PG_ESIZE or PG_EBADOP (a negative length, or
 * a NULL array with handles in it), PG_EBADID (a handle that is not live),
 * PG_ELIMIT (a reference count that would overflow, or the node limit),
 * PG_ENOMEM. The scratch's slots are good until the next call on many nodes;
 * nothing between (pg__reserve, pg__new_node, pg__release) moves them. */
int pg__many(const pg__handles *arrays, int count, uint32_t *buf, int64_t spare, int64_t refs,
             int64_t nodes, uint32_t **slots, pg_where *where);

/* Blame argument arg (index: the element, or -1 for the whole argument) for
 * a failed call: *where says so, if where is not NULL. Returns status, so
 * that a check reads `return pg__blame(where, PG_ESIZE, 2, -1);`. Every
 * failure of a call that takes a pg_where writes it (pygrad.h says what). */
static inline int pg__blame(pg_where *where, int status, int32_t arg, int64_t index) {
    if (where) *where = (pg_where){arg, index};
    return status;
}

static inline pg_id pg__handle(uint32_t index) {
    return (pg_id)(((uint64_t)pg__A.nodes[index].gen << 32) | index);
}
/* The slot of a handle known to be live (one just made). */
static inline uint32_t pg__index(pg_id id) { return (uint32_t)((uint64_t)id & 0xFFFFFFFFu); }
/* Hand the caller's building reference to slot i over to the caller of the
 * public API: one of refs becomes one of handles. Returns its handle. (A
 * node given out is a new one, or one whose handles were checked.) */
static inline pg_id pg__give(uint32_t i) {
    pg_node *n = &pg__A.nodes[i];
    if (n->handles < PG__MAX_HANDLES) { /* (else it stays a reference: never freed) */
        n->refs--;
        n->handles++;
    }
    return pg__handle(i);
}
/* A topological sort that can stop and go on (graph.c), for calls that run
 * in chunks (a walk, a tape's compiling): micrograd's order, as
 * pg__sort_limited's (graph.c), with its visited marks in pos[] (per slot below npos: 0
 * unseen, PG__ON_STACK, else the position + 1) rather than in the nodes,
 * which another sort may stamp between two chunks. */
#define PG__ON_STACK UINT32_MAX
typedef struct pg__sorter {
    uint32_t *pos;
    size_t npos;
    pg__frame *stack;
    size_t depth, stack_cap;
    uint32_t cur, next_child; /* the node being visited, and its next child */
    uint32_t *order;          /* the graph's nodes so far, in topological order */
    size_t n, order_cap;
} pg__sorter;
/* Begin sorting the graph under root: PG_OK, or PG_ENOMEM with nothing to free. */
int pg__sorter_begin(pg__sorter *s, uint32_t root);
/* Go on for at most *budget steps (each uses one): PG_OK once the order is
 * complete, PG_MORE to go on, PG_ENOMEM (go on later: nothing lost), or
 * PG_EBADOP with *refused the slot of a node that ok(node) refuses (ok may
 * be NULL: every node is). */
int pg__sorter_run(pg__sorter *s, int64_t *budget, int (*ok)(const pg_node *), uint32_t *refused);
void pg__sorter_free(pg__sorter *s);
/* A new stamp for marking visited nodes (graph.c). */
uint32_t pg__new_epoch(void);

/* Make sure n more nodes can be made without failing. */
int pg__reserve(uint32_t n);
/* Take a slot (after pg__reserve) and fill it; refs start at 1 (the
 * building call's: pg__give hands it to the caller, pg__release drops it),
 * handles at 0, and each child gains a reference. Returns the slot index. (Inline: the graph
 * builders make one per node.) */
static inline uint32_t pg__new_node(uint8_t op, double data, double k, uint32_t a, uint32_t b) {
    uint32_t i = pg__A.free_head;
    if (i) {
        pg__A.free_head = pg__A.nodes[i].next;
    } else {
        i = pg__A.size++;
        pg__A.nodes[i].gen = pg__A.fresh_gen;
    }
    if (i >= pg__A.free_above) pg__A.free_above = i + 1;
    pg_node *n = &pg__A.nodes[i];
    n->data = data;
    n->grad = 0.0;
    n->k = k;
    n->child[0] = a;
    n->child[1] = b;
    n->refs = 1;
    n->handles = 0;
    n->mark = 0;
    n->op = op;
    n->flags = 0;
    if (a) pg__A.nodes[a].refs++;
    if (b) pg__A.nodes[b].refs++;
    pg__A.live++;
    return i;
}
/* Drop one of a caller's handles on slot index (pg_release; it has one):
 * frees the node if that was the last of its references. */
void pg__unhold(uint32_t index);
/* Drop one reference; frees the node and, iteratively, the children it was
 * the last to hold. */
void pg__release(uint32_t index);
/* Give back the top of the arena if live nodes fell low enough. It moves
 * pg__A.nodes and undoes pg__reserve, so call it only between operations
 * (pg_release does), never while building. */
void pg__trim_check(void);

#endif
