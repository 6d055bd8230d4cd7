"""Axonal delays: one learnable delay per presynaptic line, before the weights (1-bit spike lines in hidden layers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from suite.kinds.base import LayerOperations
from suite.kinds.channel import ChannelKind
from suite.kinds.common import weighted_operations
from suite.kinds.layers import NeuronLayer
from suite.models.delays import ChannelDelay

if TYPE_CHECKING:
    from suite.specs import ModelSpec


class AxonalLayer(NeuronLayer):
    def build_synapses(self, spec: ModelSpec, backend: str) -> None:
        self.delay = ChannelDelay(self.n_in, spec.kernel_size, backend, spec.sig_init, spec.delay_sparsity,
                                  spec.passthrough)
        self.linear = self.new_linear()

    @property
    def input_delay(self) -> ChannelDelay:  # type: ignore[override]
        return self.delay  # type: ignore[return-value]


class AxonalKind(ChannelKind):
    name = "axonal"
    label = "axonal (before W)"
    site = "pre"
    layer_class = AxonalLayer
    before_weights = True

    def entry_bits(self, index: int, input_bits: int, acc_bits: int) -> int:
        """Layer 1 buffers the real-valued network input; later layers buffer spikes (1 bit)."""
        return input_bits if index == 0 else 1

    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        """The weights act on the delayed presynaptic sequence (values pushed beyond its end are never read)."""
        return weighted_operations(layer, h, layer.delay(h))

    def training_macs_per_step(self, layer: nn.Module) -> int:
        return layer.n_in * layer.delay.kernel_size + layer.n_in * layer.n_out


KIND = AxonalKind()
