"""Thin modules over the backend's LIF kernels (the norse split: functional kernels, stateless wrappers)."""

from __future__ import annotations

import torch
from torch import nn

from suite.ops.registry import get_ops


class LIF(nn.Module):
    """Multi-step LIF layer over (T, B, N): decay 1 - 1/tau, hard reset to 0, detached reset, arctan surrogate."""

    def __init__(self, tau: float, v_threshold: float, surrogate_alpha: float, backend: str) -> None:
        super().__init__()
        self.tau, self.v_threshold, self.surrogate_alpha, self.backend = tau, v_threshold, surrogate_alpha, backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return get_ops(self.backend).lif_spikes(x, self.tau, self.v_threshold, self.surrogate_alpha)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_threshold={self.v_threshold}, alpha={self.surrogate_alpha}, backend={self.backend}"


class LeakyReadout(nn.Module):
    """The output layer's membrane trace: a LIF whose threshold (1e9 in the official code) is never reached."""

    def __init__(self, tau: float, backend: str) -> None:
        super().__init__()
        self.tau, self.backend = tau, backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return get_ops(self.backend).leaky_readout(x, self.tau)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, backend={self.backend}"
