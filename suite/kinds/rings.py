"""Ring buffers of the streaming executor (docs/metrics.md "Streaming state") and the neuron step every built-in
kind's streaming layer shares: BatchNorm folded into a per-channel affine from its running statistics, then the LIF
(spikes) or the leaky readout (membrane)."""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import nn

from suite.kinds.base import StreamingLayer

STATE_DTYPE = torch.float32
"""Precision of every float ring and membrane (32-bit input and accumulator precision of the buffer metric)."""


def _offsets(depths: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(depths, 0) - depths


class DelayLines:
    """Per-line delay lines laid end to end in one flat ring buffer per stream.

    Line i owns ``depth[i]`` consecutive entries and reads its value from ``delay[i]`` steps ago (``delay <= depth``;
    a delay of 0 reads the current value). Step t first reads entry ``(t - delay) mod depth`` and then writes the
    current value at ``t mod depth``. ``bits=True`` stores one bit per entry (spikes), packed eight to a byte.
    """

    def __init__(self, delays: torch.Tensor, depths: torch.Tensor, bits: bool, device: torch.device) -> None:
        if bool((delays > depths).any()):
            raise ValueError("a line's delay exceeds its buffer depth")
        self.device = device
        self.delays = delays.to(device)
        self.depths = depths.to(device)
        self.bit_storage = bits
        self.capacity = int(depths.sum())
        offsets = _offsets(depths).to(device)
        self._read = (delays > 0).to(device)
        self._write = (depths > 0).to(device)
        self._read_off, self._read_delay = offsets[self._read], self.delays[self._read]
        self._read_depth = self.depths[self._read]
        self._write_off, self._write_depth = offsets[self._write], self.depths[self._write]
        self.buffer = torch.zeros(0)

    def allocate(self, batch: int) -> None:
        if self.bit_storage:
            self.buffer = torch.zeros(batch, math.ceil(self.capacity / 8), dtype=torch.uint8, device=self.device)
        else:
            self.buffer = torch.zeros(batch, self.capacity, dtype=STATE_DTYPE, device=self.device)

    @property
    def bits(self) -> int:
        """Logical capacity of one stream's buffer in bits."""
        return self.capacity * (1 if self.bit_storage else torch.finfo(STATE_DTYPE).bits)

    @property
    def nbytes(self) -> int:
        """Bytes one stream's buffer really occupies."""
        return self.buffer.shape[1] * self.buffer.element_size()

    def step(self, values: torch.Tensor, t: int) -> torch.Tensor:
        """(B, n_lines) current values -> (B, n_lines) values delayed by each line's delay."""
        out = values.clone()
        if self._read_off.numel():
            out[:, self._read] = self._get(self._read_off + torch.remainder(t - self._read_delay, self._read_depth))
        if self._write_off.numel():
            self._set(self._write_off + t % self._write_depth, values[:, self._write])
        return out

    def _get(self, idx: torch.Tensor) -> torch.Tensor:
        if not self.bit_storage:
            return self.buffer[:, idx]
        return ((self.buffer[:, idx >> 3] >> (idx & 7).to(torch.uint8)) & 1).to(STATE_DTYPE)

    def _set(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        if not self.bit_storage:
            self.buffer[:, idx] = values
            return
        byte, bit = idx >> 3, (idx & 7).to(torch.uint8)
        old = (self.buffer[:, byte] >> bit) & 1
        flip = (old ^ values.to(torch.uint8)) << bit  # distinct bits of one byte: their sum is their OR
        self.buffer ^= torch.zeros_like(self.buffer).index_add_(1, byte, flip)


class AccumulatorRing:
    """Synaptic delays: per postsynaptic neuron j a ring of ``depth[j]`` future slots at accumulator precision.

    At step t every synapse (j, i) adds ``w_ji x_i`` into the slot of step t + d_ji (delay 0 goes straight to the
    output); the slot of step t is read and cleared before the new contributions arrive.
    """

    def __init__(self, weight: torch.Tensor, delays: torch.Tensor, depths: torch.Tensor, kernel_size: int,
                 device: torch.device) -> None:
        present = weight != 0
        if bool((torch.where(present, delays, 0) > depths.unsqueeze(1)).any()):
            raise ValueError("a synaptic delay exceeds its neuron's ring depth")
        self.device = device
        self.weight = weight.to(device, STATE_DTYPE)
        self.delays = delays.to(device)
        self.depths = depths.to(device)
        self.kernel_size = kernel_size
        self.capacity = int(depths.sum())
        self.offsets = _offsets(depths).to(device)
        self._has = self.depths > 0
        future = torch.arange(1, kernel_size, device=device)
        self._future = future
        self._fut_mask = future.view(1, -1) <= self.depths.view(-1, 1)  # (N_out, D - 1)
        self.buffer = torch.zeros(0)

    def allocate(self, batch: int) -> None:
        self.buffer = torch.zeros(batch, self.capacity, dtype=STATE_DTYPE, device=self.device)

    @property
    def bits(self) -> int:
        return self.capacity * torch.finfo(STATE_DTYPE).bits

    @property
    def nbytes(self) -> int:
        return self.buffer.shape[1] * self.buffer.element_size()

    def step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """(B, N_in) presynaptic values -> (B, N_out) synaptic current of step t."""
        b = x.shape[0]
        products = x.unsqueeze(1) * self.weight  # (B, N_out, N_in): one multiply per synapse
        index = self.delays.unsqueeze(0).expand(b, -1, -1)
        by_delay = products.new_zeros(b, self.weight.shape[0], self.kernel_size).scatter_add_(2, index, products)
        current = by_delay[:, :, 0]
        if self.capacity == 0:
            return current
        now = self.offsets[self._has] + t % self.depths[self._has]
        current = current.clone()
        current[:, self._has] += self.buffer[:, now]
        self.buffer[:, now] = 0
        depths = self.depths.view(-1, 1).clamp(min=1)
        slots = (self.offsets.view(-1, 1) + (t + self._future.view(1, -1)) % depths)[self._fut_mask]
        self.buffer.index_add_(1, slots, by_delay[:, :, 1:][:, self._fut_mask])
        return current


class NeuronStreamingLayer(StreamingLayer):
    """A :class:`NeuronLayer` as a streaming step: the kind's :meth:`current` (delays held in ``ring``), then the
    folded BatchNorm and the neuron."""

    def __init__(self, layer: nn.Module, device: torch.device, ring: DelayLines | AccumulatorRing | None) -> None:
        self.device = device
        self.ring = ring
        self.weight = layer.weight.detach().to(device, STATE_DTYPE).clone()
        self.n_in, self.n_out, self.is_output = layer.n_in, layer.n_out, layer.is_output
        norm = layer.norm
        self.scale: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None
        if norm is not None:  # eval BatchNorm = per-channel affine from running statistics
            invstd = 1.0 / torch.sqrt(norm.running_var.detach() + norm.eps)
            gamma = norm.weight.detach() if norm.weight is not None else torch.ones_like(invstd)
            beta = norm.bias.detach() if norm.bias is not None else torch.zeros_like(invstd)
            self.scale = (gamma * invstd).to(device, STATE_DTYPE)
            self.shift = (beta - norm.running_mean.detach() * gamma * invstd).to(device, STATE_DTYPE)
        self.decay = 1.0 - 1.0 / layer.neuron.tau
        self.v_threshold = getattr(layer.neuron, "v_threshold", math.inf)
        self.v = torch.zeros(0)

    def allocate(self, batch: int) -> None:
        if self.ring is not None:
            self.ring.allocate(batch)
        self.v = torch.zeros(batch, self.n_out, dtype=STATE_DTYPE, device=self.device)

    @abstractmethod
    def current(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        """Input of step t (B, N_in) -> synaptic current of step t (B, N_out), through this layer's delays."""

    def step(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        current = self.current(u, t, t_in)
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
        ring = self.ring.nbytes if self.ring is not None else 0
        return ring + self.v.shape[1] * self.v.element_size()

    @property
    def buffer_bits(self) -> int:
        return self.ring.bits if self.ring is not None else 0
