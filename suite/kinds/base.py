"""What a kind of delay is: the one interface through which the model, the runner, the metrics, the streaming executor
and the listings reach what differs between kinds (docs/adding-a-method.md).

A kind is one object, registered by name (:func:`suite.kinds.register_kind`); ``ModelSpec.delay_type`` names it. It
builds its layers and answers every kind-specific question about a layer it built: optimiser groups, the hard
(integer) copy, buffer lines, synaptic operations, the streaming step and the label. Nothing outside the kind modules
switches on a kind's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import nn

if TYPE_CHECKING:
    from suite.specs import ModelSpec

Sizing = Literal["allocated", "learned"]
"""Streaming buffer sizing: every line D - 1 deep ('allocated') or exactly as deep as its learned delay ('learned')."""


@dataclass(frozen=True)
class LayerBuffers:
    """The delay-buffer bookkeeping of one layer (docs/metrics.md "Delay buffers"), per stream (one sample).

    ``site`` is the record's ``delay_sites`` entry; ``allocated_bits`` / ``learned_bits`` are the layer's buffer
    sizes at allocated and learned depth; ``buffered_lines`` counts lines that hold a ring; ``entry_bits`` is the bits
    per buffer entry; ``stored_delay_values`` / ``stored_delay_value_bits`` what a deployed layer stores to know its
    delays; ``extras`` are kind-specific totals that the network report sums by key.
    """

    site: str
    allocated_bits: int
    learned_bits: int
    buffered_lines: int
    entry_bits: int
    stored_delay_values: int
    stored_delay_value_bits: int
    extras: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerOperations:
    """Synaptic operations of one layer on one input sequence (NeuroBench counting, docs/metrics.md), and the layer's
    output on that input (a recurrent kind's operations depend on it; the caller feeds it to the next layer)."""

    effective: int
    dense: int
    output: torch.Tensor


class StreamingLayer(ABC):
    """One layer of :class:`suite.streaming.StreamingExecutor`: hard delays held in real ring buffers."""

    is_output: bool
    n_in: int
    n_out: int

    @abstractmethod
    def allocate(self, batch: int) -> None:
        """Zero every buffer and membrane for ``batch`` parallel streams."""

    @abstractmethod
    def step(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        """Input of step t (B, N_in) -> spikes (hidden) or membrane (output) of step t (B, N_out). ``t_in`` is this
        layer's input length once the stream is flushed (None before): kinds that zero-pad after it need it."""

    @property
    @abstractmethod
    def state_bytes(self) -> int:
        """Bytes of state this layer holds per call (rings and membranes, all streams)."""

    @property
    @abstractmethod
    def buffer_bits(self) -> int:
        """Bits of delay buffer per stream; equal to the sizing's ``LayerBuffers`` bits."""


class DelayKind(ABC):
    """A kind of delay. Subclasses set the class attributes and implement the abstract methods; registering an
    incomplete kind is refused with the missing members named."""

    name: ClassVar[str]
    """Registry key and ``ModelSpec.delay_type`` value, e.g. 'axonal'."""
    label: ClassVar[str]
    """One line for listings and ``describe``, e.g. 'axonal (before W)'."""
    uses_kernel_size: ClassVar[bool] = True
    """Whether ``ModelSpec.kernel_size`` (D) sizes this kind's delays; the leaderboard shows no D otherwise."""
    sparse_delays: ClassVar[bool] = False
    """Whether the kind honours ``ModelSpec.delay_sparsity`` and ``passthrough`` (lines left undelayed); specs refuse
    a delay sparsity for a kind without them."""

    def validate(self, spec: ModelSpec, where: str) -> None:
        """Refuse a spec this kind cannot build (raise ``suite.errors.SuiteError`` naming ``where``); default: any."""
        return

    @abstractmethod
    def build_layer(self, n_in: int, n_out: int, spec: ModelSpec, backend: str, is_output: bool) -> nn.Module:
        """A layer (T, B, n_in) -> (T', B, n_out): hidden layers return spikes, the output layer a membrane trace."""

    @abstractmethod
    def output_length(self, layer: nn.Module, t_in: int) -> int:
        """The layer's output length for an input of ``t_in`` steps."""

    def param_groups(self, layer: nn.Module) -> dict[str, list[nn.Parameter]]:
        """The layer's parameters by optimiser group; the protocol's optimiser set-up names the groups it trains
        (the paper: 'weights', 'norm', 'positions'). Default: the weight matrix and the BatchNorm affine."""
        groups: dict[str, list[nn.Parameter]] = {"weights": [layer.weight], "norm": []}
        norm = getattr(layer, "norm", None)
        if norm is not None:
            groups["norm"] = [norm.weight, norm.bias]
        return groups

    def after_step(self, layer: nn.Module) -> None:
        """After every optimiser step (e.g. re-apply masks, clamp positions). Default: nothing."""
        return

    def end_epoch(self, layer: nn.Module, spec: ModelSpec, epoch: int, epochs: int) -> None:
        """Once per epoch after the schedulers (e.g. the Gaussian width schedule). Default: nothing."""
        return

    @abstractmethod
    def harden(self, layer: nn.Module) -> None:
        """Switch ``layer`` (already a copy) to the integer delays every evaluation scores."""

    @abstractmethod
    def buffers(self, layer: nn.Module, index: int, input_bits: int, acc_bits: int) -> LayerBuffers:
        """Buffer bookkeeping of the hard layer; ``index`` 0 is the layer fed by the real-valued network input."""

    @abstractmethod
    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        """Synaptic operations of the hard, eval-mode layer on its input sequence ``h`` (T, B, n_in)."""

    def synapses(self, layer: nn.Module) -> tuple[int, int]:
        """(connections, connections with a non-zero weight) of the layer: its dense synaptic operations per step and
        its effective synapses. Default: the (n_out, n_in) weight matrix; a kind with more connections (recurrent
        ones) adds them."""
        return layer.n_in * layer.n_out, int(torch.count_nonzero(layer.weight.detach()))

    @abstractmethod
    def training_macs_per_step(self, layer: nn.Module) -> int:
        """Multiply-accumulates per time step of the soft-delay training computation (docs/metrics.md)."""

    @abstractmethod
    def streaming_layer(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> StreamingLayer:
        """The hard layer as a streaming step with ring buffers; its outputs equal the batch forward's."""
