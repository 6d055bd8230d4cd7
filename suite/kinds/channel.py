"""What the two per-channel kinds (axonal: a delay per presynaptic line, dendritic: per postsynaptic line) share:
sparse delays and their pass-through modes, the delay-line bookkeeping and the streaming delay lines.

Sparse delays: a fixed random mask keeps about ``1 - delay_sparsity`` of the lines delayed. In ``zero`` pass-through
mode only the delayed lines are buffered. In ``official`` mode the pass-through lines are delayed by exactly D - 1
(released code, docs/protocol-facts.md hazard 4), so they are buffered too, at depth D - 1 in both sizings.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn
from torch.nn import functional as F

from suite.kinds.base import LayerBuffers, Sizing, StreamingLayer
from suite.kinds.common import GaussianDelayKind, delay_value_bits
from suite.kinds.rings import DelayLines, NeuronStreamingLayer
from suite.models.delays import ChannelDelay


def channel_line_delays(delay: ChannelDelay) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Effective integer delay of every line of a ChannelDelay, which lines hold a buffer, and the delay mask.

    Without sparsity every line is buffered with its learned delay. With sparsity, masked lines pass through with
    delay 0 (``zero``: no buffer) or D - 1 (``official``: buffered like any other line).
    """
    learned = delay.delays().cpu()
    if delay.delay_mask is None:
        return learned, torch.ones_like(learned, dtype=torch.bool), None
    active = delay.delay_mask.detach().cpu() > 0.5
    if delay.passthrough == "official":
        return torch.where(active, learned, delay.kernel_size - 1), torch.ones_like(active), active
    return torch.where(active, learned, 0), active.clone(), active


class ChannelStreamingLayer(NeuronStreamingLayer):
    """Delay lines on the input (``before_weights``, axonal) or on the weighted current (dendritic)."""

    def __init__(self, layer: nn.Module, device: torch.device, sizing: Sizing, bit_lines: bool,
                 before_weights: bool) -> None:
        delay = layer.delay
        delays, buffered, active = channel_line_delays(delay)
        depths = torch.where(buffered, delay.kernel_size - 1, 0) if sizing == "allocated" else \
            torch.where(buffered, delays, 0)
        super().__init__(layer, device, DelayLines(delays[buffered], depths[buffered], bit_lines, device))
        self.before_weights = before_weights
        self.pad_right = (delay.kernel_size - 1) // 2
        self.official = active is not None and delay.passthrough == "official"
        self._buffered = buffered.to(device)
        self._active = active.to(device) if active is not None else None

    def _delay(self, values: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        assert isinstance(self.ring, DelayLines)
        out = values.clone()
        out[:, self._buffered] = self.ring.step(values[:, self._buffered], t)
        if self.official and t_in is not None and t >= t_in + self.pad_right:
            out[:, self._active] = 0.0  # released code: the delayed lines are zero-padded after T_in + R
        return out

    def current(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        if self.before_weights:
            return F.linear(self._delay(u, t, t_in), self.weight)
        return self._delay(F.linear(u, self.weight), t, t_in)


class ChannelKind(GaussianDelayKind):
    """A per-channel DCLS delay (``layer.delay``, a ChannelDelay); subclasses say which side of the weights."""

    before_weights: bool
    sparse_delays = True

    @abstractmethod
    def entry_bits(self, index: int, input_bits: int, acc_bits: int) -> int:
        """Bits of one buffer entry of this layer's lines."""

    def buffers(self, layer: nn.Module, index: int, input_bits: int, acc_bits: int) -> LayerBuffers:
        delay = layer.delay
        delays, buffered, active = channel_line_delays(delay)
        bits = self.entry_bits(index, input_bits, acc_bits)
        allocated = int(torch.where(buffered, delay.kernel_size - 1, 0).sum()) * bits
        learned = int(torch.where(buffered, delays, 0).sum()) * bits
        values = int(active.sum()) if active is not None else delays.numel()
        return LayerBuffers(self.site, allocated, learned, int(buffered.sum()), bits, values,
                            values * delay_value_bits(delay.kernel_size))

    def streaming_layer(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> StreamingLayer:
        bit_lines = self.entry_bits(index, 32, 32) == 1
        return ChannelStreamingLayer(layer, device, sizing, bit_lines, self.before_weights)

