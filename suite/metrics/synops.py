"""Synaptic operations, spikes and activation sparsity (docs/metrics.md "Synaptic operations").

Counted the NeuroBench way (``neurobench.metrics.workload.SynapticOperations``): for every connection layer the
input is binarised (non-zero -> 1) and so is the weight matrix, so one operation = one (non-zero input, non-zero
weight) pair; a layer whose input values all lie in {-1, 0, 1} performs accumulates (``Effective_ACs``), any other
layer multiply-accumulates (``Effective_MACs``); ``Dense`` counts every (input, weight) pair, zeros included. All three
are averaged per sample. Delay-aware extensions:

- axonal: the weights act on the delayed presynaptic sequence (T + (D - 1) // 2 steps; values that the delay pushes
  beyond the end are never read and never counted);
- dendritic: the weights act on the undelayed input (T steps); moving currents through the delay lines is memory
  traffic, not a synaptic operation;
- synaptic: one tap per synapse, not D: at output step t synapse (j, i) contributes w_ji x_i[t - d_ji], which counts
  once when that input is non-zero and the weight is non-zero. Dense = T_out N_in N_out.

``lengths`` (per-sample valid input lengths of a zero-padded batch) make every sample count as if it ran alone:
samples of equal length run together on their own unpadded sequence (and its own (D - 1) // 2 tails), so the numbers
do not depend on which samples shared a batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def _is_spiking(x: torch.Tensor) -> bool:
    """NeuroBench's test (``binary_inputs``): every value in {-1, 0, 1}."""
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _layer_ops(layer: nn.Module, h: torch.Tensor) -> tuple[int, int]:
    """(effective, dense) synaptic operations of one layer on its input sequence h (T, B, N_in)."""
    weight = layer.weight.detach()
    present = weight != 0
    n_out, n_in = weight.shape
    if layer.delay_site == "fused":
        delay = layer.delay
        k = delay.kernel_size
        delays = delay.delays().to(h.device)
        xpad = F.pad(h, (0, 0, 0, 0, delay.pad_left, delay.pad_right))
        t_out = xpad.shape[0] - k + 1
        nonzero = xpad != 0
        effective = 0
        for d in torch.unique(delays[present]).tolist():
            tap = k - 1 - d
            per_input = nonzero[tap : tap + t_out].sum(dim=(0, 1))  # non-zero inputs each synapse of delay d reads
            fan_out = (present & (delays == d)).sum(dim=0)
            effective += int((per_input * fan_out).sum())
        return effective, t_out * h.shape[1] * n_in * n_out
    lin_in = layer.delay(h) if layer.delay_site == "pre" else h
    effective = int(((lin_in != 0).sum(dim=(0, 1)) * present.sum(dim=0)).sum())
    return effective, lin_in.shape[0] * lin_in.shape[1] * n_in * n_out


def _hard_eval(net: nn.Module) -> nn.Module:
    if hasattr(net, "hard_copy"):
        return net.hard_copy()
    return net.eval()


@torch.no_grad()
def synaptic_operations(net: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, Any]:
    """Synaptic operations, spikes and activation sparsity of the hard-delay model on the batch ``x`` (T, B, C).

    Keys (per sample unless said): ``Effective_MACs``, ``Effective_ACs``, ``Dense`` (NeuroBench names),
    ``ActivationSparsity`` (NeuroBench name: zero activations / all activations over the hidden spiking layers, every
    step, every sample), ``spikes_per_sample``, ``spikes_per_sample_per_layer``, ``activation_sparsity_per_layer``,
    ``effective_synops_per_layer``, ``dense_synops_per_layer``, ``synops_kind_per_layer`` ('AC', 'MAC' or 'mixed'),
    ``samples``, ``input_steps_per_sample``.
    """
    model = _hard_eval(net)
    layers = list(model.layers)
    n = len(layers)
    batch = x.shape[1]
    if lengths is None:
        groups = [(x.shape[0], torch.arange(batch))]
    else:
        lengths = torch.as_tensor(lengths).cpu()
        if lengths.shape != (batch,) or int(lengths.max()) > x.shape[0] or int(lengths.min()) < 1:
            raise ValueError(f"lengths must be {batch} values in [1, {x.shape[0]}], got {lengths.tolist()}")
        groups = [(int(t), (lengths == t).nonzero().flatten()) for t in torch.unique(lengths).tolist()]
    eff = [0] * n
    dense = [0] * n
    kinds: list[set[str]] = [set() for _ in range(n)]
    spikes = [0] * (n - 1)
    slots = [0] * (n - 1)
    steps = 0
    macs = acs = 0
    for t_len, idx in groups:
        h = x[:t_len, idx.to(x.device)]
        steps += t_len * len(idx)
        for i, layer in enumerate(layers):
            e, d = _layer_ops(layer, h)
            eff[i] += e
            dense[i] += d
            spiking = _is_spiking(h)
            kinds[i].add("AC" if spiking else "MAC")
            if spiking:  # classified per call, as NeuroBench classifies per forward pass
                acs += e
            else:
                macs += e
            h = layer(h)
            if i < n - 1:
                spikes[i] += int(torch.count_nonzero(h))
                slots[i] += h.numel()
    return {
        "Effective_MACs": macs / batch,
        "Effective_ACs": acs / batch,
        "Dense": sum(dense) / batch,
        "ActivationSparsity": 1.0 - sum(spikes) / sum(slots) if sum(slots) else 0.0,
        "spikes_per_sample": sum(spikes) / batch,
        "spikes_per_sample_per_layer": [s / batch for s in spikes],
        "activation_sparsity_per_layer": [1.0 - s / m if m else 0.0 for s, m in zip(spikes, slots, strict=True)],
        "effective_synops_per_layer": [e / batch for e in eff],
        "dense_synops_per_layer": [d / batch for d in dense],
        "synops_kind_per_layer": [k.pop() if len(k) == 1 else "mixed" for k in kinds],
        "samples": batch,
        "input_steps_per_sample": steps / batch,
    }
