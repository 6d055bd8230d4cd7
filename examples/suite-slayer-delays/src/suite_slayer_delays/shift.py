"""SLAYER's delay shift (Shrestha & Orchard 2018): an integer shift forward, a finite-difference gradient backward.

Follows slayerPytorch ``src/slayer.py`` ``_delayFunction`` (lines 930-957) and its CUDA kernels
``src/cuda/shiftKernels.h`` (``shiftKernel`` with a shift LUT) and ``convKernels.h`` (``convKernel``), with Ts = 1:

- forward: ``y[t] = x[t - floor(d)]`` per neuron, zero where ``t - floor(d) < 0``; the output keeps the input's
  length, so values shifted past the end are dropped (``static_cast<int>`` truncation = floor for the clamped d >= 0);
- backward, input: the transpose shift ``dx[t] = g[t + floor(d)]`` (``shift(gradOutput, -delay)``);
- backward, delay: ``dd = sum_{b,t} g[t] (y[t-1] - y[t])`` with ``y[-1] = 0`` (``conv(output, [-1, 1])``), the
  backward difference of the shifted signal: d/dd x(t - d) = -x'(t - d).
"""

from __future__ import annotations

import torch


def _shift(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """(T, B, N) -> (T, B, N): channel n moved ``steps[n]`` steps later (earlier when negative), zero-filled."""
    t = x.shape[0]
    source = torch.arange(t, device=x.device).unsqueeze(1) - steps.unsqueeze(0)  # (T, N)
    valid = (source >= 0) & (source < t)
    index = source.clamp(0, t - 1).unsqueeze(1).expand(t, x.shape[1], x.shape[2])
    return torch.gather(x, 0, index) * valid.unsqueeze(1).to(x.dtype)


class DelayShift(torch.autograd.Function):
    """``y = delay_shift(x, d)``: x (T, B, N), d (N,) real delays >= 0 in steps."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        steps = torch.floor(delay.detach()).long()
        y = _shift(x, steps)
        ctx.save_for_backward(y, steps)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        y, steps = ctx.saved_tensors
        previous = torch.cat([torch.zeros_like(y[:1]), y[:-1]])
        grad_delay = (grad * (previous - y)).sum(dim=(0, 1))
        return _shift(grad, -steps), grad_delay


def delay_shift(x: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
    """Shift every channel of ``x`` (T, B, N) by its integer part of ``delay`` (N,); SLAYER's gradient for both."""
    return DelayShift.apply(x, delay)
