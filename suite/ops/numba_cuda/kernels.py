"""The ``numba.cuda.jit`` kernels of the numba-cuda backend. Pure array code: no torch here.

Layouts are the suite's time-major ones, (T, B, C), C-contiguous; a flattened row ``r = t * B + b`` therefore moves
by ``B`` rows per time step, which lets the synaptic delay run as a GEMM whose input rows are shifted per tap (an
implicit im2col: the padded input is never materialised). Every kernel accumulates in float32 like cuDNN does; the
Gaussian kernel and its derivative (tiny, per parameter) are computed in float64 and rounded once.

Thread mappings (``q = cuda.grid(1)`` unless said otherwise; the fastest-varying index is the last one named, so
neighbouring threads touch neighbouring addresses):

- LIF / leaky readout: one thread per neuron (b, n), looping over time (forward) or backwards over time (backward).
- Channel delay: one thread per output element (t, b, c) looping over the D taps; the kernel-gradient reduction over
  (t, b) is split in chunks of ``ROW_CHUNK`` rows, one thread per (chunk, tap, c), then one thread per channel sums the
  chunks deterministically and applies the chain rule through the normalised Gaussian.
- Synaptic delay (soft): a 2-D tiled shared-memory GEMM, one thread per output element (row (t, b), column), tiles of
  ``TILE`` x ``TILE``; the weighted Gaussian kernels are built by one thread per synapse.
- Synaptic delay over each synapse's window of W taps (the soft delay at a narrow width, W of D taps; the hard delay,
  W = 1, a gather): one thread per output element (t, b, o) looping over the inputs and the window; one thread per
  input element for the input gradient and one per synapse for the gradient of its window's taps.
"""

from __future__ import annotations

import math

from numba import cuda, float32

SIMULATOR = cuda.jit.__module__.startswith("numba.cuda.simulator")
TILE = 8 if SIMULATOR else 16
"""Side of the shared-memory tiles of the GEMM kernels (TILE x TILE threads per block). The simulator runs each
thread as a Python thread, so it gets 8 x 8 tiles (same code, a quarter of the threads); the GPU 16 x 16."""
ROW_CHUNK = 128
"""Rows (t, b) each thread sums in the channel-delay kernel-gradient reduction (partial sums stay deterministic)."""
NORM_EPS = 1e-7
"""DCLS normalisation epsilon: k = g / (sum g + 1e-7); must equal suite.ops.pytorch.KERNEL_NORM_EPS."""


# ---------------------------------------------------------------------------------------------------------------- LIF
@cuda.jit
def lif_forward(x, h_seq, spikes, decay, thr):
    """x, h_seq, spikes: (T, M). H = decay * V + X, S = H >= thr, V = H (1 - S). One thread per neuron."""
    j = cuda.grid(1)
    if j >= x.shape[1]:
        return
    v = float32(0.0)
    for t in range(x.shape[0]):
        h = x[t, j] + decay * v
        h_seq[t, j] = h
        if h >= thr:
            spikes[t, j] = float32(1.0)
            v = float32(0.0)
        else:
            spikes[t, j] = float32(0.0)
            v = h


@cuda.jit
def lif_backward(grad_s, h_seq, grad_x, decay, thr, half_alpha, slope):
    """Reverse-time loop: dH = dS * atan'(H - thr) + dV * (1 - S) (detached reset), dV_prev = decay * dH."""
    j = cuda.grid(1)
    if j >= grad_s.shape[1]:
        return
    grad_v = float32(0.0)
    for t in range(grad_s.shape[0] - 1, -1, -1):
        h = h_seq[t, j]
        z = slope * (h - thr)
        grad_h = grad_s[t, j] * (half_alpha / (float32(1.0) + z * z))
        if h < thr:
            grad_h += grad_v
        grad_x[t, j] = grad_h
        grad_v = grad_h * decay


@cuda.jit
def readout_forward(x, v_seq, decay):
    """V[t] = decay * V[t-1] + X[t], one thread per neuron."""
    j = cuda.grid(1)
    if j >= x.shape[1]:
        return
    v = float32(0.0)
    for t in range(x.shape[0]):
        v = x[t, j] + decay * v
        v_seq[t, j] = v


@cuda.jit
def readout_backward(grad_v_seq, grad_x, decay):
    """Adjoint of the linear recurrence: carry = dV[t] + decay * carry, dX[t] = carry."""
    j = cuda.grid(1)
    if j >= grad_v_seq.shape[1]:
        return
    carry = float32(0.0)
    for t in range(grad_v_seq.shape[0] - 1, -1, -1):
        carry = grad_v_seq[t, j] + decay * carry
        grad_x[t, j] = carry


