/* graph.c: the topological sort and the backward pass: in one call
 * (pg_backward), or as a walk in steps (pg_walk_*) for a graph too big for
 * one call or with nodes whose backward is Python's. */
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "kernels.h"

/* Start a new visit stamp. On wrap-around every live node's mark is cleared
 * (free slots keep their `next` link, which shares the field). */
uint32_t pg__new_epoch(void) {
    if (++pg__A.epoch == 0) {
        for (uint32_t i = 1; i < pg__A.size; i++)
            if (pg__A.nodes[i].op != PG_OP_FREE) pg__A.nodes[i].mark = 0;
        pg__A.epoch = 1;
    }
    return pg__A.epoch;
}

/* Topological order of the graph under root, into pg__A.order[0 .. n).
 *
 * The order is exactly that of micrograd's recursive build_topo (depth
 * first, children in operand order, a node after its children), so that
 * gradients accumulate in the same order and match a pure-Python engine to
 * the bit. The recursion is replaced by an explicit stack, so a chain of any
 * length sorts. Returns n, or PG_ENOMEM with the graph untouched, or (where
 * limit > 0) limit + 1 once the graph is found to have more than limit
 * nodes (the order then incomplete). *flags (if not NULL) gets the union of
 * the sorted nodes' flags. */
static int64_t pg__sort_limited(uint32_t root, int64_t limit, unsigned *flags) {
    uint32_t stamp = pg__new_epoch();
    pg_node *nodes = pg__A.nodes;
    /* The node being visited and its next child stay in registers; the
     * stack holds its ancestors, each with the child to resume at. */
    uint32_t cur = root, next = 0;
    size_t depth = 0, n = 0;
    unsigned seen = 0;
    nodes[root].mark = stamp;
    for (;;) {
        if (next < 2) {
            uint32_t c = nodes[cur].child[next++];
            if (!c) {
                next = 2; /* children fill child[0] first: no more */
            } else if (nodes[c].mark != stamp) {
                nodes[c].mark = stamp;
                if (depth == pg__A.stack_cap) {
                    void *stack = pg__A.stack;
                    int status = pg__grow(&stack, &pg__A.stack_cap, depth + 1, sizeof(pg__frame));
                    pg__A.stack = stack;
                    if (status != PG_OK) return status;
                }
                pg__A.stack[depth++] = (pg__frame){cur, next};
                cur = c, next = 0;
            }
            continue;
        }
        if (limit > 0 && (int64_t)n == limit) return limit + 1;
        if (n == pg__A.order_cap) { /* every child is in the order: cur comes next */
            void *order = pg__A.order;
            int status = pg__grow(&order, &pg__A.order_cap, n + 1, sizeof(uint32_t));
            pg__A.order = order;
            if (status != PG_OK) return status;
        }
        seen |= nodes[cur].flags;
        pg__A.order[n++] = cur;
        if (!depth) break;
        depth--;
        cur = pg__A.stack[depth].node, next = pg__A.stack[depth].next_child;
    }
    if (flags) *flags = seen;
    return (int64_t)n;
}


int pg_backward(pg_id root, int64_t budget) {
    pg__lock();
    uint32_t r = pg__lookup(root);
    unsigned flags = 0;
    int64_t n = r ? pg__sort_limited(r, budget, &flags) : PG_EBADID;
    if (n < 0 || (budget > 0 && n > budget) || (flags & PG__PYTHON)) { /* (nothing done yet) */
        pg__unlock();
        return n < 0 ? (int)n : PG_WALK;
    }
    pg__A.nodes[r].grad = 1.0;
    for (int64_t i = n; i-- > 0;) pg__backward_step(pg__A.nodes, pg__A.order[i]);
    pg__unlock();
    return PG_OK;
}

int pg_backward_node(pg_id id) {
    pg__lock();
    uint32_t i = pg__lookup(id);
    if (i) pg__backward_step(pg__A.nodes, i);
    pg__unlock();
    return i ? PG_OK : PG_EBADID;
}

// ----------------------------------------------------------------------------
// the resumable sort (pg__sorter, arena.h): the walk's and the tape compiler's

int pg__sorter_begin(pg__sorter *s, uint32_t root) {
    *s = (pg__sorter){0};
    s->pos = pg__realloc(NULL, (size_t)pg__A.size * sizeof(uint32_t));
    if (!s->pos) return PG_ENOMEM;
    memset(s->pos, 0, (size_t)pg__A.size * sizeof(uint32_t));
    s->npos = pg__A.size;
    s->cur = root;
    s->pos[root] = PG__ON_STACK;
    return PG_OK;
}

