"""The ``slayer-axonal`` delay kind: one integer axonal delay per presynaptic line, learned with SLAYER's gradient,
under the adaptive per-layer cap of Sun et al. 2023 (package README: what follows the original code, what is ours).

A layer: delay shift of every input line (:mod:`suite_slayer_delays.shift`) -> weights -> BatchNorm -> LIF ->
dropout (one mask per sample), the suite's neuron stage; the output layer has no BatchNorm or dropout and a leaky
readout. The shift is integer in training already, so the hard copy computes exactly what training computed.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from suite.errors import SuiteError
from suite.kinds.base import DelayKind, LayerBuffers, LayerOperations, Sizing, StreamingLayer
from suite.models.lif import LIF, LeakyReadout
from suite.specs import ModelSpec
from suite.streaming import STATE_DTYPE, DelayLines
from suite_slayer_delays.shift import delay_shift


class SlayerAxonalLayer(nn.Module):
    """(T, B, n_in) -> (T, B, n_out): spikes (hidden) or the readout's membrane trace (output layer).

    ``delay`` (n_in,) starts uniform in [0, 1) as SLAYER's ``_delayLayer``; ``cap`` is the largest delay the layer
    may learn (and the depth a streaming implementation allocates per line), D - 1 until the adaptive schedule moves
    it; ``adaptive`` and ``steps_since_check`` are that schedule's state (:meth:`SlayerAxonalKind.after_step`).
    """

    def __init__(self, n_in: int, n_out: int, spec: ModelSpec, backend: str, is_output: bool) -> None:
        super().__init__()
        self.n_in, self.n_out, self.is_output = n_in, n_out, is_output
        self.dropout = 0.0 if is_output else spec.dropout
        self.delay = nn.Parameter(torch.rand(n_in))
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        self.norm = nn.BatchNorm1d(n_out) if spec.batchnorm and not is_output else None
        self.neuron: nn.Module = (LeakyReadout(spec.tau, backend) if is_output
                                  else LIF(spec.tau, spec.v_threshold, spec.surrogate_alpha, backend))
        self.register_buffer("cap", torch.tensor(float(spec.kernel_size - 1)))
        self.register_buffer("adaptive", torch.tensor(False))
        self.register_buffer("steps_since_check", torch.tensor(0))

    def integer_delays(self) -> torch.Tensor:
        """The delays the forward applies: floor of the learned values (long, (n_in,))."""
        return torch.floor(self.delay.detach()).long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = None  # dropout: one mask per sample for all steps
        if self.dropout > 0 and self.training:
            keep = x.new_empty(x.shape[1], self.n_out).bernoulli_(1.0 - self.dropout) / (1.0 - self.dropout)
        current = F.linear(delay_shift(x, self.delay), self.weight)
        if self.norm is not None:
            t, b, c = current.shape
            current = self.norm(current.reshape(t * b, c)).reshape(t, b, c)
        out = self.neuron(current)
        return out if keep is None else out * keep


class SlayerAxonalKind(DelayKind):
    """Integer axonal delays (SLAYER delayShift) with the adaptive cap of Sun et al. 2023.

    Adaptive cap (Adaptive_axonal_delay ``main`` lines 141-163): for the first ``warmup_fraction`` of the epochs the
    cap stays at D - 1; afterwards, every step, once more than ``interval`` steps passed since the last raise, the cap
    becomes the largest integer delay of the layer, and rises by one (resetting the count) when the integer delay at
    index ``int(quantile * n_in)`` of the sorted delays lies within ``window`` steps of it. Delays are clamped to
    [0, cap] after every optimiser step.
    """

    name = "slayer-axonal"
    label = "axonal, integer shift (SLAYER gradient, adaptive cap)"

    def __init__(self, warmup_fraction: float = 0.25, interval: int = 150, window: int = 5,
                 quantile: float = 0.85) -> None:
        self.warmup_fraction, self.interval, self.window, self.quantile = warmup_fraction, interval, window, quantile

    def validate(self, spec: ModelSpec, where: str) -> None:
        """Sparse delays and sparse weights are options of the suite's own kinds, not of this one."""
        for key in ("delay_sparsity", "weight_sparsity"):
            if getattr(spec, key):
                raise SuiteError(f"{where}.{key}: kind {self.name!r} has no sparse form, got {getattr(spec, key)!r} "
                                 "(expected 0)")

    def build_layer(self, n_in: int, n_out: int, spec: ModelSpec, backend: str, is_output: bool) -> nn.Module:
        return SlayerAxonalLayer(n_in, n_out, spec, backend, is_output)

    def output_length(self, layer: nn.Module, t_in: int) -> int:
        return t_in  # SLAYER's shift keeps the length: what is shifted past the end is dropped

    def param_groups(self, layer: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {**super().param_groups(layer), "positions": [layer.delay]}

    @torch.no_grad()
    def after_step(self, layer: nn.Module) -> None:
        if bool(layer.adaptive):
            layer.steps_since_check += 1
            if int(layer.steps_since_check) > self.interval:
                ordered = torch.sort(torch.floor(layer.delay)).values
                layer.cap.copy_(ordered[-1])
                if ordered[int(self.quantile * layer.n_in)] > layer.cap - self.window:
                    layer.cap += 1
                    layer.steps_since_check.zero_()
        layer.delay.clamp_(min=0.0, max=float(layer.cap))

    def end_epoch(self, layer: nn.Module, spec: ModelSpec, epoch: int, epochs: int) -> None:
        layer.adaptive.fill_(epoch + 1 > int(epochs * self.warmup_fraction))

    @torch.no_grad()
    def harden(self, layer: nn.Module) -> None:
        layer.delay.floor_()

    def buffers(self, layer: nn.Module, index: int, input_bits: int, acc_bits: int) -> LayerBuffers:
        """One line per presynaptic input, as deep as the cap (allocated) or its own delay (learned); entries are
        1-bit spikes, or ``input_bits`` for the real-valued network input of layer 0."""
        cap, entry = int(layer.cap), (input_bits if index == 0 else 1)
        n = layer.n_in
        value_bits = math.ceil(math.log2(cap + 1)) if cap > 0 else 0
        return LayerBuffers(site="pre", allocated_bits=n * cap * entry,
                            learned_bits=int(layer.integer_delays().sum()) * entry,
                            buffered_lines=n if cap > 0 else 0, entry_bits=entry, stored_delay_values=n,
                            stored_delay_value_bits=n * value_bits)

    @torch.no_grad()
    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        """One operation per (non-zero delayed input, non-zero weight) pair; dense: every pair, every step."""
        shifted = delay_shift(h, layer.delay)
        fan_out = (layer.weight != 0).sum(dim=0)
        effective = int(((shifted != 0).sum(dim=(0, 1)) * fan_out).sum())
        dense = shifted.shape[0] * shifted.shape[1] * layer.n_in * layer.n_out
        return LayerOperations(effective=effective, dense=dense, output=layer(h))

    def training_macs_per_step(self, layer: nn.Module) -> int:
        return layer.n_in * layer.n_out  # the shift moves data and multiplies nothing

    def streaming_layer(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> StreamingLayer:
        return SlayerStreamingLayer(layer, index, sizing, device)


class SlayerStreamingLayer(StreamingLayer):
    """The hard layer step by step: one ring per presynaptic line (suite.streaming.DelayLines, bit-packed for
    spikes), the weights, BatchNorm folded into a per-channel affine, LIF with hard reset or the leaky readout."""

    def __init__(self, layer: SlayerAxonalLayer, index: int, sizing: Sizing, device: torch.device) -> None:
        self.is_output, self.n_in, self.n_out = layer.is_output, layer.n_in, layer.n_out
        delays = layer.integer_delays().cpu()
        depths = torch.full_like(delays, int(layer.cap)) if sizing == "allocated" else delays
        self.ring = DelayLines(delays, depths, bits=index > 0, device=device)
        self.weight = layer.weight.detach().to(device, STATE_DTYPE).clone()
        self.scale = self.shift = None
        if layer.norm is not None:  # eval BatchNorm = per-channel affine of the running statistics
            norm = layer.norm
            scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
            self.scale = scale.to(device, STATE_DTYPE)
            self.shift = (norm.bias.detach() - norm.running_mean * scale).to(device, STATE_DTYPE)
        self.decay = 1.0 - 1.0 / layer.neuron.tau
        self.v_threshold = getattr(layer.neuron, "v_threshold", math.inf)
        self.device = device
        self.v = torch.zeros(0)

    def allocate(self, batch: int) -> None:
        self.ring.allocate(batch)
        self.v = torch.zeros(batch, self.n_out, dtype=STATE_DTYPE, device=self.device)

    def step(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        current = F.linear(self.ring.step(u, t), self.weight)
        if self.scale is not None:
            current = current * self.scale + self.shift
        h = torch.add(current, self.v, alpha=self.decay)
        if self.is_output:
            self.v = h
            return h
        spikes = (h >= self.v_threshold).to(STATE_DTYPE)
        self.v = h * (1.0 - spikes)
        return spikes

    @property
    def state_bytes(self) -> int:
        return self.ring.nbytes + self.v.shape[1] * self.v.element_size()

    @property
    def buffer_bits(self) -> int:
        return self.ring.bits
