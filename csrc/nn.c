/* nn.c: micrograd's dense layers built in C, a whole MLP forward per call
 * (pg_mlp).
 *
 * The graph is node for node the one micrograd's Neuron builds with
 * sum((wi*xi for wi, xi in zip(self.w, x)), self.b) and then its activation,
 * so gradients land where micrograd puts them and add up in the same order.
 */
#include "arena.h"
#include "kernels.h"

static int pg__act_ok(int32_t act) {
    return act == PG_OP_leaf || (pg__op_ok(act) && pg_op_arity(act) == 1 && !pg_op_takes_k(act));
}

/* pg_mlp's argument positions, for pg_where. */
enum { PG__PARAMS = 1, PG__SIZES = 3, PG__ACTS = 4, PG__NLAYERS = 5, PG__X = 6, PG__XNUM = 8,
       PG__OUT = 10 };

/* Count the parameters and nodes of the network, or return a status. */
static int pg__mlp_size(const int32_t *sizes, const int32_t *acts, int32_t nlayers,
                        int64_t *nparams, int64_t *nnodes, int64_t *width, pg_where *where) {
    *nparams = *nnodes = *width = 0;
    if (sizes[0] < 0) return pg__blame(where, PG_EBADOP, PG__SIZES, 0);
    for (int32_t l = 0; l < nlayers; l++) {
        int64_t nin = sizes[l], nout = sizes[l + 1];
        if (nout < 0) return pg__blame(where, PG_EBADOP, PG__SIZES, l + 1);
        if (!pg__act_ok(acts[l])) return pg__blame(where, PG_EBADOP, PG__ACTS, l);
        /* Each neuron: nin products, nin sums, the activation (and in the
         * first layer a leaf per number input: pg_mlp adds those). Every term
         * fits in int64. */
        int64_t per = 2 * nin + (acts[l] != PG_OP_leaf);
        *nparams += nout * (nin + 1);
        *nnodes += nout * per;
        if (*nparams > UINT32_MAX || *nnodes > UINT32_MAX) return pg__blame(where, PG_ELIMIT, 0, -1);
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

pg_id pg_mlp(const pg_id *params, int64_t nparams, const int32_t *sizes, const int32_t *acts,
             int32_t nlayers, const pg_id *x, int64_t nx, const double *xnum, int64_t nxnum,
             pg_id *out, int64_t nout, pg_where *where) {
    if (nlayers < 1) return pg__blame(where, PG_EBADOP, PG__NLAYERS, -1);
    if (!sizes) return pg__blame(where, PG_EBADOP, PG__SIZES, -1);
    if (!acts) return pg__blame(where, PG_EBADOP, PG__ACTS, -1);
    int64_t need, nnodes, width;
    int status = pg__mlp_size(sizes, acts, nlayers, &need, &nnodes, &width, where);
    if (status != PG_OK) return status;
    int64_t nin0 = sizes[0], nlast = sizes[nlayers];
    if (nparams != need) return pg__blame(where, PG_ESIZE, PG__PARAMS, -1);
    if (nx != nin0) return pg__blame(where, PG_ESIZE, PG__X, -1);
    if (nx > 0 && !x) return pg__blame(where, PG_EBADOP, PG__X, -1);
    if (xnum && nxnum != nx) return pg__blame(where, PG_ESIZE, PG__XNUM, -1);
    if (out ? nout != nlast : nlast > 1)
        return pg__blame(where, out ? PG_ESIZE : PG_EBADOP, PG__OUT, -1);
    int64_t nnumbers = 0;
    for (int64_t i = 0; i < nx; i++) nnumbers += x[i] == 0;
    if (nnumbers && !xnum) return pg__blame(where, PG_EBADOP, PG__XNUM, -1);
    nnodes += nnumbers * sizes[1]; /* a leaf per number input and first-layer neuron */
    if (nnodes > UINT32_MAX) return pg__blame(where, PG_ELIMIT, 0, -1);
    if (width < nin0) width = nin0;

    /* Look up the parameters and the inputs, check that a parameter can gain
     * a reference per use and an input one per neuron of the first layer (a
     * node may be both, or listed twice: the bound is the call's whole), and
     * reserve the nodes; the scratch holds the parameters' slots, then two
     * layers' worth of slots, the first starting with the inputs'. */
    pg__handles args[2] = {{params, nparams, PG__PARAMS, 0}, {x, nx, PG__X, 1}};
    uint32_t *prm = NULL, *in = NULL, *cur = NULL;
    pg__lock();
    status = pg__many(args, 2, NULL, 2 * width - nx, nparams + nx * sizes[1], nnodes, &prm, where);
    if (status == PG_OK) in = prm + nparams, cur = in + width;

    const uint32_t *p = prm;
    for (int32_t l = 0; l < nlayers && status == PG_OK; l++) {
        int64_t nin = sizes[l], nout = sizes[l + 1], j = 0;
        for (; j < nout; j++, p += nin + 1) {
            int64_t o = pg__neuron(p, nin, in, xnum, acts[l]);
            if (o < 0) { /* a math error in layer l's activation */
                status = pg__blame(where, (int)o, PG__ACTS, l);
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
    if (status == PG_OK && nlast > 0) {
        for (int64_t j = 0; j < nlast; j++) { /* each output's reference, the caller's now */
            pg_id id = pg__give(in[j]);
            if (out) out[j] = id;
            if (j == 0) first = id;
        }
    }
    pg__unlock();
    return status == PG_OK ? first : status;
}
