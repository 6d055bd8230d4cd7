"""Learnable delay modules with DCLS semantics (docs/protocol-facts.md 'Delays').

Positions ``P`` are learned; ``sig`` (the Gaussian SIG, not learned) is a buffer the runner decays once per epoch.
``hard = True`` switches a module to integer delays ``D // 2 - round(P)`` (what every evaluation scores). Time is padded
with ``D - 1`` zeros in front and ``(D - 1) / 2`` behind (the paper's padding), so each layer adds (D - 1) / 2 steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from suite.ops.pytorch import delays_from_positions
from suite.ops.registry import get_ops


def init_positions(pos: torch.Tensor, kernel_size: int) -> None:
    """Official init: P ~ U[-(D // 2) - 1, D // 2], then clamped to [-(D // 2), D // 2]."""
    half = kernel_size // 2
    with torch.no_grad():
        nn.init.uniform_(pos, -half - 1, half).clamp_(-half, half)


class _DelayBase(nn.Module):
    """Shared state of the delay modules: kernel length, padding, the SIG buffer and the hard switch."""

    def __init__(self, kernel_size: int, backend: str, sig_init: float) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.pad_left = kernel_size - 1
        self.pad_right = (kernel_size - 1) // 2
        self.backend = backend
        self.hard = False
        self.register_buffer("sig", torch.tensor(float(sig_init)))
        self.P: nn.Parameter

    def clamp_positions(self) -> None:
        half = self.kernel_size // 2
        with torch.no_grad():
            self.P.clamp_(-half, half)

    def delays(self) -> torch.Tensor:
        """Integer delays in steps, [0, D - 1], as the hard evaluation uses them."""
        return delays_from_positions(self.P.detach(), self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sig={float(self.sig):.4g}, hard={self.hard}, backend={self.backend}"


class ChannelDelay(_DelayBase):
    """One delay per channel (axonal: before the weights, on presynaptic lines; dendritic: after, postsynaptic).

    With ``sparsity > 0`` a fixed random mask (a buffer, saved with the model) keeps about ``1 - sparsity`` of the
    lines delayed; the others pass through: delayed by D - 1 in ``official`` mode (the released code), by 0 in ``zero``.
    """

    def __init__(self, n_channels: int, kernel_size: int, backend: str, sig_init: float,
                 sparsity: float = 0.0, passthrough: str = "official") -> None:
        super().__init__(kernel_size, backend, sig_init)
        self.n_channels = n_channels
        self.P = nn.Parameter(torch.empty(n_channels))
        init_positions(self.P, kernel_size)
        self.sparsity = sparsity
        self.passthrough = passthrough
        if sparsity > 0:
            self.register_buffer("delay_mask", (torch.rand(n_channels) > sparsity).float())
        else:
            self.delay_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops = get_ops(self.backend)
        if self.hard:
            y = ops.channel_delay_hard(x, self.delays().to(x.device), self.kernel_size, self.pad_left, self.pad_right)
        else:
            y = ops.channel_delay(x, self.P, float(self.sig), self.kernel_size, self.pad_left, self.pad_right)
        if self.delay_mask is None:
            return y
        return self._mix_passthrough(x, y)

    def _mix_passthrough(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self.delay_mask.to(x.dtype)
        if self.passthrough == "official":
            # Released code: the pass-through is the front-padded input and y is zero-padded at its end to match.
            xpad = nn.functional.pad(x, (0, 0, 0, 0, self.pad_left, self.pad_right))
            y = nn.functional.pad(y, (0, 0, 0, 0, 0, self.pad_left))
            return m * y + (1.0 - m) * xpad
        passthrough = nn.functional.pad(x, (0, 0, 0, 0, 0, self.pad_right))
        return m * y + (1.0 - m) * passthrough

    def output_length(self, t_in: int) -> int:
        grow = self.pad_right + (self.pad_left if self.delay_mask is not None and self.passthrough == "official" else 0)
        return t_in + grow

    def active_lines(self) -> int:
        """Lines that really hold a delay buffer (all of them without sparsity)."""
        return self.n_channels if self.delay_mask is None else int(self.delay_mask.sum().item())


class SynapticDelay(_DelayBase):
    """One weight and one delay per synapse (DCLS-delays), fused into one (N_out, N_in) operation."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, backend: str, sig_init: float) -> None:
        super().__init__(kernel_size, backend, sig_init)
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        self.P = nn.Parameter(torch.empty(n_out, n_in))
        init_positions(self.P, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops = get_ops(self.backend)
        if self.hard:
            return ops.synaptic_delay_hard(x, self.weight, self.delays().to(x.device), self.kernel_size,
                                           self.pad_left, self.pad_right)
        return ops.synaptic_delay(x, self.weight, self.P, float(self.sig), self.kernel_size,
                                  self.pad_left, self.pad_right)

    def output_length(self, t_in: int) -> int:
        return t_in + self.pad_right


def sigma_decay_factor(sig_init: float, sig_final: float, decay_epochs: int) -> float:
    """Official per-epoch SIG factor: (0.23 / SIG_init) ** (1 / final_epoch), final_epoch = epochs // 4."""
    return math.pow(sig_final / sig_init, 1.0 / decay_epochs)


def schedule_widths(sig_init: float, sig_final: float) -> dict[str, float]:
    """SIG at three points of the official decay: its start, its geometric middle (half the decay epochs, where the
    per-epoch factor has been applied half the times) and its final value (held for the last three quarters)."""
    return {"start": sig_init, "middle": math.sqrt(sig_init * sig_final), "final": sig_final}
