"""A backend's training forward of a layer stack with its neuron stages fused to their neighbours.

A backend that has the optional ops of ``suite.ops.OPTIONAL_FUNCTIONS`` exposes ``network_forward(layers, x,
spikes)`` built on :func:`network_forward` here; :class:`suite.models.network.DelayNetwork` calls it in training and
composes layer by layer where a backend has none. Three fusions, each used where the op's ``*_supported`` check
accepts the tensors (else the steps run one after the other, with the same result):

- BatchNorm -> LIF -> dropout of a hidden layer as one op (``batchnorm_lif``);
- a layer's soft per-channel ``current_delay`` (dendritic) with that stage (``delay_batchnorm_lif``);
- that stage with the next layer's soft per-channel ``input_delay`` (axonal) applied to its spikes
  (``batchnorm_lif_delay``): the spikes are then never stored, and the next layer is told its input is delayed.

Forward hooks on the fused modules do not run on these paths (evaluation, where the suite's hooks live, composes).
Layers are duck-typed :class:`suite.kinds.layers.NeuronLayer` s (``norm``, ``neuron``, ``dropout_mask``,
``synaptic_current``, ``project``, ``input_delay``, ``current_delay``); a layer without them is simply called.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import torch
from torch import nn

from suite.models.delays import ChannelDelay
from suite.models.lif import LIF


def _training_stage(layer: nn.Module) -> tuple[nn.BatchNorm1d, LIF] | None:
    """(BatchNorm, LIF) when a fused training-mode neuron stage applies to this layer, else None."""
    norm, neuron = getattr(layer, "norm", None), getattr(layer, "neuron", None)
    if isinstance(norm, nn.BatchNorm1d) and norm.training and isinstance(neuron, LIF):
        return norm, neuron
    return None


def _running_stats(norm: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """nn.BatchNorm1d's bookkeeping in training mode: count the batch, return (mean, var, momentum factor)."""
    if not norm.track_running_stats:
        return None
    norm.num_batches_tracked.add_(1)  # type: ignore[operator]
    factor = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
    return norm.running_mean, norm.running_var, factor  # type: ignore[return-value]


def _soft_channel_delay(delay: nn.Module | None) -> bool:
    """A soft per-channel delay without sparsity (sparse delays mix pass-through lines in after the delay)."""
    return isinstance(delay, ChannelDelay) and not delay.hard and delay.delay_mask is None


def _neuron_stage(ops: ModuleType, layer: nn.Module, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    stage = _training_stage(layer)
    if stage is not None and hasattr(ops, "batchnorm_lif") and ops.batchnorm_lif_supported(x, stage[0].weight):
        norm, neuron = stage
        return ops.batchnorm_lif(x, norm.weight, norm.bias, _running_stats(norm), norm.eps, neuron.tau,
                                 neuron.v_threshold, neuron.surrogate_alpha, keep)
    return layer.neuron_stage(x, keep)


def _dendritic_stage(ops: ModuleType, layer: nn.Module, current: torch.Tensor,
                     keep: torch.Tensor | None) -> torch.Tensor | None:
    """Soft delay -> BatchNorm -> LIF -> dropout of the weighted ``current`` as one op, or None."""
    stage, delay = _training_stage(layer), layer.current_delay
    if stage is None or not _soft_channel_delay(delay) or not hasattr(ops, "delay_batchnorm_lif"):
        return None
    norm, neuron = stage
    if not ops.delay_batchnorm_lif_supported(current, delay.P, delay.kernel_size, delay.pad_left, delay.pad_right,
                                             norm.weight):
        return None
    return ops.delay_batchnorm_lif(current, delay.P, float(delay.sig), delay.kernel_size, delay.pad_left,
                                   delay.pad_right, norm.weight, norm.bias, _running_stats(norm), norm.eps,
                                   neuron.tau, neuron.v_threshold, neuron.surrogate_alpha, keep)


def _next_delay_stage(ops: ModuleType, layer: nn.Module, x: torch.Tensor, keep: torch.Tensor | None,
                      delay: nn.Module) -> torch.Tensor | None:
    """The neuron stage and the next layer's soft axonal ``delay`` of its output as one op, or None."""
    stage = _training_stage(layer)
    if stage is None or not _soft_channel_delay(delay) or not hasattr(ops, "batchnorm_lif_delay"):
        return None
    norm, neuron = stage
    if not ops.batchnorm_lif_delay_supported(x, norm.weight, delay.P, delay.kernel_size, delay.pad_left,
                                             delay.pad_right):
        return None
    return ops.batchnorm_lif_delay(x, norm.weight, norm.bias, _running_stats(norm), norm.eps, neuron.tau,
                                   neuron.v_threshold, neuron.surrogate_alpha, keep, delay.P, float(delay.sig),
                                   delay.kernel_size, delay.pad_left, delay.pad_right)


def layer_forward(ops: ModuleType, layer: nn.Module, x: torch.Tensor, delayed: bool = False,
                  next_delay: nn.Module | None = None) -> torch.Tensor:
    """One layer's output with its fusable stages fused. ``delayed``: x already went through the layer's
    ``input_delay``. ``next_delay``: return ``next_delay(spikes)`` instead (fused where the backend can)."""
    keep = layer.dropout_mask(x)  # drawn first: the fused ops take it as input
    if layer.current_delay is not None:
        current = layer.project(x if delayed or layer.input_delay is None else layer.input_delay(x))
        fused = _dendritic_stage(ops, layer, current, keep)
        x = fused if fused is not None else _neuron_stage(ops, layer, layer.current_delay(current), keep)
    else:
        x = layer.synaptic_current(x, delayed)
        if next_delay is not None:
            fused = _next_delay_stage(ops, layer, x, keep, next_delay)
            if fused is not None:
                return fused
        x = _neuron_stage(ops, layer, x, keep)
    return x if next_delay is None else next_delay(x)


def network_forward(ops: ModuleType, layers: Sequence[nn.Module], x: torch.Tensor,
                    spikes: list[torch.Tensor] | None = None) -> torch.Tensor | None:
    """The stack's output in training with ``ops``' fused stages; None (compose) when a layer is not a
    NeuronLayer-shaped module. Without ``spikes``, a layer followed by one with an ``input_delay`` hands it its
    spikes already delayed, so that the two can run as one op; with ``spikes``, each hidden layer's spikes are
    appended to it."""
    if not all(hasattr(layer, "dropout_mask") and hasattr(layer, "current_delay") for layer in layers):
        return None
    delayed = False
    for i, layer in enumerate(layers):
        following = layers[i + 1] if i + 1 < len(layers) else None
        next_delay = following.input_delay if following is not None and spikes is None else None
        x = layer_forward(ops, layer, x, delayed, next_delay)
        delayed = next_delay is not None
        if spikes is not None and following is not None:
            spikes.append(x)
    return x
