"""The ``cpu-kernels`` backend: the ops of :mod:`suite.ops.pytorch` (same names, signatures and results within float
rounding) on the compiled CPU kernels of :mod:`suite.ops.native`, plus the fused training stages
(``batchnorm_lif``, ``delay_batchnorm_lif``, ``batchnorm_lif_delay``) that only this backend has.

Where a tensor is outside what a kernel handles, the op delegates to the reference op of :mod:`suite.ops.pytorch`
(each ``*_eligible`` of :mod:`suite.ops.native` says what a kernel takes):

- ``lif_spikes``, ``leaky_readout``: kernels for CPU float32/float64; anything else runs the reference.
- ``channel_delay``: the Gaussian delay kernels for CPU float32 (T, B, C) inputs with 0 <= pad_left < D; float64
  (the parity tests) and other shapes run the reference (``gaussian_kernel`` + oneDNN). ``channel_delay_hard``: the
  depthwise kernels with one-hot kernels on CPU float32, oneDNN otherwise.
- ``synaptic_delay``: the window kernels while a synapse's window has at most ``WINDOW_MAX_TAPS`` taps (CPU float32);
  wider kernels (the start of the official SIG schedule) and float64 run the reference's D matrix products.
  ``synaptic_delay_hard`` without autograd on CPU float32: the window kernel as a gather (one tap per synapse);
  otherwise the reference.
- The fused stages run only where their ``*_supported`` says so (the model composes the ops otherwise) and raise a
  one-line ValueError elsewhere.

The backend is chosen by name (``--backend cpu-kernels``, or ``auto`` on CPU: :func:`suite.ops.registry.resolve`);
where the kernels cannot be built :func:`check_available` raises a one-line SuiteError, never a silent fallback.
"""

from __future__ import annotations

import sys

import torch
from torch.autograd.function import once_differentiable

from suite.errors import SuiteError
from suite.ops import fused_stages, native
from suite.ops import pytorch as reference
from suite.ops.pytorch import (
    KERNEL_NORM_EPS,
    SIGMA_OFFSET,
    WINDOW_MAX_TAPS,
    LIFSpikes,
    _channel_conv_inference,
    _ChannelConv,
    atan_scale,
    gaussian_kernel,
    one_hot_kernel,
    synaptic_window,
    synaptic_window_taps,
)


def check_available() -> None:
    """Raise a one-line SuiteError when the compiled kernels cannot be built or loaded here (the registry calls this
    before the backend is used)."""
    if native.library() is None:
        raise SuiteError(f"backend 'cpu-kernels' cannot run here: the compiled CPU kernels are {native.status()}")


# ------------------------------------------------------------------------------------------- LIF, readout


def _lif_forward(x: torch.Tensor, decay: float, v_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, spikes) in one compiled pass (:func:`suite.ops.pytorch.lif_steps`)."""
    h_seq, spikes = native.lif_forward(x, decay, v_threshold, keep_h=True)
    return h_seq, spikes  # type: ignore[return-value]


LIF_PASSES = (_lif_forward, native.lif_backward)
"""The LIF's compiled forward and backward passes for :class:`suite.ops.pytorch.LIFSpikes`."""


