/* pygrad.h: the public C API of the pygrad scalar autograd engine.
 *
 * This header is also the cffi cdef: the build drops its preprocessor lines
 * and hands the rest to cffi, so keep it plain C declarations (no macros).
 *
 * Handles. A node is named by a pg_id: the low 32 bits are its arena index,
 * the high bits its generation, which changes when the node is freed, so a
 * stale handle is detected instead of reading another node. 0 is never a
 * valid handle, and a negative pg_id returned by a function is a pg_status.
 *
 * Ownership. Every function that returns a new handle gives the caller one
 * reference to it; pg_release() gives it back. A node also holds a reference
 * to each of its children, so a graph stays alive while its root is held.
 *
 * Arrays. Every array a function reads or writes comes with its length (the
 * int64_t after it), or with counts that fix it (pg_mlp's sizes holds
 * nlayers + 1), and the function checks it against what it reads: PG_ESIZE
 * if they do not match. A NULL array has length 0, unless the function
 * gives NULL a meaning (pg_scatter's src: the fill). The calls on many
 * nodes say which argument was bad (pg_where).
 *
 * Threads. Every function takes the arena's lock, so any thread may call any
 * function at any time, and each call is atomic (tests/threads_harness.c).
 * Only freeing a tape or an optimizer that another thread is still using is
 * an error, as with free(). The library never calls exit() or abort().
 */
#ifndef PYGRAD_H
#define PYGRAD_H
#include <stdint.h>

typedef int64_t pg_id;

enum pg_status {
    PG_OK = 0,
    PG_ENOMEM = -1,    /* an allocation failed */
    PG_ELIMIT = -2,    /* the arena's node limit, or a node's reference count limit */
    PG_EBADID = -3,    /* not a live node handle */
    PG_EBADOP = -4,    /* no such op, or the op does not take these operands */
    PG_EDOM = -5,      /* math domain error: the result would not be real */
    PG_ERANGE = -6,    /* math range error: a finite input overflowed */
    PG_EZERODIV = -7,  /* zero raised to a negative power */
    PG_ESIZE = -8,     /* an array's length does not match what the call reads */
    /* not failures: what a call that works in steps asks of its caller */
    PG_MORE = 1,       /* call again: there is more to do */
    PG_PYTHON = 2,     /* run the backward of the node it names (Python's), then call again */
    PG_WALK = 3        /* pg_backward did nothing: run this backward as a walk (pg_walk_*) */
};

/* A message for a status code; never NULL (status.c). */
const char *pg_strerror(int status);

/* Where a call on many nodes found a bad argument. The calls that take a
 * pg_where * (NULL if not wanted) write it whenever they fail: arg is the
 * bad argument's position in the call's parameter list (1 for the first;
 * for a length that does not match, the array's), index the bad element of
 * an array (-1: the argument as a whole). arg is 0 when no argument is to
 * blame (PG_ENOMEM, PG_ELIMIT from the node limit, a math error in a loss);
 * pg_mlp blames a math error on the activation that raised it, acts[l]. */
typedef struct pg_where {
    int32_t arg;
    int64_t index;
} pg_where;

/* ---- the op table (one row per op, see ops.c) ---------------------------- */
int pg_op_count(void);
const char *pg_op_name(int op);    /* method name: "add", "tanh", ... */
const char *pg_op_symbol(int op);  /* micrograd's _op string: "+", "ReLU", ... */
int pg_op_arity(int op);           /* children: 0 leaf, 1 unary, 2 binary, -1 any (custom) */
int pg_op_takes_k(int op);         /* 1 if the op keeps a constant (a ** k) */
const char *pg_op_doc(int op);     /* what it computes (a line for its docstring) */

