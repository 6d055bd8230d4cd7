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
 * Definitions (x, g, y contiguous (steps, B, C); taps w (D, Cp), the transposed (C, D) kernel with its channels
 * zero-padded to Cp = round_up(C, VL); a last, partial channel vector is gathered with zeros and stored lane-wise):
 *   forward:       y[t, b, c]  = sum_k w[k, c] x[t + k - front, b, c]          (x = 0 outside [0, T)), t < T_out
 *   weight grad:   dw[k, c]    = sum_{b, t < T_out} g[t, b, c] x[t + k - front, b, c]
 *   input grad:    the forward of g with the taps reversed and front' = D - 1 - front (the caller reverses them).
 *
 * Fused with a BatchNorm that follows (the dendritic delay, suite_depthwise_forward_moments and a backward given
 * `bn`): the forward also returns each (batch item, channel)'s mean and sum of squared deviations over its T_out
 * outputs (taken from the registers, so the BatchNorm needs no statistics pass over y); the backward computes the
 * BatchNorm input gradient g = a ((dY - mean_dY) - (y - mean) m2) while gathering it, instead of reading a g that a
 * separate pass wrote.
 *
 * Fused with the neuron stage before it (the axonal delay of the next layer, suite_lif_delay_forward/_backward): the
 * input x is the spike train of BatchNorm -> LIF -> dropout of z, computed block by block into the thread's buffer
 * (neither H nor the spikes stored); the backward computes the block's H and spikes again from z (bit-identical, and
 * cheaper than a stored H: see lif_block), uses the spikes for the kernel gradient and runs the LIF's reverse
 * recurrence on the block's input gradient as soon as the correlation has produced it, writing dY and the BatchNorm
 * sums; then (serially) the BatchNorm sums become per-channel rows, and a second parallel pass over the same work
 * items turns dY into the BatchNorm input gradient (input_grad_blocks).
 *
 * Threads: see pool.h; the caller passes a scratch buffer of n_threads * suite_scratch_floats(...) floats.
 */

#include <stddef.h>
#include <string.h>

#include "neuron.h"
#include "pool.h"

#define VL 16  /* channels per vector: one 512-bit register, or two 256-bit ones */
#define TILE 16 /* output time steps (forward) or taps (weight gradient) held in registers per inner loop */
#define BLOCK 8 /* channel vectors gathered together (8 x 64 contiguous bytes per time row) */
#define PREFETCH_ROWS 12 /* a gather asks for the row this many steps ahead: each row is in another page */

typedef float vec __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float)))); /* unaligned ok */

DEFINE_NEURON_ROWS(float, f32)

/* The neuron stage whose spikes are the correlation's input (axonal fusion). */
typedef struct {
    const float *z;       /* BatchNorm input (T, B, C) */
    const float *keep;    /* (B, C) dropout mask (ones without dropout) */
    const float *channel; /* rows of C: a, beta, mean (the backward recomputes H: the same three rows) */
    float *dy;            /* backward: dL/d(BatchNorm output) (T, B, C), then dL/dz in place, out */
    double *partial;      /* backward: (n_threads, 2, C) sums of dY and of dY (z - mean), zeroed */
    const float *gamma;   /* backward: the BatchNorm weight (C) */
    const double *mean, *invstd; /* backward: the forward's statistics (C) */
    double *grad_gamma, *grad_beta, *work; /* backward: (C) each, out (work: scratch) */
    float *rows;          /* backward: (4, C) a, mean dY, mean, m2 of the BatchNorm input gradient, out */
    float decay, threshold, scale, half_alpha;
} neuron;