class _LeakyReadout(torch.autograd.Function):
    """V[t] = (1 - 1/tau) V[t-1] + X[t], one compiled pass each way."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float) -> torch.Tensor:  # type: ignore[override]
        ctx.decay = 1.0 - 1.0 / tau
        return native.leaky(x, ctx.decay, backward=False)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_v_seq: torch.Tensor):  # type: ignore[override]
        return native.leaky(grad_v_seq, ctx.decay, backward=True), None


def lif_spikes(x: torch.Tensor, tau: float, v_threshold: float, alpha: float) -> torch.Tensor:
    """:func:`suite.ops.pytorch.lif_spikes`; without autograd nothing is saved (H is not kept)."""
    if not native.recurrences_eligible(x):
        return reference.lif_spikes(x, tau, v_threshold, alpha)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return native.lif_forward(x, 1.0 - 1.0 / tau, v_threshold, keep_h=False)[1]
    return LIFSpikes.apply(x, tau, v_threshold, alpha, LIF_PASSES)


def leaky_readout(x: torch.Tensor, tau: float) -> torch.Tensor:
    """:func:`suite.ops.pytorch.leaky_readout`."""
    if not native.recurrences_eligible(x):
        return reference.leaky_readout(x, tau)
    return _LeakyReadout.apply(x, tau)


# ----------------------------------------------------------------------------- fused training stages


def _record_statistics(ctx, running: tuple[torch.Tensor, torch.Tensor, float] | None, mean: torch.Tensor,
                       var: torch.Tensor, eps: float, rows: int) -> None:
    """After a fused BatchNorm forward: keep (mean, 1 / std) for the backward and update ``nn.BatchNorm1d``'s running
    statistics as F.batch_norm does in training (the variance stored unbiased)."""
    ctx.stats = (mean, (var + eps).rsqrt())
    if running is not None:
        running_mean, running_var, factor = running
        running_mean.mul_(1.0 - factor).add_(mean.to(running_mean.dtype), alpha=factor)
        running_var.mul_(1.0 - factor).add_((var * (rows / (rows - 1))).to(running_var.dtype), alpha=factor)


class _BatchNormLIF(torch.autograd.Function):
    """BatchNorm with batch statistics -> LIF -> dropout mask, in the compiled fused kernels (:mod:`suite.ops.native`).

    Saves the BatchNorm input (the unfused BatchNorm saves it too), the mask and the small state from which the
    backward computes H again (:class:`suite.ops.native.NeuronState`); the statistics stay float64.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor | None,  # type: ignore[override]
                running: tuple[torch.Tensor, torch.Tensor, float] | None, eps: float, tau: float, v_threshold: float,
                alpha: float) -> torch.Tensor:
        decay = 1.0 - 1.0 / tau
        out, state, mean, var = native.batchnorm_lif_forward(x, weight, bias, keep, eps, decay, v_threshold)
        _record_statistics(ctx, running, mean, var, eps, x.shape[0] * x.shape[1])
        ctx.save_for_backward(x, *state, keep, weight)
        ctx.decay, ctx.v_threshold, ctx.alpha = decay, v_threshold, alpha
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, checkpoints, rows, keep, weight = ctx.saved_tensors
        scale = atan_scale(ctx.alpha)
        grad_x, grad_weight, grad_bias, _ = native.batchnorm_lif_backward(
            x, native.NeuronState(checkpoints, rows), grad_out, keep, weight, *ctx.stats, ctx.decay, ctx.v_threshold,
            scale, ctx.alpha / 2)
        return grad_x, grad_weight, grad_bias, None, None, None, None, None, None


def _affine_cpu_norm(weight: torch.Tensor | None, channels: int) -> bool:
    """The fused kernels' BatchNorm: affine, its (C,) weight on the CPU."""
    return weight is not None and weight.device.type == "cpu" and weight.shape == (channels,)


def batchnorm_lif_supported(x: torch.Tensor, weight: torch.Tensor | None) -> bool:
    """Whether :func:`batchnorm_lif` runs fused for this (T, B, C) input: CPU float32/float64 with the compiled
    kernels, an affine BatchNorm on the CPU, and more than one row (else BatchNorm itself raises)."""
    return (native.recurrences_eligible(x) and x.dim() == 3 and _affine_cpu_norm(weight, x.shape[2])
            and x.shape[0] * x.shape[1] > 1)


def batchnorm_lif(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  running: tuple[torch.Tensor, torch.Tensor, float] | None, eps: float, tau: float,
                  v_threshold: float, alpha: float, keep: torch.Tensor | None) -> torch.Tensor:
    """A hidden layer's training-mode neuron stage in one op (optional for backends; see ``OPTIONAL_FUNCTIONS``):
    BatchNorm over the T x B rows with batch statistics, then :func:`lif_spikes`, then ``* keep`` (the dropout mask,
    (B, C), or None). ``running = (running_mean, running_var, factor)`` is updated in place as ``F.batch_norm`` does
    in training (None: not tracked). Only where :func:`batchnorm_lif_supported`; elsewhere ValueError.
    """
    _require(batchnorm_lif_supported(x, weight), "batchnorm_lif", x, weight)
    return _BatchNormLIF.apply(x.contiguous(), weight, bias, keep, running, eps, tau, v_threshold, alpha)