/* ---- building nodes (each returns a new handle or a negative status) ----- */
pg_id pg_leaf(double data);
/* A unary op of a, or an op with a constant: pg_apply1k(POWK, a, 3.0) is a**3. */
pg_id pg_apply1(int op, pg_id a);
pg_id pg_apply1k(int op, pg_id a, double k);
/* A binary op of two nodes. */
pg_id pg_apply2(int op, pg_id a, pg_id b);
/* A binary op of a node and a number: like micrograd, the number becomes a
 * new leaf node, the op's second child (it is freed with the result). */
pg_id pg_apply2n(int op, pg_id a, double b);
/* Two ops as one call: op(first, inner(a, x)), or, where first is 0,
 * op(inner(a, x), number) with the number a new leaf. inner is mul by the
 * number x (a new leaf too) or powk with exponent x. These are micrograd's
 * -, / and their reflections: a - b is a + b*-1, a / b is a * b**-1,
 * n - a is a*-1 + n, n / a is a**-1 * n. The inner node is held only by
 * the result. On error (either op's) nothing is built. */
pg_id pg_apply_composed(int op, pg_id first, int inner, pg_id a, double x, double number);

/* ---- reading and writing nodes ------------------------------------------ */
/* data and grad of a node; NaN for a bad handle (pg_valid tells them apart). */
double pg_data(pg_id id);
double pg_grad(pg_id id);
int pg_set_data(pg_id id, double data);
int pg_set_grad(pg_id id, double grad);
int pg_valid(pg_id id);            /* 1 for a live handle, else 0 */
int pg_op(pg_id id);               /* op code, or a negative status */
double pg_k(pg_id id);             /* the op constant (NaN for a bad handle) */
/* Child i (0 or 1) of a node: its handle, 0 if none, or a negative status.
 * No reference is added: call pg_retain() to keep it. */
pg_id pg_child(pg_id id, int i);
int pg_retain(pg_id id);
int pg_release(pg_id id);

/* ---- many nodes in one call ------------------------------------------- */
enum pg_field { PG_DATA = 0, PG_GRAD = 1 };
/* out[i] = the field (PG_DATA or PG_GRAD) of ids[i], for i < n; nout must
 * be n. */
int pg_gather(const pg_id *ids, int64_t n, int field, double *out, int64_t nout, pg_where *where);
/* The field of ids[i] = src[i] (nsrc must be n), or = fill for every i if
 * src is NULL (pg_scatter(ids, n, PG_GRAD, NULL, 0, 0.0, NULL) is
 * zero_grad). Either call checks every argument first: on PG_EBADID (a
 * handle that is not live), PG_ESIZE or PG_EBADOP nothing is read or
 * written. */
int pg_scatter(const pg_id *ids, int64_t n, int field, const double *src, int64_t nsrc,
               double fill, pg_where *where);

/* ---- networks: micrograd's MLP forward in one call ---------------------- */
/* Layers sizes[0] -> sizes[1] -> ... -> sizes[nlayers] (sizes holds
 * nlayers + 1 counts, acts nlayers op codes). params holds, layer by layer
 * and neuron by neuron, the weights then the bias (micrograd's parameters()
 * order): nparams must be the network's parameter count. acts[l] is the op
 * code of layer l's activation (a unary op), or 0 (the leaf code) for a
 * linear layer. x holds the nx = sizes[0] inputs: input i is the node x[i],
 * or, where x[i] is 0, the number xnum[i], which becomes a new leaf at each
 * use as in micrograd (w * 2.0); xnum is NULL (then no x[i] is 0) or holds
 * nxnum = nx numbers. Each neuron is built as micrograd's
 * act(((b + w0*x0) + w1*x1) + ...): node for node the same graph as
 * micrograd builds, so backward gives the same gradients. out receives the
 * nout = sizes[nlayers] outputs (new references); it may be NULL (nout is
 * then not read) where there is at most one output.
 * Returns the first output's handle (0 if there is none) or a status, with
 * *where saying which argument was bad; on error nothing is built. */
pg_id pg_mlp(const pg_id *params, int64_t nparams, const int32_t *sizes, const int32_t *acts,
             int32_t nlayers, const pg_id *x, int64_t nx, const double *xnum, int64_t nxnum,
             pg_id *out, int64_t nout, pg_where *where);

