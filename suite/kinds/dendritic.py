"""Dendritic delays: one learnable delay per postsynaptic line, after the weights (lines of synaptic currents)."""

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


class DendriticLayer(NeuronLayer):
    def build_synapses(self, spec: ModelSpec, backend: str) -> None:
        self.linear = self.new_linear()
        self.delay = ChannelDelay(self.n_out, spec.kernel_size, backend, spec.sig_init, spec.delay_sparsity,
                                  spec.passthrough)

    @property
    def current_delay(self) -> ChannelDelay:  # type: ignore[override]
        return self.delay  # type: ignore[return-value]


class DendriticKind(ChannelKind):
    name = "dendritic"
    label = "dendritic (after W)"
    site = "post"
    layer_class = DendriticLayer
    before_weights = False

    def entry_bits(self, index: int, input_bits: int, acc_bits: int) -> int:
        """The lines hold synaptic currents at accumulator precision."""
        return acc_bits

    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        """The weights act on the undelayed input; moving currents through the lines is memory traffic."""
        return weighted_operations(layer, h, h)

    def training_macs_per_step(self, layer: nn.Module) -> int:
        return layer.n_in * layer.n_out + layer.n_out * layer.delay.kernel_size


KIND = DendriticKind()