def _require(supported: bool, op: str, x: torch.Tensor, weight: torch.Tensor | None,
             pos: torch.Tensor | None = None) -> None:
    """One-line ValueError naming the op and the tensors when a fused op is called where it does not run (its
    ``*_supported`` is False): the C kernels would read out of bounds."""
    if not supported:
        described = ", ".join(f"{name} {tuple(t.shape)} {t.dtype} on {t.device}"
                              for name, t in (("input", x), ("BatchNorm weight", weight), ("positions", pos))
                              if t is not None)
        raise ValueError(f"{op} cannot run on {described or 'these tensors'} (see {op}_supported); compose the ops")


def _delay_stage_setup(ctx, pos: torch.Tensor, sig: float, kernel_size: int, pad_left: int, tau: float,
                      v_threshold: float, alpha: float) -> float:
    """For a delay fused with a neuron stage: the Gaussian taps (``ctx.taps``, built once and reused by the backward)
    and the constants the backward needs (``ctx.params``); returns the LIF decay."""
    sigma, ctx.taps = _native_taps(pos, sig, kernel_size)
    decay = 1.0 - 1.0 / tau
    ctx.params = (sigma, pad_left, decay, v_threshold, alpha)
    return decay


def _native_taps(pos: torch.Tensor, sig: float, kernel_size: int) -> tuple[float, torch.Tensor]:
    """(sigma, the (D, Cp) Gaussian taps of the compiled kernels) for SIG ``sig``, as :func:`gaussian_kernel`."""
    sigma = abs(sig) + SIGMA_OFFSET
    return sigma, native.gaussian_taps(pos, kernel_size, sigma, KERNEL_NORM_EPS)