/* ---- losses: the tutorials' loss expressions, each built in one call ---- */
/* Each builds node for node the graph of the Python expression shown (as
 * pygrad/losses.py writes it), so it gives the same numbers and gradients.
 * Returns the loss node (a new reference) or a status, with *where saying
 * which argument was bad; nothing is built on error. pred holds n >= 1
 * prediction nodes, target ntarget numbers: n of them, one per prediction,
 * but one class per row for the cross-entropy. params (nparams nodes) is
 * read by PG_LOSS_HINGE alone; for the other kinds nparams must be 0.
 *   PG_LOSS_SUM_SQUARES  sum((y - p) ** 2 for y, p in zip(target, pred))
 *   PG_LOSS_MSE          that * (1.0 / n)
 *   PG_LOSS_ROOT_SUM_SQUARES  that sum ** 0.5 (seed 000's loss)
 *   PG_LOSS_HINGE        sum((1 + -y * p).relu() ...) * (1.0 / n)
 *                        + alpha * sum(w * w for w in params)   (micrograd's demo;
 *                        the L2 term only if nparams > 0)
 *   PG_LOSS_CROSS_ENTROPY  softmax cross-entropy: pred is n / nclass rows of
 *                        nclass logits, target their classes; per row, with
 *                        m = max(z.data for z in row) as Python's max gives
 *                        it (the first of the largest; a NaN first stays),
 *                        a constant,
 *                        sum((z - m).exp() for z in row).log() - (row[c] - m),
 *                        and the mean over rows as sum(...) * (1.0 / rows). */
enum pg_loss_kind {
    PG_LOSS_SUM_SQUARES = 0,
    PG_LOSS_MSE = 1,
    PG_LOSS_ROOT_SUM_SQUARES = 2,
    PG_LOSS_HINGE = 3,
    PG_LOSS_CROSS_ENTROPY = 4
};
pg_id pg_loss(int kind, const pg_id *pred, int64_t n, const double *target, int64_t ntarget,
              int64_t nclass, const pg_id *params, int64_t nparams, double alpha, pg_where *where);

/* ---- optimizers: one step over every parameter in one call -------------- */
enum pg_optim_kind { PG_SGD = 0, PG_ADAM = 1 };
/* PyTorch's torch.optim.SGD and torch.optim.Adam (amsgrad off), update for
 * update. SGD uses lr, momentum, dampening, weight_decay, nesterov; Adam uses
 * lr, beta1, beta2, eps, weight_decay. With momentum and weight_decay 0, SGD
 * is the tutorials' p.data -= lr * p.grad, to the bit. */
typedef struct pg_optim_config {
    int kind;
    double lr, momentum, dampening, weight_decay;
    int nesterov;
    double beta1, beta2, eps;
} pg_optim_config;
typedef struct pg_optim pg_optim;
/* The settings a config can get wrong, for pg_optim_check. */
enum pg_optim_setting {
    PG_OPTIM_VALID = 0,
    PG_OPTIM_KIND = 1,
    PG_OPTIM_LR = 2,
    PG_OPTIM_MOMENTUM = 3,
    PG_OPTIM_DAMPENING = 4,
    PG_OPTIM_WEIGHT_DECAY = 5,
    PG_OPTIM_NESTEROV = 6,
    PG_OPTIM_BETA1 = 7,
    PG_OPTIM_BETA2 = 8,
    PG_OPTIM_EPS = 9
};
/* The first setting of cfg that is invalid (PG_OPTIM_VALID if none): the
 * rules of torch.optim, with every number finite. The settings of the other
 * kind are not looked at. pg_optim_new and pg_optim_configure refuse (with
 * PG_EBADOP) exactly the configs this does not call valid. */
