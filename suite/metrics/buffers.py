"""Delay-buffer accounting (docs/metrics.md "Delay buffers"; docs/architecture.md "Delay buffers").

A streaming implementation of a trained delay network needs memory for the values that are still "in flight":

- axonal ('pre'): one line per delayed presynaptic neuron holding its past inputs (1 bit for spikes in hidden layers,
  ``input_bits`` for the real-valued features or counts that feed layer 1);
- dendritic ('post'): one line per delayed postsynaptic neuron holding past synaptic currents (``acc_bits``);
- synaptic ('fused'): a postsynaptic accumulation ring, one line of future slots per postsynaptic neuron
  (``acc_bits``); the per-synapse spike-line alternative and the stored per-synapse delays are reported separately.

*Allocated* depth is D - 1 for every buffered line; *learned* depth is the line's own integer delay (axonal and
dendritic) or the largest delay over the neuron's synapses with a non-zero weight (synaptic ring).

Sparse delays: in ``zero`` pass-through mode only the delayed lines (mask 1) are buffered. In ``official`` mode the
pass-through lines are delayed by exactly D - 1 (released code, docs/protocol-facts.md hazard 4), so they are buffered
too, at depth D - 1 in both sizings. :class:`suite.streaming.StreamingExecutor` holds exactly these buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from suite.models.delays import ChannelDelay, SynapticDelay


@dataclass(frozen=True)
class LayerLines:
    """The delay lines of one layer, as a streaming implementation holds them.

    ``delays`` are the effective integer delays per line (pre: ``n_in`` presynaptic lines, post: ``n_out``
    postsynaptic lines, pass-through lines included with delay 0 or D - 1) or per synapse ``(n_out, n_in)`` for
    'fused' (``present`` then marks the synapses with a non-zero weight). ``buffered`` marks the lines that hold a
    ring (pre/post) and ``allocated_depth`` / ``learned_depth`` give each ring line's depth (per postsynaptic neuron
    for 'fused').
    """

    index: int
    site: str
    n_in: int
    n_out: int
    kernel_size: int
    entry_bits: int
    delays: torch.Tensor
    buffered: torch.Tensor
    allocated_depth: torch.Tensor
    learned_depth: torch.Tensor
    active: torch.Tensor | None
    passthrough: str | None
    present: torch.Tensor | None = None

    @property
    def allocated_bits(self) -> int:
        return int(self.allocated_depth.sum()) * self.entry_bits

    @property
    def learned_bits(self) -> int:
        return int(self.learned_depth.sum()) * self.entry_bits

    @property
    def buffered_lines(self) -> int:
        return int(self.buffered.sum())


def channel_line_delays(delay: ChannelDelay) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Effective integer delay of every line of a ChannelDelay, which lines hold a buffer, and the delay mask.

    Without sparsity every line is buffered with its learned delay. With sparsity, masked lines pass through with
    delay 0 (``zero``: no buffer) or D - 1 (``official``: buffered like any other line).
    """
    learned = delay.delays().cpu()
    if delay.delay_mask is None:
        return learned, torch.ones_like(learned, dtype=torch.bool), None
    active = delay.delay_mask.detach().cpu() > 0.5
    if delay.passthrough == "official":
        return torch.where(active, learned, delay.kernel_size - 1), torch.ones_like(active), active
    return torch.where(active, learned, 0), active.clone(), active


