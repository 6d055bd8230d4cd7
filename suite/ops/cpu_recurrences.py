"""Numba loops for the time recurrences of the PyTorch backend on CPU (LIF and leaky readout, forward and backward).

Why: the recurrence is a few arithmetic operations per element and step, but as PyTorch ops it costs three
dispatches per step (~3 us each on a (16, 512) slice, 143 steps, 3 layers) plus whole-sequence passes that each
allocate and fill a fresh tensor. One compiled pass over the sequence does the same arithmetic in the same order and
precision (float32 stays float32) and touches each element once: on the paper's GSC network (batch 16) the LIF
forward + backward of one layer drops from ~6 ms to ~1.5 ms (docs/performance.md).

The kernels are serial: they are memory-bound (one read and one or two writes per element), a second thread gains
little, and a Numba thread pool beside PyTorch's OpenMP pool would compete for the same cores. Each function takes
contiguous (T, N) arrays and writes into preallocated outputs; scalars come in the arrays' dtype so that float32
arithmetic is not promoted to float64. Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def lif_forward(x, decay, v_threshold, h_seq, spikes):  # pragma: no cover - compiled
    """H[t] = X[t] + decay V, S = H >= thr, V = H (1 - S) (hard reset to 0).

    ``h_seq`` is (T, N) to keep every step's H for the backward, or (1, N) scratch when nothing is saved (evaluation).
    """
    steps, width = x.shape
    keep_all = h_seq.shape[0] == steps
    v = np.zeros(width, dtype=x.dtype)
    zero = decay - decay
    for t in range(steps):
        h_row = h_seq[t if keep_all else 0]
        for j in range(width):
            h = x[t, j] + decay * v[j]
            fired = h >= v_threshold
            h_row[j] = h
            spikes[t, j] = fired
            v[j] = zero if fired else h


@njit(cache=True, nogil=True, error_model="numpy")
def lif_backward(h_seq, grad_spikes, decay, v_threshold, one, scale, half_alpha, grad_x):  # pragma: no cover
    """dL/dX[t] = g[t] (alpha/2) / (1 + scale (H[t] - thr)^2) + dL/dX[t+1] decay [H[t] < thr], backwards in time.

    The reset is detached (spikingjelly's ``detach_reset``), so nothing flows through a spike's reset.
    """
    steps, width = h_seq.shape
    zero = one - one
    for t in range(steps - 1, -1, -1):
        h, g, out = h_seq[t], grad_spikes[t], grad_x[t]
        if t == steps - 1:
            for j in range(width):
                centred = h[j] - v_threshold
                out[j] = half_alpha * (g[j] / (one + scale * (centred * centred)))
        else:
            later = grad_x[t + 1]
            for j in range(width):
                centred = h[j] - v_threshold
                carry = decay if centred < zero else zero
                out[j] = half_alpha * (g[j] / (one + scale * (centred * centred))) + later[j] * carry


@njit(cache=True, nogil=True, error_model="numpy")
def leaky_forward(x, decay, v_seq):  # pragma: no cover - compiled
    """V[t] = decay V[t-1] + X[t]."""
    steps, width = x.shape
    if steps == 0:  # no bounds checks in compiled code: row 0 must exist
        return
    for j in range(width):
        v_seq[0, j] = x[0, j]
    for t in range(1, steps):
        for j in range(width):
            v_seq[t, j] = x[t, j] + decay * v_seq[t - 1, j]


@njit(cache=True, nogil=True, error_model="numpy")
def leaky_backward(grad_v, decay, grad_x):  # pragma: no cover - compiled
    """dL/dX[t] = dL/dV[t] + decay dL/dX[t+1]."""
    steps, width = grad_v.shape
    if steps == 0:
        return
    for j in range(width):
        grad_x[steps - 1, j] = grad_v[steps - 1, j]
    for t in range(steps - 2, -1, -1):
        for j in range(width):
            grad_x[t, j] = grad_v[t, j] + decay * grad_x[t + 1, j]


def load_kernels() -> None:
    """Compile (or load from the on-disk cache) every kernel for float32 now, so that a later first call costs no
    compilation time or memory (the memory benchmarks subtract a process that never trains)."""
    x = np.zeros((2, 2), dtype=np.float32)
    out, other = np.empty_like(x), np.empty_like(x)
    c = np.float32(0.5)
    lif_forward(x, c, c, out, other)
    lif_backward(x, x, c, c, c, c, c, out)
    leaky_forward(x, c, out)
    leaky_backward(x, c, out)
