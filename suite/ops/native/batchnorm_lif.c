/* A hidden layer's neuron stage fused: BatchNorm with batch statistics -> LIF -> dropout, forward and backward,
 * float32 and float64, on contiguous (T, B, C) tensors.
 *
 * Why fused: unfused, the stage makes four passes over a (T, B, C) tensor forward (statistics, normalise, LIF,
 * dropout) and as many backward, each writing a full tensor that the next one reads. Here the forward is two passes
 * (statistics; normalise + LIF + dropout, writing the output) and the backward two (the LIF recurrence, which
 * also sums the BatchNorm reductions; the BatchNorm input gradient).
 *
 * H is not stored. The forward keeps the membrane V at the start of every chunk of `every` steps (checkpoints,
 * (chunks, B, C); the caller picks `every` so that a chunk's H fits in L2); the backward takes the chunks from the
 * last to the first, computes each chunk's H again from x into a per-thread buffer, and runs the reverse recurrence
 * over it. The same row arithmetic on the same x gives H to the bit, and the reverse pass visits (t, b) in the same
 * order as over a stored H, so every sum and gradient is unchanged; what goes is a (T, B, C) tensor written forward
 * and read backward.
 *
 *   forward:   mean, var (biased) over the M = T B rows (sums of x - x[0, 0], so that inputs with a large mean do
 *              not cancel); y = a (x - mean) + beta with a = gamma / sqrt(var + eps);
 *              H[t] = y[t] + decay V[t-1];  S = H >= thr;  V = S ? 0 : H;  out = S keep
 *   backward:  dY[t] = (alpha/2) keep dOut[t] / (1 + scale (H[t] - thr)^2) + (H[t] < thr ? decay dY[t+1] : 0)
 *              dbeta = sum dY;  dgamma = invstd sum dY (x - mean);  dx = a (dY - dbeta / M - (x - mean) m2)
 *              with m2 = invstd^2 sum dY (x - mean) / M
 *
 * After a dendritic delay the depthwise kernel hands over per-(batch item, channel) moments of x (suite/ops/native/
 * depthwise.c), and the forward skips its statistics pass; its backward can stop before the input gradient, which
 * the depthwise backward then computes while it gathers it (`defer_input_grad`).
 *
 * Threads (pool.h) split the batch: each takes whole rows of C channels at every step. The arithmetic is in row
 * functions with restrict arguments (so that they vectorise over channels); per-channel sums run in double, each
 * thread into its own partial (n_threads, 2, C), added serially between the two parallel passes.
 */

#include <math.h>
#include <stddef.h>

#include "neuron.h"
#include "pool.h"

typedef struct {
    const void *x, *grad, *keep;     /* (T, B, C); keep (B, C) */
    void *out, *v;                   /* output; v: (B, C) scratch */
    void *checkpoints;               /* (chunks, B, C): V entering each chunk, written forward, read backward */
    void *scratch;                   /* per thread: bn_lif_scratch(B, C, every) values */
    const void *channel;             /* per-channel rows in the tensors' precision: a, beta, mean | a, mean dY, mean, m2 */
    const void *forward_rows;        /* backward: the forward's rows a, beta, mean (H is computed again from them) */
    double *partial;                 /* (n_threads, 2, C), zeroed by the caller */
    const double *shift;             /* forward statistics: x[0, 0, c], subtracted before summing */
    double decay, threshold, scale, half_alpha;
    long T, B, C, every;             /* every: steps per checkpointed chunk */
    pool threads;
} job;

static double *own_partial(const job *j) { return j->partial + (size_t)pool_self(&j->threads) * 2 * j->C; }

/* Values of one thread's scratch: a chunk's H for any share of the batch, V for that share, one discarded row. */
static long bn_lif_scratch(long B, long C, long every) { return (every * B + B + 1) * C; }

/* first[c], second[c] = the sums over the n (n, 2, C) partials. */
static void reduce_partials(const double *partial, int n, long C, double *first, double *second) {
    for (long c = 0; c < C; c++) first[c] = second[c] = 0;
    for (int p = 0; p < n; p++)
        for (long c = 0; c < C; c++) {
            first[c] += partial[(size_t)p * 2 * C + c];
            second[c] += partial[((size_t)p * 2 + 1) * C + c];
        }
}

