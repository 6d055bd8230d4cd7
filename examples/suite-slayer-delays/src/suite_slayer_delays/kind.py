"""The ``slayer-axonal`` delay kind: one integer axonal delay per presynaptic line, learned with SLAYER's gradient,
under the adaptive per-layer cap of Sun et al. 2023 (package README: what follows the original code, what is ours).

A layer is the suite's :class:`~suite.kinds.layers.NeuronLayer` (weights -> BatchNorm -> LIF -> dropout; leaky
readout at the output) whose synaptic current shifts every input line first (:mod:`suite_slayer_delays.shift`).
The shift is integer in training already, so the hard copy computes exactly what training computed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from suite.kinds.base import LayerBuffers, LayerOperations, Sizing, StreamingLayer
from suite.kinds.common import NeuronKind, delay_value_bits, weighted_operations
from suite.kinds.layers import NeuronLayer
from suite.kinds.rings import DelayLines, NeuronStreamingLayer
from suite.specs import ModelSpec
from suite_slayer_delays.shift import delay_shift


class SlayerAxonalLayer(NeuronLayer):
    """(T, B, n_in) -> (T, B, n_out): spikes (hidden) or the readout's membrane trace (output layer).

    ``axon_delay`` (n_in,) starts uniform in [0, 1) as SLAYER's ``_delayLayer``; ``cap`` is the largest delay the
    layer may learn (and the depth a streaming implementation allocates per line), D - 1 until the adaptive schedule
    moves it; ``adaptive`` and ``steps_since_check`` are that schedule's state (:meth:`SlayerAxonalKind.after_step`).
    """

    def build_synapses(self, spec: ModelSpec, backend: str) -> None:
        self.axon_delay = nn.Parameter(torch.rand(self.n_in))
        self.linear = self.new_linear()
        self.register_buffer("cap", torch.tensor(float(spec.kernel_size - 1)))
        self.register_buffer("adaptive", torch.tensor(False))
        self.register_buffer("steps_since_check", torch.tensor(0))

    def integer_delays(self) -> torch.Tensor:
        """The delays the forward applies: floor of the learned values (long, (n_in,))."""
        return torch.floor(self.axon_delay.detach()).long()

    def synaptic_current(self, x: torch.Tensor, delayed: bool = False) -> torch.Tensor:
        return self.project(delay_shift(x, self.axon_delay))


class SlayerAxonalKind(NeuronKind):
    """Integer axonal delays (SLAYER delayShift) with the adaptive cap of Sun et al. 2023.

    Adaptive cap (Adaptive_axonal_delay ``main`` lines 141-163): while ``epoch <= warmup_fraction * epochs`` the cap
    stays at D - 1; afterwards, every step, once more than ``interval`` steps passed since the last raise, the cap
    becomes the largest integer delay of the layer, and rises by one (resetting the count) when the integer delay at
    index ``int(quantile * n_in)`` of the sorted delays exceeds cap - ``window``. Delays are clamped to [0, cap]
    after every optimiser step.
    """

    name = "slayer-axonal"
    label = "axonal, integer shift (SLAYER gradient, adaptive cap)"
    site = "pre"
    layer_class = SlayerAxonalLayer

    def __init__(self, warmup_fraction: float = 0.25, interval: int = 150, window: int = 5,
                 quantile: float = 0.85) -> None:
        self.warmup_fraction, self.interval, self.window, self.quantile = warmup_fraction, interval, window, quantile

    def param_groups(self, layer: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {**super().param_groups(layer), "positions": [layer.axon_delay]}

    @torch.no_grad()
    def after_step(self, layer: nn.Module) -> None:
        super().after_step(layer)
        if bool(layer.adaptive):
            layer.steps_since_check += 1
            if int(layer.steps_since_check) > self.interval:
                ordered = torch.sort(torch.floor(layer.axon_delay)).values
                layer.cap.copy_(ordered[-1])
                if ordered[int(self.quantile * layer.n_in)] > layer.cap - self.window:
                    layer.cap += 1
                    layer.steps_since_check.zero_()
        layer.axon_delay.clamp_(min=0.0, max=float(layer.cap))

    def end_epoch(self, layer: nn.Module, spec: ModelSpec, epoch: int, epochs: int) -> None:
        layer.adaptive.fill_(epoch + 1 > int(epochs * self.warmup_fraction))

    @torch.no_grad()
    def harden(self, layer: nn.Module) -> None:
        layer.axon_delay.floor_()

    def buffers(self, layer: nn.Module, index: int, input_bits: int, acc_bits: int) -> LayerBuffers:
        """One line per presynaptic input, as deep as the cap (allocated) or its own delay (learned); entries are
        1-bit spikes, or ``input_bits`` for the real-valued network input of layer 0."""
        cap, entry, n = int(layer.cap), (input_bits if index == 0 else 1), layer.n_in
        return LayerBuffers(site=self.site, allocated_bits=n * cap * entry,
                            learned_bits=int(layer.integer_delays().sum()) * entry,
                            buffered_lines=n if cap > 0 else 0, entry_bits=entry, stored_delay_values=n,
                            stored_delay_value_bits=n * delay_value_bits(cap + 1))

    @torch.no_grad()
    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        """The weights act on the shifted input (values shifted past the end are never read)."""
        return weighted_operations(layer, h, delay_shift(h, layer.axon_delay))

    def training_macs_per_step(self, layer: nn.Module) -> int:
        return layer.n_in * layer.n_out  # the shift moves data and multiplies nothing

    def streaming_layer(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> StreamingLayer:
        delays = layer.integer_delays().cpu()
        depths = torch.full_like(delays, int(layer.cap)) if sizing == "allocated" else delays
        return SlayerStreamingLayer(layer, device, DelayLines(delays, depths, bits=index > 0, device=device))


class SlayerStreamingLayer(NeuronStreamingLayer):
    """One ring per presynaptic line (bit-packed for spikes) before the weights; the suite's neuron step after."""

    ring: DelayLines

    def current(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        return F.linear(self.ring.step(u, t), self.weight)
