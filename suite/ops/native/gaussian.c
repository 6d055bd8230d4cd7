/* The per-channel Gaussian delay kernels (DCLS 'gauss') and their position gradient, for the fused CPU channel
 * delays: the taps are written straight in the layout the depthwise kernels read, and the position gradient is
 * reduced from the depthwise backward's per-thread kernel-gradient partials in closed form.
 *
 * Why here: built from PyTorch ops, the (C, D) kernel and its autograd graph cost ~25 small ops per delay module and
 * step (about 1.4 ms per training step of the paper's network on 2 cores, against microseconds of arithmetic).
 *
 * Definitions (suite.ops.pytorch.gaussian_kernel; s = |SIG| + offset, h = D / 2 rounded down):
 *   z[c, k] = (k - pos[c] - h) / s,  e = exp(-z^2 / 2), set to 0 below the smallest normal float,
 *   S[c] = sum_k e[c, k],  kernel[c, k] = e / (S + eps)
 *   dL/dpos[c] = sum_k G[c, k] dkernel[c, k]/dpos[c] = (sum_k G kernel z - (sum_k G kernel) (sum_k kernel z)) / s
 *   with G[c, k] = dL/dkernel[c, k] (de/dpos = e z / s, 0 where e was set to 0; the sums over the normalised
 *   kernel are those over e divided by S + eps, so no exponential is needed again).
 * The taps are computed in float as PyTorch does; the position gradient in double from the float taps the forward
 * used, rounded once.
 */

#include <float.h>
#include <math.h>
#include <stddef.h>

#include "pool.h"

typedef struct {
    const float *pos;
    float *taps;
    int C, D, Cp;
    double s, eps;
    pool threads;
} taps_job;

/* Channels [begin, end) of the taps, step by step as the PyTorch (and DCLS) float32 ops compute them, so they agree
 * to a unit in the last place or so (a kernel computed in double differs from DCLS's by up to 1e-5 at SIG = 0). */
static void taps_share(void *data) {
    const taps_job *j = data;
    const float spread = (float)j->s, norm_eps = (float)j->eps;
    long begin, end;
    pool_share(&j->threads, j->Cp, &begin, &end);
    for (long c = begin; c < end; c++) {
        float e[j->D], sum = 0;
        for (int k = 0; k < j->D; k++) {
            float value = 0;
            if (c < j->C) {
                const float z = ((float)k - (j->pos[c] + (float)(j->D / 2))) / spread;
                value = expf(-0.5f * (z * z));
                if (value < FLT_MIN) value = 0;
            }
            e[k] = value;
            sum += value;
        }
        for (int k = 0; k < j->D; k++) j->taps[(size_t)k * j->Cp + c] = e[k] / (sum + norm_eps);
    }
}

/* taps (D, Cp): taps[k, c] = kernel[c, k], channels C .. Cp - 1 zero; the channels split across the pool. */
void suite_gaussian_taps(const float *pos, int C, int D, int Cp, double s, double eps, float *taps,
                         int n_threads) {
    taps_job j = {pos, taps, C, D, Cp, s, eps, {n_threads}};
    pool_run(&j.threads, taps_share, &j);
}

/* grad_pos (C) from the forward's taps (D, Cp) and the kernel-gradient partials (n_partials, rows, Cp):
 * G[c, k] = sum_p partial[p, k, c]. */
void suite_gaussian_position_grad(const float *pos, const float *taps, const float *partial, int n_partials,
                                  int rows, int C, int D, int Cp, double s, float *grad_pos) {
    for (int c = 0; c < C; c++) {
        double weighted = 0, weighted_slope = 0, slope = 0;
        for (int k = 0; k < D; k++) {
            const double kernel = taps[(size_t)k * Cp + c], z = (k - (double)pos[c] - D / 2) / s;
            double g = 0;
            for (int p = 0; p < n_partials; p++) g += partial[((size_t)p * rows + k) * Cp + c];
            weighted += g * kernel;
            weighted_slope += g * kernel * z;
            slope += kernel * z;
        }
        grad_pos[c] = (float)((weighted_slope - weighted * slope) / s);
    }
}
