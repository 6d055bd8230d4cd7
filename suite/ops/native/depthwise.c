/* Depthwise (per-channel) correlation over time for the CPU per-channel delays, float32.
 *
 * Why a hand-written kernel: in the time-major (T, B, C) layout consecutive time steps of one channel are B * C
 * floats apart (32 KiB for B = 16, C = 512), so the D rows an output needs all map to the same L1 cache sets and
 * oneDNN's channels-last depthwise kernel runs from L2. Here each thread first copies one "column" (one batch item,
 * VL consecutive channels, all time steps, with the time padding as zero rows) into a small contiguous buffer that
 * stays in L1, then computes that column's outputs TILE time steps at a time with the TILE accumulators in registers:
 * per tap, one weight load and TILE fused multiply-adds, and no bounds checks. Inputs and outputs stay time-major,
 * so nothing is packed or padded in memory outside the kernel.
 *
 * Definitions (x, g, y contiguous (steps, B, C); taps w (D, C), the transposed (C, D) kernel; C % VL == 0):
 *   forward:       y[t, b, c]  = sum_k w[k, c] x[t + k - front, b, c]          (x = 0 outside [0, T)), t < T_out
 *   weight grad:   dw[k, c]    = sum_{b, t < T_out} g[t, b, c] x[t + k - front, b, c]
 *   input grad:    the forward of g with the taps reversed and front' = D - 1 - front (the caller reverses them).
 *
 * Threads: see pool.h; the caller passes a scratch buffer of n_threads * suite_scratch_floats(...) floats.
 */

#include <stddef.h>
#include <string.h>

#include "pool.h"

#define VL 16  /* channels per vector: one 512-bit register, or two 256-bit ones */
#define TILE 8 /* output time steps (forward) or taps (weight gradient) held in registers per inner loop */
#define BLOCK 8 /* channel vectors gathered together (8 x 64 contiguous bytes per time row) */

typedef float vec __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float)))); /* unaligned ok */
typedef struct {
    const float *x; /* (T, B, C) */
    const float *w; /* forward: taps (D, C); weight gradient: g (T_out, B, C) */
    float *out;     /* forward: y (T_out, B, C); weight gradient: dw (D, C) */
    float *scratch; /* per thread: scratch_floats floats */
    size_t scratch_floats;
    int T, B, C, D, front, T_out;
    pool threads;
} job;

static int round_up(int n, int multiple) { return (n + multiple - 1) / multiple * multiple; }

/* Rows of a forward column buffer: every tile reads TILE + D - 1 rows, the last tile may be partial. */
static int forward_rows(int D, int T_out) { return round_up(T_out, TILE) + D - 1; }

/* Rows of the weight-gradient input buffer: output t reads rows t .. t + round_up(D, TILE) - 1. */
static int weight_grad_rows(int D, int T_out) { return T_out + round_up(D, TILE) - 1; }

/* Copy `width` channel vectors of one batch item into `width` column buffers of `rows` rows each:
 * dst[c][i] = src[i - front][c], zero outside [0, T). The source is read one time row (width * VL contiguous floats)
 * at a time, so the hardware prefetchers see sequential runs instead of one 64-byte line per page. */
static void gather_block(const float *src, size_t row, int T, int front, int width, int rows, float *dst) {
    const size_t column = (size_t)rows * VL;
    for (int i = 0; i < rows; i++) {
        const int t = i - front;
        if (t >= 0 && t < T) {
            const float *s = src + (size_t)t * row;
            for (int c = 0; c < width; c++) *(vec *)(dst + c * column + (size_t)i * VL) = *(const vec *)(s + c * VL);
        } else {
            for (int c = 0; c < width; c++) *(vec *)(dst + c * column + (size_t)i * VL) = (vec){0};
        }
    }
}

static void thread_share(const job *j, int n, int *begin, int *end) {
    long first, last;
    pool_share(&j->threads, n, &first, &last);
    *begin = (int)first;
    *end = (int)last;
}

static float *thread_scratch(const job *j) { return j->scratch + (size_t)pool_self(&j->threads) * j->scratch_floats; }

