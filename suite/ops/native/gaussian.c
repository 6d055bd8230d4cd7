/* The per-channel Gaussian delay kernels (DCLS 'gauss') and their position gradient, for the fused CPU channel
 * delay: the taps are written straight in the layout the depthwise kernels read, and the position gradient is
 * reduced from the depthwise backward's per-thread kernel-gradient partials in closed form.
 *
 * Why here: built from PyTorch ops, the (C, D) kernel and its autograd graph cost ~25 small ops per delay module and
 * step (about 1.4 ms per training step of the paper's network on 2 cores, against microseconds of arithmetic).
 *
 * Definitions (suite.ops.pytorch.gaussian_kernel; s = |SIG| + offset, h = D / 2 rounded down):
 *   z[c, k] = (k - pos[c] - h) / s,  e = exp(-z^2 / 2), set to 0 below the smallest normal float,
 *   S[c] = sum_k e[c, k],  kernel[c, k] = e / (S + eps)
 *   dL/dpos[c] = sum_k G[c, k] dkernel/dpos = (sum_k G e z / s) / (S + eps) - (sum_k G e) (sum_k e z / s) / (S + eps)^2
 *   with G[c, k] = dL/dkernel[c, k] and de/dpos = e z / s (0 where e was set to 0).
 * The taps are computed in float as PyTorch does; the position gradient in double, rounded once.
 */

#include <float.h>
#include <math.h>
#include <stddef.h>

/* taps (D, Cp): taps[k, c] = kernel[c, k] (or kernel[c, D - 1 - k] when `reversed`), channels C .. Cp - 1 zero.
 * In float, step by step as the PyTorch (and DCLS) float32 ops compute it, so the taps agree to a unit in the last
 * place or so (a kernel computed in double differs from DCLS's by up to 1e-5 at SIG = 0). */
void suite_gaussian_taps(const float *pos, int C, int D, int Cp, double s, double eps, int reversed, float *taps) {
    const float spread = (float)s, norm_eps = (float)eps;
    for (int c = 0; c < Cp; c++) {
        float e[D], sum = 0;
        for (int k = 0; k < D; k++) {
            float value = 0;
            if (c < C) {
                const float z = ((float)k - (pos[c] + (float)(D / 2))) / spread;
                value = expf(-0.5f * (z * z));
                if (value < FLT_MIN) value = 0;
            }
            e[k] = value;
            sum += value;
        }
        for (int k = 0; k < D; k++) taps[(size_t)(reversed ? D - 1 - k : k) * Cp + c] = e[k] / (sum + norm_eps);
    }
}

/* grad_pos (C) from the kernel-gradient partials (n_partials, rows, Cp): G[c, k] = sum_p partial[p, k, c]. */
void suite_gaussian_position_grad(const float *pos, const float *partial, int n_partials, int rows, int C, int D,
                                  int Cp, double s, double eps, float *grad_pos) {
    for (int c = 0; c < C; c++) {
        double sum = 0, weighted = 0, weighted_slope = 0, slope = 0;
        for (int k = 0; k < D; k++) {
            const double z = (k - (double)pos[c] - D / 2) / s;
            double e = exp(-0.5 * z * z);
            if (e < FLT_MIN) e = 0;
            double g = 0;
            for (int p = 0; p < n_partials; p++) g += partial[((size_t)p * rows + k) * Cp + c];
            sum += e;
            weighted += g * e;
            weighted_slope += g * e * z / s;
            slope += e * z / s;
        }
        const double norm = sum + eps;
        grad_pos[c] = (float)(weighted_slope / norm - weighted * slope / (norm * norm));
    }
}
