"""Step-by-step execution of a trained delay SNN with real ring buffers (docs/metrics.md "Streaming state").

:class:`StreamingExecutor` turns a :class:`~suite.models.network.DelayNetwork` into an engine that consumes one input
frame at a time and returns the output layer's membrane potential for that step. It uses the hard integer delays of
evaluation and folds each BatchNorm into a per-channel affine from its running statistics.

Alignment with the batch model. In the batch model a layer pads its input with D - 1 zeros in front and (D - 1) // 2
behind, and output step t of a line with delay d reads input step t - d (zero outside [0, T)). Every layer is thus
causal with no latency offset: the executor's step t consumes input frame t and produces output step t of every layer
at once. The batch model's sequence grows by (D - 1) // 2 steps per delay layer (plus D - 1 more for a sparse layer in
``official`` pass-through mode), and each layer only ever sees its predecessor's T_l steps followed by zeros.
:meth:`StreamingExecutor.flush` reproduces that end of sequence: it feeds zero frames until the last layer's length
is reached and silences every layer's output from its own length T_l on (and, in ``official`` mode, the delayed lines
from T_in + (D - 1) // 2 on, where the released code zero-pads them). Without a flush the outputs are a prefix of the
batch output. :meth:`StreamingExecutor.run` = reset, one :meth:`step` per frame, then :meth:`flush`.

Buffers (exactly the sizes of :func:`suite.metrics.buffers.buffer_bits`):

- axonal: one delay line per buffered presynaptic neuron; float32 entries for layer 1 (real inputs), one bit per
  entry for spikes (bit-packed in uint8, the line bits of all lines laid end to end);
- dendritic: one float32 line per buffered postsynaptic neuron holding past synaptic currents;
- synaptic: a float32 accumulation ring of future slots per postsynaptic neuron; each step every synapse adds
  ``w * x`` once into the slot of its arrival step t + d (one tap per synapse) and the current slot is consumed.

``sizing='allocated'`` gives every buffered line depth D - 1; ``sizing='learned'`` gives each line exactly its own
delay (axonal/dendritic) or its neuron's largest synaptic delay (synaptic). Sparse delays: ``zero`` mode buffers only
the delayed lines; ``official`` mode delays the pass-through lines by D - 1, so they hold a D - 1 line too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from suite.metrics.buffers import LayerLines, layer_lines

Sizing = Literal["allocated", "learned"]
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


class _StreamLayer:
    """One layer of the executor: delay buffers, weights, folded BatchNorm, LIF or leaky readout."""

    def __init__(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> None:
        self.lines: LayerLines = layer_lines(layer, index)
        self.site = self.lines.site
        self.weight = layer.weight.detach().to(device, STATE_DTYPE).clone()
        self.n_out = layer.n_out
        self.pad_right = (self.lines.kernel_size - 1) // 2
        self.official = self.lines.passthrough == "official"
        depths = self.lines.allocated_depth if sizing == "allocated" else self.lines.learned_depth
        self.ring: DelayLines | AccumulatorRing | None = None
        self._buffered = self.lines.buffered.to(device)
        self._active = self.lines.active.to(device) if self.lines.active is not None else None
        if self.site in ("pre", "post"):
            sel = self.lines.buffered
            self.ring = DelayLines(self.lines.delays[sel], depths[sel], bits=self.site == "pre" and index > 0,
                                   device=device)
        elif self.site == "fused":
            self.ring = AccumulatorRing(self.weight, self.lines.delays, depths, self.lines.kernel_size, device)
        norm = layer.norm
        self.scale: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None
        if norm is not None:  # eval BatchNorm = per-channel affine from running statistics
            invstd = 1.0 / torch.sqrt(norm.running_var.detach() + norm.eps)
            gamma = norm.weight.detach() if norm.weight is not None else torch.ones_like(invstd)
            beta = norm.bias.detach() if norm.bias is not None else torch.zeros_like(invstd)
            self.scale = (gamma * invstd).to(device, STATE_DTYPE)
            self.shift = (beta - norm.running_mean.detach() * gamma * invstd).to(device, STATE_DTYPE)
        self.is_output = layer.is_output
        self.decay = 1.0 - 1.0 / layer.neuron.tau
        self.v_threshold = getattr(layer.neuron, "v_threshold", math.inf)
        self.v = torch.zeros(0)

    def allocate(self, batch: int, device: torch.device) -> None:
        if self.ring is not None:
            self.ring.allocate(batch)
        self.v = torch.zeros(batch, self.n_out, dtype=STATE_DTYPE, device=device)

    def _delay(self, values: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        assert isinstance(self.ring, DelayLines)
        out = values.clone()
        out[:, self._buffered] = self.ring.step(values[:, self._buffered], t)
        if self.official and t_in is not None and t >= t_in + self.pad_right:
            out[:, self._active] = 0.0  # released code: the delayed lines are zero-padded after T_in + R
        return out

    def step(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        """Input of step t (B, N_in) -> spikes (hidden) or membrane (output) of step t (B, N_out)."""
        if self.site == "pre":
            current = F.linear(self._delay(u, t, t_in), self.weight)
        elif self.site == "post":
            current = self._delay(F.linear(u, self.weight), t, t_in)
        elif self.site == "fused":
            assert isinstance(self.ring, AccumulatorRing)
            current = self.ring.step(u, t)
        else:
            current = F.linear(u, self.weight)
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


class StreamingExecutor:
    """Run a trained DelayNetwork one frame at a time with real ring buffers (module docstring for semantics)."""

    def __init__(self, layers: list[_StreamLayer], output_lengths: list[Callable[[int], int]], device: torch.device,
                 sizing: Sizing) -> None:
        self.layers = layers
        self._output_length = output_lengths
        self.device = device
        self.sizing = sizing
        self.n_inputs = layers[0].lines.n_in
        self.t = 0
        self.batch = 1
        self._ends: list[int] | None = None
        self.last_spikes: list[torch.Tensor] = []
        self.reset()

    @classmethod
    def from_model(cls, net: nn.Module, sizing: Sizing = "allocated",
                   device: torch.device | str | None = None) -> StreamingExecutor:
        """Build from a (trained) DelayNetwork: hard integer delays, BatchNorm folded, weights copied."""
        if sizing not in ("allocated", "learned"):
            raise ValueError(f"sizing must be 'allocated' or 'learned', got {sizing!r}")
        dev = torch.device(device) if device is not None else next(net.parameters()).device
        layers = [_StreamLayer(layer, i, sizing, dev) for i, layer in enumerate(net.layers)]
        return cls(layers, [layer.output_length for layer in net.layers], dev, sizing)

    def reset(self, batch: int = 1) -> None:
        """Zero every buffer and membrane and restart time at step 0, for ``batch`` parallel streams."""
        self.batch = batch
        self.t = 0
        self._ends = None
        for layer in self.layers:
            layer.allocate(batch, self.device)

    def step(self, frame: torch.Tensor) -> torch.Tensor:
        """Consume one input frame (B, C_in); return the output layer's membrane potential (B, n_out)."""
        if frame.shape[-1] != self.n_inputs:
            raise ValueError(f"frame has {frame.shape[-1]} features, the model expects {self.n_inputs}")
        if frame.shape[0] != self.batch:
            if self.t != 0:
                raise ValueError(f"batch size changed from {self.batch} to {frame.shape[0]} mid-stream; reset first")
            self.reset(frame.shape[0])
        u = frame.to(self.device, STATE_DTYPE)
        t, ends = self.t, self._ends
        self.last_spikes = []
        for i, layer in enumerate(self.layers):
            u = layer.step(u, t, ends[i] if ends is not None else None)
            if ends is not None and t >= ends[i + 1]:
                u = torch.zeros_like(u)  # the next layer only sees this layer's T_l steps, then zero padding
            if not layer.is_output:
                self.last_spikes.append(u)
        self.t += 1
        return u

    def sequence_lengths(self, t_in: int) -> list[int]:
        """[T, T_1, ..., T_L]: the batch model's sequence length at the input and after every layer."""
        lengths = [t_in]
        for output_length in self._output_length:
            lengths.append(output_length(lengths[-1]))
        return lengths

    def flush(self, spikes: list[list[torch.Tensor]] | None = None) -> torch.Tensor:
        """End of input at the current step: feed zero frames until the batch model's output length is reached.

        Returns the tail outputs (T_out - T, B, n_out).
        """
        self._ends = self.sequence_lengths(self.t)
        zero = torch.zeros(self.batch, self.n_inputs, dtype=STATE_DTYPE, device=self.device)
        outs = []
        while self.t < self._ends[-1]:
            outs.append(self.step(zero))
            if spikes is not None:
                spikes.append(self.last_spikes)
        if not outs:
            return zero.new_zeros(0, self.batch, self.layers[-1].n_out)
        return torch.stack(outs)

    @torch.no_grad()
    def run(self, x: torch.Tensor, flush: bool = True, spikes: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Reset, feed the T frames of ``x`` (T, B, C) and, with ``flush``, the zero tail: (T_out, B, n_out).

        If ``spikes`` is a list, each hidden layer's spike sequence is appended to it, cut to that layer's length in
        the batch model (T_l) when flushing, as ``DelayNetwork.forward(x, spikes=...)`` does.
        """
        self.reset(x.shape[1])
        per_step: list[list[torch.Tensor]] = []
        outs = []
        for frame in x:
            outs.append(self.step(frame))
            per_step.append(self.last_spikes)
        if flush:
            tail = self.flush(per_step)
            out = torch.cat([torch.stack(outs), tail]) if outs else tail
        else:
            out = torch.stack(outs)
        if spikes is not None:
            ends = self._ends
            for i in range(len(self.layers) - 1):
                seq = torch.stack([s[i] for s in per_step])
                spikes.append(seq[: ends[i + 1]] if ends is not None else seq)
        return out

    def buffer_bits(self) -> int:
        """Logical capacity of all delay buffers of one stream, in bits."""
        return sum(self.buffer_bits_per_layer())

    def buffer_bits_per_layer(self) -> list[int]:
        return [layer.ring.bits if layer.ring is not None else 0 for layer in self.layers]

    def state_bytes(self) -> int:
        """Bytes of state one stream really holds: every ring buffer plus every membrane potential."""
        return sum(layer.state_bytes for layer in self.layers)


def streaming_state_bytes(net: nn.Module, sizing: Sizing = "allocated") -> int:
    """Documented formula of :meth:`StreamingExecutor.state_bytes` without building the executor.

    sum over layers of ceil(buffer bits / 8) + 4 bytes per neuron (one float32 membrane per hidden and output neuron).
    """
    total = 0
    for i, layer in enumerate(net.layers):
        lines = layer_lines(layer, i)
        bits = lines.allocated_bits if sizing == "allocated" else lines.learned_bits
        total += math.ceil(bits / 8) + layer.n_out * torch.finfo(STATE_DTYPE).bits // 8
    return total