void pg__sorter_free(pg__sorter *s) {
    free(s->pos), free(s->stack), free(s->order);
    *s = (pg__sorter){0};
}

int pg__sorter_run(pg__sorter *s, int64_t *budget, int (*ok)(const pg_node *), uint32_t *refused) {
    pg_node *nodes = pg__A.nodes;
    uint32_t cur = s->cur, next = s->next_child;
    int status = PG_MORE;
    while ((*budget)-- > 0) {
        if (next < 2) {
            uint32_t c = nodes[cur].child[next++];
            if (!c) {
                next = 2; /* children fill child[0] first: no more */
            } else if (!s->pos[c]) {
                if (s->depth == s->stack_cap) {
                    void *buf = s->stack;
                    if (pg__grow(&buf, &s->stack_cap, s->depth + 1, sizeof(pg__frame)) != PG_OK) {
                        next--;
                        status = PG_ENOMEM;
                        break;
                    }
                    s->stack = buf;
                }
                s->pos[c] = PG__ON_STACK;
                s->stack[s->depth++] = (pg__frame){cur, next};
                cur = c, next = 0;
            }
            continue;
        }
        if (s->n == s->order_cap) { /* every child is in the order: cur comes next */
            void *buf = s->order;
            if (pg__grow(&buf, &s->order_cap, s->n + 1, sizeof(uint32_t)) != PG_OK) {
                status = PG_ENOMEM;
                break;
            }
            s->order = buf;
        }
        if (ok && !ok(&nodes[cur])) {
            if (refused) *refused = cur;
            status = PG_EBADOP;
            break;
        }
        s->pos[cur] = (uint32_t)s->n + 1;
        s->order[s->n++] = cur;
        if (!s->depth) {
            status = PG_OK;
            break;
        }
        s->depth--;
        cur = s->stack[s->depth].node, next = s->stack[s->depth].next_child;
    }
    s->cur = cur, s->next_child = next;
    return status;
}

// ----------------------------------------------------------------------------
// the walk: a backward pass in steps
//
// The same sort (a pg__sorter) and the same backward as above, resumable:
// between two steps the caller runs Python (a node's own _backward, Ctrl-C,
// other threads). The walk holds a reference to the root, so every node of
// the graph stays alive (a node's children never change) until pg_walk_free.

struct pg_walk {
    uint32_t root;
    pg__sorter sort;
    int sorted;          /* the order is complete (and the root's grad is 1) */
    size_t left;         /* backward: sort.order[0 .. left) still to run */
};

pg_walk *pg_walk_new(pg_id root, int *status) {
    pg_walk *w = NULL;
    int st = PG_OK;
    pg__lock();
    pg__handles h = {&root, 1, 1, 0};
    uint32_t *found;
    st = pg__many(&h, 1, NULL, 0, 1, 0, &found, NULL); /* with room for the walk's reference */
    if (st == PG_OK) {
        w = pg__realloc(NULL, sizeof *w);
        st = w ? pg__sorter_begin(&w->sort, found[0]) : PG_ENOMEM;
        if (st != PG_OK) {
            free(w);
            w = NULL;
        } else {
            w->root = found[0], w->sorted = 0, w->left = 0;
            pg__A.nodes[w->root].refs++;
        }
    }
    pg__unlock();
    if (status) *status = st;
    return w;
}

void pg_walk_free(pg_walk *w) {
    if (!w) return;
    pg__lock();
    pg__release(w->root);
    pg__trim_check();
    pg__unlock();
    pg__sorter_free(&w->sort);
    free(w);
}

int pg_walk_step(pg_walk *w, int64_t budget, pg_id *node) {
    if (node) *node = 0;
    if (!w || budget < 1) return PG_EBADOP;
    pg__lock();
    int status = PG_MORE;
    if (!w->sorted) {
        status = pg__sorter_run(&w->sort, &budget, NULL, NULL);
        if (status == PG_OK) { /* micrograd: self.grad = 1, then the nodes in reverse */
            w->sorted = 1;
            w->left = w->sort.n;
            pg__A.nodes[w->root].grad = 1.0;
            status = PG_MORE;
        }
    }
    while (w->sorted && status == PG_MORE) {
        if (!w->left) {
            status = PG_OK;
            break;
        }
        if (budget-- <= 0) break;
        uint32_t i = w->sort.order[--w->left];
        if (pg__A.nodes[i].flags & PG__PYTHON) { /* the caller runs it, then steps on */
            if (node) *node = pg__handle(i);
            status = PG_PYTHON;
            break;
        }
        pg__backward_step(pg__A.nodes, i);
    }
    pg__unlock();
    return status;
}
