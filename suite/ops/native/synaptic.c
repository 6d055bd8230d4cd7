/* Per-synapse delays over a window of W consecutive taps per synapse, float32 (the synaptic delay at its active taps,
 * and the hard synaptic delay as a gather: W = 1).
 *
 * Why a hand-written kernel: each synapse (d, s) has its own window start, so no dense matrix product covers only the
 * active taps, and MKL's sparse products run a 19 %-dense per-tap kernel slower than the dense one. Here every
 * synapse is W short correlations over time, vectorised across the batch.
 *
 * Series are channel-major with the batch innermost, padded to whole vectors: src (n_src, R_src, Bp), Bp = Bv VL.
 *   correlate:  dst[d][t][:] = sum_s sum_{k<W} a[d][s][k] src[s][t + start[d][s] + k][:],   t < T_out
 *               (the windowed forward; the input gradient is the same with the taps transposed and reversed)
 *   tap grad:   ga[o][i][k]  = sum_{t<T_out} <gy[o][t][:], x[i][t + start[o][i] + k][:]>
 * The caller pads every source with zero rows so that t0 + start + k + TILE <= R_src for every tile start t0 < T_out
 * (a last, partial tile reads whole tiles).
 *
 * Blocking: the correlation keeps TILE output rows of one destination in registers while it runs over all sources;
 * per source it holds the W taps in registers and loads each of the TILE + W - 1 source rows once (W fused
 * multiply-adds per load). Destinations are visited for one CHUNK of output rows at a time, so that the sources' rows
 * of that chunk are reused from cache across destinations. The tap gradient handles OUT_BLOCK destinations per
 * source, so each source series is read from memory once per block, and keeps the W sums and the last W gradient
 * rows in registers (each input row loaded once, W multiply-adds). W is a compile-time constant in both (one
 * instantiation per W <= MAX_WINDOW).
 *
 * Threads: see pool.h (destinations are split across the team).
 */

#include <stddef.h>

#include "pool.h"

#define VL 16        /* batch lanes per vector: one 512-bit register, or two 256-bit ones */
#define TILE 16      /* output rows held in registers per destination */
#define CHUNK 32     /* output rows per pass over the destinations */
#define OUT_BLOCK 16 /* destinations per pass over the sources in the tap gradient */
#define MAX_WINDOW 12

typedef float vec __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float)))); /* unaligned ok */

typedef struct {
    const float *src; /* correlate: sources (n_src, R_src, Bp); tap grad: x (n_src, R_src, Bp) */
    const float *a;   /* correlate: taps (n_dst, n_src, W) */
    const int *start; /* (n_dst, n_src) window starts */
    float *dst;       /* correlate: (n_dst, T_out, Bp); tap grad: ga (n_dst, n_src, W) */
    const float *gy;  /* tap grad: (n_dst, R_g, Bp), T_out rows and at least W - 1 zero rows after them */
    int n_dst, n_src, W, R_src, T_out, Bv, R_g;
    pool threads;
} window_job;

static int min_int(int a, int b) { return a < b ? a : b; }

/* acc[r] += sum_s sum_k a[s][k] x_s[r + k] for TILE rows: each source row is loaded once and meets the W taps held
 * in registers (W a constant when inlined, so every index below is one). */
static inline __attribute__((always_inline)) void tile_sources(const float *src, size_t series, const float *ad,
                                                               const int *sd, int n_src, size_t row0, size_t Bp,
                                                               const int W, vec *acc) {
    for (int s = 0; s < n_src; s++) {
        const float *xs = src + s * series + (row0 + (size_t)sd[s]) * Bp;
        const float *as = ad + (size_t)s * W;
        vec w[MAX_WINDOW];
#pragma GCC unroll 16
        for (int k = 0; k < W; k++) w[k] = (vec){0} + as[k];
#pragma GCC unroll 32
        for (int rr = 0; rr < TILE + W - 1; rr++) {
            const vec xv = *(const vec *)(xs + (size_t)rr * Bp);
#pragma GCC unroll 16
            for (int k = 0; k < W; k++)
                if (rr - k >= 0 && rr - k < TILE) acc[rr - k] += w[k] * xv;
        }
    }
}

/* One switch case per window size 1..MAX_WINDOW, so that W is a constant inside each instantiation. */
#define EACH_WINDOW(CASE) \
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)

#define TILE_CASE(n) \
    case n: tile_sources(src, series, ad, sd, n_src, row0, Bp, n, acc); break;

static void tile_sources_any(const float *src, size_t series, const float *ad, const int *sd, int n_src, size_t row0,
                             size_t Bp, int W, vec *acc) {
    switch (W) {
        EACH_WINDOW(TILE_CASE)
        default: break; /* the caller never passes W > MAX_WINDOW */
    }
}

