"""PyTorch kernel backend: pure functions over time-major tensors, no module state.

Every backend module exposes the same functions with the same signatures (see ``suite.ops.BACKEND_FUNCTIONS``):

- ``lif_spikes(x, tau, v_threshold, alpha)``: multi-step LIF (hard reset to 0, detached reset, arctan surrogate);
- ``leaky_readout(x, tau)``: the output layer's membrane trace (a LIF that never spikes);
- ``channel_delay(x, pos, sig, kernel_size, pad_left, pad_right)``: one learnable Gaussian delay per channel;
- ``channel_delay_hard(x, delays, kernel_size, pad_left, pad_right)``: integer delays per channel;
- ``synaptic_delay(x, weight, pos, sig, ...)`` and ``synaptic_delay_hard(x, weight, delays, ...)``: one delay per
  synapse fused with the weight matrix.

Delay convention (DCLS): the input is padded with ``pad_left`` zeros in front and ``pad_right`` behind, then a valid
cross-correlation with a kernel of length D runs over time. A kernel peak at tap ``i = pos + D // 2`` reads
``x[t - (D - 1 - i)]`` when ``pad_left = D - 1``, so the delay in steps is ``D // 2 - pos``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIGMA_OFFSET = 0.27
"""DCLS adds this to |SIG| so that the Gaussian never collapses (``dcls`` 0.1.1, ``ConstructKernel1d``)."""
KERNEL_NORM_EPS = 1e-7
"""DCLS divides the Gaussian by ``sum + 1e-7``; kept for bit-level parity with the published stack."""


def atan_surrogate_grad(h_minus_thr: torch.Tensor, alpha: float) -> torch.Tensor:
    """d spike / d H of spikingjelly's ``surrogate.ATan``: alpha / 2 / (1 + (pi / 2 * alpha * x) ** 2)."""
    return alpha / 2 / (1 + (math.pi / 2 * alpha * h_minus_thr).square())


class _LIFSpikes(torch.autograd.Function):
    """Whole-sequence LIF: the forward loop keeps only H[t]; the backward is one reverse loop, no per-step graph."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float, v_threshold: float, alpha: float) -> torch.Tensor:  # type: ignore[override]
        decay = 1.0 - 1.0 / tau
        h_seq = torch.empty_like(x)
        spikes = torch.empty_like(x)
        v = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            h = torch.add(x[t], v, alpha=decay)
            s = (h >= v_threshold).to(x.dtype)
            h_seq[t] = h
            spikes[t] = s
            v = h * (1.0 - s)
        ctx.save_for_backward(h_seq, spikes)
        ctx.decay, ctx.v_threshold, ctx.alpha = decay, v_threshold, alpha
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):  # type: ignore[override]
        h_seq, spikes = ctx.saved_tensors
        surrogate = atan_surrogate_grad(h_seq - ctx.v_threshold, ctx.alpha)
        keep = 1.0 - spikes
        grad_x = torch.empty_like(grad_spikes)
        grad_v = torch.zeros_like(grad_spikes[0])
        for t in range(grad_spikes.shape[0] - 1, -1, -1):
            grad_h = grad_spikes[t] * surrogate[t] + grad_v * keep[t]
            grad_x[t] = grad_h
            grad_v = grad_h * ctx.decay
        return grad_x, None, None, None


class _LeakyReadout(torch.autograd.Function):
    """V[t] = (1 - 1/tau) V[t-1] + X[t]: the output LIF with an unreachable threshold, as a linear recurrence."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float) -> torch.Tensor:  # type: ignore[override]
        decay = 1.0 - 1.0 / tau
        v_seq = torch.empty_like(x)
        v = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            v = torch.add(x[t], v, alpha=decay)
            v_seq[t] = v
        ctx.decay = decay
        return v_seq

    @staticmethod
    def backward(ctx, grad_v_seq: torch.Tensor):  # type: ignore[override]
        grad_x = torch.empty_like(grad_v_seq)
        carry = torch.zeros_like(grad_v_seq[0])
        for t in range(grad_v_seq.shape[0] - 1, -1, -1):
            carry = torch.add(grad_v_seq[t], carry, alpha=ctx.decay)
            grad_x[t] = carry
        return grad_x, None