typedef struct {
    const float *x; /* (T, B, C) */
    const float *g; /* backward: dL/dy (T_out, B, C) */
    const float *w; /* taps (D, Cp); reversed for the backward */
    float *out;     /* forward: y (T_out, B, C); backward: dL/dx (T, B, C) or NULL */
    float *dw;      /* backward: per-thread partial dL/dw (n_threads, round_up(D, TILE), Cp), zeroed; or NULL */
    double *moments; /* forward: (B, 2, C) mean and sum of squared deviations of y per batch item, or NULL */
    const float *y;  /* backward with `bn`: the BatchNorm input (T_out, B, C) */
    const float *bn; /* backward: (4, Cp) a, mean_dY, mean, m2 of the BatchNorm input gradient, or NULL (g is given) */
    const neuron *lif; /* x is this neuron stage's output (and, backward, dx feeds its backward), or NULL */
    float *scratch;  /* per thread: scratch_floats floats */
    size_t scratch_floats;
    int T, B, C, D, front, T_out;
    pool threads;
} job;

static int round_up(int n, int multiple) { return (n + multiple - 1) / multiple * multiple; }

/* Channel vectors covering C channels (the last one may be partial). */
static int vectors(int C) { return (C + VL - 1) / VL; }

/* Real channels in the last vector of the block [v0, v0 + width). */
static int block_tail(int C, int v0, int width) {
    const int left = C - (v0 + width - 1) * VL;
    return left < VL ? left : VL;
}

/* Rows of a forward column buffer: every tile reads TILE + D - 1 rows, the last tile may be partial. */
static int forward_rows(int D, int T_out) { return round_up(T_out, TILE) + D - 1; }

/* Rows of the backward's gradient buffer: the input gradient is a forward with T outputs, and the weight gradient
 * reads T_out rows after the D - 1 - front leading zeros. */
static int gradient_rows(int D, int T, int T_out, int front) {
    const int needed = D - 1 - front + T_out;
    return forward_rows(D, T) > needed ? forward_rows(D, T) : needed;
}

/* Rows of the weight-gradient input buffer: output t reads rows t .. t + round_up(D, TILE) - 1. */
static int weight_grad_rows(int D, int T_out) { return T_out + round_up(D, TILE) - 1; }

/* Copy `width` channel vectors of one batch item into `width` column buffers of `rows` rows each:
 * dst[c][i] = src[i - front][c], zero outside [0, T); the last vector holds `tail` real channels (VL when C is a
 * multiple of VL), the rest zeros. The source is read one time row (width * VL contiguous floats) at a time, so the
 * hardware prefetchers see sequential runs instead of one 64-byte line per page. With `bn` (4 rows of Cp floats,
 * from the block's first channel), the copy is the BatchNorm input gradient a ((src - mean_dY) - (y - mean) m2). */
static void gather_block(const float *src, const float *y, const float *bn, size_t bn_row, size_t row, int T,
                         int front, int width, int tail, int rows, float *dst) {
    const size_t column = (size_t)rows * VL;
    for (int i = 0; i < rows; i++) {
        const int t = i - front;
        if (t < 0 || t >= T) {
            for (int c = 0; c < width; c++) *(vec *)(dst + c * column + (size_t)i * VL) = (vec){0};
            continue;
        }
        const float *s = src + (size_t)t * row, *ys = bn ? y + (size_t)t * row : NULL;
        if (t + PREFETCH_ROWS < T)
            for (int c = 0; c < width; c++) {
                __builtin_prefetch(s + PREFETCH_ROWS * row + c * VL, 0, 3);
                if (bn) __builtin_prefetch(ys + PREFETCH_ROWS * row + c * VL, 0, 3);
            }
        for (int c = 0; c < width; c++) {
            const int lanes = c + 1 == width ? tail : VL;
            vec value = {0};
            if (lanes == VL)
                value = *(const vec *)(s + c * VL);
            else
                memcpy(&value, s + c * VL, (size_t)lanes * sizeof(float));
            if (bn) {
                vec input = {0};
                if (lanes == VL)
                    input = *(const vec *)(ys + c * VL);
                else
                    memcpy(&input, ys + c * VL, (size_t)lanes * sizeof(float));
                const float *p = bn + c * VL;
                value = *(const vec *)p * ((value - *(const vec *)(p + bn_row)) -
                                           (input - *(const vec *)(p + 2 * bn_row)) * *(const vec *)(p + 3 * bn_row));
            }
            *(vec *)(dst + c * column + (size_t)i * VL) = value;
        }
    }
}

