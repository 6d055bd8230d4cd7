"""What the built-in kinds share: building a :class:`~suite.kinds.layers.NeuronLayer`, its optimiser groups and
weight-sparsity mask (:class:`NeuronKind`), and the DCLS-Gaussian delay's positions, SIG schedule and hard copy
(:class:`GaussianDelayKind`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from suite.kinds.base import DelayKind, LayerOperations
from suite.kinds.layers import NeuronLayer
from suite.models.delays import sigma_decay_factor

if TYPE_CHECKING:
    from suite.specs import ModelSpec


def delay_value_bits(kernel_size: int) -> int:
    """Bits to store one integer delay in [0, D - 1]."""
    return max(1, math.ceil(math.log2(kernel_size))) if kernel_size > 1 else 0


def weighted_operations(layer: nn.Module, h: torch.Tensor, weighted_input: torch.Tensor) -> LayerOperations:
    """Synaptic operations of a weight matrix acting on ``weighted_input`` (T', B, N_in): one per (non-zero input,
    non-zero weight) pair; Dense counts every pair. ``h`` is the layer's own input (the output is ``layer(h)``)."""
    weight = layer.weight.detach()
    n_out, n_in = weight.shape
    effective = int(((weighted_input != 0).sum(dim=(0, 1)) * (weight != 0).sum(dim=0)).sum())
    dense = weighted_input.shape[0] * weighted_input.shape[1] * n_in * n_out
    return LayerOperations(effective, dense, layer(h))


class NeuronKind(DelayKind):
    """A kind whose layer is a :class:`NeuronLayer` subclass (``layer_class``); ``site`` is its ``delay_sites``
    entry in run records."""

    layer_class: ClassVar[type[NeuronLayer]]
    site: ClassVar[str]

    def build_layer(self, n_in: int, n_out: int, spec: ModelSpec, backend: str, is_output: bool) -> nn.Module:
        return self.layer_class(n_in, n_out, spec, backend, is_output)

    def output_length(self, layer: nn.Module, t_in: int) -> int:
        return layer.output_length(t_in)

    def param_groups(self, layer: nn.Module) -> dict[str, list[nn.Parameter]]:
        """The official code's groups: weights (with L2 decay), BatchNorm (no decay), delay positions."""
        return {**super().param_groups(layer), "positions": []}

    def after_step(self, layer: nn.Module) -> None:
        """Re-apply the weight-sparsity mask (official ``reset_model``)."""
        layer.apply_weight_mask()


class GaussianDelayKind(NeuronKind):
    """DCLS delays: learned positions ``layer.delay.P`` clamped after every step, a Gaussian SIG decayed per epoch,
    integer delays D // 2 - round(P) when hard (suite/models/delays.py)."""

    def param_groups(self, layer: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {**super().param_groups(layer), "positions": [layer.delay.P]}

    def after_step(self, layer: nn.Module) -> None:
        super().after_step(layer)
        layer.delay.clamp_positions()

    def end_epoch(self, layer: nn.Module, spec: ModelSpec, epoch: int, epochs: int) -> None:
        """Official SIG schedule, once per epoch after the schedulers: SIG *= alpha while epoch < epochs // 4.

        alpha = (sig_final / sig_init) ** (1 / (epochs // 4)); with fewer than 4 epochs the official condition is
        never true, so SIG stays at its initial value (kept: it is what the released code does).
        """
        final_epoch = spec.sig_decay_epochs(epochs)
        delay = layer.delay
        if epoch < final_epoch and float(delay.sig) > spec.sig_final:
            delay.sig.mul_(sigma_decay_factor(spec.sig_init, spec.sig_final, final_epoch))

    def harden(self, layer: nn.Module) -> None:
        layer.delay.hard = True