def lif_spikes(x: torch.Tensor, tau: float, v_threshold: float, alpha: float) -> torch.Tensor:
    """Spikes of a multi-step LIF over ``x`` of shape (T, ...): H = (1 - 1/tau) V + X, S = H >= thr, V = H (1 - S)."""
    return _LIFSpikes.apply(x, tau, v_threshold, alpha)


def leaky_readout(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Membrane sequence of a non-spiking LIF (the paper's output layer, threshold 1e9)."""
    return _LeakyReadout.apply(x, tau)


def gaussian_kernel(pos: torch.Tensor, sig: float, kernel_size: int) -> torch.Tensor:
    """DCLS 'gauss' kernel for every position: shape ``pos.shape + (kernel_size,)``, each row sums to ~1."""
    taps = torch.arange(kernel_size, device=pos.device, dtype=pos.dtype)
    centre = pos.unsqueeze(-1) + kernel_size // 2
    k = torch.exp(-0.5 * ((taps - centre) / (abs(sig) + SIGMA_OFFSET)).square())
    return k / (k.sum(-1, keepdim=True) + KERNEL_NORM_EPS)


def delays_from_positions(pos: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Integer delays (steps) the official evaluation uses: round(pos) (half to even), clamped, as D//2 - round(pos)."""
    half = kernel_size // 2
    return (half - torch.round(pos).clamp(-half, half)).to(torch.long)


def _pad_time(x: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:
    """Zero-pad dimension 0 (time) of a (T, B, C) tensor."""
    return F.pad(x, (0, 0, 0, 0, pad_left, pad_right))


def channel_delay(
    x: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Per-channel soft delay: x (T, B, C), pos (C,) -> (T + pad_left + pad_right - D + 1, B, C)."""
    kernel = gaussian_kernel(pos, sig, kernel_size)  # (C, D)
    xp = x.permute(1, 2, 0)  # (B, C, T) as DCLS sees it
    y = F.conv1d(F.pad(xp, (pad_left, pad_right)), kernel.unsqueeze(1), groups=x.shape[2])
    return y.permute(2, 0, 1)


def channel_delay_hard(
    x: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Per-channel integer delays (C,) in [0, D-1]: a gather, D times cheaper than the one-hot convolution."""
    xpad = _pad_time(x, pad_left, pad_right)
    t_out = xpad.shape[0] - kernel_size + 1
    start = (kernel_size - 1 - delays).view(1, 1, -1)  # tap index i = D - 1 - delay
    index = (torch.arange(t_out, device=x.device).view(-1, 1, 1) + start).expand(t_out, x.shape[1], x.shape[2])
    return torch.gather(xpad, 0, index)


def synaptic_delay(
    x: torch.Tensor,
    weight: torch.Tensor,
    pos: torch.Tensor,
    sig: float,
    kernel_size: int,
    pad_left: int,
    pad_right: int,
) -> torch.Tensor:
    """One soft delay per synapse: x (T, B, Cin), weight and pos (Cout, Cin) -> (T', B, Cout)."""
    kernel = weight.unsqueeze(-1) * gaussian_kernel(pos, sig, kernel_size)  # (Cout, Cin, D)
    y = F.conv1d(F.pad(x.permute(1, 2, 0), (pad_left, pad_right)), kernel)
    return y.permute(2, 0, 1)


def synaptic_delay_hard(
    x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Integer synaptic delays: one matrix product per distinct delay value, over the synapses that carry it."""
    xpad = _pad_time(x, pad_left, pad_right)
    t_out = xpad.shape[0] - kernel_size + 1
    y = x.new_zeros(t_out, x.shape[1], weight.shape[0])
    for d in torch.unique(delays).tolist():
        tap = kernel_size - 1 - d
        w_d = torch.where(delays == d, weight, torch.zeros_like(weight))
        y = y + xpad[tap : tap + t_out] @ w_d.t()
    return y
