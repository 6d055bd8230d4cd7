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

/* dst[i] = src[i - front] (one vector per time step, `row` floats apart), zero outside [0, T); i < rows. */
static void gather_column(const float *src, size_t row, int T, int front, int rows, float *dst) {
    int first = front < 0 ? -front : 0; /* source steps before 0 never read */
    int lead = front > 0 ? (front < rows ? front : rows) : 0;
    memset(dst, 0, (size_t)lead * VL * sizeof(float));
    int i = lead;
    for (int t = first; t < T && i < rows; t++, i++) *(vec *)(dst + (size_t)i * VL) = *(const vec *)(src + t * row);
    memset(dst + (size_t)i * VL, 0, (size_t)(rows - i) * VL * sizeof(float));
}

static void thread_share(const job *j, int n, int *begin, int *end) {
    long first, last;
    pool_share(&j->threads, n, &first, &last);
    *begin = (int)first;
    *end = (int)last;
}

static float *thread_scratch(const job *j) { return j->scratch + (size_t)pool_self(&j->threads) * j->scratch_floats; }

static void forward_columns(void *data) {
    const job *j = data;
    const int nv = j->C / VL, D = j->D, C = j->C, T_out = j->T_out, rows = forward_rows(j->D, j->T_out);
    const size_t row = (size_t)j->B * C;
    float *column = thread_scratch(j);
    int begin, end;
    thread_share(j, j->B * nv, &begin, &end);
    for (int col = begin; col < end; col++) {
        const size_t offset = (size_t)(col / nv) * C + (size_t)(col % nv) * VL; /* batch item, channel vector */
        const float *ws = j->w + (size_t)(col % nv) * VL;
        gather_column(j->x + offset, row, j->T, j->front, rows, column);
        for (int t0 = 0; t0 < T_out; t0 += TILE) {
            vec acc[TILE] = {0};
            for (int k = 0; k < D; k++) {
                const vec wk = *(const vec *)(ws + (size_t)k * C);
                const float *xk = column + (size_t)(t0 + k) * VL;
#pragma GCC unroll 16
                for (int r = 0; r < TILE; r++) acc[r] += wk * *(const vec *)(xk + r * VL);
            }
            const int n = T_out - t0 < TILE ? T_out - t0 : TILE;
            for (int r = 0; r < n; r++) *(vec *)(j->out + offset + (size_t)(t0 + r) * row) = acc[r];
        }
    }
}

static void weight_grad_columns(void *data) {
    const job *j = data;
    const int nv = j->C / VL, D = j->D, T_out = j->T_out, rows = weight_grad_rows(j->D, j->T_out);
    const size_t row = (size_t)j->B * j->C;
    float *column = thread_scratch(j), *grad = column + (size_t)rows * VL, *sums = grad + (size_t)T_out * VL;
    int begin, end;
    thread_share(j, nv, &begin, &end);
    for (int v = begin; v < end; v++) {
        memset(sums, 0, (size_t)round_up(D, TILE) * VL * sizeof(float));
        for (int b = 0; b < j->B; b++) {
            const size_t offset = (size_t)b * j->C + (size_t)v * VL;
            gather_column(j->x + offset, row, j->T, j->front, rows, column);
            gather_column(j->w + offset, row, T_out, 0, T_out, grad);
            for (int k0 = 0; k0 < D; k0 += TILE) {
                vec acc[TILE];
                for (int r = 0; r < TILE; r++) acc[r] = *(vec *)(sums + (size_t)(k0 + r) * VL);
                for (int t = 0; t < T_out; t++) {
                    const vec gt = *(const vec *)(grad + (size_t)t * VL);
                    const float *xk = column + (size_t)(t + k0) * VL;
#pragma GCC unroll 16
                    for (int r = 0; r < TILE; r++) acc[r] += gt * *(const vec *)(xk + r * VL);
                }
                for (int r = 0; r < TILE; r++) *(vec *)(sums + (size_t)(k0 + r) * VL) = acc[r];
            }
        }
        for (int k = 0; k < D; k++) *(vec *)(j->out + (size_t)k * j->C + (size_t)v * VL) = *(vec *)(sums + (size_t)k * VL);
    }
}

int suite_vector_width(void) { return VL; }

/* Scratch floats one thread needs for a forward (weight_grad = 0) or a weight gradient (1). */
long suite_scratch_floats(int D, int T_out, int weight_grad) {
    if (!weight_grad) return (long)forward_rows(D, T_out) * VL;
    return ((long)weight_grad_rows(D, T_out) + T_out + round_up(D, TILE)) * VL;
}

void suite_depthwise_forward(const float *x, const float *w, float *y, float *scratch, int T, int B, int C, int D,
                             int front, int T_out, gomp_parallel_fn parallel, thread_query_fn thread_num,
                             thread_query_fn num_threads, int n_threads) {
    job j = {x, w, y, scratch, (size_t)suite_scratch_floats(D, T_out, 0), T, B, C, D, front, T_out,
             {parallel, thread_num, num_threads, n_threads}};
    pool_run(&j.threads, forward_columns, &j);
}

void suite_depthwise_weight_grad(const float *x, const float *g, float *dw, float *scratch, int T, int B, int C,
                                 int D, int front, int T_out, gomp_parallel_fn parallel, thread_query_fn thread_num,
                                 thread_query_fn num_threads, int n_threads) {
    job j = {x, g, dw, scratch, (size_t)suite_scratch_floats(D, T_out, 1), T, B, C, D, front, T_out,
             {parallel, thread_num, num_threads, n_threads}};
    pool_run(&j.threads, weight_grad_columns, &j);
}
