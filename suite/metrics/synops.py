"""Synaptic operations, spikes and activation sparsity (docs/metrics.md "Synaptic operations").

Counted the NeuroBench way (``neurobench.metrics.workload.SynapticOperations``): for every connection layer the
input is binarised (non-zero -> 1) and so is the weight matrix, so one operation = one (non-zero input, non-zero
weight) pair; a layer whose input values all lie in {-1, 0, 1} performs accumulates (``Effective_ACs``), any other
layer multiply-accumulates (``Effective_MACs``); ``Dense`` counts every (input, weight) pair, zeros included. All three
are averaged per sample. Each layer's kind counts its own (:meth:`suite.kinds.base.DelayKind.operations`); the
built-in kinds' delay-aware extensions:

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

from suite.kinds import kind_of


def _is_spiking(x: torch.Tensor) -> bool:
    """NeuroBench's test (``binary_inputs``): every value in {-1, 0, 1}."""
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


@torch.no_grad()
def synaptic_operations(net: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, Any]:
    """Synaptic operations, spikes and activation sparsity of the hard-delay model on the batch ``x`` (T, B, C).

    Keys (per sample unless said): ``Effective_MACs``, ``Effective_ACs``, ``Dense`` (NeuroBench names),
    ``ActivationSparsity`` (NeuroBench name: zero activations / all activations over the hidden spiking layers, every
    step, every sample), ``spikes_per_sample``, ``spikes_per_sample_per_layer``, ``activation_sparsity_per_layer``,
    ``effective_synops_per_layer``, ``dense_synops_per_layer``, ``synops_kind_per_layer`` ('AC', 'MAC' or 'mixed'),
    ``samples``, ``input_steps_per_sample``.
    """
    model = net.hard_copy()
    kind = kind_of(model)
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
            ops = kind.operations(layer, h)
            eff[i] += ops.effective
            dense[i] += ops.dense
            spiking = _is_spiking(h)
            kinds[i].add("AC" if spiking else "MAC")
            if spiking:  # classified per call, as NeuroBench classifies per forward pass
                acs += ops.effective
            else:
                macs += ops.effective
            h = ops.output
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