class _DelayBatchNormLIF(torch.autograd.Function):
    """A dendritic layer's soft delay -> BatchNorm (batch statistics) -> LIF -> dropout in training (CPU float32).

    The depthwise forward hands the BatchNorm its statistics (from registers: no pass over the delayed current y), and
    the depthwise backward computes the BatchNorm input gradient while it gathers it (no tensor written for it).
    Saves the delay's input, the positions, y, the mask and the neuron state from which the backward computes H
    again: what the two separate ops save.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, pos: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                keep: torch.Tensor | None, sig: float, kernel_size: int, pad_left: int, pad_right: int,
                running: tuple[torch.Tensor, torch.Tensor, float] | None, eps: float, tau: float, v_threshold: float,
                alpha: float) -> torch.Tensor:
        x = x.contiguous()
        decay = _delay_stage_setup(ctx, pos, sig, kernel_size, pad_left, tau, v_threshold, alpha)
        y, moments = native.gaussian_delay_forward(x, ctx.taps, pad_left, pad_right, moments=True)
        out, state, mean, var = native.batchnorm_lif_forward(y, weight, bias, keep, eps, decay, v_threshold, moments)
        _record_statistics(ctx, running, mean, var, eps, y.shape[0] * y.shape[1])
        ctx.save_for_backward(x, pos, y, *state, keep, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, pos, y, checkpoints, rows, keep, weight = ctx.saved_tensors
        sigma, pad_left, decay, v_threshold, alpha = ctx.params
        grad_dy, grad_weight, grad_bias, channel = native.batchnorm_lif_backward(
            y, native.NeuronState(checkpoints, rows), grad_out, keep, weight, *ctx.stats, decay, v_threshold,
            atan_scale(alpha), alpha / 2, defer_input_grad=True)
        grad_x, grad_pos = native.gaussian_delay_backward(x, pos, ctx.taps, sigma, grad_dy, pad_left,
                                                          *ctx.needs_input_grad[:2], batchnorm=(channel, y))
        return (grad_x, grad_pos, grad_weight, grad_bias) + (None,) * 10


def delay_batchnorm_lif_supported(x: torch.Tensor, pos: torch.Tensor, kernel_size: int, pad_left: int,
                                  pad_right: int, weight: torch.Tensor | None) -> bool:
    """Whether :func:`delay_batchnorm_lif` runs fused: the compiled soft delay (CPU float32) and an affine BatchNorm
    on the CPU over more than one row."""
    rows = (x.shape[0] + pad_left + pad_right - kernel_size + 1) * x.shape[1] if x.dim() == 3 else 0
    return (native.gaussian_delay_eligible(x, pos, kernel_size, pad_left, pad_right)
            and _affine_cpu_norm(weight, x.shape[2]) and rows > 1)


def delay_batchnorm_lif(x: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int, pad_left: int,
                        pad_right: int, weight: torch.Tensor, bias: torch.Tensor,
                        running: tuple[torch.Tensor, torch.Tensor, float] | None, eps: float, tau: float,
                        v_threshold: float, alpha: float, keep: torch.Tensor | None) -> torch.Tensor:
    """A dendritic hidden layer's training-mode stage after its weights in one op (optional for backends; see
    ``OPTIONAL_FUNCTIONS``): :func:`channel_delay`, then :func:`batchnorm_lif` (same arguments). Only where
    :func:`delay_batchnorm_lif_supported`; elsewhere ValueError.
    """
    _require(delay_batchnorm_lif_supported(x, pos, kernel_size, pad_left, pad_right, weight), "delay_batchnorm_lif", x,
             weight, pos)
    return _DelayBatchNormLIF.apply(x, pos, weight, bias, keep, sig, kernel_size, pad_left, pad_right, running, eps,
                                    tau, v_threshold, alpha)


class _BatchNormLIFDelay(torch.autograd.Function):
    """A hidden layer's BatchNorm (batch statistics) -> LIF -> dropout followed by the next layer's soft axonal delay,
    in training (CPU float32). Neither the spikes nor H are stored: the depthwise kernel computes them block by block
    from the BatchNorm input, and its backward computes them again from it (bit-identical) and runs the LIF's reverse
    recurrence on each block's gradient as it is produced. Saves the BatchNorm input, its (4, C) channel rows, the
    mask and the positions."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pos: torch.Tensor,  # type: ignore[override]
                keep: torch.Tensor | None, running: tuple[torch.Tensor, torch.Tensor, float] | None, eps: float,
                tau: float, v_threshold: float, alpha: float, sig: float, kernel_size: int, pad_left: int,
                pad_right: int) -> torch.Tensor:
        z = z.contiguous()
        decay = _delay_stage_setup(ctx, pos, sig, kernel_size, pad_left, tau, v_threshold, alpha)
        y, channel, mean, var = native.lif_delay_forward(z, weight, bias, keep, eps, decay, v_threshold, ctx.taps,
                                                         pad_left, pad_right)
        _record_statistics(ctx, running, mean, var, eps, z.shape[0] * z.shape[1])
        ctx.save_for_backward(z, channel, keep, weight, pos)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        z, channel, keep, weight, pos = ctx.saved_tensors
        sigma, pad_left, decay, v_threshold, alpha = ctx.params
        grad_z, grad_pos, grad_weight, grad_bias = native.lif_delay_backward(
            z, channel, keep, weight, *ctx.stats, pos, ctx.taps, sigma, grad_y, pad_left, ctx.needs_input_grad[3],
            decay, v_threshold, atan_scale(alpha), alpha / 2)
        return (grad_z, grad_weight, grad_bias, grad_pos) + (None,) * 10


def batchnorm_lif_delay_supported(z: torch.Tensor, weight: torch.Tensor | None, pos: torch.Tensor, kernel_size: int,
                                  pad_left: int, pad_right: int) -> bool:
    """Whether :func:`batchnorm_lif_delay` runs fused: a float32 BatchNorm input on the CPU with the compiled
    kernels, an affine BatchNorm over more than one row, and the next layer's positions for its channels."""
    return (native.gaussian_delay_eligible(z, pos, kernel_size, pad_left, pad_right)
            and _affine_cpu_norm(weight, z.shape[2]) and z.shape[0] * z.shape[1] > 1)


def batchnorm_lif_delay(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                        running: tuple[torch.Tensor, torch.Tensor, float] | None, eps: float, tau: float,
                        v_threshold: float, alpha: float, keep: torch.Tensor | None, pos: torch.Tensor, sig: float,
                        kernel_size: int, pad_left: int, pad_right: int) -> torch.Tensor:
    """A hidden layer's training-mode neuron stage followed by the next layer's axonal delay, in one op (optional for
    backends; see ``OPTIONAL_FUNCTIONS``): :func:`batchnorm_lif` (same arguments), then :func:`channel_delay` of
    its output (``pos``, ``sig`` ... of the next layer). Only where :func:`batchnorm_lif_delay_supported`; elsewhere
    ValueError.
    """
    _require(batchnorm_lif_delay_supported(z, weight, pos, kernel_size, pad_left, pad_right), "batchnorm_lif_delay", z,
             weight, pos)
    return _BatchNormLIFDelay.apply(z, weight, bias, pos, keep, running, eps, tau, v_threshold, alpha, sig,
                                    kernel_size, pad_left, pad_right)