# ------------------------------------------------------------------------------------------------- Gaussian kernels
@cuda.jit(device=True)
def _gauss_sums(pos, sigma, n_taps):
    """(sum_i g_i, sum_i dg_i/dpos) of g_i = exp(-((i - pos - D//2) / sigma)^2 / 2), in float64."""
    centre = pos + n_taps // 2
    total = 0.0
    total_d = 0.0
    for i in range(n_taps):
        z = (i - centre) / sigma
        g = math.exp(-0.5 * z * z)
        total += g
        total_d += g * z / sigma
    return total, total_d


@cuda.jit
def gaussian_rows(pos, kernel, sigma):
    """kernel[r, i] = normalised Gaussian of position pos[r] (channel delays): one thread per row r."""
    r = cuda.grid(1)
    if r >= pos.shape[0]:
        return
    n_taps = kernel.shape[1]
    p = float(pos[r])
    total, _ = _gauss_sums(p, sigma, n_taps)
    norm = total + NORM_EPS
    centre = p + n_taps // 2
    for i in range(n_taps):
        z = (i - centre) / sigma
        kernel[r, i] = math.exp(-0.5 * z * z) / norm


@cuda.jit
def synaptic_kernel_matrix(weight, pos, out, sigma, transposed):
    """GEMM operand of the weighted Gaussians, K[o, c, i] = w[o, c] k(pos[o, c])[i], one thread per synapse.

    ``transposed = False``: out[i * Cin + c, o] (forward; o fastest across threads). ``True``: out[i * Cout + o, c]
    (input gradient; c fastest).
    """
    q = cuda.grid(1)
    n_out, n_in = weight.shape
    if q >= n_out * n_in:
        return
    if transposed:
        o = q // n_in
        c = q - o * n_in
    else:
        c = q // n_out
        o = q - c * n_out
    n_taps = out.shape[0] // (n_out if transposed else n_in)
    p = float(pos[o, c])
    total, _ = _gauss_sums(p, sigma, n_taps)
    scale = float(weight[o, c]) / (total + NORM_EPS)
    centre = p + n_taps // 2
    for i in range(n_taps):
        z = (i - centre) / sigma
        value = math.exp(-0.5 * z * z) * scale
        if transposed:
            out[i * n_out + o, c] = value
        else:
            out[i * n_in + c, o] = value


@cuda.jit
def synaptic_kernel_grad(weight, pos, grad_k, grad_w, grad_pos, sigma):
    """From dL/dK (layout [i * Cin + c, o]) to dL/dw and dL/dpos of every synapse; one thread per synapse."""
    q = cuda.grid(1)
    n_out, n_in = weight.shape
    if q >= n_out * n_in:
        return
    c = q // n_out
    o = q - c * n_out
    n_taps = grad_k.shape[0] // n_in
    p = float(pos[o, c])
    total, total_d = _gauss_sums(p, sigma, n_taps)
    norm = total + NORM_EPS
    centre = p + n_taps // 2
    dot_g = 0.0
    dot_dg = 0.0
    for i in range(n_taps):
        z = (i - centre) / sigma
        g = math.exp(-0.5 * z * z)
        gk = float(grad_k[i * n_in + c, o])
        dot_g += gk * g
        dot_dg += gk * g * z / sigma
    grad_w[o, c] = dot_g / norm
    grad_pos[o, c] = float(weight[o, c]) * (dot_dg / norm - dot_g * total_d / (norm * norm))


# -------------------------------------------------------------------------------------------------- channel delays
@cuda.jit
def channel_forward(x, kernel, y, pad_left):
    """y[t, b, c] = sum_i kernel[c, i] * x[t + i - pad_left, b, c] (zero outside): one thread per (t, b, c)."""
    q = cuda.grid(1)
    t_out, n_batch, n_ch = y.shape
    if q >= t_out * n_batch * n_ch:
        return
    c = q % n_ch
    tb = q // n_ch
    b = tb % n_batch
    t = tb // n_batch
    acc = float32(0.0)
    for i in range(kernel.shape[1]):
        s = t + i - pad_left
        if 0 <= s < x.shape[0]:
            acc += kernel[c, i] * x[s, b, c]
    y[t, b, c] = acc


@cuda.jit
def channel_backward_input(grad_y, kernel, grad_x, pad_left):
    """grad_x[s, b, c] = sum_i kernel[c, i] * grad_y[s + pad_left - i, b, c]: one thread per (s, b, c)."""
    q = cuda.grid(1)
    t_in, n_batch, n_ch = grad_x.shape
    if q >= t_in * n_batch * n_ch:
        return
    c = q % n_ch
    sb = q // n_ch
    b = sb % n_batch
    s = sb // n_batch
    acc = float32(0.0)
    for i in range(kernel.shape[1]):
        t = s + pad_left - i
        if 0 <= t < grad_y.shape[0]:
            acc += kernel[c, i] * grad_y[t, b, c]
    grad_x[s, b, c] = acc


