/* threads_harness.c: the C library called from several pthreads at once.
 *
 * tests/test_threads.py compiles this with the library's sources
 * (csrc/) and runs it, plainly and under ThreadSanitizer. Python calls the library
 * holding the GIL (pygrad/_ffi_build.py), so Python threads never are inside
 * it together; C callers are, and the arena's own lock is what keeps them
 * apart. This program checks that lock:
 *
 * - each thread does its own work (train an MLP through pg_mlp, pg_loss,
 *   pg_backward and an SGD optimizer; replay a graph with pg_tape_train and
 *   Adam; build and free long chains that use nodes shared by all threads)
 *   while the others do theirs, and gets, bit for bit, what the same work
 *   got when run alone, on one thread;
 * - all threads call pg_backward on one shared graph, and pg_retain /
 *   pg_release on shared nodes, at once: each call is atomic, so the shared
 *   grads equal those of as many backward calls in a row;
 * - every node is back in the arena at the end.
 *
 * The arena grows (moves) while threads run: the first thread's chains
 * need more slots than anything before them.
 *
 * Exits 0 and prints "ok" if every check passes; prints what failed and
 * exits 1 otherwise.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pygrad.h"

#define NTHREADS 4
#define TRAIN_ITERS 1000
#define TAPE_ITERS 3000
#define CHAIN 30000
#define SHARED_BACKWARDS 50
#define RETAINS 20000

static int failures = 0;

#define CHECK(cond, ...)                                      \
    do {                                                      \
        if (!(cond)) {                                        \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                     \
            fputc('\n', stderr);                              \
            __atomic_add_fetch(&failures, 1, __ATOMIC_SEQ_CST); \
        }                                                     \
    } while (0)

/* An op code by its name (the table is the library's). */
static int op(const char *name) {
    for (int i = 0; i < pg_op_count(); i++)
        if (strcmp(pg_op_name(i), name) == 0) return i;
    fprintf(stderr, "no op %s\n", name);
    exit(1);
}
static int OP_ADD, OP_MUL, OP_TANH, OP_SIN;