#define DEFINE_FUSED(real, suffix)                                                                                   \
    static inline void stats_row_##suffix(const real *restrict x, const double *restrict shift,                      \
                                          double *restrict sums, double *restrict squares, long C) {                 \
        for (long c = 0; c < C; c++) {                                                                               \
            const double value = (double)x[c] - shift[c];                                                            \
            sums[c] += value;                                                                                        \
            squares[c] += value * value;                                                                             \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static void stats_##suffix(void *data) {                                                                         \
        const job *j = data;                                                                                         \
        const real *x = j->x;                                                                                        \
        double *sums = own_partial(j);                                                                               \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->B, &begin, &end);                                                                 \
        for (long t = 0; t < j->T; t++)                                                                              \
            for (long b = begin; b < end; b++)                                                                       \
                stats_row_##suffix(x + (t * j->B + b) * j->C, j->shift, sums, sums + j->C, j->C);                    \
    }                                                                                                                \
                                                                                                                     \
    /* The LIF over the thread's share from `t0` to `t1`, V in v (rows of C per batch item of the share); H row of   \
     * (t, b) into h + ((t - t0) * h_items + b - begin) * C (h_items 0: one row per item, overwritten), the output \
     * into out (NULL: a discarded row). */                                                                          \
    static void lif_steps_##suffix(const job *j, const real *rows, long begin, long end, long t0, long t1,           \
                                   real *v, real *h, long h_items, real *out) {                                      \
        const real *x = j->x, *keep = j->keep;                                                                       \
        real *discard = (real *)j->scratch + ((size_t)pool_self(&j->threads) + 1) *                                  \
                        bn_lif_scratch(j->B, j->C, j->every) - j->C;                                                 \
        for (long t = t0; t < t1; t++)                                                                               \
            for (long b = begin; b < end; b++) {                                                                     \
                const size_t first = (size_t)(t * j->B + b) * j->C;                                                  \
                lif_row_##suffix(x + first, keep + b * j->C, rows, rows + j->C, rows + 2 * j->C,                     \
                                 h + ((t - t0) * h_items + b - begin) * j->C, out ? out + first : discard,           \
                                 v + (b - begin) * j->C, j->C, (real)j->decay, (real)j->threshold);                  \
            }                                                                                                        \
    }                                                                                                                \
                                                                                                                     \
    static void lif_##suffix(void *data) {                                                                           \
        const job *j = data;                                                                                         \
        const long C = j->C, every = j->every;                                                                       \
        real *v = j->v, *checkpoints = j->checkpoints;                                                               \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->B, &begin, &end);                                                                 \
        for (long n = begin * C; n < end * C; n++) v[n] = 0;                                                         \
        real *h = (real *)j->scratch + (size_t)pool_self(&j->threads) * bn_lif_scratch(j->B, C, j->every);           \
        for (long t0 = 0; t0 < j->T; t0 += every) {                                                                  \
            real *kept = checkpoints + (size_t)(t0 / every * j->B + begin) * C;                                      \
            for (long n = 0; n < (end - begin) * C; n++) kept[n] = v[begin * C + n];                                 \
            lif_steps_##suffix(j, j->channel, begin, end, t0, t0 + every < j->T ? t0 + every : j->T, v + begin * C,  \
                               h, 0, j->out);                                                                        \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static void lif_backward_##suffix(void *data) {                                                                  \
        const job *j = data;                                                                                         \
        const real *g = j->grad, *keep = j->keep, *x = j->x, *mean = (const real *)j->channel + 2 * j->C;            \
        const real *checkpoints = j->checkpoints;                                                                    \
        const long C = j->C, every = j->every;                                                                       \
        real *dy = j->out;                                                                                           \
        double *sums = own_partial(j);                                                                               \
        const size_t row = (size_t)j->B * C;                                                                         \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->B, &begin, &end);                                                                 \
        const long items = end - begin;                                                                              \
        real *h = (real *)j->scratch + (size_t)pool_self(&j->threads) * bn_lif_scratch(j->B, C, j->every);           \
        real *v = h + (size_t)every * j->B * C;                                                                      \
        for (long t0 = (j->T - 1) / every * every; t0 >= 0; t0 -= every) {                                           \
            const long t1 = t0 + every < j->T ? t0 + every : j->T;                                                   \
            const real *kept = checkpoints + (size_t)(t0 / every * j->B + begin) * C;                                \
            for (long n = 0; n < items * C; n++) v[n] = kept[n];                                                     \
            lif_steps_##suffix(j, j->forward_rows, begin, end, t0, t1, v, h, items, NULL);                           \
            for (long t = t1 - 1; t >= t0; t--)                                                                      \
                for (long b = begin; b < end; b++) {                                                                 \
                    const size_t first = (size_t)t * row + (size_t)b * C;                                            \
                    const real *hb = h + ((t - t0) * items + b - begin) * C;                                         \
                    surrogate_row_##suffix(hb, g + first, keep + b * C, dy + first, C, (real)j->threshold,           \
                                           (real)j->scale, (real)j->half_alpha);                                     \
                    carry_row_##suffix(hb, t + 1 < j->T ? dy + first + row : dy + first, dy + first, x + first,      \
                                       mean, sums, sums + C, C, (real)j->threshold, (real)j->decay, t + 1 < j->T);   \
                }                                                                                                    \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static void input_grad_##suffix(void *data) {                                                                    \
        const job *j = data;                                                                                         \
        const real *x = j->x, *a = j->channel;                                                                       \
        real *dx = j->out;                                                                                           \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->T * j->B, &begin, &end);                                                          \
        for (long r = begin; r < end; r++)                                                                           \
            input_grad_row_##suffix(x + r * j->C, a, a + j->C, a + 2 * j->C, a + 3 * j->C, dx + r * j->C, j->C);     \
    }                                                                                                                \
                                                                                                                     \
    static void set_channels_##suffix(void *channel, long C, long which, const double *values) {                     \
        real *dst = (real *)channel + which * C;                                                                     \
        for (long c = 0; c < C; c++) dst[c] = (real)values[c];                                                       \
    }                                                                                                                \
                                                                                                                     \
    static double channel_##suffix(const void *values, long c) { return ((const real *)values)[c]; }