/* Store a vector of which only the first `lanes` channels exist. */
static inline void store_lanes(float *dst, vec value, int lanes) {
    if (lanes == VL)
        *(vec *)dst = value;
    else
        memcpy(dst, &value, (size_t)lanes * sizeof(float));
}

static void thread_share(const job *j, int n, int *begin, int *end) {
    long first, last;
    pool_share(&j->threads, n, &first, &last);
    *begin = (int)first;
    *end = (int)last;
}

static float *thread_scratch(const job *j) { return j->scratch + (size_t)pool_self(&j->threads) * j->scratch_floats; }

/* out[t] = sum_k w[k] cols[c][t + k] for the `width` gathered columns of one block, t < T_out, TILE rows at a time
 * across the block (so each output row gets width * VL contiguous floats in a row). w rows are `Cp` floats apart;
 * the last column stores `tail` channels. Without predictive commoning: at TILE 16 gcc would otherwise carry the
 * input window across taps in registers, spill an accumulator and add register moves (measured 10 % slower than one
 * FMA with a memory operand per output and tap). With `moments` (two rows of C doubles, from the block's first
 * channel): each channel's mean over the T_out outputs and the sum of squared deviations from it, summed in double
 * around the channel's first output (so that a large mean does not cancel). */
__attribute__((optimize("no-predictive-commoning"))) static void correlate_block(
    const float *cols, int rows, const float *w, int Cp, int D, int width, int tail, int T_out, float *out,
    size_t row, double *moments, int C) {
    double sums[BLOCK][VL], squares[BLOCK][VL];
    vec shift[BLOCK];
    for (int t0 = 0; t0 < T_out; t0 += TILE) {
        const int n = T_out - t0 < TILE ? T_out - t0 : TILE;
        for (int c = 0; c < width; c++) {
            const float *ws = w + (size_t)c * VL, *xs = cols + (size_t)c * rows * VL;
            vec acc[TILE];
#pragma GCC unroll 16
            for (int r = 0; r < TILE; r++) acc[r] = (vec){0};
            for (int k = 0; k < D; k++) {
                const vec wk = *(const vec *)(ws + (size_t)k * Cp);
                const float *xk = xs + (size_t)(t0 + k) * VL;
#pragma GCC unroll 16
                for (int r = 0; r < TILE; r++) acc[r] += wk * *(const vec *)(xk + r * VL);
            }
            const int lanes = c + 1 == width ? tail : VL;
#pragma GCC unroll 16
            for (int r = 0; r < TILE; r++) /* unrolled with a test: a variable trip count would spill acc */
                if (r < n) store_lanes(out + (size_t)c * VL + (size_t)(t0 + r) * row, acc[r], lanes);
            if (moments) {
                if (t0 == 0) {
                    shift[c] = acc[0];
                    for (int l = 0; l < VL; l++) sums[c][l] = squares[c][l] = 0;
                }
                vec first = {0}, second = {0};
#pragma GCC unroll 16
                for (int r = 0; r < TILE; r++)
                    if (r < n) {
                        const vec deviation = acc[r] - shift[c];
                        first += deviation;
                        second += deviation * deviation;
                    }
                for (int l = 0; l < VL; l++) {
                    sums[c][l] += first[l];
                    squares[c][l] += second[l];
                }
            }
        }
    }
    if (moments)
        for (int c = 0; c < width; c++)
            for (int l = 0; l < (c + 1 == width ? tail : VL); l++) {
                const double mean_shift = sums[c][l] / T_out;
                moments[c * VL + l] = shift[c][l] + mean_shift;
                moments[C + c * VL + l] = squares[c][l] - sums[c][l] * mean_shift;
            }
}

