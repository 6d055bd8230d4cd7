"""The published stack rebuilt from its own PyPI packages: the oracle our ops and models are checked against.

``OfficialDelaySNN`` reproduces ``SnnDelays`` / ``DelayLayer`` of the official code (YounesBouhadjar/AxDenSynDelaySNN,
``models/snn_delays.py`` and ``models/layers.py``) on ``dcls`` 0.1.1 (``Dcls1d``) and ``spikingjelly``
(``LIFNode``, ``layer.BatchNorm1d``, ``layer.Dropout``), with the same module names, so that its ``state_dict`` has
the official keys: ``snn.{i}.delay_layer.{weight,P,SIG}``, ``snn.{i}.W.weight``, ``snn.{i}.norm.*``.

Only the model is rebuilt (not the training loop, logging or data code). Deviations, none of which changes a number:
- the BatchNorm output is squeezed on its added last axis only (the official bare ``.squeeze()`` also drops a batch
  or channel axis of size 1 and then crashes);
- ``functional.reset_net`` runs before and after every forward (the official loop resets after each batch), so one
  call is stateless and the module stays deep-copyable;
- ``set_hard(False)`` restores P and SIG from a copy taken by ``set_hard(True)`` (official evaluation restores them from
  a saved state dict).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from DCLS.construct.modules import Dcls1d
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from suite.kinds import PUBLISHED_KINDS

DELAY_TYPES = PUBLISHED_KINDS


class MaskedDcls1d(Dcls1d):
    """Official fixed-mask sparse delays: ``m * delayed + (1 - m) * input`` with the delayed output end-padded.

    ``m`` (one 0/1 value per channel) is a plain attribute, as in the official code, so it is not saved in the state
    dict. The input is the padded sequence, so pass-through channels are in effect delayed by ``D - 1``.
    """

    def __init__(self, *args, sparsity_p_delay: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sparsity_p_delay = sparsity_p_delay
        self.m = (torch.rand(self.in_channels) > sparsity_p_delay).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        m = self.m.to(x.device).view(1, -1, 1)
        pad = x.shape[2] - y.shape[2]
        if pad:
            y = F.pad(y, (0, pad))
        return m * y + (1.0 - m) * x


class OfficialDelayLayer(nn.Module):
    """One official ``DelayLayer`` (module ``snn.{i}``): delays and weights -> BatchNorm -> LIF -> dropout."""

    def __init__(self, n_in: int, n_out: int, delay_type: str, kernel_size: int, is_output: bool,
                 sparsity_p_delay: float = 0.0, tau: float = 1.5, dropout: float = 0.25) -> None:
        super().__init__()
        self.delay_type, self.is_output = delay_type, is_output
        self.left_padding = kernel_size - 1
        self.right_padding = (kernel_size - 1) // 2
        # Construction order as in the official code (it fixes the state-dict key order).
        if delay_type == "dendritic":
            self.W = nn.Linear(n_in, n_out, bias=False)
        if delay_type == "axonal":
            if sparsity_p_delay > 0:
                self.delay_layer: Dcls1d = MaskedDcls1d(n_in, n_in, kernel_count=1, groups=n_in, version="gauss",
                                                        bias=False, dilated_kernel_size=kernel_size,
                                                        sparsity_p_delay=sparsity_p_delay)
            else:
                self.delay_layer = Dcls1d(n_in, n_in, kernel_count=1, groups=n_in, version="gauss", bias=False,
                                          dilated_kernel_size=kernel_size)
        elif delay_type == "dendritic":
            self.delay_layer = Dcls1d(n_out, n_out, kernel_count=1, groups=n_out, version="gauss", bias=False,
                                      dilated_kernel_size=kernel_size)
        else:
            self.delay_layer = Dcls1d(n_in, n_out, kernel_count=1, groups=1, dilated_kernel_size=kernel_size,
                                      bias=False, version="gauss")
        if delay_type in ("axonal", "dendritic"):
            self.delay_layer.weight.requires_grad = False
            with torch.no_grad():
                self.delay_layer.weight.fill_(1.0)
        if delay_type == "axonal":
            self.W = nn.Linear(n_in, n_out, bias=False)
        self.normalize = not is_output
        if self.normalize:
            self.norm = layer.BatchNorm1d(n_out, step_mode="m")
        self.neuron = neuron.LIFNode(tau=tau, v_threshold=1e9 if is_output else 1.0,
                                     surrogate_function=surrogate.ATan(alpha=5.0), detach_reset=True, step_mode="m",
                                     decay_input=False, store_v_seq=True)
        self.drop = layer.Dropout(dropout, step_mode="m")

    def synaptic_current(self, x: torch.Tensor) -> torch.Tensor:
        """Delays and weights as the official forward runs them: (T, B, N_in) -> (T + R, B, N_out) (+ L if sparse)."""
        if self.delay_type == "dendritic":
            x = F.pad(x, (0, 0, 0, 0, self.left_padding, self.right_padding), "constant", 0)
            x = self.W(x)
            x = self.delay_layer(x.permute(1, 2, 0)).permute(2, 0, 1)
        else:
            x = F.pad(x.permute(1, 2, 0), (self.left_padding, self.right_padding), "constant", 0)
            x = self.delay_layer(x).permute(2, 0, 1)
            if self.delay_type == "axonal":
                x = self.W(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, N_in) -> spikes (T + R, B, N_out) (T + L + R for sparse axonal); hidden layers apply dropout."""
        x = self.synaptic_current(x)
        if self.normalize:
            x = self.norm(x.unsqueeze(3)).squeeze(3)
        spikes = self.neuron(x)
        return spikes if self.is_output else self.drop(spikes)