/* Work items: (batch item, block of BLOCK channel vectors); outputs written a tile of rows across the block at a time. */
static void forward_blocks(void *data) {
    const job *j = data;
    const int nv = j->C / VL, blocks = (nv + BLOCK - 1) / BLOCK, D = j->D, C = j->C, T_out = j->T_out;
    const int rows = forward_rows(j->D, j->T_out);
    const size_t row = (size_t)j->B * C;
    float *columns = thread_scratch(j);
    int begin, end;
    thread_share(j, j->B * blocks, &begin, &end);
    for (int item = begin; item < end; item++) {
        const int b = item / blocks, v0 = (item % blocks) * BLOCK, width = nv - v0 < BLOCK ? nv - v0 : BLOCK;
        const size_t offset = (size_t)b * C + (size_t)v0 * VL;
        gather_block(j->x + offset, row, j->T, j->front, width, rows, columns);
        for (int t0 = 0; t0 < T_out; t0 += TILE) {
            const int n = T_out - t0 < TILE ? T_out - t0 : TILE;
            for (int c = 0; c < width; c++) {
                const float *ws = j->w + (size_t)(v0 + c) * VL, *xs = columns + (size_t)c * rows * VL;
                vec acc[TILE] = {0};
                for (int k = 0; k < D; k++) {
                    const vec wk = *(const vec *)(ws + (size_t)k * C);
                    const float *xk = xs + (size_t)(t0 + k) * VL;
#pragma GCC unroll 16
                    for (int r = 0; r < TILE; r++) acc[r] += wk * *(const vec *)(xk + r * VL);
                }
                for (int r = 0; r < n; r++) *(vec *)(j->out + offset + (size_t)c * VL + (size_t)(t0 + r) * row) = acc[r];
            }
        }
    }
}

/* Work items: blocks of BLOCK channel vectors, each summed over every batch item and output step. */
static void weight_grad_blocks(void *data) {
    const job *j = data;
    const int nv = j->C / VL, blocks = (nv + BLOCK - 1) / BLOCK, D = j->D, T_out = j->T_out;
    const int rows = weight_grad_rows(j->D, j->T_out), taps = round_up(D, TILE);
    const size_t row = (size_t)j->B * j->C;
    float *columns = thread_scratch(j), *grads = columns + (size_t)BLOCK * rows * VL;
    float *sums = grads + (size_t)BLOCK * T_out * VL;
    int begin, end;
    thread_share(j, blocks, &begin, &end);
    for (int block = begin; block < end; block++) {
        const int v0 = block * BLOCK, width = nv - v0 < BLOCK ? nv - v0 : BLOCK;
        memset(sums, 0, (size_t)width * taps * VL * sizeof(float));
        for (int b = 0; b < j->B; b++) {
            const size_t offset = (size_t)b * j->C + (size_t)v0 * VL;
            gather_block(j->x + offset, row, j->T, j->front, width, rows, columns);
            gather_block(j->w + offset, row, T_out, 0, width, T_out, grads);
            for (int c = 0; c < width; c++) {
                const float *xs = columns + (size_t)c * rows * VL, *gs = grads + (size_t)c * T_out * VL;
                float *sc = sums + (size_t)c * taps * VL;
                for (int k0 = 0; k0 < D; k0 += TILE) {
                    vec acc[TILE];
                    for (int r = 0; r < TILE; r++) acc[r] = *(vec *)(sc + (size_t)(k0 + r) * VL);
                    for (int t = 0; t < T_out; t++) {
                        const vec gt = *(const vec *)(gs + (size_t)t * VL);
                        const float *xk = xs + (size_t)(t + k0) * VL;
#pragma GCC unroll 16
                        for (int r = 0; r < TILE; r++) acc[r] += gt * *(const vec *)(xk + r * VL);
                    }
                    for (int r = 0; r < TILE; r++) *(vec *)(sc + (size_t)(k0 + r) * VL) = acc[r];
                }
            }
        }
        for (int c = 0; c < width; c++)
            for (int k = 0; k < D; k++)
                *(vec *)(j->out + (size_t)k * j->C + (size_t)(v0 + c) * VL) = *(vec *)(sums + ((size_t)c * taps + k) * VL);
    }
}

int suite_vector_width(void) { return VL; }

/* Scratch floats one thread needs for a forward (weight_grad = 0) or a weight gradient (1). */
long suite_scratch_floats(int D, int T_out, int weight_grad) {
    if (!weight_grad) return (long)BLOCK * forward_rows(D, T_out) * VL;
    return (long)BLOCK * ((long)weight_grad_rows(D, T_out) + T_out + round_up(D, TILE)) * VL;
}

void suite_depthwise_forward(const float *x, const float *w, float *y, float *scratch, int T, int B, int C, int D,
                             int front, int T_out, gomp_parallel_fn parallel, thread_query_fn thread_num,
                             thread_query_fn num_threads, int n_threads) {
    job j = {x, w, y, scratch, (size_t)suite_scratch_floats(D, T_out, 0), T, B, C, D, front, T_out,
             {parallel, thread_num, num_threads, n_threads}};
    pool_run(&j.threads, forward_blocks, &j);
}

void suite_depthwise_weight_grad(const float *x, const float *g, float *dw, float *scratch, int T, int B, int C,
                                 int D, int front, int T_out, gomp_parallel_fn parallel, thread_query_fn thread_num,
                                 thread_query_fn num_threads, int n_threads) {
    job j = {x, g, dw, scratch, (size_t)suite_scratch_floats(D, T_out, 1), T, B, C, D, front, T_out,
             {parallel, thread_num, num_threads, n_threads}};
    pool_run(&j.threads, weight_grad_blocks, &j);
}
