"""The layer every built-in kind builds: synaptic current (the kind's part: delays and weights) -> BatchNorm over
(T x B) -> LIF -> dropout (one mask per sample for all steps); the output layer has no BatchNorm, no dropout, and a
non-spiking leaky readout whose membrane trace is the network output (the paper's network)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from suite.models.delays import ChannelDelay, _DelayBase
from suite.models.lif import LIF, LeakyReadout

if TYPE_CHECKING:
    from suite.specs import ModelSpec


class NeuronLayer(nn.Module):
    """One layer: the kind's synapses (built by :meth:`build_synapses`, first, so that parameter initialisation draws
    from the random stream in the published order), then the shared neuron stage.

    A kind module subclasses it and implements :meth:`build_synapses` and :meth:`project`; a per-channel delay that
    acts on the layer's input (axonal) is ``input_delay``, one that acts on the weighted current (dendritic) is
    ``current_delay``: backends fuse these with the neighbouring neuron stages (suite/ops/fused_stages.py).
    """

    input_delay: ChannelDelay | None = None
    current_delay: ChannelDelay | None = None

    def __init__(self, n_in: int, n_out: int, spec: ModelSpec, backend: str, is_output: bool) -> None:
        super().__init__()
        self.n_in, self.n_out, self.is_output = n_in, n_out, is_output
        self.dropout = 0.0 if is_output else spec.dropout
        self.linear: nn.Linear | None = None
        self.delay: _DelayBase | None = None
        self.build_synapses(spec, backend)
        self.norm = nn.BatchNorm1d(n_out) if spec.batchnorm and not is_output else None
        self.neuron: nn.Module = (LeakyReadout(spec.tau, backend) if is_output
                                  else LIF(spec.tau, spec.v_threshold, spec.surrogate_alpha, backend))
        if spec.weight_sparsity > 0:
            self.register_buffer("weight_mask", (torch.rand(self.weight.shape) > spec.weight_sparsity).float())
            self.apply_weight_mask()
        else:
            self.weight_mask = None

    def build_synapses(self, spec: ModelSpec, backend: str) -> None:
        """Create the weights (and delays) of the layer. Default: a bias-free Kaiming-uniform ``linear``."""
        self.linear = self.new_linear()

    def new_linear(self) -> nn.Linear:
        linear = nn.Linear(self.n_in, self.n_out, bias=False)
        nn.init.kaiming_uniform_(linear.weight, nonlinearity="relu")
        return linear

    @property
    def weight(self) -> nn.Parameter:
        """The (N_out, N_in) weight matrix, wherever it lives."""
        assert self.linear is not None
        return self.linear.weight

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The weights (with whatever delay is fused into them) on the possibly delayed input."""
        assert self.linear is not None
        return self.linear(x)

    def apply_weight_mask(self) -> None:
        if self.weight_mask is not None:
            with torch.no_grad():
                self.weight.mul_(self.weight_mask)

    def synaptic_current(self, x: torch.Tensor, delayed: bool = False) -> torch.Tensor:
        """Delays and weights: (T, B, N_in) -> (T', B, N_out); ``delayed``: x already went through ``input_delay``
        (a backend fused it with the previous layer's neuron stage)."""
        if self.input_delay is not None and not delayed:
            x = self.input_delay(x)
        x = self.project(x)
        return x if self.current_delay is None else self.current_delay(x)

    def dropout_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """Dropout: one mask per sample for all steps, drawn before anything else of the layer runs."""
        if self.dropout > 0 and self.training:
            return x.new_empty(x.shape[1], self.n_out).bernoulli_(1.0 - self.dropout) / (1.0 - self.dropout)
        return None

    def neuron_stage(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """BatchNorm -> LIF (or the readout) -> dropout of the synaptic current."""
        if self.norm is not None:
            t, b, c = x.shape
            x = self.norm(x.reshape(t * b, c)).reshape(t, b, c)
        x = self.neuron(x)
        return x if keep is None else x * keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spikes (hidden) or membrane trace (output layer)."""
        keep = self.dropout_mask(x)
        return self.neuron_stage(self.synaptic_current(x), keep)

    def output_length(self, t_in: int) -> int:
        return t_in if self.delay is None else self.delay.output_length(t_in)  # type: ignore[operator]