static void correlate_part(void *data) {
    const window_job *j = data;
    long d0, d1;
    pool_share(&j->threads, j->n_dst, &d0, &d1);
    const size_t Bp = (size_t)j->Bv * VL, series = (size_t)j->R_src * Bp;
    const int W = j->W, n_src = j->n_src;
    for (int c0 = 0; c0 < j->T_out; c0 += CHUNK) {
        const int c1 = min_int(c0 + CHUNK, j->T_out);
        for (long d = d0; d < d1; d++) {
            const float *ad = j->a + (size_t)d * n_src * W;
            const int *sd = j->start + (size_t)d * n_src;
            float *out = j->dst + (size_t)d * j->T_out * Bp;
            for (int t0 = c0; t0 < c1; t0 += TILE) {
                const int n = min_int(TILE, c1 - t0);
                for (int b = 0; b < j->Bv; b++) {
                    vec acc[TILE];
#pragma GCC unroll 16
                    for (int r = 0; r < TILE; r++) acc[r] = (vec){0};
                    tile_sources_any(j->src + (size_t)b * VL, series, ad, sd, n_src, (size_t)t0, Bp, W, acc);
#pragma GCC unroll 16
                    for (int r = 0; r < TILE; r++) /* unrolled with a test: a variable trip count would spill acc */
                        if (r < n) *(vec *)(out + (size_t)(t0 + r) * Bp + (size_t)b * VL) = acc[r];
                }
            }
        }
    }
}

static inline float lane_sum(vec v) {
    float total = 0.0f;
    for (int l = 0; l < VL; l++) total += v[l];
    return total;
}

/* ga[k] = sum_t <g[t], x[t + k]> over T_out rows of Bp floats, for a window of W taps (a constant when inlined):
 * each row r of x is loaded once and meets g[r], ..., g[r - W + 1], kept in registers and shifted by one every row;
 * g has W - 1 zero rows after its T_out rows (and rows before 0 count as zero). */
static inline __attribute__((always_inline)) void window_dots(const float *g, const float *x, int T_out, size_t Bp,
                                                              const int W, float *ga) {
    vec acc[MAX_WINDOW];
#pragma GCC unroll 16
    for (int k = 0; k < W; k++) acc[k] = (vec){0};
    for (size_t b = 0; b < Bp; b += VL) {
        vec h[MAX_WINDOW];
#pragma GCC unroll 16
        for (int k = 0; k < W; k++) h[k] = (vec){0};
        const int rows = T_out + W - 1;
        int r = 0;
        for (; r + W <= rows; r += W)
#pragma GCC unroll 16
            for (int u = 0; u < W; u++) {
#pragma GCC unroll 16
                for (int k = W - 1; k > 0; k--) h[k] = h[k - 1];
                h[0] = *(const vec *)(g + (size_t)(r + u) * Bp + b);
                const vec xv = *(const vec *)(x + (size_t)(r + u) * Bp + b);
#pragma GCC unroll 16
                for (int k = 0; k < W; k++) acc[k] += h[k] * xv;
            }
        for (; r < rows; r++) {
#pragma GCC unroll 16
            for (int k = W - 1; k > 0; k--) h[k] = h[k - 1];
            h[0] = *(const vec *)(g + (size_t)r * Bp + b);
            const vec xv = *(const vec *)(x + (size_t)r * Bp + b);
#pragma GCC unroll 16
            for (int k = 0; k < W; k++) acc[k] += h[k] * xv;
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < W; k++) ga[k] = lane_sum(acc[k]);
}

#define WINDOW_CASE(n) \
    case n: window_dots(g, x, T_out, Bp, n, ga); break;

static void window_dots_any(const float *g, const float *x, int T_out, size_t Bp, int W, float *ga) {
    switch (W) {
        EACH_WINDOW(WINDOW_CASE)
        default: break; /* the caller never passes W > MAX_WINDOW */
    }
}

static void tap_grad_part(void *data) {
    const window_job *j = data;
    long d0, d1;
    pool_share(&j->threads, j->n_dst, &d0, &d1);
    const size_t Bp = (size_t)j->Bv * VL, series = (size_t)j->R_src * Bp;
    const int W = j->W, n_src = j->n_src;
    for (long o0 = d0; o0 < d1; o0 += OUT_BLOCK) {
        const long o1 = o0 + OUT_BLOCK < d1 ? o0 + OUT_BLOCK : d1;
        for (int i = 0; i < n_src; i++)
            for (long o = o0; o < o1; o++) {
                const size_t synapse = (size_t)o * n_src + i;
                window_dots_any(j->gy + (size_t)o * j->R_g * Bp, j->src + i * series + (size_t)j->start[synapse] * Bp,
                                j->T_out, Bp, W, j->dst + synapse * W);
            }
    }
}

int suite_window_tile(void) { return TILE; }

int suite_window_max(void) { return MAX_WINDOW; }

void suite_window_correlate(const float *src, const float *a, const int *start, float *dst, int n_dst, int n_src,
                            int W, int R_src, int T_out, int Bv, int n_threads) {
    window_job j = {src, a, start, dst, NULL, n_dst, n_src, W, R_src, T_out, Bv, 0,
                    {n_threads}};
    pool_run(&j.threads, correlate_part, &j);
}

void suite_window_tap_grad(const float *x, const float *gy, const int *start, float *ga, int n_dst, int n_src, int W,
                           int R_src, int T_out, int Bv, int R_g, int n_threads) {
    window_job j = {x, NULL, start, ga, gy, n_dst, n_src, W, R_src, T_out, Bv, R_g,
                    {n_threads}};
    pool_run(&j.threads, tap_grad_part, &j);
}
