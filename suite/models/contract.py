"""The model contract: what the runner, the metrics, the streaming executor, describe and bench call on a built model
(docs/adding-a-method.md). :class:`suite.models.network.DelayNetwork` fulfils it; a plug-in builder's model is checked
against it when its variant is registered, so that a missing member is a one-line error then, not a traceback
mid-run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from suite.specs import ModelSpec


@runtime_checkable
class DelayModel(Protocol):
    """A delay SNN as the suite drives it (an ``nn.Module``)."""

    spec: ModelSpec
    """The ModelSpec it was built from; ``spec.delay_type`` names the kind the metrics ask about each layer."""
    backend: str
    """The backend name it runs on (memory workers rebuild the model from ``spec`` and ``backend``)."""
    layers: Sequence[nn.Module]
    """The layers in order, each built by the kind (``n_in``, ``n_out``, ``is_output``, ``weight``)."""

    def forward(self, x: torch.Tensor, spikes: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(T, B, C) input -> (T_out, B, n_outputs) output membrane trace; each hidden layer's spikes are appended to
        ``spikes`` if it is a list."""
        ...

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser group (the protocol's optimiser set-up names the groups: weights, norm,
        positions)."""
        ...

    def after_step(self) -> None:
        """Called after every optimiser step."""
        ...

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Called once per epoch after the schedulers."""
        ...

    def hard_copy(self) -> DelayModel:
        """An eval-mode copy with the integer delays every evaluation scores; the model itself is not touched."""
        ...

    def output_length(self, t_in: int) -> int:
        """The output length for an input of ``t_in`` steps."""
        ...

    def delay_modules(self) -> list[nn.Module]:
        """Modules with a Gaussian width buffer ``sig`` (the training log reports the last one's); may be empty."""
        ...


MEMBERS = ("spec", "backend", "layers", "forward", "param_groups", "after_step", "end_epoch", "hard_copy",
           "output_length", "delay_modules")
"""The members of :class:`DelayModel`, in the order a missing one is reported."""
LAYER_MEMBERS = ("n_in", "n_out", "is_output", "weight")
"""What the metrics and the listings read on every layer."""
_DATA = {"spec", "backend", "layers"}


def missing_members(model: object) -> list[str]:
    """The contract members ``model`` lacks ('layers[i].NAME' for a layer's), empty when it fulfils the contract."""
    if not isinstance(model, nn.Module):
        return ["torch.nn.Module base class"]
    missing = [name for name in MEMBERS
               if not (hasattr(model, name) if name in _DATA else callable(getattr(model, name, None)))]
    for i, layer in enumerate(getattr(model, "layers", ()) if "layers" not in missing else ()):
        missing += [f"layers[{i}].{name}" for name in LAYER_MEMBERS if not hasattr(layer, name)]
    return missing
