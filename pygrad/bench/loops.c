/*
 * loops.c: hand-written C training loops, the "how fast could it be" baseline of
 * pygrad's benchmarks. pygrad/bench/baselines.py compiles this file on the spot with
 *
 *     cc -O2 -ffp-contract=off -fno-fast-math -o loops loops.c -lm
 *
 * and runs it as `loops w1|w2|chain|mnist`, the input as text on stdin (the MNIST
 * data as a raw binary file named on stdin), the results as key=value lines on
 * stdout. Only the training loop is timed (clock_gettime(CLOCK_MONOTONIC)): not
 * process start, parsing, allocation or printing.
 *
 * The networks are micrograd's MLP: parameters in micrograd's parameters() order
 * (for each layer, for each neuron: w[0..nin-1], then b), a neuron's sum formed in
 * micrograd's order (b + w0*x0 + w1*x1 + ...), libm's tanh. The backward pass
 * visits the samples, and the neurons of each layer, last to first, which is the
 * order in which pygrad.reference's backward (a reversed depth-first topological
 * order) adds up the gradients; W1 mirrors that engine op for op, so its losses
 * match the pure-Python reference to the bit.
 */
#define _POSIX_C_SOURCE 199309L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LAYERS 8

/* ---------------------------------------------------------------- utilities */

