"""The ``delrec`` delay kind: recurrent LIF layers whose recurrent synapses carry one learnable delay per source
neuron, trained through DelRec's triangular interpolation kernel (package README: what follows the original code in
alexmaxad/DelRec ``src/recurrent_neurons.py`` ``axonal_recdel``, what is ours).

Hidden layer: Linear (with bias) -> dropout (one mask per sample) -> recurrent LIF (no input decay, soft reset,
triangle surrogate) whose input adds the recurrent current; the spike of neuron n at step t reaches every neuron
through ``W_rec[:, n]`` at step t + 1 + d_n. Output layer: Linear (with bias) -> the suite's leaky readout.

Training spreads a spike over the steps around 1 + d_n with a triangle of half-width s_n = 1 + 2 sigma
sigmoid(p_n) and height 1 / s_n^2; sigma shrinks every epoch. The hard copy uses sigma = 0 and rounded delays: the
triangle collapses onto the single step 1 + d_n, which the hard forward reads from the spike history directly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from suite.errors import SuiteError
from suite.kinds.base import DelayKind, LayerBuffers, LayerOperations, Sizing, StreamingLayer
from suite.kinds.common import delay_value_bits
from suite.kinds.rings import STATE_DTYPE, DelayLines, NeuronStreamingLayer
from suite.models.lif import LeakyReadout
from suite.specs import ModelSpec


class TriangleSpike(torch.autograd.Function):
    """Heaviside of ``v - threshold`` with DelRec's surrogate gradient max(0, 1 - |v - threshold|) (``src/utils.py``
    ``Triangle``, gamma = 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (1.0 - x.abs()).clamp(min=0.0)


