/* fuzz_api.c: a fuzz harness of pygrad's public C API (csrc/pygrad.h).
 *
 * LLVMFuzzerTestOneInput reads its input as a program: each call's opcode,
 * then its arguments (handles picked from the ones the program holds, stale
 * ones, 0 and garbage; numbers from a table of edge cases or raw bits;
 * array lengths right or off by a little). It runs the calls, and after each
 * one checks that
 *   - the arena's invariants hold (pg_debug_check() == 0);
 *   - a call that failed changed nothing: the live node count, and the data
 *     and grad of every node held (bit for bit);
 * and at the end of the program, once everything it made is freed, that no
 * node is left. A violation stops the program with __builtin_trap(), which
 * libFuzzer (or replay.c, or AddressSanitizer) reports.
 *
 * Every array handed to the library is allocated with exactly the length
 * the call is told, so AddressSanitizer catches a read or write past it.
 * Build and run: see tests/fuzz/README.md.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pygrad.h"

#define REQUIRE(cond) \
    do {              \
        if (!(cond)) __builtin_trap(); \
    } while (0)

// ----------------------------------------------------------------------------
// reading the input

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t u8(reader *r) {
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

/* Numbers where the kernels have edges: zeros of both signs, the domains of
 * log and sqrt, the overflow of exp, infinities and NaN. */
static const double NUMBERS[] = {0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 3.0, -3.0, 0.1,
                                 1e-300, 1e300, -1e300, 709.0, 710.0, -745.0, 1e154,
                                 INFINITY, -INFINITY, NAN, 4.9e-324, 1.5, -2.5, 100.0};
#define NNUMBERS (sizeof NUMBERS / sizeof NUMBERS[0])

static double number(reader *r) {
    uint8_t b = u8(r);
    if (b < 0xF0) return NUMBERS[b % NNUMBERS];
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) bits |= (uint64_t)u8(r) << (8 * i);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* A length: mostly small, sometimes negative or large. */
static int64_t length(reader *r) {
    uint8_t b = u8(r);
    if (b < 0xF0) return b % 12;
    static const int64_t ODD[] = {-1, -2, 64, INT64_MIN, INT64_MAX, 1 << 20,
                                  (int64_t)1 << 33, 100};
    return ODD[b % 8];
}

/* A length near `want`: right most of the time, else off by a little. */
static int64_t near(reader *r, int64_t want) {
    static const int64_t OFF[] = {0, 0, 0, 0, 0, -1, 1, -2};
    int64_t off = OFF[u8(r) % 8];
    return want < INT32_MIN || want > INT32_MAX ? want : want + off; /* (no overflow) */
}

// ----------------------------------------------------------------------------
// what the program holds

#define MAX_HELD 64
#define MAX_STALE 16
#define MAX_TAPES 4
#define MAX_OPTIMS 4
#define MAX_ARRAY 1024 /* longer arrays are NULL (the library is told their length all the same) */

static pg_id held[MAX_HELD]; /* one reference each, the program's */
static int nheld;
static pg_id stale[MAX_STALE]; /* released handles, some now dead */
static int nstale;
static pg_tape *tapes[MAX_TAPES];
static pg_optim *optims[MAX_OPTIMS];

/* Keep a new reference (or give it back if there is no room). */
static void keep(pg_id h) {
    if (h <= 0) return;
    if (nheld < MAX_HELD) held[nheld++] = h;
    else REQUIRE(pg_release(h) == PG_OK);
}

static void drop(int i) {
    pg_id h = held[i];
    held[i] = held[--nheld];
    REQUIRE(pg_release(h) == PG_OK);
    stale[nstale++ % MAX_STALE] = h;
}

/* A handle: mostly one held, else 0, a stale one or garbage. */
static pg_id handle(reader *r) {
    uint8_t b = u8(r);
    if (b < 0xD0 && nheld) return held[b % nheld];
    switch (b % 6) {
    case 0: return 0;
    case 1: return nstale ? stale[b % (nstale < MAX_STALE ? nstale : MAX_STALE)] : 0;
    case 2: return -3;
    case 3: return (pg_id)1 << 40 | b;
    case 4: return INT64_MAX;
    default: return nheld ? held[0] + ((pg_id)1 << 32) : 7; /* a slot at another generation */
    }
}

/* Arrays are allocated to exactly the length the library is told (NULL for
 * a length <= 0 or above MAX_ARRAY), so that it can only read past one
 * where it reads more than it was told. */

/* n handles (where zeros, some 0: number inputs). */
static pg_id *handles(reader *r, int64_t n, int zeros) {
    if (n <= 0 || n > MAX_ARRAY) return NULL;
    pg_id *a = malloc((size_t)n * sizeof *a);
    REQUIRE(a);
    for (int64_t i = 0; i < n; i++) a[i] = zeros && (u8(r) & 1) ? 0 : handle(r);
    return a;
}

