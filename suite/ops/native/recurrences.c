/* Time recurrences of the CPU backend: multi-step LIF and the leaky readout, forward and backward, float32 and
 * float64, on contiguous (T, N) rows.
 *
 * Why compiled: as PyTorch ops the recurrence costs three dispatches per time step plus whole-sequence passes; one
 * pass over the sequence does the same arithmetic and touches each element once. Neurons are independent, so each
 * thread of the pool (pool.h) takes a contiguous range of the N columns for all steps.
 *
 *   LIF forward:      H[t] = X[t] + decay V[t-1];  S[t] = H[t] >= thr;  V[t] = S[t] ? 0 : H[t]      (V[-1] = 0)
 *   LIF backward:     dX[t] = g[t] (alpha/2) / (1 + scale (H[t] - thr)^2) + dX[t+1] (H[t] < thr ? decay : 0)
 *                     (the reset is detached, spikingjelly's detach_reset; scale = (pi/2 alpha)^2)
 *   readout forward:  V[t] = X[t] + decay V[t-1]
 *   readout backward: dX[t] = dV[t] + decay dX[t+1]
 *
 * `h` is (T, N) to keep every step's H for the backward, or (1, N) scratch when nothing is kept (h_rows = 1).
 * `v` is an N-element scratch row.
 */

#include <stddef.h>

#include "pool.h"

typedef struct {
    const void *in;        /* forward: X; backward: H (LIF) or dV (readout) */
    const void *grad;      /* LIF backward: dL/dS */
    void *out, *out2, *v;  /* LIF forward: H, S, scratch V; backward: dX; readout: V or dX */
    double decay, threshold, scale, half_alpha;
    long T, N, h_rows;
    pool threads;
} job;

#define DEFINE_RECURRENCES(real, suffix)                                                                             \
    static void lif_forward_##suffix(void *data) {                                                                  \
        const job *j = data;                                                                                         \
        const real *restrict x = j->in, decay = (real)j->decay, thr = (real)j->threshold, zero = 0;                  \
        real *restrict h_seq = j->out, *restrict spikes = j->out2, *restrict v = j->v;                               \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->N, &begin, &end);                                                                 \
        for (long n = begin; n < end; n++) v[n] = zero;                                                              \
        for (long t = 0; t < j->T; t++) {                                                                            \
            const real *restrict xt = x + t * j->N;                                                                  \
            real *restrict ht = h_seq + (j->h_rows == j->T ? t : 0) * j->N, *restrict st = spikes + t * j->N;        \
            for (long n = begin; n < end; n++) {                                                                     \
                const real h = xt[n] + decay * v[n];                                                                 \
                const int fired = h >= thr;                                                                          \
                ht[n] = h;                                                                                           \
                st[n] = (real)fired;                                                                                 \
                v[n] = fired ? zero : h;                                                                             \
            }                                                                                                        \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static void lif_backward_##suffix(void *data) {                                                                 \
        const job *j = data;                                                                                         \
        const real *restrict h_seq = j->in, *restrict g = j->grad, decay = (real)j->decay, thr = (real)j->threshold; \
        const real scale = (real)j->scale, half_alpha = (real)j->half_alpha, one = 1;                               \
        real *restrict dx = j->out;                                                                                  \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->N, &begin, &end);                                                                 \
        for (long t = j->T - 1; t >= 0; t--) {                                                                       \
            const real *restrict ht = h_seq + t * j->N, *restrict gt = g + t * j->N;                                 \
            real *restrict out = dx + t * j->N;                                                                      \
            for (long n = begin; n < end; n++) {                                                                     \
                const real centred = ht[n] - thr;                                                                    \
                out[n] = half_alpha * (gt[n] / (one + scale * (centred * centred)));                                 \
            }                                                                                                        \
            if (t + 1 == j->T) continue;                                                                             \
            const real *restrict later = out + j->N;                                                                 \
            for (long n = begin; n < end; n++)                                                                       \
                if (ht[n] < thr) out[n] += decay * later[n];                                                         \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static void leaky_forward_##suffix(void *data) {                                                                \
        const job *j = data;                                                                                         \
        const real *restrict x = j->in, decay = (real)j->decay;                                                      \
        real *restrict v_seq = j->out;                                                                               \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->N, &begin, &end);                                                                 \
        for (long t = 0; t < j->T; t++) {                                                                            \
            const real *restrict xt = x + t * j->N;                                                                  \
            real *restrict vt = v_seq + t * j->N;                                                                    \
            for (long n = begin; n < end; n++) vt[n] = xt[n];                                                        \
            if (t == 0) continue;                                                                                    \
            for (long n = begin; n < end; n++) vt[n] += decay * vt[n - j->N];                                        \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    static void leaky_backward_##suffix(void *data) {                                                               \
        const job *j = data;                                                                                         \
        const real *restrict gv = j->in, decay = (real)j->decay;                                                     \
        real *restrict dx = j->out;                                                                                  \
        long begin, end;                                                                                             \
        pool_share(&j->threads, j->N, &begin, &end);                                                                 \
        for (long t = j->T - 1; t >= 0; t--) {                                                                       \
            const real *restrict gt = gv + t * j->N;                                                                 \
            real *restrict out = dx + t * j->N;                                                                      \
            for (long n = begin; n < end; n++) out[n] = gt[n];                                                       \
            if (t + 1 == j->T) continue;                                                                             \
            for (long n = begin; n < end; n++) out[n] += decay * out[n + j->N];                                      \
        }                                                                                                            \
    }

DEFINE_RECURRENCES(float, f32)
DEFINE_RECURRENCES(double, f64)

/* One entry point: kind 0 LIF forward, 1 LIF backward, 2 readout forward, 3 readout backward; is_double picks the
 * precision. */
void suite_recurrence(int kind, int is_double, const void *in, const void *grad, void *out, void *out2, void *v,
                      double decay, double threshold, double scale, double half_alpha, long T, long N, long h_rows,
                      int n_threads) {
    static void (*const kernels[2][4])(void *) = {
        {lif_forward_f32, lif_backward_f32, leaky_forward_f32, leaky_backward_f32},
        {lif_forward_f64, lif_backward_f64, leaky_forward_f64, leaky_backward_f64},
    };
    job j = {in, grad, out, out2, v, decay, threshold, scale, half_alpha, T, N, h_rows,
             {n_threads}};
    pool_run(&j.threads, kernels[is_double != 0][kind], &j);
}
