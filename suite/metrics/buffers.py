"""Delay-buffer accounting (docs/metrics.md "Delay buffers"; docs/architecture.md "Delay buffers").

A streaming implementation of a trained delay network needs memory for the values that are still "in flight"; each
layer's kind says how much (:meth:`suite.kinds.base.DelayKind.buffers`), at *allocated* depth (every buffered line
D - 1 deep) and at *learned* depth (each line as deep as its own delay). For the built-in kinds:

- axonal ('pre'): one line per delayed presynaptic neuron holding its past inputs (1 bit for spikes in hidden layers,
  ``input_bits`` for the real-valued features or counts that feed layer 1);
- dendritic ('post'): one line per delayed postsynaptic neuron holding past synaptic currents (``acc_bits``);
- synaptic ('fused'): a postsynaptic accumulation ring, one line of future slots per postsynaptic neuron
  (``acc_bits``, learned depth: the largest delay over the neuron's synapses with a non-zero weight); the
  per-synapse spike-line alternative and the stored per-synapse delays are reported separately.

Sparse delays (suite/kinds/channel.py): in ``zero`` pass-through mode only the delayed lines are buffered; in
``official`` mode the pass-through lines are delayed by D - 1 and buffered too. :class:`suite.streaming.
StreamingExecutor` holds exactly these buffers.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from suite.kinds import kind_of
from suite.kinds.base import LayerBuffers

EXTRA_KEYS = ("synaptic_spike_line_bits", "synaptic_spike_line_learned_bits")
"""Kind extras every record reports (0 where no layer has them), so that records of all kinds share their keys."""


def network_buffers(net: nn.Module, input_bits: int = 32, acc_bits: int = 32) -> list[LayerBuffers]:
    """Every layer's :class:`LayerBuffers`, asked of the network's kind."""
    kind = kind_of(net)
    return [kind.buffers(layer, i, input_bits, acc_bits) for i, layer in enumerate(net.layers)]


def buffer_bits(net: nn.Module, input_bits: int = 32, acc_bits: int = 32) -> dict[str, Any]:
    """Delay-buffer sizes of a delay network in bits (per stream, i.e. for one sample), per layer and in total.

    Keys: ``allocated_bits``, ``learned_bits`` (totals), ``allocated_bits_per_layer``, ``learned_bits_per_layer``,
    ``buffered_lines_per_layer``, ``entry_bits_per_layer``, ``delay_sites``, ``allocated_bytes`` / ``learned_bytes``
    (each layer's bits rounded up to whole bytes, then summed), the kinds' extras summed by key (always
    ``synaptic_spike_line_bits``: the per-synapse line alternative, allocated depth D - 1, and
    ``synaptic_spike_line_learned_bits``: each synapse as deep as its delay), and ``stored_delay_values`` /
    ``stored_delay_value_bits`` (the integer delays a deployed model stores: one per delayed line, one per synapse for
    synaptic; ceil(log2 D) bits each), plus the precisions ``input_bits`` and ``acc_bits`` used.
    """
    layers = network_buffers(net, input_bits, acc_bits)
    alloc = [lb.allocated_bits for lb in layers]
    learned = [lb.learned_bits for lb in layers]
    extras = dict.fromkeys(EXTRA_KEYS, 0)
    for lb in layers:
        for key, value in lb.extras.items():
            extras[key] = extras.get(key, 0) + value
    return {
        "allocated_bits": sum(alloc),
        "learned_bits": sum(learned),
        "allocated_bytes": sum(math.ceil(b / 8) for b in alloc),
        "learned_bytes": sum(math.ceil(b / 8) for b in learned),
        "allocated_bits_per_layer": alloc,
        "learned_bits_per_layer": learned,
        "buffered_lines_per_layer": [lb.buffered_lines for lb in layers],
        "entry_bits_per_layer": [lb.entry_bits for lb in layers],
        "delay_sites": [lb.site for lb in layers],
        **extras,
        "stored_delay_values": sum(lb.stored_delay_values for lb in layers),
        "stored_delay_value_bits": sum(lb.stored_delay_value_bits for lb in layers),
        "input_bits": input_bits,
        "acc_bits": acc_bits,
    }