/* n numbers. */
static double *numbers(reader *r, int64_t n) {
    if (n <= 0 || n > MAX_ARRAY) return NULL;
    double *a = malloc((size_t)n * sizeof *a);
    REQUIRE(a);
    for (int64_t i = 0; i < n; i++) a[i] = number(r);
    return a;
}

// ----------------------------------------------------------------------------
// "a failed call changed nothing"

typedef struct snapshot {
    int64_t live;
    int n;
    uint64_t data[MAX_HELD], grad[MAX_HELD];
} snapshot;

static uint64_t bits_of(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void take(snapshot *s) {
    s->live = pg_live_nodes();
    s->n = nheld;
    for (int i = 0; i < nheld; i++) {
        s->data[i] = bits_of(pg_data(held[i]));
        s->grad[i] = bits_of(pg_grad(held[i]));
    }
}

/* The nodes held before are as they were (the call failed). */
static void same(const snapshot *s) {
    REQUIRE(pg_live_nodes() == s->live);
    for (int i = 0; i < s->n; i++) {
        REQUIRE(bits_of(pg_data(held[i])) == s->data[i]);
        REQUIRE(bits_of(pg_grad(held[i])) == s->grad[i]);
    }
}

/* After every call. */
static void consistent(void) { REQUIRE(pg_debug_check() == 0); }

/* A where that a failed call must have written: its arg within the call's
 * parameter list (0: none to blame). */
static void blamed(const pg_where *w, int nargs) {
    REQUIRE(w->arg >= 0 && w->arg <= nargs && w->index >= -1);
}

// ----------------------------------------------------------------------------
// the calls

static void call_mlp(reader *r) {
    int32_t nlayers = (int32_t)(u8(r) % 4); /* 0: an error */
    int32_t sizes[4], acts[3];
    for (int i = 0; i <= nlayers; i++) {
        sizes[i] = (int32_t)(u8(r) % 5);
        if (u8(r) == 0xFF) sizes[i] = -sizes[i] - 1; /* negative: an error */
    }
    int64_t nparams = 0;
    for (int l = 0; l < nlayers; l++) {
        uint8_t b = u8(r);
        acts[l] = b < 0xC0 ? (int32_t)(b % 9) : (int32_t)b - 0xC0; /* leaf, unary ops, then odd ones */
        if (sizes[l] >= 0 && sizes[l + 1] >= 0) nparams += (int64_t)sizes[l + 1] * (sizes[l] + 1);
    }
    int64_t np = near(r, nparams), nx = near(r, nlayers ? sizes[0] : 0);
    pg_id *params = handles(r, np, 0), *x = handles(r, nx, 1);
    int with_xnum = u8(r) % 4 != 0;
    int64_t nxnum = with_xnum ? near(r, nx) : 0;
    double *xnum = with_xnum ? numbers(r, nxnum) : NULL;
    int64_t nlast = nlayers ? sizes[nlayers] : 0;
    int64_t nout = near(r, nlast < 0 ? 0 : nlast);
    pg_id *out = nout > 0 && u8(r) % 4 ? calloc((size_t)nout, sizeof *out) : NULL;
    pg_where where = {-7, -7};
    snapshot s;
    take(&s);
    pg_id y = pg_mlp(params, np, sizes, acts, nlayers, x, nx, xnum, nxnum, out, out ? nout : 0,
                     &where);
    consistent();
    if (y < 0) {
        same(&s);
        blamed(&where, 12);
    } else if (out) {
        REQUIRE(nlast <= 0 || out[0] == y);
        for (int64_t j = 0; j < nlast; j++) keep(out[j]);
    } else {
        keep(y);
    }
    free(params), free(x), free(xnum), free(out);
}

static void call_loss(reader *r) {
    int kind = (int)(u8(r) % 6); /* 5: an error */
    int64_t nclass = kind == PG_LOSS_CROSS_ENTROPY ? (int64_t)(u8(r) % 4) : 1;
    int64_t n = length(r);
    pg_id *pred = handles(r, n, 0);
    int64_t rows = kind == PG_LOSS_CROSS_ENTROPY && nclass > 0 ? n / nclass : n;
    int64_t ntarget = near(r, rows);
    double *target = numbers(r, ntarget);
    if (target && kind == PG_LOSS_CROSS_ENTROPY) /* mostly classes, sometimes not */
        for (int64_t i = 0; i < ntarget; i++)
            if (u8(r) % 8) {
                uint8_t c = u8(r);
                target[i] = (double)(c % (nclass + 1));
            }
    int64_t nparams = kind == PG_LOSS_HINGE || u8(r) == 0xFF ? length(r) : 0;
    pg_id *params = handles(r, nparams, 0);
    double alpha = number(r);
    pg_where where = {-7, -7};
    snapshot s;
    take(&s);
    pg_id y = pg_loss(kind, pred, n, target, ntarget, nclass, params, nparams, alpha, &where);
    consistent();
    if (y < 0) {
        same(&s);
        blamed(&where, 10);
    } else {
        keep(y);
    }
    free(pred), free(target), free(params);
}

static void call_gather_scatter(reader *r, int scatter) {
    int64_t n = length(r);
    pg_id *ids = handles(r, n, 0);
    int field = u8(r) % 3; /* 2: an error */
    int64_t nv = near(r, n);
    double *vals = numbers(r, nv);
    int fill = u8(r) % 3 == 0;
    double fill_value = number(r);
    pg_where where = {-7, -7};
    snapshot s;
    take(&s);
    int status;
    if (scatter)
        status = pg_scatter(ids, n, field, fill ? NULL : vals, fill ? 0 : nv, fill_value, &where);
    else
        status = pg_gather(ids, n, field, vals, nv, &where);
    consistent();
    if (status != PG_OK) {
        same(&s);
        blamed(&where, scatter ? 7 : 6);
    }
    free(ids), free(vals);
}

static void call_optim(reader *r) {
    int slot = u8(r) % MAX_OPTIMS;
    pg_optim *o = optims[slot];
    switch (u8(r) % 4) {
    case 0: { /* new (replacing the one in the slot) */
        pg_optim_config cfg; /* (read one by one: the input's order) */
        cfg.kind = u8(r) % 3;
        cfg.lr = number(r), cfg.momentum = number(r), cfg.dampening = number(r);
        cfg.weight_decay = number(r), cfg.nesterov = u8(r) % 2;
        cfg.beta1 = number(r), cfg.beta2 = number(r), cfg.eps = number(r);
        if (u8(r) % 2) { /* mostly settings torch accepts */
            cfg.kind = u8(r) % 2;
            cfg.lr = 0.1, cfg.momentum = u8(r) % 2 ? 0.9 : 0.0, cfg.dampening = 0.0;
            cfg.weight_decay = 0.0, cfg.nesterov = 0, cfg.beta1 = 0.9, cfg.beta2 = 0.999;
            cfg.eps = 1e-8;
        }
        int64_t n = length(r);
        pg_id *params = handles(r, n, 0);
        int status = 12345;
        snapshot s;
        take(&s);
        pg_optim *made = pg_optim_new(&cfg, params, n, &status);
        consistent();
        REQUIRE((made != NULL) == (status == PG_OK));
        if (!made) same(&s);
        free(params);
        if (made) {
            pg_optim_free(o);
            optims[slot] = made;
        }
        break;
    }
    case 1:
        if (o) REQUIRE(pg_optim_step(o) == PG_OK);
        break;
    case 2:
        if (o) {
            int kind = u8(r) % 2;
            pg_optim_config cfg = {kind, number(r), 0.0, 0.0, 0.0, 0, 0.9, 0.999, 1e-8};
            pg_optim_configure(o, &cfg);
            REQUIRE(pg_optim_steps(o) >= 0);
        }
        break;
    default:
        pg_optim_free(o);
        optims[slot] = NULL;
    }
    consistent();
}

static void call_tape(reader *r) {
    int slot = u8(r) % MAX_TAPES;
    pg_tape *t = tapes[slot];
    switch (u8(r) % 5) {
    case 0: {
        int status = 12345;
        snapshot s;
        take(&s);
        pg_tape *made = pg_tape_new(handle(r), &status);
        consistent();
        REQUIRE((made != NULL) == (status == PG_OK));
        if (!made) {
            same(&s);
            break;
        }
        REQUIRE(pg_tape_size(made) >= 1 && pg_tape_neurons(made) >= 0);
        pg_tape_free(t);
        tapes[slot] = made;
        break;
    }
    case 1:
        if (t) {
            pg_failure failed;
            snapshot s;
            take(&s);
            if (pg_tape_forward(t, u8(r) % 2 ? &failed : NULL) != PG_OK) same(&s);
        }
        break;
    case 2:
        if (t) REQUIRE(pg_tape_backward(t) == PG_OK);
        break;
    case 3:
        if (t) {
            int64_t iters = u8(r) % 4;
            int64_t nin = length(r);
            int64_t nrows = 1 + u8(r) % 3, done = -1;
            pg_id *inputs = handles(r, nin, 0);
            double *data = nin > 0 && nin <= MAX_ARRAY ? numbers(r, nin * nrows) : NULL;
            pg_optim *o = optims[u8(r) % MAX_OPTIMS];
            double *losses = iters ? malloc((size_t)iters * sizeof(double)) : NULL;
            pg_failure failed;
            int status = pg_tape_train(t, o, iters, inputs, nin, data, data ? nin * nrows : 0, nrows,
                                       losses, iters, &done, &failed);
            REQUIRE(done >= 0 && done <= iters && (status != PG_OK || done == iters));
            free(inputs), free(data), free(losses);
        }
        break;
    default:
        pg_tape_free(t);
        tapes[slot] = NULL;
    }
    consistent();
}

/* One call of the program; 0 once the input is used up. */
static int step(reader *r) {
    if (!r->n) return 0;
    uint8_t op = u8(r);
    int nops = pg_op_count();
    snapshot s;
    pg_id y;
    switch (op % 20) {
    case 0:
        keep(pg_leaf(number(r)));
        break;
    case 1: case 2: case 3: case 4: case 5: { /* one op, of any form */
        int code = (int)(u8(r) % (nops + 2)) - 1; /* -1 and nops: bad codes */
        pg_id a = handle(r);
        pg_id b = handle(r);
        double x = number(r);
        double num = number(r);
        pg_id first = u8(r) % 2 ? b : 0;
        int inner = u8(r) % 2 ? 2 : 4; /* mul or powk (codes of ops.h) */
        take(&s);
        switch (op % 20) {
        case 1: y = pg_apply1(code, a); break;
        case 2: y = pg_apply1k(code, a, x); break;
        case 3: y = pg_apply2(code, a, b); break;
        case 4: y = pg_apply2n(code, a, x); break;
        default: y = pg_apply_composed(code, first, inner, a, x, num);
        }
        consistent();
        if (y < 0) same(&s);
        keep(y);
        break;
    }
    case 6: call_mlp(r); break;
    case 7: call_loss(r); break;
    case 8: call_gather_scatter(r, 0); break;
    case 9: call_gather_scatter(r, 1); break;
    case 10: call_optim(r); break;
    case 11: call_tape(r); break;
    case 12: { /* retain: the program holds one more */
        pg_id h = handle(r);
        if (pg_retain(h) == PG_OK) keep(h);
        break;
    }
    case 13:
        if (nheld) drop(u8(r) % nheld);
        break;
    case 14: { /* a node limit near the live count, or none */
        uint8_t b = u8(r);
        pg_set_node_limit(b % 4 == 0 ? 0 : pg_live_nodes() + b % 40);
        break;
    }
    case 15:
        pg_debug_fail_alloc(u8(r) % 6);
        break;
    case 16: {
        pg_id h = handle(r);
        int status = u8(r) % 2 ? pg_backward(h, 0) : pg_backward_node(h);
        REQUIRE(status == PG_OK || status == PG_EBADID || status == PG_ENOMEM);
        break;
    }
    case 17: { /* writes */
        pg_id h = handle(r);
        double d = number(r);
        if (u8(r) % 2) pg_set_data(h, d);
        else pg_set_grad(h, d);
        break;
    }
    case 18: { /* reads: each is a value or a status, never a crash */
        pg_id h = handle(r);
        int c = (int)(u8(r) % 4) - 1;
        (void)pg_data(h), (void)pg_grad(h), (void)pg_k(h);
        int o = pg_op(h);
        int v = pg_valid(h);
        pg_id ch = pg_child(h, c);
        REQUIRE(v == 0 || v == 1);
        REQUIRE(v ? o >= 0 && o < nops : o == PG_EBADID);
        REQUIRE(!v || c < 0 || c > 1 || ch >= 0);
        break;
    }
    default: { /* the tables and strings, with any code */
        int code = (int)(int8_t)u8(r);
        REQUIRE(pg_strerror(code) != NULL && pg_op_name(code) != NULL &&
                pg_op_symbol(code) != NULL);
        (void)pg_op_arity(code), (void)pg_op_takes_k(code);
        pg_debug_tape_fusion(u8(r) % 4 != 0);
        break;
    }
    }
    consistent();
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size};
    pg_debug_fail_alloc(0);
    pg_set_node_limit(0);
    pg_debug_tape_fusion(1);
    int64_t base = pg_live_nodes();
    for (int calls = 0; calls < 400 && step(&r); calls++) {}
    /* Free everything; then nothing may be left. */
    pg_debug_fail_alloc(0);
    pg_set_node_limit(0);
    for (int i = 0; i < MAX_TAPES; i++) pg_tape_free(tapes[i]), tapes[i] = NULL;
    for (int i = 0; i < MAX_OPTIMS; i++) pg_optim_free(optims[i]), optims[i] = NULL;
    while (nheld) drop(nheld - 1);
    nstale = 0;
    consistent();
    REQUIRE(pg_live_nodes() == base);
    return 0;
}