/* sums[k][c] += sum_{t < T_out} g[c][t] x[c][t + k] for the `width` gathered columns of one block. */
static void accumulate_weight_grad(const float *xcols, int x_rows, const float *gcols, int g_rows, int g_first,
                                   int D, int width, int T_out, float *sums, int Cp) {
    for (int c = 0; c < width; c++) {
        const float *xs = xcols + (size_t)c * x_rows * VL, *gs = gcols + ((size_t)c * g_rows + g_first) * VL;
        for (int k0 = 0; k0 < D; k0 += TILE) {
            vec acc[TILE];
            for (int r = 0; r < TILE; r++) acc[r] = *(vec *)(sums + (size_t)(k0 + r) * Cp + (size_t)c * VL);
            for (int t = 0; t < T_out; t++) {
                const vec gt = *(const vec *)(gs + (size_t)t * VL);
                const float *xk = xs + (size_t)(t + k0) * VL;
#pragma GCC unroll 16
                for (int r = 0; r < TILE; r++) acc[r] += gt * *(const vec *)(xk + r * VL);
            }
            for (int r = 0; r < TILE; r++) *(vec *)(sums + (size_t)(k0 + r) * Cp + (size_t)c * VL) = acc[r];
        }
    }
}

/* One work item: a batch item and a block of up to BLOCK channel vectors starting at vector v0. */
typedef struct {
    int v0, width, tail; /* first vector, vectors in the block, real channels in its last vector */
    size_t offset;       /* of the block's first channel in a (steps, B, C) row */
} block;

static block block_of(const job *j, int item, int blocks) {
    const int nv = vectors(j->C), v0 = (item % blocks) * BLOCK, width = nv - v0 < BLOCK ? nv - v0 : BLOCK;
    return (block){v0, width, block_tail(j->C, v0, width), (size_t)(item / blocks) * j->C + (size_t)v0 * VL};
}

/* Real channels of a block. */
static long block_channels(const block *k) { return (long)(k->width - 1) * VL + k->tail; }

/* The block's input from the neuron stage: BatchNorm -> LIF -> dropout of z over all T steps, the output into
 * `spikes` (T rows of BLOCK * VL floats) and H into `h`, row t at t * h_step floats (h_step 0: one row, overwritten
 * at every step, for a forward that does not keep H). The backward calls it again instead of reading a stored H: the
 * same arithmetic on the same z gives the same H to the bit, and a block's H (T rows of BLOCK * VL floats) then stays
 * in the cache, where a stored H costs a full tensor written forward and read backward. */
static void lif_block(const job *j, const block *k, float *h, size_t h_step, float *spikes) {
    const neuron *n = j->lif;
    const long channels = block_channels(k), C = j->C;
    const size_t row = (size_t)j->B * C, first = (size_t)k->v0 * VL;
    float v[BLOCK * VL];
    for (long c = 0; c < channels; c++) v[c] = 0;
    for (int t = 0; t < j->T; t++) {
        const size_t at = (size_t)t * row + k->offset;
        if (t + PREFETCH_ROWS < j->T)
            for (int c = 0; c < k->width; c++) __builtin_prefetch(n->z + at + PREFETCH_ROWS * row + c * VL, 0, 3);
        lif_row_f32(n->z + at, n->keep + k->offset, n->channel + first, n->channel + C + first,
                    n->channel + 2 * C + first, h + (size_t)t * h_step, spikes + (size_t)t * BLOCK * VL, v, channels,
                    n->decay, n->threshold);
    }
}

/* The LIF's reverse recurrence for the block, given its H (T rows of BLOCK * VL floats, from lif_block) and
 * dL/dspikes `grad` (the same layout): dY written to the tensor, the BatchNorm sums added to the thread's partial. */