static void die(const char *msg)
{
    fprintf(stderr, "loops: %s\n", msg);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        die("out of memory");
    return p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* libm's pow, always called: GCC would compile pow(x, 2.0) as x * x, and glibc's
 * pow (within 1 ulp, not correctly rounded) sometimes differs from that in the last
 * bit, while Python's x ** 2.0 does call pow. The volatile pointer keeps the call. */
static double (*volatile libm_pow)(double, double) = pow;

/* Input is whitespace-separated text; Python's repr of a float reads back
 * exactly with strtod (which scanf's %lf uses). */
static double read_double(void)
{
    double v;
    if (scanf("%lf", &v) != 1)
        die("expected a number on stdin");
    return v;
}

static long read_long(void)
{
    long v;
    if (scanf("%ld", &v) != 1)
        die("expected an integer on stdin");
    return v;
}

static void read_doubles(double *dst, long n)
{
    for (long i = 0; i < n; i++)
        dst[i] = read_double();
}

/* %.17g reads back exactly with Python's float(). */
static void print_double(const char *key, double v)
{
    printf("%s=%.17g\n", key, v);
}

static void print_doubles(const char *key, const double *v, long n)
{
    printf("%s=", key);
    for (long i = 0; i < n; i++)
        printf(i ? " %.17g" : "%.17g", v[i]);
    printf("\n");
}

/* -------------------------------------------------------------- the network */

enum activation { LINEAR, TANH, RELU };

typedef struct {
    int nlayers;
    int size[MAX_LAYERS + 1];      /* size[0] inputs, size[l + 1] outputs of layer l */
    enum activation act[MAX_LAYERS];
    long offset[MAX_LAYERS];       /* where layer l's neurons start in p and g */
    long out_offset[MAX_LAYERS];   /* where layer l's outputs start in an activation buffer */
    long nparams, nunits;          /* nunits: outputs of all layers together */
    double *p, *g;                 /* parameters and their gradients, micrograd's order */
} mlp;

/* Reads "nlayers nin nout_1 .. nout_L act_1 .. act_L" (act: 0 linear, 1 tanh,
 * 2 relu), then the parameters, from stdin. */
static void mlp_read(mlp *m)
{
    long nlayers = read_long();
    if (nlayers < 1 || nlayers > MAX_LAYERS)
        die("bad number of layers");
    m->nlayers = (int)nlayers;
    for (int l = 0; l <= m->nlayers; l++) {
        long n = read_long();
        if (n < 1 || n > 1000000)
            die("bad layer size");
        m->size[l] = (int)n;
    }
    for (int l = 0; l < m->nlayers; l++) {
        long a = read_long();
        if (a < LINEAR || a > RELU)
            die("bad activation");
        m->act[l] = (enum activation)a;
    }
    m->nparams = m->nunits = 0;
    for (int l = 0; l < m->nlayers; l++) {
        m->offset[l] = m->nparams;
        m->out_offset[l] = m->nunits;
        m->nparams += (long)m->size[l + 1] * (m->size[l] + 1);
        m->nunits += m->size[l + 1];
    }
    if (read_long() != m->nparams)
        die("parameter count does not match the layer sizes");
    m->p = xcalloc((size_t)m->nparams, sizeof(double));
    m->g = xcalloc((size_t)m->nparams, sizeof(double));
    read_doubles(m->p, m->nparams);
}

static void mlp_free(mlp *m)
{
    free(m->p);
    free(m->g);
}

/* The outputs of the last layer within an activation buffer. */
static double *mlp_output(const mlp *m, double *acts)
{
    return acts + m->out_offset[m->nlayers - 1];
}

/* Forward pass of one sample x: acts receives every layer's outputs. */
static void mlp_forward(const mlp *m, const double *x, double *acts)
{
    const double *in = x;
    for (int l = 0; l < m->nlayers; l++) {
        int nin = m->size[l], nout = m->size[l + 1];
        const double *row = m->p + m->offset[l];
        double *out = acts + m->out_offset[l];
        for (int j = 0; j < nout; j++, row += nin + 1) {
            double z = row[nin];                  /* micrograd: sum(w_i * x_i, start=b) */
            for (int i = 0; i < nin; i++)
                z = z + row[i] * in[i];
            switch (m->act[l]) {
            case TANH: out[j] = tanh(z); break;
            case RELU: out[j] = z < 0 ? 0.0 : z; break;   /* micrograd's relu */
            default: out[j] = z; break;
            }
        }
        in = out;
    }
}

/* Backward pass of one sample: given d(loss)/d(output) of the last layer in
 * gout, adds this sample's gradient into m->g. acts is the sample's forward
 * buffer; scratch (nunits doubles) receives the gradients of every layer's
 * outputs. */
static void mlp_backward(const mlp *m, const double *x, const double *acts,
                         const double *gout, double *scratch)
{
    memset(scratch, 0, (size_t)m->nunits * sizeof(double));
    memcpy(scratch + m->out_offset[m->nlayers - 1], gout,
           (size_t)m->size[m->nlayers] * sizeof(double));
    for (int l = m->nlayers - 1; l >= 0; l--) {
        int nin = m->size[l], nout = m->size[l + 1];
        const double *in = l ? acts + m->out_offset[l - 1] : x;
        double *gin = l ? scratch + m->out_offset[l - 1] : NULL;   /* no grad for x */
        const double *out = acts + m->out_offset[l];
        const double *gl = scratch + m->out_offset[l];
        for (int j = nout - 1; j >= 0; j--) {
            const double *row = m->p + m->offset[l] + (long)j * (nin + 1);
            double *grow = m->g + m->offset[l] + (long)j * (nin + 1);
            double gz;                            /* d(loss)/d(the neuron's sum) */
            switch (m->act[l]) {
            case TANH: gz = (1.0 - out[j] * out[j]) * gl[j]; break;
            case RELU: gz = (double)(out[j] > 0) * gl[j]; break;   /* micrograd's relu' */
            default: gz = gl[j]; break;
            }
            grow[nin] += gz;                      /* the bias */
            for (int i = 0; i < nin; i++) {
                grow[i] += in[i] * gz;
                if (gin)
                    gin[i] += row[i] * gz;
            }
        }
    }
}

static void sgd_step(mlp *m, double lr)
{
    for (long i = 0; i < m->nparams; i++)
        m->p[i] -= lr * m->g[i];
}

static void zero_grad(mlp *m)
{
    memset(m->g, 0, (size_t)m->nparams * sizeof(double));
}

/* Reads n samples of m's input size, then n targets, from stdin. */
static void read_samples(const mlp *m, long n, double **xs, double **ys)
{
    *xs = xcalloc((size_t)(n * m->size[0]), sizeof(double));
    *ys = xcalloc((size_t)n, sizeof(double));
    read_doubles(*xs, n * m->size[0]);
    read_doubles(*ys, n);
}

/* ------------------------------------------------------------------- W1 */

/* stdin: iters lr, the network, n, the n inputs, the n targets.
 * loss = sqrt(sum_s (y_s - ypred_s)^2), SGD. Every op is pygrad.reference's
 * (so micrograd's): y - ypred as ypred * -1 + y, ** as pow, the sum from 0 in
 * sample order, and the gradient of each as that engine's backward forms it. */
static void run_w1(void)
{
    long iters = read_long();
    double lr = read_double();
    mlp m;
    mlp_read(&m);
    if (m.size[m.nlayers] != 1)
        die("w1 needs one output");
    long n = read_long();
    if (iters < 0 || n < 1)
        die("bad iteration or sample count");
    double *xs, *ys;
    read_samples(&m, n, &xs, &ys);

    double *acts = xcalloc((size_t)(n * m.nunits), sizeof(double));
    double *scratch = xcalloc((size_t)m.nunits, sizeof(double));
    double *diff = xcalloc((size_t)n, sizeof(double));
    double *losses = xcalloc((size_t)iters, sizeof(double));

    double t0 = now();
    for (long it = 0; it < iters; it++) {
        double sum = 0.0;
        for (long s = 0; s < n; s++) {
            double *a = acts + s * m.nunits;
            mlp_forward(&m, xs + s * m.size[0], a);
            diff[s] = mlp_output(&m, a)[0] * -1.0 + ys[s];
            sum = sum + libm_pow(diff[s], 2.0);
        }
        double loss = libm_pow(sum, 0.5);

        zero_grad(&m);
        double gsum = 0.5 * libm_pow(sum, -0.5);       /* d loss / d sum */
        for (long s = n - 1; s >= 0; s--) {
            double gdiff = (2.0 * libm_pow(diff[s], 1.0)) * gsum;
            double gout = -1.0 * gdiff;           /* d diff / d ypred = -1 */
            mlp_backward(&m, xs + s * m.size[0], acts + s * m.nunits, &gout, scratch);
        }
        sgd_step(&m, lr);
        losses[it] = loss;
    }
    double seconds = now() - t0;

    print_double("seconds", seconds);
    print_doubles("losses", losses, iters);
    free(xs), free(ys), free(acts), free(scratch), free(diff), free(losses);
    mlp_free(&m);
}

/* ------------------------------------------------------------------- W2 */

/* stdin: steps alpha, the network, n, the n inputs, the n labels (+-1).
 * micrograd's demo: loss = mean_s relu(1 - y_s * score_s) + alpha * sum(p * p),
 * full batch, SGD with lr = 1 - 0.9 * k / 100 at step k (also when steps != 100).
 * Prints each step's loss before its update, and the accuracy of the last step's
 * scores. */
static void run_w2(void)
{
    long steps = read_long();
    double alpha = read_double();
    mlp m;
    mlp_read(&m);
    if (m.size[m.nlayers] != 1)
        die("w2 needs one output");
    long n = read_long();
    if (steps < 0 || n < 1)
        die("bad step or sample count");
    double *xs, *ys;
    read_samples(&m, n, &xs, &ys);

    double *acts = xcalloc((size_t)(n * m.nunits), sizeof(double));
    double *scratch = xcalloc((size_t)m.nunits, sizeof(double));
    double *margin = xcalloc((size_t)n, sizeof(double));
    double *losses = xcalloc((size_t)steps, sizeof(double));
    double accuracy = NAN;   /* of the last step's scores, as micrograd's demo prints it */

    double t0 = now();
    for (long k = 0; k < steps; k++) {
        double data_sum = 0.0, reg_sum = 0.0;
        long correct = 0;
        for (long s = 0; s < n; s++) {
            double *a = acts + s * m.nunits;
            mlp_forward(&m, xs + s * m.size[0], a);
            double score = mlp_output(&m, a)[0];
            margin[s] = score * -ys[s] + 1.0;     /* (1 + -y * score) */
            data_sum = data_sum + (margin[s] < 0 ? 0.0 : margin[s]);
            correct += (ys[s] > 0) == (score > 0);
        }
        for (long i = 0; i < m.nparams; i++)
            reg_sum = reg_sum + m.p[i] * m.p[i];
        double loss = data_sum * (1.0 / (double)n) + alpha * reg_sum;

        zero_grad(&m);
        for (long i = 0; i < m.nparams; i++) {    /* d(alpha * p * p)/dp, as p*p's backward adds it */
            m.g[i] += m.p[i] * alpha;
            m.g[i] += m.p[i] * alpha;
        }
        double gloss = 1.0 / (double)n;           /* d loss / d (each sample's hinge) */
        for (long s = n - 1; s >= 0; s--) {
            double gout = -ys[s] * ((double)(margin[s] > 0) * gloss);
            mlp_backward(&m, xs + s * m.size[0], acts + s * m.nunits, &gout, scratch);
        }
        sgd_step(&m, 1.0 - 0.9 * (double)k / 100.0);   /* the demo's schedule, verbatim */
        losses[k] = loss;
        accuracy = (double)correct / (double)n;
    }
    double seconds = now() - t0;

    print_double("seconds", seconds);
    print_doubles("losses", losses, steps);
    print_double("accuracy", accuracy);
    free(xs), free(ys), free(acts), free(scratch), free(margin), free(losses);
    mlp_free(&m);
}

/* ---------------------------------------------------------------- chain */

/* stdin: steps a b y0. A chain y = tanh(y * a + b), steps times, 3 nodes a step
 * (mul, add, tanh), every node's value and gradient in an array, as a graph
 * engine would keep them. Backward from the last node, d(last) = 1, adds up the
 * gradients of the shared leaves a and b and of y0. */
static void run_chain(void)
{
    long steps = read_long();
    double a = read_double(), b = read_double(), y0 = read_double();
    if (steps < 1)
        die("the chain needs at least one step");
    size_t nodes = 3 * (size_t)steps;
    double *val = malloc(nodes * sizeof(double));
    double *grad = malloc(nodes * sizeof(double));
    if (!val || !grad)
        die("out of memory");
    /* Touch every page now, so that neither timed pass pays the page faults. */
    memset(val, 0, nodes * sizeof(double));
    memset(grad, 0, nodes * sizeof(double));

    /* One call of tanh first, so that the timed loop does not pay for the dynamic
     * linker's resolving it. */
    volatile double warm = tanh(y0);
    (void)warm;

    /* node 3i: mul = y * a; 3i + 1: add = mul + b; 3i + 2: tanh(add), the next y */
    double t0 = now();
    double y = y0;
    for (size_t i = 0; i < (size_t)steps; i++) {
        val[3 * i] = y * a;
        val[3 * i + 1] = val[3 * i] + b;
        val[3 * i + 2] = tanh(val[3 * i + 1]);
        y = val[3 * i + 2];
    }
    double t1 = now();

    memset(grad, 0, nodes * sizeof(double));    /* zero_grad is part of backward */
    double ga = 0.0, gb = 0.0, gy0 = 0.0;
    grad[nodes - 1] = 1.0;
    for (size_t i = (size_t)steps; i-- > 0;) {
        double t = val[3 * i + 2];
        grad[3 * i + 1] += (1.0 - t * t) * grad[3 * i + 2];    /* tanh */
        grad[3 * i] += grad[3 * i + 1];                         /* add */
        gb += grad[3 * i + 1];
        double yin = i ? val[3 * i - 1] : y0;                   /* mul */
        ga += yin * grad[3 * i];
        if (i)
            grad[3 * i - 1] += a * grad[3 * i];
        else
            gy0 += a * grad[3 * i];
    }
    double t2 = now();

    print_double("seconds_forward", t1 - t0);
    print_double("seconds_backward", t2 - t1);
    print_double("final_value", val[nodes - 1]);
    print_double("grad_a", ga);
    print_double("grad_b", gb);
    print_double("grad_y0", gy0);
    free(val);
    free(grad);
}

/* ---------------------------------------------------------------- MNIST */

/* stdin: batch steps lr, the network (linear last layer: the logits), n, and the
 * name of a binary file holding the n x nin inputs (native doubles, row-major)
 * followed by the n labels (native int32). Softmax cross-entropy averaged over
 * the batch, SGD; step k takes samples (k * batch + i) mod n, i < batch. */
static void run_mnist(void)
{
    long batch = read_long(), steps = read_long();
    double lr = read_double();
    mlp m;
    mlp_read(&m);
    long n = read_long();
    char path[4096];
    if (scanf(" %4095[^\n]", path) != 1)
        die("expected the data file name");
    if (batch < 1 || steps < 0 || n < 1)
        die("bad batch, step or sample count");
    int nin = m.size[0], nclass = m.size[m.nlayers];

    double *xs = xcalloc((size_t)n * (size_t)nin, sizeof(double));
    int *labels = xcalloc((size_t)n, sizeof(int));
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open the data file");
    if (fread(xs, sizeof(double), (size_t)n * (size_t)nin, f) != (size_t)n * (size_t)nin
        || fread(labels, sizeof(int), (size_t)n, f) != (size_t)n)
        die("the data file is too short");
    fclose(f);
    for (long s = 0; s < n; s++)
        if (labels[s] < 0 || labels[s] >= nclass)
            die("label out of range");

    double *acts = xcalloc((size_t)m.nunits, sizeof(double));
    double *scratch = xcalloc((size_t)m.nunits, sizeof(double));
    double *gout = xcalloc((size_t)nclass, sizeof(double));
    double *losses = xcalloc((size_t)steps, sizeof(double));

    double t0 = now();
    for (long k = 0; k < steps; k++) {
        zero_grad(&m);
        double loss_sum = 0.0;
        for (long i = 0; i < batch; i++) {
            long s = (k * batch + i) % n;
            const double *x = xs + s * nin;
            mlp_forward(&m, x, acts);
            const double *z = mlp_output(&m, acts);
            /* loss = logsumexp(z) - z[label], computed from the largest logit */
            double zmax = z[0], sumexp = 0.0;
            for (int c = 1; c < nclass; c++)
                zmax = z[c] > zmax ? z[c] : zmax;
            for (int c = 0; c < nclass; c++)
                sumexp += exp(z[c] - zmax);
            loss_sum += zmax + log(sumexp) - z[labels[s]];
            /* d loss / d z = (softmax(z) - onehot(label)) / batch */
            for (int c = 0; c < nclass; c++)
                gout[c] = (exp(z[c] - zmax) / sumexp - (c == labels[s])) / (double)batch;
            mlp_backward(&m, x, acts, gout, scratch);
        }
        sgd_step(&m, lr);
        losses[k] = loss_sum / (double)batch;
    }
    double seconds = now() - t0;

    print_double("seconds", seconds);
    print_doubles("losses", losses, steps);
    free(xs), free(labels), free(acts), free(scratch), free(gout), free(losses);
    mlp_free(&m);
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: loops w1|w2|chain|mnist < input\n");
        return 2;
    }
    if (!strcmp(argv[1], "w1"))
        run_w1();
    else if (!strcmp(argv[1], "w2"))
        run_w2();
    else if (!strcmp(argv[1], "chain"))
        run_chain();
    else if (!strcmp(argv[1], "mnist"))
        run_mnist();
    else
        die("unknown workload (w1, w2, chain or mnist)");
    return 0;
}