int pg_optim_check(const pg_optim_config *cfg);
/* The config field of a setting ("lr", "beta1", ...) and its rule ("a finite
 * number >= 0"), for messages; "" for PG_OPTIM_VALID or an unknown code. */
const char *pg_optim_setting_name(int setting);
const char *pg_optim_rule(int setting);
/* A learning-rate schedule for o (pg_tape_train_chunk's lrs): how many of
 * lrs[0 .. n) are valid as o's lr, from the first on; n if all are. */
int64_t pg_optim_check_lrs(const pg_optim *o, const double *lrs, int64_t n);
/* An optimizer over n parameter nodes (it holds a reference to each), or
 * NULL with *status set. */
pg_optim *pg_optim_new(const pg_optim_config *cfg, const pg_id *params, int64_t n, int *status);
void pg_optim_free(pg_optim *o);
int pg_optim_configure(pg_optim *o, const pg_optim_config *cfg);  /* e.g. a new lr */
int pg_optim_step(pg_optim *o);
int64_t pg_optim_steps(const pg_optim *o);  /* steps taken so far */
/* State, for checkpoints. An optimizer's state is its step count, whether
 * SGD's momentum buffer holds a step yet (has_momentum: 0 or 1; Adam keeps 0),
 * and two buffers of one double per parameter, in the order of params:
 * m (SGD's momentum buffer; Adam's first moment) and v (Adam's second moment;
 * SGD keeps zeros). Both calls take n, the buffers' length, which must be
 * pg_optim_size(o). set_state refuses (PG_EBADOP, nothing changed) a wrong
 * n, steps < 0, has_momentum other than 0 or 1, or a negative v. */
int64_t pg_optim_size(const pg_optim *o);  /* parameters */
int pg_optim_get_state(const pg_optim *o, int64_t *steps, int *has_momentum, double *m, double *v,
                       int64_t n);
int pg_optim_set_state(pg_optim *o, int64_t steps, int has_momentum, const double *m,
                       const double *v, int64_t n);

/* ---- replay: run a built graph again ------------------------------------ */
/* A tape records the topological order of the graph under root (and holds a
 * reference to root, so the graph lives as long as the tape). The graph's
 * shape is fixed; its leaves' data may change between runs. A tape computes
 * in arrays of its own and writes its numbers back into the graph's nodes
 * before anything reads or writes a node (any call taking a handle, and
 * pg_optim_step), so every call sees the graph as a node-by-node replay
 * would leave it. Calls on one tape must not overlap (as with free()). */
typedef struct pg_tape pg_tape;
/* The order of each neuron's sum b + w1*x1 + ... + wn*xn: micrograd's
 * (exact: a rebuild's numbers to the bit), or any (fast: within
 * 2 * n * 2**-53 * (|b| + |w1*x1| + ... + |wn*xn|) of the exact sum, the same
 * bits on every run on one machine). Every other sum is exact in both. */
enum pg_order { PG_ORDER_EXACT = 0, PG_ORDER_FAST = 1 };
/* The tape of the graph under root, compiled, in exact order; NULL with
 * *status set on failure. */
pg_tape *pg_tape_new(pg_id root, int *status);
/* The same in steps: pg_tape_start makes the tape, pg_tape_compile compiles
 * it about budget node-steps at a time (budget <= 0: all). pg_tape_compile
 * returns PG_OK once compiled, 1 while there is more to do, or a status:
 * then the tape is unusable, and if a node's op is one a tape cannot run,
 * *refused (if not NULL) is that node. A tape is usable once compiled. */
pg_tape *pg_tape_start(pg_id root, int order, int *status);
int pg_tape_compile(pg_tape *t, int64_t budget, pg_id *refused);
void pg_tape_free(pg_tape *t);
int64_t pg_tape_size(const pg_tape *t);  /* nodes in the graph */
/* How many neurons (act(b + w1*x1 + ... + wn*xn) chains, see tape_compile.c)
 * the tape runs as one step each, and how many layer steps run several side
 * by side; the numbers are the same either way. */