/* A per-thread stream of numbers in [-1, 1) (an LCG: no shared state). */
static double uniform(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* W1's data and network: 3 -> 4 -> 4 -> 1, tanh everywhere. */
static const double XS[4][3] = {{2, 3, -1}, {3, -1, 0.5}, {0.5, 1, 1}, {1, 1, -1}};
static const double YS[4] = {1, -1, -1, 1};
static const int32_t SIZES[4] = {3, 4, 4, 1};
#define NPARAMS (4 * 4 + 4 * 5 + 1 * 5)

/* Nodes every thread uses as operands (read only), and a graph every
 * thread runs backward on. */
static pg_id shared_leaf[8];
static pg_id shared_x[3], shared_root;

/* What one thread computes; compared byte for byte with a lone run. */
typedef struct result {
    double train_loss[TRAIN_ITERS];
    double train_params[NPARAMS];
    double tape_loss[TAPE_ITERS];
    double tape_params[NPARAMS];
    double chain_data, chain_grad;
} result;

static void make_params(uint64_t seed, pg_id *params) {
    for (int i = 0; i < NPARAMS; i++) {
        params[i] = pg_leaf(uniform(&seed));
        CHECK(params[i] > 0, "pg_leaf: %lld", (long long)params[i]);
    }
}

static void release_all(const pg_id *ids, int n) {
    for (int i = 0; i < n; i++) CHECK(pg_release(ids[i]) == PG_OK, "pg_release");
}

/* The tutorials' loop: forward, loss, zero_grad, backward, SGD step. */
static void train(uint64_t seed, result *r) {
    int32_t acts[3] = {op("tanh"), op("tanh"), op("tanh")};
    pg_id params[NPARAMS], nothing[3] = {0, 0, 0};
    make_params(seed, params);
    pg_optim_config cfg = {.kind = PG_SGD, .lr = 0.01};
    int status;
    pg_optim *sgd = pg_optim_new(&cfg, params, NPARAMS, &status);
    CHECK(sgd, "pg_optim_new: %d", status);
    for (int it = 0; it < TRAIN_ITERS; it++) {
        pg_id pred[4];
        for (int s = 0; s < 4; s++) {
            pred[s] = pg_mlp(params, NPARAMS, SIZES, acts, 3, nothing, 3, XS[s], 3, NULL, 0, NULL);
            CHECK(pred[s] > 0, "pg_mlp: %lld", (long long)pred[s]);
        }
        pg_id loss = pg_loss(PG_LOSS_ROOT_SUM_SQUARES, pred, 4, YS, 4, 1, NULL, 0, 0.0, NULL);
        CHECK(loss > 0, "pg_loss: %lld", (long long)loss);
        release_all(pred, 4);
        CHECK(pg_scatter(params, NPARAMS, PG_GRAD, NULL, 0, 0.0, NULL) == PG_OK, "zero_grad");
        CHECK(pg_backward(loss, 0) == PG_OK, "pg_backward");
        CHECK(pg_optim_step(sgd) == PG_OK, "pg_optim_step");
        r->train_loss[it] = pg_data(loss);
        CHECK(pg_release(loss) == PG_OK, "pg_release");
    }
    CHECK(pg_gather(params, NPARAMS, PG_DATA, r->train_params, NPARAMS, NULL) == PG_OK, "pg_gather");
    pg_optim_free(sgd);
    release_all(params, NPARAMS);
}

/* A graph built once over input leaves and replayed with Adam. */
static void tape(uint64_t seed, result *r) {
    int32_t acts[3] = {op("tanh"), op("tanh"), op("tanh")};
    pg_id params[NPARAMS], x[3], pred;
    make_params(seed, params);
    for (int i = 0; i < 3; i++) x[i] = pg_leaf(0.0);
    pred = pg_mlp(params, NPARAMS, SIZES, acts, 3, x, 3, NULL, 0, NULL, 0, NULL);
    double target = 0.5;
    pg_id loss = pg_loss(PG_LOSS_SUM_SQUARES, &pred, 1, &target, 1, 1, NULL, 0, 0.0, NULL);
    CHECK(pred > 0 && loss > 0, "building the tape's graph");
    int status;
    pg_tape *t = pg_tape_new(loss, &status);
    CHECK(t, "pg_tape_new: %d", status);
    pg_optim_config cfg = {.kind = PG_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    pg_optim *adam = pg_optim_new(&cfg, params, NPARAMS, &status);
    CHECK(adam, "pg_optim_new: %d", status);
    CHECK(pg_release(pred) == PG_OK && pg_release(loss) == PG_OK, "release"); /* the tape holds them */
    /* In chunks, so that the other threads get the lock in between. */
    for (int done = 0; done < TAPE_ITERS; done += 100) {
        int64_t n;
        status = pg_tape_train(t, adam, 100, x, 3, &XS[0][0], 12, 4, r->tape_loss + done, 100, &n,
                               NULL);
        CHECK(status == PG_OK && n == 100, "pg_tape_train: %d", status);
    }
    CHECK(pg_gather(params, NPARAMS, PG_DATA, r->tape_params, NPARAMS, NULL) == PG_OK, "pg_gather");
    pg_tape_free(t);
    pg_optim_free(adam);
    release_all(x, 3);
    release_all(params, NPARAMS);
}

/* A long chain y = sin(y * s + c) over the shared leaves s; backward; free. */
static void chain(uint64_t seed, result *r) {
    pg_id x = pg_leaf(uniform(&seed)), y = x;
    CHECK(pg_retain(y) == PG_OK, "pg_retain");
    for (int i = 0; i < CHAIN; i++) {
        pg_id m = pg_apply2(OP_MUL, y, shared_leaf[i % 8]);
        pg_id a = pg_apply2n(OP_ADD, m, 0.25);
        pg_id s = pg_apply1(OP_SIN, a);
        CHECK(m > 0 && a > 0 && s > 0, "building the chain");
        pg_release(y), pg_release(m), pg_release(a);
        y = s;
    }
    CHECK(pg_backward(y, 0) == PG_OK, "pg_backward");
    r->chain_data = pg_data(y);
    r->chain_grad = pg_grad(x);
    pg_release(y);
    pg_release(x);
}

/* Each call is atomic under the arena lock, so whatever the interleaving,
 * the shared grads end as after SHARED_BACKWARDS * NTHREADS calls in a row. */
static void shared_work(void) {
    for (int i = 0; i < SHARED_BACKWARDS; i++) CHECK(pg_backward(shared_root, 0) == PG_OK, "shared");
    for (int i = 0; i < RETAINS; i++) {
        pg_id v = shared_leaf[i % 8];
        CHECK(pg_retain(v) == PG_OK, "pg_retain");
        pg_id c = pg_child(shared_root, 0);
        CHECK(c > 0 && pg_retain(c) == PG_OK && pg_release(c) == PG_OK, "pg_child");
        CHECK(pg_release(v) == PG_OK, "pg_release");
    }
}

static result alone[NTHREADS], together[NTHREADS];

static void own_work(int i, result *r) {
    chain(1000 + (uint64_t)i, r); /* first: the biggest, so the arena grows while others run */
    train(2000 + (uint64_t)i, r);
    tape(3000 + (uint64_t)i, r);
}

static void *thread_main(void *arg) {
    int i = (int)(intptr_t)arg;
    own_work(i, &together[i]);
    shared_work();
    return NULL;
}

/* The shared graph (shared_leaf is made once, in main). */
static void make_shared(void) {
    for (int i = 0; i < 3; i++) shared_x[i] = pg_leaf(0.25 * (i + 1));
    /* root = tanh(x0 * x1 + x1 * x2) * x0: x0 and x1 reached twice */
    pg_id a = pg_apply2(OP_MUL, shared_x[0], shared_x[1]);
    pg_id b = pg_apply2(OP_MUL, shared_x[1], shared_x[2]);
    pg_id c = pg_apply2(OP_ADD, a, b);
    pg_id d = pg_apply1(OP_TANH, c);
    shared_root = pg_apply2(OP_MUL, d, shared_x[0]);
    CHECK(shared_root > 0, "building the shared graph");
    pg_release(a), pg_release(b), pg_release(c), pg_release(d);
}

static void shared_grads(double *out) {
    pg_id ids[4] = {shared_x[0], shared_x[1], shared_x[2], pg_child(shared_root, 0)};
    CHECK(pg_gather(ids, 4, PG_GRAD, out, 4, NULL) == PG_OK, "pg_gather");
}

int main(void) {
    OP_ADD = op("add"), OP_MUL = op("mul"), OP_TANH = op("tanh"), OP_SIN = op("sin");
    CHECK(pg_live_nodes() == 0, "a fresh arena");
    for (int i = 0; i < 8; i++) shared_leaf[i] = pg_leaf(0.5 + 0.0625 * i);

    /* One thread: the work of every thread in turn, and the shared graph's
     * grads after as many backward calls in a row. */
    make_shared();
    int64_t base = pg_live_nodes();
    for (int i = 0; i < NTHREADS; i++) own_work(i, &alone[i]);
    CHECK(pg_live_nodes() == base, "one thread: every node returned");
    for (int i = 0; i < SHARED_BACKWARDS * NTHREADS; i++) pg_backward(shared_root, 0);
    double want[4], got[4];
    shared_grads(want);
    pg_scatter(shared_x, 3, PG_GRAD, NULL, 0, 0.0, NULL);
    pg_release(shared_root);
    for (int i = 0; i < 3; i++) pg_release(shared_x[i]);
    make_shared();

    /* Many threads at once. */
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i) == 0, "pthread_create");
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);

    for (int i = 0; i < NTHREADS; i++)
        CHECK(memcmp(&alone[i], &together[i], sizeof(result)) == 0,
              "thread %d: results differ from the one-thread run", i);
    shared_grads(got);
    CHECK(memcmp(want, got, sizeof want) == 0, "shared graph: grads %a %a %a differ from %a %a %a",
          got[0], got[1], got[2], want[0], want[1], want[2]);
    for (int i = 0; i < 8; i++) CHECK(pg_data(shared_leaf[i]) == 0.5 + 0.0625 * i, "shared leaf");
    CHECK(isfinite(alone[0].train_loss[TRAIN_ITERS - 1]) &&
              alone[0].train_loss[TRAIN_ITERS - 1] < alone[0].train_loss[0],
          "training did not train");

    pg_release(shared_root);
    for (int i = 0; i < 3; i++) pg_release(shared_x[i]);
    for (int i = 0; i < 8; i++) pg_release(shared_leaf[i]);
    CHECK(pg_live_nodes() == 0, "%lld nodes left", (long long)pg_live_nodes());
    if (failures) return 1;
    puts("ok");
    return 0;
}