static void lif_backward_block(const job *j, const block *k, const float *h, const float *grad) {
    const neuron *n = j->lif;
    const long channels = block_channels(k), C = j->C;
    const size_t row = (size_t)j->B * C, first = (size_t)k->v0 * VL, local = BLOCK * VL;
    double *sums = n->partial + (size_t)pool_self(&j->threads) * 2 * C + first;
    for (int t = j->T - 1; t >= 0; t--) {
        const size_t at = (size_t)t * row + k->offset;
        float *dy = n->dy + at;
        if (t >= PREFETCH_ROWS) /* backwards in time: the rows PREFETCH_ROWS steps earlier */
            for (int c = 0; c < k->width; c++) {
                const size_t ahead = at - PREFETCH_ROWS * row + c * VL;
                __builtin_prefetch(n->z + ahead, 0, 3);
                __builtin_prefetch(n->dy + ahead, 1, 3);
            }
        surrogate_row_f32(h + t * local, grad + t * local, n->keep + k->offset, dy, channels, n->threshold, n->scale,
                          n->half_alpha);
        carry_row_f32(h + t * local, t + 1 < j->T ? dy + row : dy, dy, n->z + at, n->channel + 2 * C + first, sums,
                      sums + C, channels, n->threshold, n->decay, t + 1 < j->T);
    }
}

/* Work items: (batch item, block of BLOCK channel vectors). */
static void forward_blocks(void *data) {
    const job *j = data;
    const int nv = vectors(j->C), Cp = nv * VL, blocks = (nv + BLOCK - 1) / BLOCK;
    const int rows = forward_rows(j->D, j->T_out);
    const size_t row = (size_t)j->B * j->C;
    float *columns = thread_scratch(j), *spikes = columns + (size_t)BLOCK * rows * VL;
    float *h_row = spikes + (size_t)BLOCK * j->T * VL; /* H is not kept: one row, overwritten at every step */
    int begin, end;
    thread_share(j, j->B * blocks, &begin, &end);
    for (int item = begin; item < end; item++) {
        const block k = block_of(j, item, blocks);
        if (j->lif) {
            lif_block(j, &k, h_row, 0, spikes);
            gather_block(spikes, NULL, NULL, 0, BLOCK * VL, j->T, j->front, k.width, k.tail, rows, columns);
        } else {
            gather_block(j->x + k.offset, NULL, NULL, 0, row, j->T, j->front, k.width, k.tail, rows, columns);
        }
        correlate_block(columns, rows, j->w + (size_t)k.v0 * VL, Cp, j->D, k.width, k.tail, j->T_out,
                        j->out + k.offset, row, j->moments ? j->moments + 2 * k.offset - k.v0 * VL : NULL, j->C);
    }
}

/* The BatchNorm input gradient of the axonal fusion's backward, a second parallel pass after backward_blocks (once
 * every member has added its BatchNorm sums and suite_bn_backward_channels has turned them into the per-channel
 * rows): each member finishes the dY it wrote (the same share of work items, on the same thread of the pool), its
 * work items last to first, so that the blocks it wrote last are still in its cache. Elementwise, with the same row
 * arithmetic as batchnorm_lif.c's pass (bit-identical). */
static void input_grad_blocks(void *data) {
    const job *j = data;
    const neuron *n = j->lif;
    const long C = j->C;
    const size_t row = (size_t)j->B * C;
    const int nv = vectors(j->C), blocks = (nv + BLOCK - 1) / BLOCK;
    int begin, end;
    thread_share(j, j->B * blocks, &begin, &end);
    for (int item = end - 1; item >= begin; item--) {
        const block k = block_of(j, item, blocks);
        const float *r = n->rows + (size_t)k.v0 * VL;
        for (int t = 0; t < j->T; t++) {
            const size_t at = (size_t)t * row + k.offset;
            input_grad_row_f32(n->z + at, r, r + C, r + 2 * C, r + 3 * C, n->dy + at, block_channels(&k));
        }
    }
}