DEFINE_NEURON_ROWS(float, f32)
DEFINE_NEURON_ROWS(double, f64)
DEFINE_FUSED(float, f32)
DEFINE_FUSED(double, f64)

/* mean, var (C) from per-batch-item moments (B, 2, C): means and sums of squared deviations over `rows` steps each
 * (Chan et al.'s pairwise combination, all groups of equal size). */
static void combine_moments(const double *moments, long B, long C, long rows, double *mean, double *var) {
    for (long c = 0; c < C; c++) {
        double sum = 0, squares = 0;
        for (long b = 0; b < B; b++) sum += moments[2 * b * C + c];
        mean[c] = sum / B;
        for (long b = 0; b < B; b++) {
            const double deviation = moments[2 * b * C + c] - mean[c];
            squares += moments[(2 * b + 1) * C + c] + rows * deviation * deviation;
        }
        var[c] = squares / (double)(rows * B);
    }
}

/* Values of per-thread scratch that the forward and backward take for chunks of `every` steps. */
long suite_bn_lif_scratch(long B, long C, long every) { return bn_lif_scratch(B, C, every); }

/* Forward. gamma, beta: (C), keep: (B, C), channel: 4 C, all in the tensors' precision; mean, var: (C) doubles out
 * (var biased); checkpoints: (ceil(T / every), B, C) out, for the backward; scratch: n_threads *
 * suite_bn_lif_scratch values; work: 2 C doubles; partial: (n_threads, 2, C) doubles, zeroed; moments: (B, 2, C)
 * doubles (see combine_moments) that replace the statistics pass, or NULL. With `stats_only`, stop once channel holds
 * the rows a, beta, mean (the axonal fusion runs the LIF in depthwise.c). */