@cuda.jit
def channel_backward_kernel_partial(grad_y, x, partial, pad_left):
    """partial[k, i, c] = sum over rows (t, b) of chunk k of grad_y[t, b, c] * x[t + i - pad_left, b, c]."""
    q = cuda.grid(1)
    n_chunks, n_taps, n_ch = partial.shape
    if q >= n_chunks * n_taps * n_ch:
        return
    c = q % n_ch
    rest = q // n_ch
    i = rest % n_taps
    k = rest // n_taps
    t_out, n_batch = grad_y.shape[0], grad_y.shape[1]
    end = min((k + 1) * ROW_CHUNK, t_out * n_batch)
    acc = float32(0.0)
    for r in range(k * ROW_CHUNK, end):
        t = r // n_batch
        b = r - t * n_batch
        s = t + i - pad_left
        if 0 <= s < x.shape[0]:
            acc += grad_y[t, b, c] * x[s, b, c]
    partial[k, i, c] = acc


@cuda.jit
def channel_backward_pos(pos, partial, grad_pos, sigma):
    """Sum the chunked kernel gradients of channel c (fixed order) and chain them through the Gaussian."""
    c = cuda.grid(1)
    if c >= pos.shape[0]:
        return
    n_chunks, n_taps = partial.shape[0], partial.shape[1]
    p = float(pos[c])
    total, total_d = _gauss_sums(p, sigma, n_taps)
    norm = total + NORM_EPS
    centre = p + n_taps // 2
    dot_g = 0.0
    dot_dg = 0.0
    for i in range(n_taps):
        gk = 0.0
        for k in range(n_chunks):
            gk += partial[k, i, c]
        z = (i - centre) / sigma
        g = math.exp(-0.5 * z * z)
        dot_g += gk * g
        dot_dg += gk * g * z / sigma
    grad_pos[c] = dot_dg / norm - dot_g * total_d / (norm * norm)


@cuda.jit
def channel_hard_forward(x, delays, y, n_taps, pad_left):
    """y[t, b, c] = x[t + (D - 1 - delay[c]) - pad_left, b, c] (zero outside): one thread per (t, b, c)."""
    q = cuda.grid(1)
    t_out, n_batch, n_ch = y.shape
    if q >= t_out * n_batch * n_ch:
        return
    c = q % n_ch
    tb = q // n_ch
    b = tb % n_batch
    t = tb // n_batch
    s = t + n_taps - 1 - delays[c] - pad_left
    y[t, b, c] = x[s, b, c] if 0 <= s < x.shape[0] else float32(0.0)


@cuda.jit
def channel_hard_backward(grad_y, delays, grad_x, n_taps, pad_left):
    """Adjoint of the gather: grad_x[s, b, c] = grad_y[s + pad_left - (D - 1 - delay[c]), b, c]."""
    q = cuda.grid(1)
    t_in, n_batch, n_ch = grad_x.shape
    if q >= t_in * n_batch * n_ch:
        return
    c = q % n_ch
    sb = q // n_ch
    b = sb % n_batch
    s = sb // n_batch
    t = s + pad_left - (n_taps - 1 - delays[c])
    grad_x[s, b, c] = grad_y[t, b, c] if 0 <= t < grad_y.shape[0] else float32(0.0)


