/* A hidden layer's neuron stage fused: BatchNorm with batch statistics -> LIF -> dropout, forward and backward,
 * float32 and float64, on contiguous (T, B, C) tensors.
 *
 * Why fused: unfused, the stage makes four passes over a (T, B, C) tensor forward (statistics, normalise, LIF,
 * dropout) and as many backward, each writing a full tensor that the next one reads. Here the forward is two passes
 * (statistics; normalise + LIF + dropout, writing H and the output) and the backward two (the LIF recurrence, which
 * also sums the BatchNorm reductions; the BatchNorm input gradient).
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
    const void *x, *h, *grad, *keep; /* (T, B, C); keep (B, C) */
    void *out, *h_out, *v;           /* outputs; v: (B, C) scratch */
    const void *channel;             /* per-channel rows in the tensors' precision: a, beta, mean | a, mean dY, mean, m2 */
    double *partial;                 /* (n_threads, 2, C), zeroed by the caller */
    const double *shift;             /* forward statistics: x[0, 0, c], subtracted before summing */
    double decay, threshold, scale, half_alpha;
    long T, B, C;
    pool threads;
} job;

static double *own_partial(const job *j) { return j->partial + (size_t)pool_self(&j->threads) * 2 * j->C; }

/* first[c], second[c] = the sums over threads of the partials. */
static void reduce_partials(const job *j, int n_threads, double *first, double *second) {
    for (long c = 0; c < j->C; c++) first[c] = second[c] = 0;
    for (int p = 0; p < n_threads; p++)
        for (long c = 0; c < j->C; c++) {
            first[c] += j->partial[(size_t)p * 2 * j->C + c];
            second[c] += j->partial[((size_t)p * 2 + 1) * j->C + c];
        }
}

#define DEFINE_FUSED(real, suffix)                                                                                   \
    static inline void stats_row_##suffix(const real *restrict x, const double *restrict shift,                     \
                                          double *restrict sums, double *restrict squares, long C) {                \
        for (long c = 0; c < C; c++) {                                                                               \
            const double value = (double)x[c] - shift[c];                                                            \
            sums[c] += value;                                                                                        \
            squares[c] += value * value;                                                                             \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static inline void input_grad_row_##suffix(const real *restrict x, const real *restrict a,                      \
                                               const real *restrict mean_dy, const real *restrict mean,             \
                                               const real *restrict m2, real *restrict dx, long C) {                 \
        for (long c = 0; c < C; c++) dx[c] = a[c] * ((dx[c] - mean_dy[c]) - (x[c] - mean[c]) * m2[c]);             \
    }                                                                                                                \
                                                                                                                     \
    static void stats_##suffix(void *data) {                                                                        \
        const job *j = data;                                                                                         \
        const real *x = j->x;                                                                                        \
        double *sums = own_partial(j);                                                                               \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->B, &begin, &end);                                                                 \
        for (long t = 0; t < j->T; t++)                                                                              \
            for (long b = begin; b < end; b++)                                                                       \
                stats_row_##suffix(x + (t * j->B + b) * j->C, j->shift, sums, sums + j->C, j->C);                   \
    }                                                                                                                \
                                                                                                                     \
    static void lif_##suffix(void *data) {                                                                          \
        const job *j = data;                                                                                         \
        const real *x = j->x, *keep = j->keep, *a = j->channel;                                                      \
        real *out = j->out, *h = j->h_out, *v = j->v;                                                                \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->B, &begin, &end);                                                                 \
        for (long n = begin * j->C; n < end * j->C; n++) v[n] = 0;                                                   \
        for (long t = 0; t < j->T; t++)                                                                              \
            for (long b = begin; b < end; b++) {                                                                     \
                const size_t first = (size_t)(t * j->B + b) * j->C;                                                  \
                lif_row_##suffix(x + first, keep + b * j->C, a, a + j->C, a + 2 * j->C, h + first, out + first,     \
                                 v + b * j->C, j->C, (real)j->decay, (real)j->threshold);                           \
            }                                                                                                        \
    }                                                                                                                \
                                                                                                                     \
    static void lif_backward_##suffix(void *data) {                                                                 \
        const job *j = data;                                                                                         \
        const real *h = j->h, *g = j->grad, *keep = j->keep, *x = j->x, *mean = (const real *)j->channel + 2 * j->C; \
        real *dy = j->out;                                                                                           \
        double *sums = own_partial(j);                                                                               \
        const size_t row = (size_t)j->B * j->C;                                                                      \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->B, &begin, &end);                                                                 \
        for (long t = j->T - 1; t >= 0; t--)                                                                         \
            for (long b = begin; b < end; b++) {                                                                     \
                const size_t first = (size_t)t * row + (size_t)b * j->C;                                             \
                surrogate_row_##suffix(h + first, g + first, keep + b * j->C, dy + first, j->C, (real)j->threshold, \
                                       (real)j->scale, (real)j->half_alpha);                                        \
                carry_row_##suffix(h + first, t + 1 < j->T ? dy + first + row : dy + first, dy + first, x + first,  \
                                   mean, sums, sums + j->C, j->C, (real)j->threshold, (real)j->decay, t + 1 < j->T); \
            }                                                                                                        \
    }                                                                                                                \
                                                                                                                     \
    static void input_grad_##suffix(void *data) {                                                                   \
        const job *j = data;                                                                                         \
        const real *x = j->x, *a = j->channel;                                                                       \
        real *dx = j->out;                                                                                           \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->T * j->B, &begin, &end);                                                          \
        for (long r = begin; r < end; r++)                                                                           \
            input_grad_row_##suffix(x + r * j->C, a, a + j->C, a + 2 * j->C, a + 3 * j->C, dx + r * j->C, j->C);    \
    }                                                                                                                \
                                                                                                                     \
    static void set_channels_##suffix(void *channel, long C, long which, const double *values) {                    \
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