def layer_lines(layer: nn.Module, index: int, input_bits: int = 32, acc_bits: int = 32) -> LayerLines:
    """Delay lines of one DelayBlock (``index`` 0 is the layer fed by the real-valued network input)."""
    delay = layer.delay
    k = int(delay.kernel_size) if delay is not None else 1
    depth_max = k - 1
    site = layer.delay_site
    if site in ("pre", "post"):
        assert isinstance(delay, ChannelDelay)
        delays, buffered, active = channel_line_delays(delay)
        allocated = torch.where(buffered, depth_max, 0)
        learned = torch.where(buffered, delays, 0)
        bits = (input_bits if index == 0 else 1) if site == "pre" else acc_bits
        return LayerLines(index, site, layer.n_in, layer.n_out, k, bits, delays, buffered, allocated, learned,
                          active, delay.passthrough if active is not None else None)
    if site == "fused":
        assert isinstance(delay, SynapticDelay)
        delays = delay.delays().cpu()
        present = layer.weight.detach().cpu() != 0
        learned = torch.where(present, delays, 0).amax(dim=1) if delays.numel() else delays.new_zeros(layer.n_out)
        buffered = torch.ones(layer.n_out, dtype=torch.bool)
        allocated = torch.full((layer.n_out,), depth_max, dtype=torch.long)
        return LayerLines(index, site, layer.n_in, layer.n_out, k, acc_bits, delays, buffered, allocated, learned,
                          None, None, present)
    empty = torch.zeros(0, dtype=torch.long)
    return LayerLines(index, "none", layer.n_in, layer.n_out, 1, 0, empty, empty.bool(), empty, empty, None, None)


def network_lines(net: nn.Module, input_bits: int = 32, acc_bits: int = 32) -> list[LayerLines]:
    """:func:`layer_lines` of every layer of a DelayNetwork."""
    return [layer_lines(layer, i, input_bits, acc_bits) for i, layer in enumerate(net.layers)]


def _delay_value_bits(kernel_size: int) -> int:
    """Bits to store one integer delay in [0, D - 1]."""
    return max(1, math.ceil(math.log2(kernel_size))) if kernel_size > 1 else 0


def buffer_bits(net: nn.Module, input_bits: int = 32, acc_bits: int = 32) -> dict[str, Any]:
    """Delay-buffer sizes of a DelayNetwork in bits (per stream, i.e. for one sample), per layer and in total.

    Keys: ``allocated_bits``, ``learned_bits`` (totals), ``allocated_bits_per_layer``, ``learned_bits_per_layer``,
    ``buffered_lines_per_layer``, ``entry_bits_per_layer``, ``delay_sites``, ``allocated_bytes`` / ``learned_bytes``
    (each layer's bits rounded up to whole bytes, then summed), the synaptic extras
    ``synaptic_spike_line_bits`` (per-synapse line alternative, allocated depth D - 1),
    ``synaptic_spike_line_learned_bits`` (each synapse as deep as its delay), and ``stored_delay_values`` /
    ``stored_delay_value_bits`` (the integer delays a deployed model stores: one per delayed line, one per synapse for
    synaptic; ceil(log2 D) bits each), plus the precisions ``input_bits`` and ``acc_bits`` used.
    """
    lines = network_lines(net, input_bits, acc_bits)
    alloc = [ll.allocated_bits for ll in lines]
    learned = [ll.learned_bits for ll in lines]
    spike_alt = spike_alt_learned = stored = stored_bits = 0
    for ll in lines:
        if ll.site == "fused":
            entry = input_bits if ll.index == 0 else 1
            spike_alt += ll.n_in * ll.n_out * (ll.kernel_size - 1) * entry
            spike_alt_learned += int(torch.where(ll.present, ll.delays, 0).sum()) * entry
            values = ll.n_in * ll.n_out
        elif ll.site in ("pre", "post"):
            values = int(ll.active.sum()) if ll.active is not None else ll.delays.numel()
        else:
            values = 0
        stored += values
        stored_bits += values * _delay_value_bits(ll.kernel_size)
    return {
        "allocated_bits": sum(alloc),
        "learned_bits": sum(learned),
        "allocated_bytes": sum(math.ceil(b / 8) for b in alloc),
        "learned_bytes": sum(math.ceil(b / 8) for b in learned),
        "allocated_bits_per_layer": alloc,
        "learned_bits_per_layer": learned,
        "buffered_lines_per_layer": [ll.buffered_lines for ll in lines],
        "entry_bits_per_layer": [ll.entry_bits for ll in lines],
        "delay_sites": [ll.site for ll in lines],
        "synaptic_spike_line_bits": spike_alt,
        "synaptic_spike_line_learned_bits": spike_alt_learned,
        "stored_delay_values": stored,
        "stored_delay_value_bits": stored_bits,
        "input_bits": input_bits,
        "acc_bits": acc_bits,
    }
