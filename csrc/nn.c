/* nn.c: micrograd's dense layers built in C, a whole MLP forward per call.
 *
 * The graph is node for node the one micrograd's Neuron builds with
 * sum((wi*xi for wi, xi in zip(self.w, x)), self.b) and then its activation,
 * so gradients land where micrograd puts them and add up in the same order.
 */
#include <stdlib.h>

#include "arena.h"
#include "kernels.h"

static int pg__act_ok(int32_t act) {
    return act == PG_OP_leaf || (pg__op_ok(act) && pg_op_arity(act) == 1 && !pg_op_takes_k(act));
}

/* Count the parameters and nodes of the network, or return a status. */
static int pg__mlp_size(const int32_t *sizes, const int32_t *acts, int32_t nlayers,
                        int64_t nnumbers, int64_t *nparams, int64_t *nnodes, int64_t *width) {
    *nparams = *nnodes = *width = 0;
    for (int32_t l = 0; l < nlayers; l++) {
        int64_t nin = sizes[l], nout = sizes[l + 1];
        if (nin < 0 || nout < 0 || !pg__act_ok(acts[l])) return PG_EBADOP;
        /* Each neuron: nin products, nin sums, the activation, and in the
         * first layer a leaf per number input. Every term fits in int64. */
        int64_t per = 2 * nin + (acts[l] != PG_OP_leaf) + (l == 0 ? nnumbers : 0);
        *nparams += nout * (nin + 1);
        *nnodes += nout * per;
        if (*nparams > UINT32_MAX || *nnodes > UINT32_MAX) return PG_ELIMIT;
        if (nout > *width) *width = nout;
    }
    return PG_OK;
}

/* Release n owned slots. */
static void pg__release_all(const uint32_t *slots, int64_t n) {
    for (int64_t i = 0; i < n; i++) pg__release(slots[i]);
}

/* One neuron: act(((b + w0*x0) + w1*x1) + ...), w = p[0..nin), b = p[nin].
 * in[i] is an input slot, or 0 for the number xnum[i]. The caller has
 * reserved the nodes and checked every operand's reference count, so only
 * the activation can fail. Returns the output slot (one reference, the
 * caller's) or a status, with nothing built. */
static int64_t pg__neuron(const uint32_t *p, int64_t nin, const uint32_t *in, const double *xnum,
                          int32_t act) {
    pg_node *nodes = pg__A.nodes; /* stable: nothing here allocates */
    uint32_t acc = p[nin];
    for (int64_t i = 0; i < nin; i++) {
        uint32_t x = in[i];
        if (!x) { /* micrograd's Value(number): a leaf held only by its product */
            x = pg__new_node(PG_OP_leaf, xnum[i], 0.0, 0, 0);
            nodes[x].refs = 0;
        }
        pg__vals v = {nodes[p[i]].data, nodes[x].data, 0.0, 0.0};
        mul_forward(&v);
        uint32_t m = pg__new_node(PG_OP_mul, v.out, 0.0, p[i], x);
        v = (pg__vals){nodes[acc].data, v.out, 0.0, 0.0};
        add_forward(&v);
        uint32_t s = pg__new_node(PG_OP_add, v.out, 0.0, acc, m);
        nodes[m].refs--; /* the sum holds the product, and the next sum this one */
        if (i > 0) nodes[acc].refs--;
        acc = s;
    }
    if (act != PG_OP_leaf) {
        pg__vals v = {nodes[acc].data, 0.0, 0.0, 0.0};
        int status = pg__forward(act, &v);
        if (status != PG_OK) {
            if (nin > 0) pg__release(acc);
            return status;
        }
        uint32_t out = pg__new_node((uint8_t)act, v.out, 0.0, acc, 0);
        if (nin > 0) nodes[acc].refs--;
        return out;
    }
    if (nin == 0) nodes[acc].refs++; /* no inputs, linear: micrograd returns the bias itself */
    return acc;
}

/* Room in the reference counts of n slots for `extra` more each. */
static int pg__room(const uint32_t *slots, int64_t n, int64_t extra) {
    for (int64_t i = 0; i < n; i++)
        if (slots[i] && pg__A.nodes[slots[i]].refs > UINT32_MAX - extra) return 0;
    return 1;
}

pg_id pg_mlp(const pg_id *params, const int32_t *sizes, const int32_t *acts, int32_t nlayers,
             const pg_id *x, const double *xnum, pg_id *out) {
    if (nlayers < 1 || !sizes || !acts || (sizes[0] > 0 && !x)) return PG_EBADOP;
    if (!out && sizes[nlayers] > 1) return PG_EBADOP;
    int64_t nin0 = sizes[0], nnumbers = 0;
    for (int64_t i = 0; i < nin0; i++) nnumbers += x[i] == 0;
    if (nnumbers && !xnum) return PG_EBADOP;
    int64_t nparams, nnodes, width;
    int status = pg__mlp_size(sizes, acts, nlayers, nnumbers, &nparams, &nnodes, &width);
    if (status != PG_OK) return status;
    if (nparams && !params) return PG_EBADOP;
    if (width < nin0) width = nin0;

    /* Scratch: the parameters' slots, then two layers' worth of slots. */
    uint32_t *buf = pg__realloc(NULL, (size_t)(nparams + 2 * width + 1) * sizeof(uint32_t));
    if (!buf) return PG_ENOMEM;
    uint32_t *prm = buf, *in = buf + nparams, *cur = in + width;
    pg__lock();
    status = pg__lookup_n(params, nparams, prm, 0);
    if (status == PG_OK) status = pg__lookup_n(x, nin0, in, 1); /* 0: a number input */
    /* A parameter gains one reference per use, an input one per neuron. */
    if (status == PG_OK && (!pg__room(prm, nparams, 1) || !pg__room(in, nin0, sizes[1])))
        status = PG_ELIMIT;
    if (status == PG_OK) status = pg__reserve((uint32_t)nnodes);

    const uint32_t *p = prm;
    for (int32_t l = 0; l < nlayers && status == PG_OK; l++) {
        int64_t nin = sizes[l], nout = sizes[l + 1], j = 0;
        for (; j < nout; j++, p += nin + 1) {
            int64_t o = pg__neuron(p, nin, in, xnum, acts[l]);
            if (o < 0) {
                status = (int)o;
                break;
            }
            cur[j] = (uint32_t)o;
        }
        if (l > 0) pg__release_all(in, nin); /* the new layer holds them now */
        if (status != PG_OK) {
            pg__release_all(cur, j); /* undo: frees everything built */
            break;
        }
        uint32_t *t = in;
        in = cur;
        cur = t;
    }
    pg_id first = 0;
    if (status == PG_OK && sizes[nlayers] > 0) {
        first = pg__handle(in[0]);
        for (int64_t j = 0; out && j < sizes[nlayers]; j++) out[j] = pg__handle(in[j]);
    }
    pg__unlock();
    free(buf);
    return status == PG_OK ? first : status;
}