/* Work items as in the forward. The output gradient of a block is gathered once, padded as the input gradient (a
 * forward with reversed taps) needs it, and also serves the weight gradient, which each thread sums into its own
 * partial (the caller adds the partials). */
static void backward_blocks(void *data) {
    const job *j = data;
    const int nv = vectors(j->C), Cp = nv * VL, blocks = (nv + BLOCK - 1) / BLOCK, front_g = j->D - 1 - j->front;
    const int g_rows = gradient_rows(j->D, j->T, j->T_out, j->front), x_rows = weight_grad_rows(j->D, j->T_out);
    const size_t row = (size_t)j->B * j->C;
    float *gcols = thread_scratch(j), *xcols = gcols + (size_t)BLOCK * g_rows * VL;
    float *local = xcols + (size_t)BLOCK * x_rows * VL; /* T rows of BLOCK * VL: spikes, then their gradient */
    float *h = local + (size_t)BLOCK * j->T * VL;      /* T rows of BLOCK * VL: the neuron stage's H, recomputed */
    float *sums = j->dw ? j->dw + (size_t)pool_self(&j->threads) * round_up(j->D, TILE) * Cp : NULL;
    int begin, end;
    thread_share(j, j->B * blocks, &begin, &end);
    for (int item = begin; item < end; item++) {
        const block k = block_of(j, item, blocks);
        gather_block(j->g + k.offset, j->bn ? j->y + k.offset : NULL, j->bn ? j->bn + (size_t)k.v0 * VL : NULL,
                     (size_t)Cp, row, j->T_out, front_g, k.width, k.tail, g_rows, gcols);
        if (j->lif) lif_block(j, &k, h, BLOCK * VL, local);
        if (sums) {
            gather_block(j->lif ? local : j->x + k.offset, NULL, NULL, 0, j->lif ? BLOCK * VL : row, j->T, j->front,
                         k.width, k.tail, x_rows, xcols);
            accumulate_weight_grad(xcols, x_rows, gcols, g_rows, front_g, j->D, k.width, j->T_out,
                                   sums + (size_t)k.v0 * VL, Cp);
        }
        if (j->lif) {
            correlate_block(gcols, g_rows, j->w + (size_t)k.v0 * VL, Cp, j->D, k.width, k.tail, j->T, local,
                            BLOCK * VL, NULL, j->C);
            lif_backward_block(j, &k, h, local);
        } else if (j->out) {
            correlate_block(gcols, g_rows, j->w + (size_t)k.v0 * VL, Cp, j->D, k.width, k.tail, j->T,
                            j->out + k.offset, row, NULL, j->C);
        }
    }
}

int suite_vector_width(void) { return VL; }

/* Scratch floats one thread needs for a forward (backward = 0) or a backward (1). */
long suite_scratch_floats(int T, int D, int front, int T_out, int backward) {
    const long local = (long)BLOCK * T * VL; /* the neuron stage's rows of a block (axonal fusion) */
    if (!backward) return (long)BLOCK * forward_rows(D, T_out) * VL + local + BLOCK * VL; /* spikes, an H row */
    return (long)BLOCK * ((long)gradient_rows(D, T, T_out, front) + weight_grad_rows(D, T_out)) * VL +
           2 * local; /* the spikes (then their gradient) and H */
}

int suite_weight_grad_rows(int D) { return round_up(D, TILE); }

/* moments: (B, 2, C) doubles out (per batch item and channel: mean of y over its T_out steps, and the sum of
 * squared deviations from that mean), or NULL. */
void suite_depthwise_forward(const float *x, const float *w, float *y, double *moments, float *scratch, int T, int B,
                             int C, int D, int front, int T_out, int n_threads) {
    job j = {x, NULL, w, y, NULL, moments, NULL, NULL, NULL, scratch,
             (size_t)suite_scratch_floats(T, D, front, T_out, 0), T, B, C, D, front, T_out,
             {n_threads}};
    pool_run(&j.threads, forward_blocks, &j);
}