int64_t pg_tape_neurons(const pg_tape *t);
int64_t pg_tape_layers(const pg_tape *t);
/* How many batch steps it has: layer steps with the same weights, one per
 * sample of a batch, run side by side (tape_batch.c; the same numbers). */
int64_t pg_tape_batches(const pg_tape *t);
/* Test hooks: tapes made from now on run every node as its own step (0), or
 * find neurons (1, the default); put neurons side by side in layers (1, the
 * default) or not (0); refuse graphs that hold op (as a Python-defined op
 * will be refused), or nothing (-1, the default). */
void pg_debug_tape_fusion(int on);
void pg_debug_tape_layers(int on);
void pg_debug_tape_refuse(int op);
/* Test hook: layer steps run their plain C kernels (0), or the fastest the
 * CPU has (1, the default; the same bits). */
void pg_debug_tape_simd(int on);
/* Test hook: tapes made from now on keep layer steps apart (0), or run a
 * batch's as batch steps (1, the default; the same bits). */
void pg_debug_tape_batches(int on);
/* What failed in a replay: the node whose op raised, and its operands'
 * data at that moment (b is 0 for a unary op). */
typedef struct pg_failure {
    pg_id node;
    double a, b;
} pg_failure;
/* Recompute every node's data from its children's, in topological order.
 * On a math error the graph's data stays as it was, the status is
 * returned and *failed (if not NULL) says what failed. */
int pg_tape_forward(pg_tape *t, pg_failure *failed);
/* Set the root's grad to 1 and backpropagate: every grad in the graph is
 * set (no grad is added to what it held before). */
int pg_tape_backward(pg_tape *t);
/* iters iterations of: load row (i mod nrows) of data into the ninputs
 * nodes inputs (none if ninputs is 0), forward, losses[i] = the root's
 * data, backward, and one step of o (if not NULL). *done receives the
 * iterations completed. Inputs, and the optimizer's parameters, that are
 * nodes of the graph must be its leaves (else PG_EBADOP, with failed->node
 * naming the node); nodes outside the graph are loaded (inputs) and
 * stepped with a zero grad (parameters) as the node-by-node loop would.
 * On a math error everything is as the last completed iteration left it
 * (the graph's data, the inputs, the parameters), and the status is
 * returned. */
int pg_tape_train(pg_tape *t, pg_optim *o, int64_t iters, const pg_id *inputs, int64_t ninputs,
                  const double *data, int64_t ndata, int64_t nrows, double *losses, int64_t nlosses,
                  int64_t *done, pg_failure *failed);

/* The same calls in chunks of about budget node-steps (budget <= 0: no
 * limit), so that a caller can do other work between them (Python: Ctrl-C,
 * a progress bar). A forward or backward goes from step *next (0 to begin)
 * and leaves in *next where to go on, or -1 once it is done (then the
 * forward's *root, if not NULL, is the root's data). It takes effect only
 * once done: stopping between chunks changes nothing. A chunk that finds
 * the tape changed since the last one (its numbers written back because a
 * node was read) starts the pass again, without a budget. */
int pg_tape_forward_chunk(pg_tape *t, int64_t budget, int64_t *next, double *root,
                          pg_failure *failed);
int pg_tape_backward_chunk(pg_tape *t, int64_t budget, int64_t *next);
/* Columns of training data: row r's are data[r * stride .. r * stride + cols),
 * of the n doubles at data (PG_ESIZE if nrows rows need more). */
typedef struct pg_feed {
    const double *data;
    int64_t n;
    int64_t stride;
    int64_t cols;
} pg_feed;
/* pg_tape_train's iterations start, start + 1, ... up to iters of them,
 * stopping after the first that uses up budget: the inputs are fed from
 * the feeds side by side (their cols add up to ninputs; nrows rows each),
 * iteration i from row i mod nrows; its loss goes to losses[i - start]
 * (nlosses >= iters, else PG_ESIZE); *done grows by one per iteration
 * completed. lrs, if not NULL, is a learning-rate schedule: iteration
 * start + i steps o with learning rate lrs[i] (nlrs >= iters, else
 * PG_ESIZE), which stays o's. The iterations a call runs must have valid
 * ones (pg_optim_check_lrs), else PG_EBADOP before any of them runs, with
 * failed->a the first bad one and failed->b its index i. */
