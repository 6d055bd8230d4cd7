/* The neuron stage's per-row arithmetic (BatchNorm -> LIF -> dropout, and its backward), shared by the fused
 * BatchNorm kernels (batchnorm_lif.c) and the axonal fusion with the next layer's delay (depthwise.c), so that both
 * give bit-identical H, spikes and gradients. Rows are n contiguous channels; restrict lets them vectorise. See
 * batchnorm_lif.c for the definitions. */
#ifndef SUITE_NEURON_H
#define SUITE_NEURON_H

#define DEFINE_NEURON_ROWS(real, suffix)                                                                             \
    static inline void lif_row_##suffix(const real *restrict x, const real *restrict keep, const real *restrict a,  \
                                        const real *restrict beta, const real *restrict mean, real *restrict h,     \
                                        real *restrict out, real *restrict v, long C, real decay, real thr) {       \
        for (long c = 0; c < C; c++) {                                                                               \
            const real value = (a[c] * (x[c] - mean[c]) + beta[c]) + decay * v[c];                                   \
            const int fired = value >= thr;                                                                          \
            h[c] = value;                                                                                            \
            out[c] = fired ? keep[c] : (real)0;                                                                      \
            v[c] = fired ? (real)0 : value;                                                                          \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    /* dY of one row without the carry from t + 1 */                                                                \
    static inline void surrogate_row_##suffix(const real *restrict h, const real *restrict g,                       \
                                              const real *restrict keep, real *restrict dy, long C, real thr,       \
                                              real scale, real half_alpha) {                                        \
        for (long c = 0; c < C; c++) {                                                                               \
            const real centred = h[c] - thr;                                                                         \
            dy[c] = half_alpha * ((g[c] * keep[c]) / ((real)1 + scale * (centred * centred)));                       \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static inline void carry_row_##suffix(const real *restrict h, const real *restrict later, real *restrict dy,    \
                                          const real *restrict x, const real *restrict mean,                        \
                                          double *restrict sums, double *restrict products, long C, real thr,       \
                                          real decay, int has_later) {                                               \
        if (has_later)                                                                                               \
            for (long c = 0; c < C; c++) dy[c] += h[c] < thr ? decay * later[c] : (real)0;                           \
        for (long c = 0; c < C; c++) {                                                                               \
            sums[c] += dy[c];                                                                                        \
            products[c] += (double)(dy[c] * (x[c] - mean[c]));                                                       \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    /* dx = a ((dx - mean_dy) - (x - mean) m2), dx holding dY on entry: the BatchNorm input gradient of one row */   \
    static inline void input_grad_row_##suffix(const real *restrict x, const real *restrict a,                      \
                                               const real *restrict mean_dy, const real *restrict mean,             \
                                               const real *restrict m2, real *restrict dx, long C) {                 \
        for (long c = 0; c < C; c++) dx[c] = a[c] * ((dx[c] - mean_dy[c]) - (x[c] - mean[c]) * m2[c]);             \
    }

/* The BatchNorm backward's per-channel step (batchnorm_lif.c), between the reverse pass and the input gradient:
 * from the (n_partials, 2, C) sums of dY and dY (x - mean), grad_gamma and grad_beta (C doubles out) and the rows a,
 * mean dY, mean, m2 (4 C values of the tensors' precision) of the input gradient. gamma: C values of that precision;
 * work: C doubles; rows: T B. */
void suite_bn_backward_channels(int is_double, const double *partial, int n_partials, const void *gamma,
                                const double *mean, const double *invstd, double rows, long C, double *grad_gamma,
                                double *grad_beta, double *work, void *channel);

#endif
