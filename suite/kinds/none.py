"""No delay: Linear -> BatchNorm -> LIF, the baseline every delay kind is compared with."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from suite.kinds.base import LayerBuffers, LayerOperations, Sizing, StreamingLayer
from suite.kinds.common import NeuronKind, weighted_operations
from suite.kinds.layers import NeuronLayer
from suite.kinds.rings import NeuronStreamingLayer


class NoDelayLayer(NeuronLayer):
    """Weights only (the default :class:`NeuronLayer` synapses)."""


class NoDelayStreamingLayer(NeuronStreamingLayer):
    def current(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        return F.linear(u, self.weight)


class NoDelayKind(NeuronKind):
    name = "none"
    label = "none"
    site = "none"
    uses_kernel_size = False
    layer_class = NoDelayLayer

    def harden(self, layer: nn.Module) -> None:
        return  # nothing is soft

    def buffers(self, layer: nn.Module, index: int, input_bits: int, acc_bits: int) -> LayerBuffers:
        return LayerBuffers(self.site, 0, 0, 0, 0, 0, 0)

    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        return weighted_operations(layer, h, h)

    def training_macs_per_step(self, layer: nn.Module) -> int:
        return layer.n_in * layer.n_out

    def streaming_layer(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> StreamingLayer:
        return NoDelayStreamingLayer(layer, device, None)


KIND = NoDelayKind()
