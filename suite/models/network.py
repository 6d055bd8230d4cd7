"""The paper's feed-forward delay SNN: per layer delay op and weights -> BatchNorm over (T x B) -> LIF -> dropout
(one mask per sample for all steps); the output layer has delays and weights but no BatchNorm, no dropout, and a
non-spiking leaky readout whose membrane trace is the network output."""

from __future__ import annotations

import copy
import itertools
from types import ModuleType

import torch
from torch import nn

from suite.models.delays import ChannelDelay, SynapticDelay, _DelayBase, sigma_decay_factor
from suite.models.lif import LIF, LeakyReadout
from suite.ops.registry import get_ops
from suite.specs import ModelSpec


class DelayBlock(nn.Module):
    """One layer. ``delay_site`` says where the delay sits: 'pre' (axonal), 'post' (dendritic), 'fused' (synaptic)."""

    def __init__(self, n_in: int, n_out: int, spec: ModelSpec, backend: str, is_output: bool) -> None:
        super().__init__()
        self.n_in, self.n_out, self.is_output = n_in, n_out, is_output
        self.dropout = 0.0 if is_output else spec.dropout
        sig = spec.sig_init
        self.linear: nn.Linear | None = None
        self.delay: _DelayBase | None = None
        self.delay_site = {"axonal": "pre", "dendritic": "post", "synaptic": "fused", "none": "none"}[spec.delay_type]
        if self.delay_site == "pre":
            self.delay = ChannelDelay(n_in, spec.kernel_size, backend, sig, spec.delay_sparsity, spec.passthrough)
        if self.delay_site == "fused":
            self.delay = SynapticDelay(n_in, n_out, spec.kernel_size, backend, sig)
        else:
            self.linear = nn.Linear(n_in, n_out, bias=False)
            nn.init.kaiming_uniform_(self.linear.weight, nonlinearity="relu")
        if self.delay_site == "post":
            self.delay = ChannelDelay(n_out, spec.kernel_size, backend, sig, spec.delay_sparsity, spec.passthrough)
        self.norm = nn.BatchNorm1d(n_out) if spec.batchnorm and not is_output else None
        self.neuron: nn.Module = (LeakyReadout(spec.tau, backend) if is_output
                                  else LIF(spec.tau, spec.v_threshold, spec.surrogate_alpha, backend))
        if spec.weight_sparsity > 0:
            self.register_buffer("weight_mask", (torch.rand(self.weight.shape) > spec.weight_sparsity).float())
            self.apply_weight_mask()
        else:
            self.weight_mask = None

    @property
    def weight(self) -> nn.Parameter:
        """The (N_out, N_in) weight matrix, wherever it lives."""
        return self.delay.weight if isinstance(self.delay, SynapticDelay) else self.linear.weight  # type: ignore[union-attr]

    def apply_weight_mask(self) -> None:
        if self.weight_mask is not None:
            with torch.no_grad():
                self.weight.mul_(self.weight_mask)

    def synaptic_current(self, x: torch.Tensor, delayed: bool = False) -> torch.Tensor:
        """Delays and weights: (T, B, N_in) -> (T', B, N_out); ``delayed``: x already went through the axonal
        delay (the previous layer fused it, see ``forward``)."""
        if self.delay_site == "pre" and not delayed:
            x = self.delay(x)  # type: ignore[misc]
        if self.linear is not None:
            x = self.linear(x)
        if self.delay_site in ("post", "fused"):
            x = self.delay(x)  # type: ignore[misc]
        return x

    def forward(self, x: torch.Tensor, delayed: bool = False, next_delay: ChannelDelay | None = None
                ) -> torch.Tensor:
        """The layer's output spikes. ``delayed``: x already went through this layer's axonal delay. ``next_delay``
        (the next layer's axonal delay): return ``next_delay(spikes)`` instead, in training as one backend op with
        the neuron stage where the backend has it (``batchnorm_lif_delay``): the spikes are then never stored."""
        keep = None  # dropout: one mask per sample for all steps (drawn first: the fused paths take it as input)
        if self.dropout > 0 and self.training:
            keep = x.new_empty(x.shape[1], self.n_out).bernoulli_(1.0 - self.dropout) / (1.0 - self.dropout)
        if self.delay_site == "post":  # dendritic: the delay may fuse with the neuron stage
            x = self.linear(x)  # type: ignore[misc]
            fused = self._fused_dendritic_stage(x, keep)
            x = fused if fused is not None else self._neuron_stage(self.delay(x), keep)  # type: ignore[misc]
        else:
            x = self.synaptic_current(x, delayed)
            if next_delay is not None:
                fused = self._fused_next_delay(x, keep, next_delay)
                if fused is not None:
                    return fused
            x = self._neuron_stage(x, keep)
        return x if next_delay is None else next_delay(x)

    def _neuron_stage(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """BatchNorm -> LIF (or the readout) -> dropout of the synaptic current."""
        fused = self._fused_neuron_stage(x, keep)
        if fused is not None:
            return fused
        if self.norm is not None:
            t, b, c = x.shape
            x = self.norm(x.reshape(t * b, c)).reshape(t, b, c)
        x = self.neuron(x)
        return x if keep is None else x * keep

    def _training_norm(self) -> tuple[nn.BatchNorm1d, LIF] | None:
        """(BatchNorm, LIF) when a fused training-mode neuron stage applies to this layer, else None."""
        norm, neuron = self.norm, self.neuron
        if isinstance(norm, nn.BatchNorm1d) and norm.training and isinstance(neuron, LIF):
            return norm, neuron
        return None

    @staticmethod
    def _running_stats(norm: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        """nn.BatchNorm1d's bookkeeping in training mode: count the batch, return (mean, var, momentum factor)."""
        if not norm.track_running_stats:
            return None
        norm.num_batches_tracked.add_(1)  # type: ignore[operator]
        factor = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
        return norm.running_mean, norm.running_var, factor  # type: ignore[return-value]

    def _fused_neuron_stage(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor | None:
        """BatchNorm -> LIF -> dropout as one backend op (``suite.ops.OPTIONAL_FUNCTIONS``) in training mode, where
        the backend has it and can run these tensors; None means: compose the three steps. Forward hooks registered
        on ``norm`` or ``neuron`` do not run on this path (evaluation, where the suite's hooks live, composes)."""
        stage = self._training_norm()
        if stage is None:
            return None
        norm, neuron = stage
        ops = get_ops(neuron.backend)
        if not (hasattr(ops, "batchnorm_lif") and ops.batchnorm_lif_supported(x, norm.weight)):
            return None
        return ops.batchnorm_lif(x, norm.weight, norm.bias, self._running_stats(norm), norm.eps, neuron.tau,
                                 neuron.v_threshold, neuron.surrogate_alpha, keep)

    def _fusable_with(self, delay: _DelayBase | None, op: str) -> tuple[nn.BatchNorm1d, LIF, ModuleType] | None:
        """(BatchNorm, LIF, backend ops) when this layer's training-mode neuron stage may fuse with the soft
        per-channel ``delay`` (not hard, not sparse: sparse delays mix pass-through lines in after the delay) and
        the backend has the optional ``op`` (whose ``*_supported`` check the caller still makes)."""
        stage = self._training_norm()
        if stage is None or not isinstance(delay, ChannelDelay) or delay.hard or delay.delay_mask is not None:
            return None
        ops = get_ops(stage[1].backend)
        return (stage[0], stage[1], ops) if hasattr(ops, op) else None

    def _fused_dendritic_stage(self, current: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor | None:
        """A dendritic layer in training: soft delay -> BatchNorm -> LIF -> dropout of the weighted ``current`` as
        one backend op (``delay_batchnorm_lif``), where the backend has it and can run these tensors; None means:
        the delay, then the other paths. Hooks on ``delay``, ``norm`` or ``neuron`` do not run on this path."""
        fusable, delay = self._fusable_with(self.delay, "delay_batchnorm_lif"), self.delay
        if fusable is None:
            return None
        norm, neuron, ops = fusable
        if not ops.delay_batchnorm_lif_supported(current, delay.P, delay.kernel_size, delay.pad_left,
                                                 delay.pad_right, norm.weight):
            return None
        return ops.delay_batchnorm_lif(current, delay.P, float(delay.sig), delay.kernel_size, delay.pad_left,
                                       delay.pad_right, norm.weight, norm.bias, self._running_stats(norm), norm.eps,
                                       neuron.tau, neuron.v_threshold, neuron.surrogate_alpha, keep)

    def _fused_next_delay(self, x: torch.Tensor, keep: torch.Tensor | None, delay: ChannelDelay) -> torch.Tensor | None:
        """The neuron stage in training and the next layer's soft axonal ``delay`` of its output as one backend op
        (``batchnorm_lif_delay``), where the backend has it and can run these tensors; None means: one after the
        other. Hooks on ``norm``, ``neuron`` and the next layer's ``delay`` do not run on this path."""
        fusable = self._fusable_with(delay, "batchnorm_lif_delay")
        if fusable is None:
            return None
        norm, neuron, ops = fusable
        if not ops.batchnorm_lif_delay_supported(x, norm.weight, delay.P, delay.kernel_size, delay.pad_left,
                                                 delay.pad_right):
            return None
        return ops.batchnorm_lif_delay(x, norm.weight, norm.bias, self._running_stats(norm), norm.eps, neuron.tau,
                                       neuron.v_threshold, neuron.surrogate_alpha, keep, delay.P, float(delay.sig),
                                       delay.kernel_size, delay.pad_left, delay.pad_right)

    def output_length(self, t_in: int) -> int:
        return t_in if self.delay is None else self.delay.output_length(t_in)  # type: ignore[operator]


class DelayNetwork(nn.Module):
    """Stack of DelayBlocks; ``forward`` returns the output layer's membrane trace (T_out, B, n_outputs)."""

    def __init__(self, spec: ModelSpec, backend: str = "torch") -> None:
        super().__init__()
        self.spec = spec
        self.backend = backend
        sizes = spec.layer_sizes
        self.layers = nn.ModuleList(
            DelayBlock(n_in, n_out, spec, backend, is_output=i == len(sizes) - 1)
            for i, (n_in, n_out) in enumerate(sizes)
        )

    def forward(self, x: torch.Tensor, spikes: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Run the network; if ``spikes`` is a list, each hidden layer's spike tensor is appended to it.

        In training (and without ``spikes``), a layer followed by an axonal layer hands it its spikes already delayed
        (``DelayBlock.forward``'s ``next_delay``), so that the two can run as one op."""
        delayed = False
        for layer, following in itertools.pairwise(self.layers):  # slicing a ModuleList builds new ModuleLists
            hand_over = (spikes is None and self.training and following.delay_site == "pre"
                         and isinstance(following.delay, ChannelDelay))
            x = layer(x, delayed=delayed, next_delay=following.delay if hand_over else None)
            delayed = hand_over
            if spikes is not None:
                spikes.append(x)
        return self.layers[-1](x, delayed=delayed)

    def delay_modules(self) -> list[_DelayBase]:
        return [layer.delay for layer in self.layers if layer.delay is not None]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Optimiser groups of the official code: weights (with L2 decay), BatchNorm (no decay), delay positions."""
        groups: dict[str, list[nn.Parameter]] = {"weights": [], "norm": [], "positions": []}
        for layer in self.layers:
            groups["weights"].append(layer.weight)
            if layer.norm is not None:
                groups["norm"] += [layer.norm.weight, layer.norm.bias]
        groups["positions"] = [d.P for d in self.delay_modules()]
        return groups

    def after_step(self) -> None:
        """After every optimiser step: re-apply weight-sparsity masks, clamp positions (official ``reset_model``)."""
        for layer in self.layers:
            layer.apply_weight_mask()
        for delay in self.delay_modules():
            delay.clamp_positions()

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Official SIG schedule, once per epoch after the schedulers: SIG *= alpha while epoch < epochs // 4.

        alpha = (sig_final / sig_init) ** (1 / (epochs // 4)); with fewer than 4 epochs the official condition is never
        true, so SIG stays at its initial value (kept: it is what the released code does).
        """
        final_epoch = self.spec.sig_decay_epochs(epochs)
        for delay in self.delay_modules():
            if epoch < final_epoch and float(delay.sig) > self.spec.sig_final:
                delay.sig.mul_(sigma_decay_factor(self.spec.sig_init, self.spec.sig_final, final_epoch))

    def hard_copy(self) -> DelayNetwork:
        """An evaluation copy with integer delays in eval mode; the training model is never touched."""
        clone = copy.deepcopy(self).eval()
        for delay in clone.delay_modules():
            delay.hard = True
        return clone

    def output_length(self, t_in: int) -> int:
        for layer in self.layers:
            t_in = layer.output_length(t_in)
        return t_in


def summed_softmax(output: torch.Tensor) -> torch.Tensor:
    """The official readout m = sum_t softmax(V_out[t]): (T, B, K) -> (B, K). Prediction is argmax m."""
    return torch.softmax(output, dim=2).sum(0)


def summed_softmax_loss(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the summed probabilities (log-softmax applied to m), as ``nn.CrossEntropyLoss(m, y)``."""
    return nn.functional.cross_entropy(summed_softmax(output), labels)