void suite_bn_lif_forward(int is_double, const void *x, const void *gamma, const void *beta, const void *keep,
                          void *out, void *checkpoints, void *scratch, void *v, void *channel, double *mean,
                          double *var, double *work,
                          double *partial, const double *moments, int stats_only, double eps, double decay,
                          double threshold, long T, long B, long C, long every, int n_threads) {
    double *a = work, *shift = work + C;
    for (long c = 0; c < C; c++) shift[c] = is_double ? channel_f64(x, c) : channel_f32(x, c);
    job j = {.x = x, .keep = keep, .out = out, .v = v, .checkpoints = checkpoints, .scratch = scratch,
             .channel = channel, .partial = partial, .shift = shift, .decay = decay, .threshold = threshold,
             .T = T, .B = B, .C = C, .every = every, .threads = {n_threads}};
    const double rows = (double)(T * B);
    if (moments) {
        combine_moments(moments, B, C, T, mean, var);
    } else {
        pool_run(&j.threads, is_double ? stats_f64 : stats_f32, &j);
        reduce_partials(partial, n_threads, C, mean, var);
        for (long c = 0; c < C; c++) {
            const double shifted_mean = mean[c] / rows;
            var[c] = var[c] / rows - shifted_mean * shifted_mean;
            mean[c] = shift[c] + shifted_mean;
        }
    }
    for (long c = 0; c < C; c++) {
        if (var[c] < 0) var[c] = 0; /* rounding */
        a[c] = (is_double ? channel_f64(gamma, c) : channel_f32(gamma, c)) / sqrt(var[c] + eps);
        shift[c] = is_double ? channel_f64(beta, c) : channel_f32(beta, c);
    }
    void (*set)(void *, long, long, const double *) = is_double ? set_channels_f64 : set_channels_f32;
    set(channel, C, 0, a);
    set(channel, C, 1, shift); /* beta */
    set(channel, C, 2, mean);
    if (stats_only) return;
    pool_run(&j.threads, is_double ? lif_f64 : lif_f32, &j);
}

void suite_bn_backward_channels(int is_double, const double *partial, int n_partials, const void *gamma,
                                const double *mean, const double *invstd, double rows, long C, double *grad_gamma,
                                double *grad_beta, double *work, void *channel) {
    void (*set)(void *, long, long, const double *) = is_double ? set_channels_f64 : set_channels_f32;
    reduce_partials(partial, n_partials, C, grad_beta, grad_gamma); /* sum dY, sum dY (x - mean) */
    for (long c = 0; c < C; c++) work[c] = invstd[c] * invstd[c] * grad_gamma[c] / rows; /* m2 */
    set(channel, C, 3, work);
    for (long c = 0; c < C; c++) {
        work[c] = (is_double ? channel_f64(gamma, c) : channel_f32(gamma, c)) * invstd[c];
        grad_gamma[c] *= invstd[c];
    }
    set(channel, C, 0, work);
    for (long c = 0; c < C; c++) work[c] = grad_beta[c] / rows;
    set(channel, C, 1, work);
    set(channel, C, 2, mean);
}

/* Backward. mean, invstd: (C) doubles, checkpoints and forward_rows (its channel rows a, beta, mean) from the
 * forward; scratch as the forward's; grad_x: (T, B, C) out; grad_gamma, grad_beta: (C) doubles out; work: C doubles;
 * channel: 4 C values of the tensors' precision; partial: (n_threads, 2, C), zeroed. With `defer_input_grad`,
 * grad_x is left holding dY, and channel the rows a, mean dY, mean, m2 of the input gradient
 * a ((dY - mean dY) - (x - mean) m2). */
void suite_bn_lif_backward(int is_double, const void *x, const void *checkpoints, const void *forward_rows,
                           void *scratch, const void *grad_out, const void *keep, const void *gamma,
                           const double *mean, const double *invstd, void *grad_x, void *channel, double *grad_gamma,
                           double *grad_beta, double *work, double *partial, int defer_input_grad, double decay,
                           double threshold, double scale, double half_alpha, long T, long B, long C, long every,
                           int n_threads) {
    job j = {.x = x, .grad = grad_out, .keep = keep, .out = grad_x, .checkpoints = (void *)checkpoints,
             .scratch = scratch, .channel = channel, .forward_rows = forward_rows, .partial = partial,
             .decay = decay, .threshold = threshold, .scale = scale, .half_alpha = half_alpha, .T = T, .B = B, .C = C,
             .every = every, .threads = {n_threads}};
    void (*set)(void *, long, long, const double *) = is_double ? set_channels_f64 : set_channels_f32;
    set(channel, C, 2, mean); /* the reverse pass reads it */
    pool_run(&j.threads, is_double ? lif_backward_f64 : lif_backward_f32, &j);
    suite_bn_backward_channels(is_double, partial, n_threads, gamma, mean, invstd, (double)(T * B), C, grad_gamma,
                               grad_beta, work, channel);
    if (defer_input_grad) return;
    pool_run(&j.threads, is_double ? input_grad_f64 : input_grad_f32, &j);
}
