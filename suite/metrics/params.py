"""Parameter counts (docs/metrics.md "Parameters"): what is really trainable, and what of it really acts.

Protocol hazard 5: the official code scales the wrong tensors when it counts parameters under sparsity. Here
``trainable`` counts every entry of every tensor with ``requires_grad``; ``effective`` counts the entries that can
change the output: non-zero weights (weight-sparsity masks zero them for good), the positions of delayed lines only
(a masked line's position is never read; a synapse's position only while its weight is non-zero) and every norm
parameter. A position's value 0 is a real delay (D // 2), so positions are counted by use, not by value.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.models.contract import DelayModel
from suite.models.delays import ChannelDelay, SynapticDelay, _DelayBase


def _used_positions(module: _DelayBase) -> int:
    if isinstance(module, ChannelDelay) and module.delay_mask is not None:
        return int((module.delay_mask != 0).sum())
    if isinstance(module, SynapticDelay):
        return int((module.weight.detach() != 0).sum())
    return module.P.numel()


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable and effective parameter counts with their composition.

    Keys: ``trainable``, ``effective``, ``weights``, ``positions``, ``norm``, ``other`` (trainable entries per group)
    and ``effective_weights``, ``effective_positions``, ``effective_norm``, ``effective_other``.
    Groups: ``positions`` = the P of every delay module and, for a whole model (suite/models/contract.py), its
    ``param_groups()["positions"]`` (a plug-in kind's learned delays, every entry counted as used), ``norm`` =
    BatchNorm / LayerNorm affine parameters, ``weights`` = every other parameter of a delay network (weight matrices);
    ``other`` is left for third-party modules whose parameters fit none of these (counted as effective when non-zero).
    """
    counts = dict.fromkeys(("weights", "positions", "norm", "other"), 0)
    effective = dict.fromkeys(counts, 0)
    seen: set[int] = set()
    delays = {id(p) for p in model.param_groups().get("positions", [])} if isinstance(model, DelayModel) else set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            if isinstance(module, _DelayBase) and name == "P":
                group, used = "positions", _used_positions(module)
            elif id(param) in delays:
                group, used = "positions", param.numel()
            elif isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
                group, used = "norm", param.numel()
            else:
                group = "weights" if param.dim() >= 2 or isinstance(module, nn.Linear | SynapticDelay) else "other"
                used = int(torch.count_nonzero(param.detach()))
            counts[group] += param.numel()
            effective[group] += used
    result = {"trainable": sum(counts.values()), "effective": sum(effective.values()), **counts}
    result.update({f"effective_{k}": v for k, v in effective.items()})
    return result