/* dx (T, B, C) or NULL; dw_partial (n_threads, suite_weight_grad_rows(D), Cp) zeroed, or NULL; reversed taps
 * (D, Cp). With `bn` ((4, Cp): a, mean_dY, mean, m2) and `y` (T_out, B, C), g is dY and the gradient of y is
 * a ((dY - mean_dY) - (y - mean) m2). */
void suite_depthwise_backward(const float *x, const float *g, const float *y, const float *bn,
                              const float *reversed_taps, float *dx, float *dw_partial, float *scratch, int T, int B,
                              int C, int D, int front, int T_out, int n_threads) {
    job j = {x, g, reversed_taps, dx, dw_partial, NULL, y, bn, NULL, scratch,
             (size_t)suite_scratch_floats(T, D, front, T_out, 1), T, B, C, D, front, T_out,
             {n_threads}};
    pool_run(&j.threads, backward_blocks, &j);
}

/* The axonal fusion, forward: y = the correlation of (BatchNorm -> LIF -> dropout of z), neither H nor the spikes
 * stored. channel: rows a, beta, mean of C floats (suite_bn_lif_forward with stats_only); keep (B, C). */
void suite_lif_delay_forward(const float *z, const float *keep, const float *channel, const float *w,
                             float *y, float *scratch, double decay, double threshold, int T, int B, int C, int D,
                             int front, int T_out, int n_threads) {
    const neuron n = {.z = z, .keep = keep, .channel = channel, .decay = (float)decay, .threshold = (float)threshold};
    job j = {NULL, NULL, w, y, NULL, NULL, NULL, NULL, &n, scratch,
             (size_t)suite_scratch_floats(T, D, front, T_out, 0), T, B, C, D, front, T_out,
             {n_threads}};
    pool_run(&j.threads, forward_blocks, &j);
}

/* The axonal fusion, backward: from dL/dy (g), dL/dz (T, B, C) out in dz, the BatchNorm parameter gradients
 * grad_gamma, grad_beta ((C) doubles out) and the kernel-gradient partials (as suite_depthwise_backward) or NULL.
 * channel, keep: the forward's (H is recomputed from them and z); gamma (C) floats; mean, invstd: the forward's
 * statistics, (C) doubles; bn_partial: (n_threads, 2, C) doubles, zeroed; work: C doubles; rows: (4, C) floats out
 * (a, mean dY, mean, m2 of dL/dz = a ((dY - mean dY) - (z - mean) m2)); reversed taps (D, Cp). */
void suite_lif_delay_backward(const float *z, const float *keep, const float *channel, const float *g,
                              const float *reversed_taps, float *dz, double *bn_partial, float *dw_partial,
                              float *scratch, const float *gamma, const double *mean, const double *invstd,
                              double *grad_gamma, double *grad_beta, double *work, float *rows, double decay,
                              double threshold, double scale, double half_alpha, int T, int B, int C, int D,
                              int front, int T_out, int n_threads) {
    const neuron n = {z, keep, channel, dz, bn_partial, gamma, mean, invstd, grad_gamma, grad_beta, work, rows,
                      (float)decay, (float)threshold, (float)scale, (float)half_alpha};
    job j = {NULL, g, reversed_taps, NULL, dw_partial, NULL, NULL, NULL, &n, scratch,
             (size_t)suite_scratch_floats(T, D, front, T_out, 1), T, B, C, D, front, T_out,
             {n_threads}};
    pool_run(&j.threads, backward_blocks, &j);
    suite_bn_backward_channels(0, bn_partial, n_threads, gamma, mean, invstd, (double)T * B, C, grad_gamma, grad_beta,
                               work, rows);
    pool_run(&j.threads, input_grad_blocks, &j);
}
