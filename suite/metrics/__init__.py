"""Measurements of a delay SNN; every number is defined once in docs/metrics.md and computed here.

- :func:`static_metrics` (no data): parameters, delay-buffer bits, dense operation counts, streaming state bytes;
- :func:`runtime_metrics` (a batch): synaptic operations, spikes, activation sparsity, latency, peak memory.

Run records store both dicts under ``metrics``; keys are flat snake_case except NeuroBench's own names
(``Effective_MACs``, ``Effective_ACs``, ``Dense``, ``ActivationSparsity``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from suite.kinds import kind_of
from suite.metrics.buffers import buffer_bits
from suite.metrics.params import count_parameters
from suite.metrics.synops import synaptic_operations

__all__ = [
    "buffer_bits",
    "count_parameters",
    "inference_peak_memory",
    "peak_memory",
    "runtime_metrics",
    "static_metrics",
    "synaptic_operations",
    "training_step_peak_memory",
]

_LAZY = {"peak_memory", "training_step_peak_memory", "inference_peak_memory"}


def __getattr__(name: str) -> Any:
    # memory.py is also run as ``python -m suite.metrics.memory``; importing it lazily avoids runpy's double import
    if name in _LAZY:
        from suite.metrics import memory

        return getattr(memory, name)
    raise AttributeError(f"module 'suite.metrics' has no attribute {name!r}")


def dense_op_counts(net: nn.Module) -> dict[str, int]:
    """Per-time-step operation counts that need no data.

    ``dense_synops_per_step``: every connection once (N_in N_out per layer, plus what a kind adds, e.g. recurrent
    synapses; NeuroBench 'Dense' per step); ``effective_synapses``: connections with a non-zero weight (both asked of
    the kind, :meth:`~suite.kinds.base.DelayKind.synapses`); ``training_conv_macs_per_step``: what the soft-delay
    training kernels multiply per step, asked of the kind (:meth:`~suite.kinds.base.DelayKind.training_macs_per_step`):
    synaptic N_in N_out D (DCLS convolution), axonal N_in D + N_in N_out, dendritic N_in N_out + N_out D, no delay
    N_in N_out.
    """
    kind = kind_of(net)
    dense = synapses = conv = 0
    for layer in net.layers:
        connections, nonzero = kind.synapses(layer)
        dense += connections
        synapses += nonzero
        conv += kind.training_macs_per_step(layer)
    return {"dense_synops_per_step": dense, "effective_synapses": synapses, "training_conv_macs_per_step": conv}


def static_metrics(net: nn.Module, input_bits: int = 32, acc_bits: int = 32) -> dict[str, Any]:
    """Data-free metrics: ``params_*`` (count_parameters), ``buffer_*`` (buffer_bits), dense op counts and
    ``streaming_state_bytes_allocated`` / ``streaming_state_bytes_learned``."""
    from suite.streaming import streaming_state_bytes

    out: dict[str, Any] = {f"params_{k}": v for k, v in count_parameters(net).items()}
    out.update({f"buffer_{k}": v for k, v in buffer_bits(net, input_bits, acc_bits).items()})
    out.update(dense_op_counts(net))
    out["streaming_state_bytes_allocated"] = streaming_state_bytes(net, "allocated")
    out["streaming_state_bytes_learned"] = streaming_state_bytes(net, "learned")
    return out


def runtime_metrics(net: nn.Module, batch_x: torch.Tensor, lengths: torch.Tensor | None, device: str | torch.device,
                    train_step_fn: Any = None, labels: torch.Tensor | None = None, measure_training: bool = True,
                    measure_memory: bool = True, warmup: int = 2, repeats: int = 10,
                    optim: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Metrics of the model at work on one batch ``batch_x`` (T, B, C) on ``device``.

    Keys: everything of :func:`synaptic_operations`; ``inference_latency_*`` (batch forward of the hard copy, per
    sample); ``streaming_step_latency_*`` (one executor step, batch 1); ``training_step_latency_*`` (``train_step_fn``
    if given, else the step of the protocol section ``optim`` on a deep copy, labelled by ``training_step_source``),
    each with ``median_s``, ``iqr_s``, ``std_s``; ``inference_peak_bytes`` and ``training_peak_bytes`` (fresh
    subprocess, same spec, batch and T; ``memory_method``). The trained model is never modified.
    """
    from suite.metrics import latency
    from suite.metrics.memory import inference_peak_memory, training_step_peak_memory
    from suite.streaming import StreamingExecutor

    dev = torch.device(device)
    model = copy.deepcopy(net).to(dev)
    x = batch_x.to(dev)
    out: dict[str, Any] = dict(synaptic_operations(model, x, lengths))
    keys = ("median_s", "iqr_s", "std_s")
    inf = latency.batch_inference_latency(model, x, warmup, repeats)
    out.update({f"inference_latency_{k}_per_sample": inf[f"{k}_per_sample"] for k in keys})
    executor = StreamingExecutor.from_model(model.hard_copy(), device=dev)
    stream = latency.streaming_step_latency(executor, x[:, :1], warmup=warmup, repeats=max(repeats, 20))
    out.update({f"streaming_step_latency_{k}": stream[k] for k in keys})
    if measure_training:
        if train_step_fn is None:
            y = labels.to(dev) if labels is not None else torch.zeros(x.shape[1], dtype=torch.long, device=dev)
            train_step_fn = latency.make_train_step(copy.deepcopy(model), x, y, optim)
            out["training_step_source"] = "suite.training.make_train_step"
        else:
            out["training_step_source"] = "caller"
        train = latency.training_step_latency(train_step_fn, dev, warmup, repeats)
        out.update({f"training_step_latency_{k}": train[k] for k in keys})
    if measure_memory:
        spec = asdict(net.spec)
        backend = net.backend
        t_steps, batch = x.shape[0], x.shape[1]
        inf_mem = inference_peak_memory(spec, backend, batch, t_steps, str(dev))
        out["inference_peak_bytes"] = inf_mem["peak_bytes"]
        out["memory_method"] = inf_mem["method"]
        if measure_training:
            train_mem = training_step_peak_memory(spec, backend, batch, t_steps, str(dev))
            out["training_peak_bytes"] = train_mem["peak_bytes"]
    return out
