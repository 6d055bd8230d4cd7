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

Each layer's kind builds its streaming step (:meth:`suite.kinds.base.DelayKind.streaming_layer`), holding exactly
the buffers of :func:`suite.metrics.buffers.buffer_bits`; the built-in kinds (suite/kinds/rings.py):

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

import torch
from torch import nn

from suite.kinds import kind_of
from suite.kinds.base import Sizing, StreamingLayer
from suite.kinds.rings import STATE_DTYPE, AccumulatorRing, DelayLines

__all__ = ["STATE_DTYPE", "AccumulatorRing", "DelayLines", "Sizing", "StreamingExecutor", "streaming_state_bytes"]


class StreamingExecutor:
    """Run a trained DelayNetwork one frame at a time with real ring buffers (module docstring for semantics)."""

    def __init__(self, layers: list[StreamingLayer], output_lengths: list[Callable[[int], int]], device: torch.device,
                 sizing: Sizing) -> None:
        self.layers = layers
        self._output_length = output_lengths
        self.device = device
        self.sizing = sizing
        self.n_inputs = layers[0].n_in
        self.t = 0
        self.batch = 1
        self._ends: list[int] | None = None
        self.last_spikes: list[torch.Tensor] = []
        self.reset()

    @classmethod
    def from_model(cls, net: nn.Module, sizing: Sizing = "allocated",
                   device: torch.device | str | None = None) -> StreamingExecutor:
        """Build from a (trained) delay network: each layer's kind gives its streaming step (hard integer delays,
        BatchNorm folded, weights copied for the built-in kinds)."""
        if sizing not in ("allocated", "learned"):
            raise ValueError(f"sizing must be 'allocated' or 'learned', got {sizing!r}")
        dev = torch.device(device) if device is not None else next(net.parameters()).device
        kind = kind_of(net)
        layers = [kind.streaming_layer(layer, i, sizing, dev) for i, layer in enumerate(net.layers)]
        lengths = [lambda t, layer=layer: kind.output_length(layer, t) for layer in net.layers]
        return cls(layers, lengths, dev, sizing)

    def reset(self, batch: int = 1) -> None:
        """Zero every buffer and membrane and restart time at step 0, for ``batch`` parallel streams."""
        self.batch = batch
        self.t = 0
        self._ends = None
        for layer in self.layers:
            layer.allocate(batch)

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
        return [layer.buffer_bits for layer in self.layers]

    def state_bytes(self) -> int:
        """Bytes of state one stream really holds: every ring buffer plus every membrane potential."""
        return sum(layer.state_bytes for layer in self.layers)


def streaming_state_bytes(net: nn.Module, sizing: Sizing = "allocated") -> int:
    """Documented formula of :meth:`StreamingExecutor.state_bytes` without building the executor.

    sum over layers of ceil(buffer bits / 8) + 4 bytes per neuron (one float32 membrane per hidden and output neuron).
    """
    from suite.metrics.buffers import network_buffers

    total = 0
    for layer, buffers in zip(net.layers, network_buffers(net), strict=True):
        bits = buffers.allocated_bits if sizing == "allocated" else buffers.learned_bits
        total += math.ceil(bits / 8) + layer.n_out * torch.finfo(STATE_DTYPE).bits // 8
    return total
