/* graph.c: the topological sort and the backward pass. */
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
 * length sorts. Returns n, or PG_ENOMEM with the graph untouched. */
int64_t pg__topo_sort(uint32_t root) {
    uint32_t stamp = pg__new_epoch();
    pg_node *nodes = pg__A.nodes;
    /* The node being visited and its next child stay in registers; the
     * stack holds its ancestors, each with the child to resume at. */
    uint32_t cur = root, next = 0;
    size_t depth = 0, n = 0;
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
        if (n == pg__A.order_cap) { /* every child is in the order: cur comes next */
            void *order = pg__A.order;
            int status = pg__grow(&order, &pg__A.order_cap, n + 1, sizeof(uint32_t));
            pg__A.order = order;
            if (status != PG_OK) return status;
        }
        pg__A.order[n++] = cur;
        if (!depth) break;
        depth--;
        cur = pg__A.stack[depth].node, next = pg__A.stack[depth].next_child;
    }
    return (int64_t)n;
}

int pg_backward(pg_id root) {
    pg__lock();
    uint32_t r = pg__lookup(root);
    int64_t n = r ? pg__topo_sort(r) : PG_EBADID;
    if (n < 0) {
        pg__unlock();
        return (int)n;
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
