"""Synaptic delays (DCLS-delays): one learnable delay per synapse, fused with its weight into one (N_out, N_in)
operation; streamed through a postsynaptic accumulation ring of future slots per neuron."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from suite.kinds.base import LayerBuffers, LayerOperations, Sizing, StreamingLayer
from suite.kinds.common import GaussianDelayKind, delay_value_bits
from suite.kinds.layers import NeuronLayer
from suite.kinds.rings import AccumulatorRing, NeuronStreamingLayer
from suite.models.delays import SynapticDelay

if TYPE_CHECKING:
    from suite.specs import ModelSpec


class SynapticLayer(NeuronLayer):
    def build_synapses(self, spec: ModelSpec, backend: str) -> None:
        self.delay = SynapticDelay(self.n_in, self.n_out, spec.kernel_size, backend, spec.sig_init)

    @property
    def weight(self) -> nn.Parameter:
        return self.delay.weight  # type: ignore[union-attr]

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.delay(x)  # type: ignore[misc]


def ring_depths(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(delays (N_out, N_in), present synapses, learned ring depth per postsynaptic neuron): the largest delay over
    the neuron's synapses with a non-zero weight."""
    delays = layer.delay.delays().cpu()
    present = layer.weight.detach().cpu() != 0
    learned = torch.where(present, delays, 0).amax(dim=1) if delays.numel() else delays.new_zeros(layer.n_out)
    return delays, present, learned


class SynapticStreamingLayer(NeuronStreamingLayer):
    def __init__(self, layer: nn.Module, device: torch.device, sizing: Sizing) -> None:
        delays, _, learned = ring_depths(layer)
        k = layer.delay.kernel_size
        depths = torch.full((layer.n_out,), k - 1, dtype=torch.long) if sizing == "allocated" else learned
        super().__init__(layer, device, None)
        self.ring = AccumulatorRing(self.weight, delays, depths, k, device)

    def current(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        assert isinstance(self.ring, AccumulatorRing)
        return self.ring.step(u, t)


class SynapticKind(GaussianDelayKind):
    name = "synaptic"
    label = "synaptic (per synapse)"
    site = "fused"
    layer_class = SynapticLayer

    def buffers(self, layer: nn.Module, index: int, input_bits: int, acc_bits: int) -> LayerBuffers:
        """The accumulation ring (acc_bits entries); extras: the per-synapse spike-line alternative at depth D - 1
        and at each synapse's own delay."""
        delays, present, learned = ring_depths(layer)
        k = layer.delay.kernel_size
        spike_entry = input_bits if index == 0 else 1
        values = layer.n_in * layer.n_out
        extras = {"synaptic_spike_line_bits": values * (k - 1) * spike_entry,
                  "synaptic_spike_line_learned_bits": int(torch.where(present, delays, 0).sum()) * spike_entry}
        return LayerBuffers(self.site, layer.n_out * (k - 1) * acc_bits, int(learned.sum()) * acc_bits, layer.n_out,
                            acc_bits, values, values * delay_value_bits(k), extras)

    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        """One tap per synapse, not D: output step t of synapse (j, i) reads x_i[t - d_ji] once."""
        weight = layer.weight.detach()
        present = weight != 0
        n_out, n_in = weight.shape
        delay = layer.delay
        k = delay.kernel_size
        delays = delay.delays().to(h.device)
        xpad = F.pad(h, (0, 0, 0, 0, delay.pad_left, delay.pad_right))
        t_out = xpad.shape[0] - k + 1
        nonzero = xpad != 0
        effective = 0
        for d in torch.unique(delays[present]).tolist():
            tap = k - 1 - d
            per_input = nonzero[tap : tap + t_out].sum(dim=(0, 1))  # non-zero inputs each synapse of delay d reads
            fan_out = (present & (delays == d)).sum(dim=0)
            effective += int((per_input * fan_out).sum())
        return LayerOperations(effective, t_out * h.shape[1] * n_in * n_out, layer(h))

    def training_macs_per_step(self, layer: nn.Module) -> int:
        return layer.n_in * layer.n_out * layer.delay.kernel_size

    def streaming_layer(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> StreamingLayer:
        return SynapticStreamingLayer(layer, device, sizing)


KIND = SynapticKind()