class OfficialDelaySNN(nn.Module):
    """Official ``SnnDelays``: ``n_inputs -> n_hidden... -> n_outputs``, delays in every layer; output ``v_seq``.

    Initialisation follows ``SnnDelays.init_model``: kaiming-uniform (relu) weights, P ~ U[-(D//2) - 1, D//2] then
    clamped, SIG = D // 2 and not learned.
    """

    def __init__(self, n_inputs: int, n_hidden: tuple[int, ...] = (512, 512, 512), n_outputs: int = 35,
                 delay_type: str = "axonal", kernel_size: int = 31, sparsity_p_delay: float = 0.0,
                 tau: float = 1.5, dropout: float = 0.25) -> None:
        super().__init__()
        if delay_type not in DELAY_TYPES:
            raise ValueError(f"delay_type must be one of {DELAY_TYPES}, got {delay_type!r}")
        if sparsity_p_delay > 0 and delay_type != "axonal":
            raise ValueError("the official code supports delay sparsity for axonal delays only")
        self.delay_type, self.kernel_size = delay_type, kernel_size
        sizes = [n_inputs, *n_hidden, n_outputs]
        self.snn = nn.ModuleList(
            OfficialDelayLayer(n_in, n_out, delay_type, kernel_size, is_output=i == len(sizes) - 2,
                               sparsity_p_delay=sparsity_p_delay, tau=float(tau), dropout=dropout)
            for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes))
        )
        self._soft_state: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.hard = False
        self._init_official()

    def _init_official(self) -> None:
        half = self.kernel_size // 2
        with torch.no_grad():
            for lay in self.snn:
                if hasattr(lay, "W"):
                    nn.init.kaiming_uniform_(lay.W.weight, nonlinearity="relu")
            if self.delay_type == "synaptic":
                for lay in self.snn:
                    nn.init.kaiming_uniform_(lay.delay_layer.weight, nonlinearity="relu")
            for lay in self.snn:
                nn.init.uniform_(lay.delay_layer.P, a=-self.kernel_size // 2, b=half)
                lay.delay_layer.clamp_parameters()
                nn.init.constant_(lay.delay_layer.SIG, float(half))
                lay.delay_layer.SIG.requires_grad = False

    def delay_layers(self) -> list[Dcls1d]:
        return [lay.delay_layer for lay in self.snn]

    def delay_masks(self) -> list[torch.Tensor | None]:
        """The per-layer sparse-delay masks (``None`` for dense layers); not part of the state dict."""
        return [getattr(d, "m", None) for d in self.delay_layers()]

    def set_sig(self, sig: float) -> None:
        """Set SIG of every delay layer (the official schedule multiplies it once per epoch)."""
        with torch.no_grad():
            for d in self.delay_layers():
                d.SIG.fill_(sig)

    def set_hard(self, hard: bool = True) -> None:
        """Official evaluation mode: SIG *= 0, DCLS version 'max', P rounded and clamped (in place on this module).

        ``set_hard(False)`` restores the soft P and SIG saved by ``set_hard(True)`` and the 'gauss' version.
        """
        if hard == self.hard:
            return
        with torch.no_grad():
            if hard:
                self._soft_state = [(d.P.detach().clone(), d.SIG.detach().clone()) for d in self.delay_layers()]
                for d in self.delay_layers():
                    d.SIG *= 0
                    d.version = d.DCK.version = "max"
                    d.P.round_()
                    d.clamp_parameters()
            else:
                assert self._soft_state is not None
                for d, (p, sig) in zip(self.delay_layers(), self._soft_state, strict=True):
                    d.P.copy_(p)
                    d.SIG.copy_(sig)
                    d.version = d.DCK.version = "gauss"
                self._soft_state = None
        self.hard = hard

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(T, B, n_inputs) -> the output layer's membrane sequence ``v_seq`` (T', B, n_outputs)."""
        functional.reset_net(self)
        for lay in self.snn:
            x = lay(x)
        v_seq = self.snn[-1].neuron.v_seq
        functional.reset_net(self)  # drop the stored graph tensors: keeps the module deep-copyable
        return v_seq

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The official optimiser groups (weights with L2, BatchNorm without, positions), as DelayNetwork names them,
        so the same training-step code drives both stacks."""
        groups: dict[str, list[nn.Parameter]] = {"weights": [], "norm": [], "positions": []}
        for lay in self.snn:
            groups["weights"].append(lay.delay_layer.weight if lay.delay_type == "synaptic" else lay.W.weight)
            if getattr(lay, "normalize", False):
                groups["norm"] += [lay.norm.weight, lay.norm.bias]
            groups["positions"].append(lay.delay_layer.P)
        return groups

    def after_step(self) -> None:
        """Official ``reset_model(train=True)``: clamp the positions after every optimiser step."""
        for lay in self.snn:
            lay.delay_layer.clamp_parameters()

    def trainable_parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
