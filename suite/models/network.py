"""The paper's feed-forward delay SNN as a generic stack: every layer is built by the spec's delay kind
(``get_kind(spec.delay_type).build_layer``) and every kind-specific question goes to that kind (suite/kinds/)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from suite.kinds import get_kind
from suite.kinds.base import DelayKind
from suite.ops.registry import get_ops
from suite.specs import ModelSpec


class DelayNetwork(nn.Module):
    """Stack of the kind's layers; ``forward`` returns the output layer's membrane trace (T_out, B, n_outputs)."""

    def __init__(self, spec: ModelSpec, backend: str = "torch") -> None:
        super().__init__()
        self.spec = spec
        self.backend = backend
        sizes = spec.layer_sizes
        self.layers = nn.ModuleList(
            self.kind.build_layer(n_in, n_out, spec, backend, is_output=i == len(sizes) - 1)
            for i, (n_in, n_out) in enumerate(sizes)
        )

    @property
    def kind(self) -> DelayKind:
        return get_kind(self.spec.delay_type)

    def forward(self, x: torch.Tensor, spikes: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Run the network; if ``spikes`` is a list, each hidden layer's spike tensor is appended to it.

        In training the backend may run the stack with stages fused across layers (its optional
        ``network_forward``, suite/ops/fused_stages.py); otherwise the layers compose one by one."""
        if self.training:
            fused = getattr(get_ops(self.backend), "network_forward", None)
            out = fused(self.layers, x, spikes) if fused is not None else None
            if out is not None:
                return out
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if spikes is not None and i < last:
                spikes.append(x)
        return x

    def delay_modules(self) -> list[nn.Module]:
        """The layers' delay modules (``layer.delay``), whose ``sig`` the training log reports."""
        return [layer.delay for layer in self.layers if getattr(layer, "delay", None) is not None]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every layer's optimiser groups, merged by name in layer order (the paper: weights, norm, positions)."""
        groups: dict[str, list[nn.Parameter]] = {"weights": [], "norm": [], "positions": []}
        for layer in self.layers:
            for name, params in self.kind.param_groups(layer).items():
                groups.setdefault(name, []).extend(params)
        return groups

    def after_step(self) -> None:
        """After every optimiser step (the paper: re-apply weight masks, clamp positions; official ``reset_model``)."""
        for layer in self.layers:
            self.kind.after_step(layer)

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Once per epoch after the schedulers (the paper: the SIG schedule)."""
        for layer in self.layers:
            self.kind.end_epoch(layer, self.spec, epoch, epochs)

    def hard_copy(self) -> DelayNetwork:
        """An evaluation copy with integer delays in eval mode; the training model is never touched."""
        clone = copy.deepcopy(self).eval()
        for layer in clone.layers:
            self.kind.harden(layer)
        return clone

    def output_length(self, t_in: int) -> int:
        for layer in self.layers:
            t_in = self.kind.output_length(layer, t_in)
        return t_in


def summed_softmax(output: torch.Tensor) -> torch.Tensor:
    """The official readout m = sum_t softmax(V_out[t]): (T, B, K) -> (B, K). Prediction is argmax m."""
    return torch.softmax(output, dim=2).sum(0)


def summed_softmax_loss(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the summed probabilities (log-softmax applied to m), as ``nn.CrossEntropyLoss(m, y)``."""
    return nn.functional.cross_entropy(summed_softmax(output), labels)