/* Forward. gamma, beta: (C), keep: (B, C), channel: 4 C, all in the tensors' precision; mean, var: (C) doubles out
 * (var biased); work: 2 C doubles; partial: (n_threads, 2, C) doubles, zeroed; moments: (B, 2, C) doubles (see
 * combine_moments) that replace the statistics pass, or NULL. With `stats_only`, stop once channel holds the rows
 * a, beta, mean (the axonal fusion runs the LIF in depthwise.c). */
void suite_bn_lif_forward(int is_double, const void *x, const void *gamma, const void *beta, const void *keep,
                          void *out, void *h_seq, void *v, void *channel, double *mean, double *var, double *work,
                          double *partial, const double *moments, int stats_only, double eps, double decay,
                          double threshold, long T, long B, long C, gomp_parallel_fn parallel,
                          thread_query_fn thread_num, thread_query_fn num_threads, int n_threads) {
    double *a = work, *shift = work + C;
    for (long c = 0; c < C; c++) shift[c] = is_double ? channel_f64(x, c) : channel_f32(x, c);
    job j = {x, NULL, NULL, keep, out, h_seq, v, channel, partial, shift, decay, threshold, 0, 0, T, B, C,
             {parallel, thread_num, num_threads, n_threads}};
    const double rows = (double)(T * B);
    if (moments) {
        combine_moments(moments, B, C, T, mean, var);
    } else {
        pool_run(&j.threads, is_double ? stats_f64 : stats_f32, &j);
        reduce_partials(&j, n_threads, mean, var);
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
    j.threads.parallel = parallel;
    pool_run(&j.threads, is_double ? lif_f64 : lif_f32, &j);
}

/* Backward. mean, invstd: (C) doubles from the forward; grad_x: (T, B, C) out; grad_gamma, grad_beta: (C) doubles
 * out; work: 2 C doubles; channel: 4 C values of the tensors' precision; partial: (n_threads, 2, C), zeroed. With
 * `defer_input_grad`, grad_x is left holding dY, and channel the rows a, mean dY, mean, m2 of the input gradient
 * a ((dY - mean dY) - (x - mean) m2). With `have_dy`, grad_x already holds dY and partial its sums (the axonal
 * fusion's reverse pass, depthwise.c): only the BatchNorm part runs. */
void suite_bn_lif_backward(int is_double, const void *x, const void *h_seq, const void *grad_out, const void *keep,
                           const void *gamma, const double *mean, const double *invstd, void *grad_x, void *channel,
                           double *grad_gamma, double *grad_beta, double *work, double *partial, int defer_input_grad,
                           int have_dy, double decay, double threshold, double scale, double half_alpha, long T, long B, long C,
                           gomp_parallel_fn parallel, thread_query_fn thread_num, thread_query_fn num_threads,
                           int n_threads) {
    job j = {x, h_seq, grad_out, keep, grad_x, NULL, NULL, channel, partial, NULL, decay, threshold, scale,
             half_alpha, T, B, C, {parallel, thread_num, num_threads, n_threads}};
    const double rows = (double)(T * B);
    double *first = work, *second = work + C;
    void (*set)(void *, long, long, const double *) = is_double ? set_channels_f64 : set_channels_f32;
    set(channel, C, 2, mean);
    if (!have_dy) pool_run(&j.threads, is_double ? lif_backward_f64 : lif_backward_f32, &j);
    reduce_partials(&j, n_threads, grad_beta, grad_gamma); /* sum dY, sum dY (x - mean) */
    for (long c = 0; c < C; c++) {
        first[c] = (is_double ? channel_f64(gamma, c) : channel_f32(gamma, c)) * invstd[c];
        second[c] = invstd[c] * invstd[c] * grad_gamma[c] / rows;
        grad_gamma[c] *= invstd[c];
    }
    set(channel, C, 0, first);
    set(channel, C, 3, second);
    for (long c = 0; c < C; c++) first[c] = grad_beta[c] / rows;
    set(channel, C, 1, first);
    if (defer_input_grad) return;
    j.threads.parallel = parallel;
    pool_run(&j.threads, is_double ? input_grad_f64 : input_grad_f32, &j);
}