int pg_tape_train_chunk(pg_tape *t, pg_optim *o, const pg_id *inputs, int64_t ninputs,
                        const pg_feed *feeds, int64_t nfeeds, int64_t nrows, int64_t start,
                        int64_t iters, int64_t budget, double *losses, int64_t nlosses,
                        const double *lrs, int64_t nlrs, int64_t *done, pg_failure *failed);

/* ---- custom ops: nodes whose data and backward are the caller's --------- */
/* A node of op "custom" over the n nodes children (in order; n >= 0): its
 * data is data, its backward in C does nothing (micrograd's
 * Value(data, children, op) with its own _backward, which the caller runs: set
 * pg_set_python_backward). Its children are held like any node's (more than
 * two through hidden "group" nodes, ops.h). A new handle, or a status (on
 * PG_EBADID, *where names the child). */
pg_id pg_custom(double data, const pg_id *children, int64_t n, pg_where *where);
/* Mark (on = 1) or unmark a node of any op as one whose backward is the
 * caller's: backward() stops at it (PG_PYTHON, in a walk) instead of running
 * its kernel. A tape refuses a graph with such a node. */
int pg_set_python_backward(pg_id id, int on);

/* ---- autograd ----------------------------------------------------------- */
/* micrograd's backward: root.grad = 1, then every node's local backward in
 * reverse topological order, accumulating with +=. No recursion. Done in
 * this one call where the graph has at most budget nodes (budget <= 0: any
 * number) and no node is marked by pg_set_python_backward; else nothing is
 * done and PG_WALK is returned: run it as a walk. */
int pg_backward(pg_id root, int64_t budget);
/* One node's local backward, once (micrograd's Value._backward()): its
 * kernel's (a custom node's does nothing). */
int pg_backward_node(pg_id id);
/* A walk: the same backward in steps, so that the caller can run the nodes
 * whose backward is its own, and stay responsive (Ctrl-C) on a graph of any
 * size. The walk holds root, and with it the graph, until pg_walk_free. */
typedef struct pg_walk pg_walk;
pg_walk *pg_walk_new(pg_id root, int *status);
/* At most budget more nodes of work (budget >= 1): the sort, then root.grad
 * = 1, then the nodes' backwards in reverse order. Returns PG_OK when all is
 * done, PG_MORE to be called again, PG_PYTHON with *node the handle of a
 * marked node whose backward the caller must run now (the walk has passed
 * it), or PG_ENOMEM (called again, it tries again). */
int pg_walk_step(pg_walk *w, int64_t budget, pg_id *node);
void pg_walk_free(pg_walk *w);

/* ---- the arena ---------------------------------------------------------- */
int64_t pg_live_nodes(void);       /* nodes in use */
int64_t pg_capacity(void);         /* nodes the arena has memory for (it
                                      shrinks again once a big graph is freed) */
/* Cap the number of live nodes (0: no cap beyond the index range).
 * Building past the cap fails with PG_ELIMIT. */
int pg_set_node_limit(int64_t max_nodes);
int64_t pg_node_limit(void);
/* Test hook: make the n-th allocation from now fail (0 turns it off).
 * Returns the allocations that were still to go before the failure set
 * earlier: 0 once it has happened (or if none was set). */
int64_t pg_debug_fail_alloc(int64_t n);
/* Test hook: check the arena's invariants (the free list, the live count,
 * every live node's op, children and reference count). Returns the number
 * of violations found: 0 for a consistent arena, or PG_ENOMEM. */
int64_t pg_debug_check(void);

#endif