class SoftResetLIF(nn.Module):
    """spikingjelly's ``LIFNode(decay_input=False, v_reset=None)`` one step at a time: charge v - v/tau + I, fire at
    v >= threshold, soft reset (subtract the threshold, reset not detached). Stateless; the batch forward and the
    streaming step both call :meth:`step`, so that both compute the same bits."""

    def __init__(self, tau: float, v_threshold: float) -> None:
        super().__init__()
        self.tau, self.v_threshold = tau, v_threshold

    def step(self, v: torch.Tensor, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(membrane, input current) of one step -> (spikes, new membrane)."""
        h = v - v / self.tau + current
        spikes = TriangleSpike.apply(h - self.v_threshold)
        return spikes, h - spikes * self.v_threshold

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_threshold={self.v_threshold}, soft reset, triangle surrogate"


def recurrent_kernel(delays: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """DelRec's kernel (N, L): weight of a spike of neuron n on the recurrent input l steps later,
    max(0, s_n - |l - (1 + d_n)|) / s_n^2 for l < L = ceil(1 + max d + max s) + 1 (``axonal_recdel`` lines 79-91)."""
    length = int(torch.ceil(1.0 + delays.detach().max() + spread.detach().max()).item()) + 1
    support = torch.arange(length, device=delays.device, dtype=delays.dtype)
    s = spread.unsqueeze(1)
    return torch.clamp(s - torch.abs(support.unsqueeze(0) - (1.0 + delays).unsqueeze(1)), min=0.0) / (s * s)


class DelRecLayer(nn.Module):
    """(T, B, n_in) -> spikes (T, B, n_out) of a recurrent LIF layer with learnable recurrent delays.

    Parameters as ``axonal_recdel``: ``recurrent_weights`` (target, source) orthogonal with gain 1,
    ``recurrent_delays`` (source,) half-normal with standard deviation ``delay_std``, ``p_spread`` (source,) zero;
    ``sigma`` (a buffer) is the current spread scale. Delays are kept in [0, D - 1] (D: the spec's kernel size).
    """

    def __init__(self, n_in: int, n_out: int, spec: ModelSpec, sigma: float, delay_std: float,
                 recurrent_dropout: float) -> None:
        super().__init__()
        self.n_in, self.n_out, self.is_output = n_in, n_out, False
        self.neuron = SoftResetLIF(spec.tau, spec.v_threshold)
        self.norm = None
        self.dropout, self.recurrent_dropout = spec.dropout, recurrent_dropout
        self.max_delay = spec.kernel_size - 1
        self.linear = nn.Linear(n_in, n_out)
        self.recurrent_weights = nn.Parameter(torch.empty(n_out, n_out))
        nn.init.orthogonal_(self.recurrent_weights, gain=1.0)
        self.recurrent_delays = nn.Parameter((torch.randn(n_out) * delay_std).abs().clamp(max=self.max_delay))
        self.p_spread = nn.Parameter(torch.zeros(n_out))
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("hard", torch.tensor(False))

    @property
    def weight(self) -> nn.Parameter:
        """The feed-forward (N_out, N_in) weights: what the suite's data-free counts read of every layer."""
        return self.linear.weight

    def integer_delays(self) -> torch.Tensor:
        """Rounded recurrent delays (long, (n_out,)): the hard layer's extra steps beyond the one-step recurrence."""
        return torch.round(self.recurrent_delays.detach()).long()

    def spread(self) -> torch.Tensor:
        """Half-widths s_n = 1 + 2 sigma sigmoid(p_n) of the training kernel (1 everywhere once sigma is 0)."""
        return 1.0 + 2.0 * self.sigma * torch.sigmoid(self.p_spread)

    def _mask(self, x: torch.Tensor, p: float) -> torch.Tensor | None:
        """One dropout mask per sample for all steps (spikingjelly ``layer.Dropout``), None when not training."""
        if p <= 0 or not self.training:
            return None
        return x.new_empty(x.shape[1], self.n_out).bernoulli_(1.0 - p) / (1.0 - p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.linear(x)
        keep = self._mask(x, self.dropout)
        if keep is not None:
            current = current * keep
        rec_keep = self._mask(x, self.recurrent_dropout)
        return self._hard_forward(current) if bool(self.hard) else self._soft_forward(current, rec_keep)

    def _soft_forward(self, current: torch.Tensor, rec_keep: torch.Tensor | None) -> torch.Tensor:
        """The original's loop: future recurrent input kept in a (B, N, L - 1) window that moves one step per step."""
        kernel = recurrent_kernel(self.recurrent_delays, self.spread())[:, 1:]
        pending = current.new_zeros(current.shape[1], self.n_out, kernel.shape[1])
        v = current.new_zeros(current.shape[1:])
        out = []
        for frame in current:
            rec_now = pending[:, :, 0]
            spikes, v = self.neuron.step(v, frame + (rec_now if rec_keep is None else rec_now * rec_keep))
            arriving = torch.matmul(self.recurrent_weights, spikes.unsqueeze(2) * kernel)
            pending = F.pad(pending[:, :, 1:], (0, 1)) + arriving
            out.append(spikes)
        return torch.stack(out)

    def _hard_forward(self, current: torch.Tensor) -> torch.Tensor:
        """Integer delays: step t receives W_rec y[t - 1 - d] (what the streaming step computes, bit for bit)."""
        delays = self.integer_delays()
        lines = [(k, (delays == k).to(current.dtype)) for k in torch.unique(delays).tolist()]
        v = current.new_zeros(current.shape[1:])
        delayed = torch.zeros_like(v)
        history = []
        for t, frame in enumerate(current):
            spikes, v = self.neuron.step(v, frame + F.linear(delayed, self.recurrent_weights))
            history.append(spikes)
            delayed = sum((history[t - k] * sel for k, sel in lines if t - k >= 0), torch.zeros_like(v))
        return torch.stack(history)


class DelRecReadout(nn.Module):
    """Output layer: Linear with bias -> the suite's leaky readout (membrane trace (T, B, n_out))."""

    def __init__(self, n_in: int, n_out: int, spec: ModelSpec, backend: str) -> None:
        super().__init__()
        self.n_in, self.n_out, self.is_output = n_in, n_out, True
        self.linear = nn.Linear(n_in, n_out)
        self.neuron = LeakyReadout(spec.tau, backend)
        self.norm = None

    @property
    def weight(self) -> nn.Parameter:
        return self.linear.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.linear(x))


class DelRecKind(DelayKind):
    """Recurrent delays (DelRec). Defaults: the SSC configuration (``configs/perf_SSC.py``): sigma_init 10, decay
    0.95 per 1/100 of the run, half-normal delays of standard deviation 12, recurrent dropout 0.3."""

    name = "delrec"
    label = "recurrent (one learnable delay per source, DelRec)"

    def __init__(self, sigma_init: float = 10.0, sigma_decay: float = 0.95, delay_std: float = 12.0,
                 recurrent_dropout: float = 0.3) -> None:
        self.sigma_init, self.sigma_decay = sigma_init, sigma_decay
        self.delay_std, self.recurrent_dropout = delay_std, recurrent_dropout

    def validate(self, spec: ModelSpec, where: str) -> None:
        """Sparse weights are an option of the suite's neuron layers, not of this one (sparse delays are refused by
        the spec for every kind without ``sparse_delays``)."""
        if spec.weight_sparsity:
            raise SuiteError(f"{where}.weight_sparsity: kind {self.name!r} has no sparse form, got "
                             f"{spec.weight_sparsity!r} (expected 0)")

    def build_layer(self, n_in: int, n_out: int, spec: ModelSpec, backend: str, is_output: bool) -> nn.Module:
        if is_output:
            return DelRecReadout(n_in, n_out, spec, backend)
        return DelRecLayer(n_in, n_out, spec, self.sigma_init, self.delay_std, self.recurrent_dropout)

    def output_length(self, layer: nn.Module, t_in: int) -> int:
        return t_in

    def param_groups(self, layer: nn.Module) -> dict[str, list[nn.Parameter]]:
        """The original's two optimisers (``src/SSC/trainer.py`` ``init_optim_sche``): weights and biases (with
        decay), and the positions: recurrent delays and spreads."""
        weights = [layer.linear.weight, layer.linear.bias]
        if layer.is_output:
            return {"weights": weights, "norm": [], "positions": []}
        return {"weights": [*weights, layer.recurrent_weights], "norm": [],
                "positions": [layer.recurrent_delays, layer.p_spread]}

    @torch.no_grad()
    def after_step(self, layer: nn.Module) -> None:
        if not layer.is_output:
            layer.recurrent_delays.clamp_(min=0.0, max=float(layer.max_delay))

    @torch.no_grad()
    def end_epoch(self, layer: nn.Module, spec: ModelSpec, epoch: int, epochs: int) -> None:
        """As the released loop between two epochs: ``test`` rounds the training delays in place (``round_pos``),
        then ``update_sigma`` sets sigma = sigma_init (sigma_decay^(100 / epochs))^epoch for the next epoch."""
        if layer.is_output:
            return
        layer.recurrent_delays.round_().clamp_(min=0.0, max=float(layer.max_delay))
        layer.sigma.fill_(self.sigma_init * (self.sigma_decay ** (100 / epochs)) ** (epoch + 1))

    @torch.no_grad()
    def harden(self, layer: nn.Module) -> None:
        if layer.is_output:
            return
        layer.recurrent_delays.round_()
        layer.sigma.zero_()
        layer.hard.fill_(True)

    def buffers(self, layer: nn.Module, index: int, input_bits: int, acc_bits: int) -> LayerBuffers:
        """Recurrent lines: one 1-bit spike line per source neuron n holding its last 1 + d_n spikes (learned) or D
        (allocated: delays up to D - 1). The one step every recurrence needs is counted in: a layer with all delays
        0 holds N bits, its previous spikes."""
        if layer.is_output:
            return LayerBuffers("none", 0, 0, 0, 0, 0, 0)
        n, longest = layer.n_out, layer.max_delay + 1
        return LayerBuffers(site="recurrent", allocated_bits=n * longest,
                            learned_bits=int((1 + layer.integer_delays()).sum()), buffered_lines=n, entry_bits=1,
                            stored_delay_values=n, stored_delay_value_bits=n * delay_value_bits(longest))

    @torch.no_grad()
    def operations(self, layer: nn.Module, h: torch.Tensor) -> LayerOperations:
        """Feed-forward: one operation per (non-zero input, non-zero weight) pair. Recurrent: one per (spike arriving
        within the sequence after its delay, non-zero recurrent weight). Dense: every pair of both, every step."""
        out = layer(h)
        t_len, batch = h.shape[0], h.shape[1]
        effective = int(((h != 0).sum(dim=(0, 1)) * (layer.linear.weight != 0).sum(dim=0)).sum())
        dense = t_len * batch * layer.n_in * layer.n_out
        if not layer.is_output:
            fan_out = (layer.recurrent_weights != 0).sum(dim=0)
            arrive = 1 + layer.integer_delays()
            for lag in torch.unique(arrive).tolist():
                sel = arrive == lag
                effective += int(((out[: max(t_len - lag, 0), :, sel] != 0).sum(dim=(0, 1)) * fan_out[sel]).sum())
            dense += t_len * batch * layer.n_out * layer.n_out
        return LayerOperations(effective=effective, dense=dense, output=out)

    def synapses(self, layer: nn.Module) -> tuple[int, int]:
        """Feed-forward N_in N_out plus the recurrent N^2 (hidden layers)."""
        connections, nonzero = layer.n_in * layer.n_out, int(torch.count_nonzero(layer.linear.weight.detach()))
        if not layer.is_output:
            connections += layer.n_out * layer.n_out
            nonzero += int(torch.count_nonzero(layer.recurrent_weights.detach()))
        return connections, nonzero

    def training_macs_per_step(self, layer: nn.Module) -> int:
        """Feed-forward N_in N_out plus the soft kernel's N^2 (L - 1) (every source, every target, every lag)."""
        macs = layer.n_in * layer.n_out
        if not layer.is_output:
            lags = recurrent_kernel(layer.recurrent_delays, layer.spread()).shape[1] - 1
            macs += layer.n_out * layer.n_out * lags
        return macs

    def streaming_layer(self, layer: nn.Module, index: int, sizing: Sizing, device: torch.device) -> StreamingLayer:
        return DelRecStreamingLayer(layer, sizing, device)


class DelRecStreamingLayer(NeuronStreamingLayer):
    """The hard layer step by step. Hidden: per source neuron n a 1-bit spike ring (suite.kinds.rings.DelayLines)
    with delay 1 + d_n, as deep as that delay (learned) or D (allocated): step t first reads every y[t - 1 - d_n]
    (clearing the slot it frees), then, once the neuron fired, writes y[t] there. Output: the suite's readout step."""

    def __init__(self, layer: nn.Module, sizing: Sizing, device: torch.device) -> None:
        ring = None
        if not layer.is_output:
            delays = 1 + layer.integer_delays().cpu()
            depths = torch.full_like(delays, layer.max_delay + 1) if sizing == "allocated" else delays
            ring = DelayLines(delays, depths, bits=True, device=device)
            self.neuron = layer.neuron  # stateless: tau and threshold
            self.recurrent = layer.recurrent_weights.detach().to(device, STATE_DTYPE).clone()
        super().__init__(layer, device, ring)
        self.bias = layer.linear.bias.detach().to(device, STATE_DTYPE).clone()

    def current(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        return F.linear(u, self.weight, self.bias)

    def step(self, u: torch.Tensor, t: int, t_in: int | None) -> torch.Tensor:
        if self.ring is None:
            return super().step(u, t, t_in)
        delayed = self.ring.step(torch.zeros_like(self.v), t)  # read y[t - 1 - d]; its slot is step t's
        spikes, self.v = self.neuron.step(self.v, self.current(u, t, t_in) + F.linear(delayed, self.recurrent))
        self.ring.step(spikes, t)  # write y[t] into that slot
        return spikes