# ------------------------------------------------------------------------------------------------ synaptic delays
@cuda.jit
def shifted_gemm(a, w, out, offset, shift):
    """out[r, n] = sum_{i, k} a[r + offset + i * shift, k] * w[i * K + k, n], rows of ``a`` outside read as zero.

    With a = x (T*B, Cin), offset = -pad_left * B, shift = B this is the synaptic delay's forward pass; with
    a = grad_y, offset = pad_left * B, shift = -B and the transposed operand it is the input gradient. 2-D grid of
    TILE x TILE blocks, one thread per output element, threadIdx.x along the columns n. The reduction runs tap by tap,
    then over k in tiles, so no index division is needed; a tap whose shifted rows all fall in the zero padding is
    skipped by the whole block (the test depends on blockIdx only, so every thread reaches the same barriers).
    """
    sa = cuda.shared.array((TILE, TILE), float32)
    sw = cuda.shared.array((TILE, TILE), float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row0 = cuda.blockIdx.y * TILE
    row = row0 + ty
    col = cuda.blockIdx.x * TILE + tx
    n_rows, n_cols = out.shape
    a_rows, k_width = a.shape
    n_taps = w.shape[0] // k_width
    acc = float32(0.0)
    for i in range(n_taps):
        first = row0 + offset + i * shift
        if first + TILE <= 0 or first >= a_rows:
            continue
        src = row + offset + i * shift
        row_ok = row < n_rows and 0 <= src < a_rows
        for k0 in range(0, k_width, TILE):
            k = k0 + tx
            sa[ty, tx] = a[src, k] if row_ok and k < k_width else float32(0.0)
            k = k0 + ty
            sw[ty, tx] = w[i * k_width + k, col] if k < k_width and col < n_cols else float32(0.0)
            cuda.syncthreads()
            for j in range(TILE):
                acc += sa[ty, j] * sw[j, tx]
            cuda.syncthreads()
    if row < n_rows and col < n_cols:
        out[row, col] = acc


@cuda.jit
def shifted_gemm_tn(a, g, out, offset, shift):
    """out[i * K + k, n] = sum_r a[r + offset + i * shift, k] * g[r, n]: the kernel gradient dL/dK of the synaptic
    delay (a = x, g = grad_y). One thread per output element, reduction over the rows r in TILE-row slabs."""
    sa = cuda.shared.array((TILE, TILE), float32)
    sg = cuda.shared.array((TILE, TILE), float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    n_q, n_cols = out.shape
    a_rows, k_width = a.shape
    q_base = cuda.blockIdx.y * TILE
    col = cuda.blockIdx.x * TILE + tx
    q_load = q_base + tx  # the (tap, k) column of ``a`` this thread stages, contiguous across tx
    i_load = q_load // k_width
    k_load = q_load - i_load * k_width
    acc = float32(0.0)
    for r0 in range(0, g.shape[0], TILE):
        r = r0 + ty
        value = float32(0.0)
        if r < g.shape[0] and q_load < n_q:
            src = r + offset + i_load * shift
            if 0 <= src < a_rows:
                value = a[src, k_load]
        sa[ty, tx] = value
        value = float32(0.0)
        if r < g.shape[0] and col < n_cols:
            value = g[r, col]
        sg[ty, tx] = value
        cuda.syncthreads()
        for j in range(TILE):
            acc += sa[j, ty] * sg[j, tx]
        cuda.syncthreads()
    q = q_base + ty
    if q < n_q and col < n_cols:
        out[q, col] = acc


@cuda.jit
def synaptic_window_forward(x, taps_t, start_t, y, pad_left):
    """y[t, b, o] = sum_c sum_j taps[o, c, j] x[t + start[o, c] + j - pad_left, b, c] (x = 0 outside its steps): each
    synapse's window of W taps from its first tap ``start``; taps_t (Cin, Cout, W) and start_t (Cin, Cout) so that
    neighbouring threads (o fastest) read neighbouring synapses. One thread per (t, b, o). W = 1 with
    start = D - 1 - delay and the weights as taps is the hard delay (a gather)."""
    q = cuda.grid(1)
    t_out, n_batch, n_out = y.shape
    if q >= t_out * n_batch * n_out:
        return
    o = q % n_out
    tb = q // n_out
    b = tb % n_batch
    t = tb // n_batch
    acc = float32(0.0)
    for c in range(x.shape[2]):
        s0 = t + start_t[c, o] - pad_left
        for j in range(taps_t.shape[2]):
            s = s0 + j
            if 0 <= s < x.shape[0]:
                acc += taps_t[c, o, j] * x[s, b, c]
    y[t, b, o] = acc


@cuda.jit
def synaptic_window_backward_input(grad_y, taps, start, grad_x, pad_left):
    """grad_x[s, b, c] = sum_o sum_j taps[o, c, j] grad_y[s + pad_left - start[o, c] - j, b, o]: one thread per
    (s, b, c)."""
    q = cuda.grid(1)
    t_in, n_batch, n_in = grad_x.shape
    if q >= t_in * n_batch * n_in:
        return
    c = q % n_in
    sb = q // n_in
    b = sb % n_batch
    s = sb // n_batch
    acc = float32(0.0)
    for o in range(taps.shape[0]):
        t0 = s + pad_left - start[o, c]
        for j in range(taps.shape[2]):
            t = t0 - j
            if 0 <= t < grad_y.shape[0]:
                acc += taps[o, c, j] * grad_y[t, b, o]
    grad_x[s, b, c] = acc


@cuda.jit
def synaptic_window_backward_taps(grad_y, x, start, grad_taps, pad_left):
    """grad_taps[o, c, j] = sum_{t, b} grad_y[t, b, o] x[t + start[o, c] + j - pad_left, b, c]: one thread per
    synapse, its W taps in turn."""
    q = cuda.grid(1)
    n_out, n_in, n_window = grad_taps.shape
    if q >= n_out * n_in:
        return
    c = q % n_in
    o = q // n_in
    for j in range(n_window):
        shift = start[o, c] + j - pad_left
        acc = float32(0.0)
        for t in range(grad_y.shape[0]):
            s = t + shift
            if 0 <= s < x.shape[0]:
                for b in range(grad_y.shape[1]):
                    acc += grad_y[t, b, o] * x[s, b, c]
        grad_taps[o, c, j] = acc