# ----------------------------------------------------------------------------------------- channel delays


class _NativeChannelConv(torch.autograd.Function):
    """The same correlation with the compiled kernels of :mod:`suite.ops.native` (CPU float32).

    Saves the input itself (the oneDNN form saves a padded copy) for the kernel gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        ctx.save_for_backward(x, kernel)
        ctx.pad_left = pad_left
        return native.depthwise_forward(x, kernel, pad_left, pad_right)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        x, kernel = ctx.saved_tensors
        grad_x, grad_k = native.depthwise_backward(x, kernel, grad_y, ctx.pad_left, *ctx.needs_input_grad[:2])
        return grad_x, grad_k, None, None


class _NativeGaussianDelay(torch.autograd.Function):
    """The soft per-channel delay as one op on CPU float32 (:mod:`suite.ops.native`): the Gaussian taps are built in
    C in the depthwise kernels' layout, and the backward turns the kernel-gradient partial sums into dL/dpos in closed
    form. Same values as ``gaussian_kernel`` + the correlation within float rounding, without the ~25 small ops of
    the kernel's autograd graph per call. Saves the input, the positions and the (D, Cp) taps."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int, pad_left: int,  # type: ignore[override]
                pad_right: int) -> torch.Tensor:
        x = x.contiguous()
        ctx.save_for_backward(x, pos)
        ctx.pad_left = pad_left
        ctx.sigma, ctx.taps = _native_taps(pos, sig, kernel_size)
        return native.gaussian_delay_forward(x, ctx.taps, pad_left, pad_right)[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        x, pos = ctx.saved_tensors
        grad_x, grad_pos = native.gaussian_delay_backward(x, pos, ctx.taps, ctx.sigma, grad_y, ctx.pad_left,
                                                          *ctx.needs_input_grad[:2])
        return grad_x, grad_pos, None, None, None, None



def _channel_conv(x: torch.Tensor, kernel: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:
    """The depthwise kernels where they take the tensors (:func:`suite.ops.native.depthwise_eligible`), oneDNN
    otherwise."""
    differentiable = torch.is_grad_enabled() and (x.requires_grad or kernel.requires_grad)
    if native.depthwise_eligible(x, kernel, pad_left, pad_right):
        return _NativeChannelConv.apply(x, kernel, pad_left, pad_right) if differentiable else \
            native.depthwise_forward(x, kernel, pad_left, pad_right)
    if differentiable:
        return _ChannelConv.apply(x, kernel, pad_left, pad_right)
    return _channel_conv_inference(x, kernel, pad_left, pad_right)


def channel_delay(
    x: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """:func:`suite.ops.pytorch.channel_delay` as one op (:class:`_NativeGaussianDelay`) on CPU float32."""
    if native.gaussian_delay_eligible(x, pos, kernel_size, pad_left, pad_right):
        if torch.is_grad_enabled() and (x.requires_grad or pos.requires_grad):
            return _NativeGaussianDelay.apply(x, pos, sig, kernel_size, pad_left, pad_right)
        return native.gaussian_delay_forward(x, _native_taps(pos, sig, kernel_size)[1], pad_left, pad_right)[0]
    return _channel_conv(x, gaussian_kernel(pos, sig, kernel_size), pad_left, pad_right)


def channel_delay_hard(
    x: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """:func:`suite.ops.pytorch.channel_delay_hard`: the depthwise kernels with one-hot kernels (exact)."""
    return _channel_conv(x, one_hot_kernel(delays, kernel_size, x), pad_left, pad_right)


# --------------------------------------------------------------------------------------- synaptic delays


class _WindowedSynapticDelay(torch.autograd.Function):
    """y[t, :, o] = sum_i sum_j x_pad[t + start[o, i] + j, :, i] taps[o, i, j] with the compiled window kernels
    (:mod:`suite.ops.native`, ``synaptic.c``); saves the padded channel-major input, the taps and the starts."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, taps: torch.Tensor, start: torch.Tensor, kernel_size: int,  # type: ignore[override]
                pad_left: int, pad_right: int) -> torch.Tensor:
        t_in, batch, _ = x.shape
        t_out = t_in + pad_left + pad_right - kernel_size + 1
        src = native.window_series(x, pad_left, t_in + pad_left + pad_right)
        taps = taps.detach().contiguous()
        y = native.time_major(native.window_correlate(src, taps, start, t_out), batch)
        ctx.save_for_backward(src, taps, start)
        ctx.shape, ctx.kernel_size, ctx.pad_left = x.shape, kernel_size, pad_left
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        src, taps, start = ctx.saved_tensors
        t_in, batch, _ = ctx.shape
        t_out = grad_y.shape[0]
        window = taps.shape[2]
        grad_x = grad_taps = None
        if ctx.needs_input_grad[0]:
            # the transposed correlation: dL/dx[t, i] = sum_o sum_j taps[o, i, W-1-j] gy_pad[t + start'[i, o] + j, o],
            # gy_pad = grad_y behind D - 1 zero rows, start' = pad_left + D - W - start
            lead = ctx.kernel_size - 1
            grad_src = native.window_series(grad_y, lead, t_out + 2 * lead)
            flipped = taps.permute(1, 0, 2).flip(2).contiguous()
            start_t = (ctx.pad_left + lead - (window - 1) - start).t().contiguous()
            grad_x = native.time_major(native.window_correlate(grad_src, flipped, start_t, t_in), batch)
        if ctx.needs_input_grad[1]:
            grad_taps = native.window_tap_grad(src, grad_y, start, window)
        return grad_x, grad_taps, None, None, None, None



def synaptic_delay(x: torch.Tensor, weight: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int,
                   pad_left: int, pad_right: int) -> torch.Tensor:
    """:func:`suite.ops.pytorch.synaptic_delay`. Two algorithms, chosen by the width alone: while a synapse's window
    (:func:`suite.ops.pytorch.synaptic_window`) has at most ``WINDOW_MAX_TAPS`` taps and the window kernels take
    the input (CPU float32), the windowed delay over each synapse's active taps (6 of 31 at the final width);
    otherwise the reference's full kernel, D matrix products."""
    window = synaptic_window(sig, kernel_size)[0]
    if window <= WINDOW_MAX_TAPS and native.window_eligible(x, window) and weight.dtype == pos.dtype == torch.float32:
        taps, start = synaptic_window_taps(weight, pos, float(sig), kernel_size)
        return _WindowedSynapticDelay.apply(x.contiguous(), taps, start, kernel_size, pad_left, pad_right)
    return reference.synaptic_delay(x, weight, pos, sig, kernel_size, pad_left, pad_right)


def synaptic_delay_hard(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, kernel_size: int,
                        pad_left: int, pad_right: int) -> torch.Tensor:
    """:func:`suite.ops.pytorch.synaptic_delay_hard`; without autograd on CPU float32 a gather: the window kernel
    with one tap per synapse (tap D - 1 - delay, the weight as its value)."""
    grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if grad or not native.window_eligible(x, 1) or weight.dtype != torch.float32:
        return reference.synaptic_delay_hard(x, weight, delays, kernel_size, pad_left, pad_right)
    start = (kernel_size - 1 - delays).to(torch.int32).contiguous()
    src = native.window_series(x.contiguous(), pad_left, x.shape[0] + pad_left + pad_right)
    t_out = x.shape[0] + pad_left + pad_right - kernel_size + 1
    taps = weight.detach().unsqueeze(-1).contiguous()
    return native.time_major(native.window_correlate(src, taps, start, t_out), x.shape[1])


def network_forward(layers: list[torch.nn.Module], x: torch.Tensor,
                    spikes: list[torch.Tensor] | None = None) -> torch.Tensor | None:
    """Training forward of a layer stack with this backend's fused neuron stages (suite/ops/fused_stages.py)."""
    return fused_stages.network_forward(sys.modules[__name__], layers, x, spikes)
