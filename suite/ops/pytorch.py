"""PyTorch kernel backend: pure functions over time-major tensors, no module state.

Every backend module exposes the same functions with the same signatures (see ``suite.ops.BACKEND_FUNCTIONS``):

- ``lif_spikes(x, tau, v_threshold, alpha)``: multi-step LIF (hard reset to 0, detached reset, arctan surrogate);
- ``leaky_readout(x, tau)``: the output layer's membrane trace (a LIF that never spikes);
- ``channel_delay(x, pos, sig, kernel_size, pad_left, pad_right)``: one learnable Gaussian delay per channel;
- ``channel_delay_hard(x, delays, kernel_size, pad_left, pad_right)``: integer delays per channel;
- ``synaptic_delay(x, weight, pos, sig, ...)`` and ``synaptic_delay_hard(x, weight, delays, ...)``: one delay per
  synapse fused with the weight matrix.

Delay convention (DCLS): the input is padded with ``pad_left`` zeros in front and ``pad_right`` behind, then a valid
cross-correlation with a kernel of length D runs over time. A kernel peak at tap ``i = pos + D // 2`` reads
``x[t - (D - 1 - i)]`` when ``pad_left = D - 1``, so the delay in steps is ``D // 2 - pos``.

This is the ``torch`` backend: the readable reference, PyTorch ops only, on CPU and CUDA. The parity tests against
the published stack (dcls, spikingjelly) run on it, and the ``cpu-kernels`` backend (:mod:`suite.ops.cpu_kernels`)
is tested against it. How its ops are laid out (docs/kernels.md):

- LIF and readout are whole-sequence autograd Functions: small in-place per-step ops write straight into the saved
  sequence (three per step for the LIF forward, one for the readout and for every backward step) and the
  element-wise work that does not depend on the recurrence (spikes, surrogate, reset masks) runs once over the whole
  sequence. Without autograd the LIF saves nothing.
- Per-channel delays are a depthwise correlation over time: the time-major (T, B, C) tensor *is* the channels-last
  layout of a (1, C, T, B) image, so ``conv2d`` with a (C, 1, D, 1) kernel runs oneDNN's NHWC depthwise kernel with
  no permute copy, and the backward calls ``convolution_backward`` in the same layout.
- Soft synaptic delays: D accumulating matrix products over shifted time slices (contiguous in the time-major
  layout, no padding copy, rows that would only read padding skipped); the (D, N_in, N_out) kernel is never stored:
  it is rebuilt from (weight, pos) a chunk of taps (8 MiB) at a time when it is needed, in the forward and in the
  backward, whose weight and position gradients are reduced chunk by chunk in closed form. The window of taps that
  can contribute (:func:`synaptic_window`) and its taps (:func:`synaptic_window_taps`) are defined here for the
  backends that run the narrow-kernel algorithm (cpu-kernels, numba-cuda).
- Hard per-channel delays are the same depthwise convolution with one-hot kernels (faster than a gather there).
- Hard synaptic delays without autograd on CPU group the synapses by delay into D sparse CSR matrices; with autograd
  (or on CUDA) they keep the dense one-product-per-delay form.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

SIGMA_OFFSET = 0.27
"""DCLS adds this to |SIG| so that the Gaussian never collapses (``dcls`` 0.1.1, ``ConstructKernel1d``)."""
KERNEL_NORM_EPS = 1e-7
"""DCLS divides the Gaussian by ``sum + 1e-7``; kept for bit-level parity with the published stack."""


def atan_scale(alpha: float) -> float:
    """c^2 of the arctan surrogate (alpha / 2) / (1 + c^2 x^2), c = pi/2 alpha, as the LIF backward kernels take it."""
    return (math.pi / 2 * alpha) ** 2


def atan_surrogate_grad(h_minus_thr: torch.Tensor, alpha: float) -> torch.Tensor:
    """d spike / d H of spikingjelly's ``surrogate.ATan``: alpha / 2 / (1 + (pi / 2 * alpha * x) ** 2)."""
    return alpha / 2 / (1 + (math.pi / 2 * alpha * h_minus_thr).square())


# ------------------------------------------------------------------------------------------------------ LIF


def _just_below(value: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` number below ``value``: ``x > _just_below(v)`` is ``x >= v`` for every ``dtype`` x."""
    return float(torch.nextafter(torch.tensor(value, dtype=dtype), torch.tensor(-math.inf, dtype=dtype)))


def lif_steps(x: torch.Tensor, decay: float, v_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, spikes) of the LIF over (T, ...) ``x``: three small in-place ops per step (``H[t] = X[t] + decay V``
    written straight into the saved sequence, ``F = threshold(H, thr-, 0)``, i.e. H where H >= thr, and
    ``V = H - F``, exactly ``H (1 - S)``), then the spikes from one comparison over the whole sequence."""
    h_seq = torch.empty_like(x, memory_format=torch.contiguous_format)
    spikes = torch.empty_like(h_seq)
    below = _just_below(v_threshold, x.dtype)
    fired = h_seq.new_empty(h_seq.shape[1:])
    v = h_seq.new_zeros(h_seq.shape[1:])
    for x_t, h_t in zip(x.unbind(0), h_seq.unbind(0), strict=True):  # unbind: all step views in one call
        torch.add(x_t, v, alpha=decay, out=h_t)
        torch.threshold(h_t, below, 0.0, out=fired)
        torch.sub(h_t, fired, out=v)
    torch.ge(h_seq, v_threshold, out=spikes)
    return h_seq, spikes


def lif_steps_backward(h_seq: torch.Tensor, grad_spikes: torch.Tensor, decay: float, v_threshold: float,
                       scale: float, half_alpha: float) -> torch.Tensor:
    """dL/dX of :func:`lif_steps` from H and dL/dS: dL/dH[t] = g[t] surrogate[t] + dL/dH[t+1] decay (1 - S[t]), with
    surrogate = (alpha/2) / (1 + scale (H - thr)^2), scale = (pi/2 alpha)^2. Three whole-sequence passes, then one
    in-place op per step."""
    centred = torch.sub(h_seq, v_threshold)
    grad_x = torch.addcmul(centred.new_ones(()), centred, centred, value=scale)
    torch.addcdiv(centred.new_zeros(()), grad_spikes, grad_x, value=half_alpha, out=grad_x)
    carry = torch.lt(h_seq, v_threshold, out=centred).mul_(decay)
    g_steps, c_steps = grad_x.unbind(0), carry.unbind(0)
    for t in range(grad_x.shape[0] - 2, -1, -1):
        g_steps[t].addcmul_(g_steps[t + 1], c_steps[t])
    return grad_x


class LIFSpikes(torch.autograd.Function):
    """Whole-sequence LIF; only H is saved, and the element-wise work that does not depend on the recurrence
    (spikes, surrogate) runs with it. ``passes`` computes it: (forward, backward) with the signatures of
    :func:`lif_steps` and :func:`lif_steps_backward` (those here; the compiled ones on cpu-kernels)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float, v_threshold: float, alpha: float,  # type: ignore[override]
                passes: tuple = (lif_steps, lif_steps_backward)) -> torch.Tensor:
        decay = 1.0 - 1.0 / tau
        h_seq, spikes = passes[0](x, decay, v_threshold)
        ctx.save_for_backward(h_seq)
        ctx.decay, ctx.v_threshold, ctx.alpha, ctx.passes = decay, v_threshold, alpha, passes
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes: torch.Tensor):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        grad_x = ctx.passes[1](h_seq, grad_spikes, ctx.decay, ctx.v_threshold, atan_scale(ctx.alpha), ctx.alpha / 2)
        return grad_x, None, None, None, None


class _LeakyReadout(torch.autograd.Function):
    """V[t] = (1 - 1/tau) V[t-1] + X[t]: the output LIF with an unreachable threshold, as a linear recurrence."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float) -> torch.Tensor:  # type: ignore[override]
        decay = 1.0 - 1.0 / tau
        ctx.decay = decay
        v_seq = x.clone(memory_format=torch.contiguous_format)
        steps = v_seq.unbind(0)
        for t in range(1, x.shape[0]):
            steps[t].add_(steps[t - 1], alpha=decay)
        return v_seq

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_v_seq: torch.Tensor):  # type: ignore[override]
        grad_x = grad_v_seq.clone(memory_format=torch.contiguous_format)
        steps = grad_x.unbind(0)
        for t in range(grad_x.shape[0] - 2, -1, -1):
            steps[t].add_(steps[t + 1], alpha=ctx.decay)
        return grad_x, None


def _lif_spikes_inference(x: torch.Tensor, tau: float, v_threshold: float) -> torch.Tensor:
    """The LIF without autograd: nothing saved, and (off CPU) three small ops per step and no whole-sequence pass.

    V = H - H S is exactly H (1 - S) for S in {0, 1}.
    """
    decay = 1.0 - 1.0 / tau
    spikes = torch.empty_like(x, memory_format=torch.contiguous_format)
    h = x.new_empty(x.shape[1:])
    v = x.new_zeros(x.shape[1:])
    for x_t, s_t in zip(x.unbind(0), spikes.unbind(0), strict=True):
        torch.add(x_t, v, alpha=decay, out=h)
        torch.ge(h, v_threshold, out=s_t)
        torch.addcmul(h, h, s_t, value=-1.0, out=v)
    return spikes


def lif_spikes(x: torch.Tensor, tau: float, v_threshold: float, alpha: float) -> torch.Tensor:
    """Spikes of a multi-step LIF over ``x`` of shape (T, ...): H = (1 - 1/tau) V + X, S = H >= thr, V = H (1 - S)."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _lif_spikes_inference(x, tau, v_threshold)
    return LIFSpikes.apply(x, tau, v_threshold, alpha)


def leaky_readout(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Membrane sequence of a non-spiking LIF (the paper's output layer, threshold 1e9)."""
    return _LeakyReadout.apply(x, tau)


# ------------------------------------------------------------------------------------------- kernel shapes


def gaussian_kernel(pos: torch.Tensor, sig: float, kernel_size: int) -> torch.Tensor:
    """DCLS 'gauss' kernel for every position: shape ``pos.shape + (kernel_size,)``, each row sums to ~1."""
    taps = torch.arange(kernel_size, device=pos.device, dtype=pos.dtype)
    centre = pos.unsqueeze(-1) + kernel_size // 2
    k = flush_subnormal(torch.exp(-0.5 * ((taps - centre) / (abs(sig) + SIGMA_OFFSET)).square()), inplace=False)
    return k / (k.sum(-1, keepdim=True) + KERNEL_NORM_EPS)


def flush_subnormal(e: torch.Tensor, inplace: bool) -> torch.Tensor:
    """Zero the Gaussian taps below the smallest normal float (in place).

    Once SIG has decayed, taps a few steps from the centre are exp(-100) or less: subnormal floats, which x86 CPUs
    multiply 10-100x slower (a training epoch of the synaptic gsc-mini model went from 0.8 s to 9 s). They are far
    below float32 resolution of the kernel's sum, so zeroing them changes no result beyond 1e-38. (The runner also
    sets ``torch.set_flush_denormal``; this keeps the kernels fast for code that does not.)
    """
    tiny = e < torch.finfo(e.dtype).tiny
    return e.masked_fill_(tiny, 0.0) if inplace else e.masked_fill(tiny, 0.0)


def delays_from_positions(pos: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Integer delays (steps) the official evaluation uses: round(pos) (half to even), clamped, as D//2 - round(pos)."""
    half = kernel_size // 2
    return (half - torch.round(pos).clamp(-half, half)).to(torch.long)


def _pad_time(x: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:
    """Zero-pad dimension 0 (time) of a (T, B, C) tensor."""
    return F.pad(x, (0, 0, 0, 0, pad_left, pad_right))


def _tap_range(tap: int, t_in: int, t_out: int, pad_left: int) -> tuple[int, int, int]:
    """Output steps [lo, hi) whose tap ``tap`` reads a real input step (not padding), and that input's first step."""
    lo = max(0, pad_left - tap)
    hi = min(t_out, t_in + pad_left - tap)
    return lo, hi, lo + tap - pad_left


# ----------------------------------------------------------------------------------------- channel delays


def _as_image(x: torch.Tensor) -> torch.Tensor:
    """(T, B, C) time-major -> (1, C, T, B) view, which is channels-last (NHWC) memory when x is contiguous."""
    return x.unsqueeze(0).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def _from_image(y: torch.Tensor) -> torch.Tensor:
    """(1, C, T, B) -> (T, B, C); a free view when ``y`` is channels-last."""
    return y.permute(0, 2, 3, 1)[0].contiguous()


class _ChannelConv(torch.autograd.Function):
    """Depthwise valid cross-correlation over time of a padded (T, B, C) input with a (C, D) kernel (oneDNN)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:  # type: ignore[override]
        channels, size = kernel.shape
        image = _as_image(_pad_time(x, pad_left, pad_right))
        weight = kernel.reshape(channels, 1, size, 1)
        y = F.conv2d(image, weight, groups=channels)
        ctx.save_for_backward(image, weight)
        ctx.pad_left, ctx.t_in = pad_left, x.shape[0]
        return _from_image(y)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        image, weight = ctx.saved_tensors
        need_x, need_k = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = grad_k = None
        if need_x or need_k:
            grad_image, grad_weight, _ = torch.ops.aten.convolution_backward(
                _as_image(grad_y), image, weight, None, (1, 1), (0, 0), (1, 1), False, (0, 0), weight.shape[0],
                (need_x, need_k, False))
            if need_x:
                grad_x = _from_image(grad_image)[ctx.pad_left: ctx.pad_left + ctx.t_in]
            if need_k:
                grad_k = grad_weight.reshape(weight.shape[0], weight.shape[2])
        return grad_x, grad_k, None, None


def _channel_conv_inference(x: torch.Tensor, kernel: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:
    """The depthwise correlation without autograd: the convolution pads (symmetrically, max(L, R) steps) instead of a
    padded copy of the input, and the output rows that belong to the (L, R) padding are a contiguous slice."""
    channels, size = kernel.shape
    pad = max(pad_left, pad_right)
    y = F.conv2d(_as_image(x), kernel.reshape(channels, 1, size, 1), groups=channels, padding=(pad, 0))
    start = pad - pad_left
    return _from_image(y[:, :, start: start + x.shape[0] + pad_left + pad_right - size + 1])


def _channel_conv(x: torch.Tensor, kernel: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:
    """The depthwise correlation (oneDNN on CPU): an autograd Function when a gradient is needed."""
    if torch.is_grad_enabled() and (x.requires_grad or kernel.requires_grad):
        return _ChannelConv.apply(x, kernel, pad_left, pad_right)
    return _channel_conv_inference(x, kernel, pad_left, pad_right)


def channel_delay(
    x: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Per-channel soft delay: x (T, B, C), pos (C,) -> (T + pad_left + pad_right - D + 1, B, C)."""
    kernel = gaussian_kernel(pos, sig, kernel_size)  # (C, D), small: its own autograd graph carries dP
    return _channel_conv(x, kernel, pad_left, pad_right)


def channel_delay_hard(
    x: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Per-channel integer delays (C,) in [0, D-1]: the depthwise convolution with one-hot kernels (tap D - 1 - delay).

    Exact (products by 1 and sums of zeros) and, in the channels-last layout, faster than a gather: 2.1 vs 3.2 ms on a
    (128, 16, 512) input with 2 threads here.
    """
    return _channel_conv(x, one_hot_kernel(delays, kernel_size, x), pad_left, pad_right)


def one_hot_kernel(delays: torch.Tensor, kernel_size: int, x: torch.Tensor) -> torch.Tensor:
    """The (C, D) kernel of integer per-channel delays: a one at tap D - 1 - delay, in x's dtype and device."""
    return F.one_hot(kernel_size - 1 - delays.to(device=x.device, dtype=torch.long), kernel_size).to(x.dtype)


# --------------------------------------------------------------------------------------- synaptic delays


_CHUNK_ELEMENTS = 1 << 21
"""Kernel taps are built this many elements at a time (8 MiB in float32): few, large element-wise ops (each a parallel
region: hundreds of small ones stall on every OpenMP barrier when the cores are shared) at a bounded memory cost."""


class _SynapticTaps:
    """The (D, N_in, N_out) synaptic kernel ``K[k] = W.T * g_k`` built a chunk of taps at a time, never stored whole.

    ``g_k = e_k / (sum_j e_j + eps)`` with ``e_k = exp(-z_k^2 / 2)``, ``z_k = (k - P.T - D // 2) / s`` (DCLS 'gauss').
    ``inv_norm = 1 / (sum_j e_j + eps)`` costs one pass over all taps; the forward saves it for the backward.
    """

    def __init__(self, weight: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int,
                 inv_norm: torch.Tensor | None = None) -> None:
        self.w_t = weight.t().contiguous()
        self.centre = pos.t().contiguous().add_(kernel_size // 2)
        self.sigma = abs(sig) + SIGMA_OFFSET
        self.kernel_size = kernel_size
        self.chunk = max(1, min(kernel_size, _CHUNK_ELEMENTS // max(1, self.centre.numel())))
        if inv_norm is None:
            total = torch.zeros_like(self.centre)
            for k0, k1 in self.chunks():
                total.add_(self.e(self.z(k0, k1)).sum(0))
            inv_norm = total.add_(KERNEL_NORM_EPS).reciprocal_()
        self.inv_norm = inv_norm

    def chunks(self) -> list[tuple[int, int]]:
        return [(k0, min(k0 + self.chunk, self.kernel_size)) for k0 in range(0, self.kernel_size, self.chunk)]

    def z(self, k0: int, k1: int) -> torch.Tensor:
        """(k - centre) / s for taps k0..k1-1: a fresh (k1 - k0, N_in, N_out) tensor."""
        taps = torch.arange(k0, k1, device=self.centre.device, dtype=self.centre.dtype).view(-1, 1, 1)
        return torch.sub(taps, self.centre).div_(self.sigma)

    @staticmethod
    def e(z: torch.Tensor) -> torch.Tensor:
        """exp(-z^2 / 2) computed in place of ``z``, subnormal taps flushed to zero."""
        return flush_subnormal(z.square_().mul_(-0.5).exp_(), inplace=True)


class _SynapticDelay(torch.autograd.Function):
    """y[t] = sum_k x_pad[t + k] @ K[k]: D matrix products on shifted time slices; saves x, weight, pos and the
    (N_in, N_out) Gaussian normaliser, never the (D, N_in, N_out) kernel."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int,  # type: ignore[override]
                pad_left: int, pad_right: int) -> torch.Tensor:
        t_in, batch, n_in = x.shape
        t_out = t_in + pad_left + pad_right - kernel_size + 1
        taps = _SynapticTaps(weight, pos, sig, kernel_size)
        scaled_w = taps.w_t * taps.inv_norm
        y = x.new_zeros(t_out, batch, weight.shape[0])
        y2 = y.view(-1, y.shape[2])
        for k0, k1 in taps.chunks():
            kernel = taps.e(taps.z(k0, k1)).mul_(scaled_w)
            for k in range(k0, k1):
                lo, hi, src = _tap_range(k, t_in, t_out, pad_left)
                if hi > lo:
                    y2[lo * batch: hi * batch].addmm_(x[src: src + hi - lo].reshape(-1, n_in), kernel[k - k0])
        ctx.save_for_backward(x, weight, pos, taps.inv_norm)
        ctx.sig, ctx.kernel_size, ctx.pad_left = sig, kernel_size, pad_left
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        x, weight, pos, inv_norm = ctx.saved_tensors
        need_x, need_w, need_p = ctx.needs_input_grad[:3]
        t_in, batch, n_in = x.shape
        t_out, _, n_out = grad_y.shape
        gy2 = grad_y.contiguous().view(-1, n_out)
        taps = _SynapticTaps(weight, pos, ctx.sig, ctx.kernel_size, inv_norm)
        grad_x = torch.zeros_like(x) if need_x else None
        gx2 = grad_x.view(-1, n_in) if grad_x is not None else None
        # dL/dW.T = sum_k G_k g_k, dL/dc = W.T (sum_k G_k g_k z_k - (sum_k G_k g_k)(sum_k g_k z_k)) / s, G = dL/dK.
        acc_g = torch.zeros_like(taps.centre) if (need_w or need_p) else None
        acc_gz = torch.zeros_like(taps.centre) if need_p else None
        acc_z = torch.zeros_like(taps.centre) if need_p else None
        for k0, k1 in taps.chunks():
            z = taps.z(k0, k1)
            g = taps.e(z.clone() if need_p else z).mul_(inv_norm)
            ranges = [_tap_range(k, t_in, t_out, ctx.pad_left) for k in range(k0, k1)]
            if need_x:
                kernel = g * taps.w_t
                for j, (lo, hi, src) in enumerate(ranges):
                    if hi > lo:
                        gx2[src * batch: (src + hi - lo) * batch].addmm_(gy2[lo * batch: hi * batch], kernel[j].t())
                del kernel
            if acc_g is not None:
                grad_k = torch.empty_like(g)
                for j, (lo, hi, src) in enumerate(ranges):
                    if hi > lo:
                        torch.mm(x[src: src + hi - lo].reshape(-1, n_in).t(), gy2[lo * batch: hi * batch],
                                 out=grad_k[j])
                    else:
                        grad_k[j].zero_()
                acc_g.add_(grad_k.mul_(g).sum(0))
                if need_p:
                    acc_gz.add_(grad_k.mul_(z).sum(0))
                    acc_z.add_(g.mul_(z).sum(0))
        grad_w = acc_g.t() if need_w else None
        grad_p = None
        if need_p:
            grad_p = acc_gz.sub_(acc_g * acc_z).mul_(taps.w_t).div_(taps.sigma).t()
        return grad_x, grad_w, grad_p, None, None, None, None


WINDOW_TOLERANCE = 2.0**-25
"""A synapse's window leaves out only taps whose Gaussian value is below this fraction of the kernel's peak tap (half
float32's unit roundoff 2^-24): what the windowed delay drops is below the rounding of the peak term itself."""
WINDOW_MAX_TAPS = 12
"""The windowed delay runs while a synapse's window has at most this many taps (the compiled kernels keep a window's
taps in registers, ``MAX_WINDOW`` in synaptic.c); wider windows (SIG above ~0.75 at D = 31) take the full kernel."""


def synaptic_window(sig: float, kernel_size: int) -> tuple[int, float]:
    """(W, R): the taps per synapse that can contribute at width ``|sig| + 0.27``, and the radius they cover.

    Rule: tap k is dropped only if |k - c| > R with R^2 = 1/4 + 2 s^2 ln(1 / WINDOW_TOLERANCE). The peak tap is
    within 1/2 of the centre c, so a dropped tap's value relative to it is below
    exp(-(R^2 - 1/4) / (2 s^2)) = WINDOW_TOLERANCE. At most floor(2R) + 1 taps lie within R of c, so W is that (at
    most D); the window starts at clamp(ceil(c - R), 0, D - W).
    """
    sigma = abs(sig) + SIGMA_OFFSET
    radius = math.sqrt(0.25 + 2.0 * sigma * sigma * math.log(1.0 / WINDOW_TOLERANCE))
    return min(kernel_size, math.floor(2.0 * radius) + 1), radius


def synaptic_window_taps(weight: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N_out, N_in, W) kernel taps of every synapse's window and the windows' first taps (N_out, N_in) int32.

    ``taps[o, i, j] = W[o, i] g_{start + j}`` with g normalised over the window (DCLS 'gauss' otherwise; the taps left
    out sum to below 2 WINDOW_TOLERANCE of the peak). Differentiable in weight and pos (:class:`_WindowTaps`).
    """
    window, radius = synaptic_window(sig, kernel_size)
    centre = pos.detach() + kernel_size // 2
    start = torch.ceil(centre - radius).clamp_(0, kernel_size - window)
    taps = _WindowTaps.apply(weight, pos, start, abs(sig) + SIGMA_OFFSET, window, kernel_size)
    return taps, start.to(torch.int32)


class _WindowTaps(torch.autograd.Function):
    """(weight, pos) -> W g over each synapse's window, g_j = e_j / (sum_j e_j + eps), e_j = exp(-z_j^2 / 2),
    z_j = (start + j - c) / s; saves z and g. Backward in closed form (as :class:`_SynapticDelay`'s):
    dL/dW = sum_j G_j g_j, dL/dc = W (sum_j G_j g_j z_j - (sum_j G_j g_j)(sum_j g_j z_j)) / s."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, pos: torch.Tensor, start: torch.Tensor, sigma: float,  # type: ignore[override]
                window: int, kernel_size: int) -> torch.Tensor:
        offsets = torch.arange(window, device=pos.device, dtype=pos.dtype)
        z = (start.unsqueeze(-1) + offsets).sub_((pos + kernel_size // 2).unsqueeze(-1)).div_(sigma)
        g = z.square().mul_(-0.5).exp_()
        g.div_(g.sum(-1, keepdim=True).add_(KERNEL_NORM_EPS))
        ctx.save_for_backward(weight, z, g)
        ctx.sigma = sigma
        return g * weight.unsqueeze(-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_taps: torch.Tensor):  # type: ignore[override]
        weight, z, g = ctx.saved_tensors
        weighted = grad_taps * g
        acc_g = weighted.sum(-1)
        acc_gz = weighted.mul_(z).sum(-1)
        acc_z = (g * z).sum(-1)
        grad_pos = acc_gz.sub_(acc_g * acc_z).mul_(weight).div_(ctx.sigma) if ctx.needs_input_grad[1] else None
        return (acc_g if ctx.needs_input_grad[0] else None), grad_pos, None, None, None, None


def synaptic_delay(
    x: torch.Tensor,
    weight: torch.Tensor,
    pos: torch.Tensor,
    sig: float,
    kernel_size: int,
    pad_left: int,
    pad_right: int,
) -> torch.Tensor:
    """One soft delay per synapse: x (T, B, Cin), weight and pos (Cout, Cin) -> (T', B, Cout): the full kernel, D
    matrix products (:class:`_SynapticDelay`)."""
    return _SynapticDelay.apply(x.contiguous(), weight, pos, float(sig), kernel_size, pad_left, pad_right)


def _synaptic_hard_dense(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, kernel_size: int,
                         pad_left: int, pad_right: int) -> torch.Tensor:
    """Differentiable form: one matrix product per distinct delay value, over the synapses that carry it."""
    xpad = _pad_time(x, pad_left, pad_right)
    t_out = xpad.shape[0] - kernel_size + 1
    y = x.new_zeros(t_out, x.shape[1], weight.shape[0])
    for d in torch.unique(delays).tolist():
        tap = kernel_size - 1 - d
        w_d = torch.where(delays == d, weight, torch.zeros_like(weight))
        y = y + xpad[tap: tap + t_out] @ w_d.t()
    return y


def _synaptic_hard_sparse(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, kernel_size: int,
                          pad_left: int, pad_right: int) -> torch.Tensor:
    """No-autograd form: the synapses of each delay as one CSR matrix, applied to the channel-major input.

    y_cm (Cout, T' B) = sum_d W_d @ x_cm[:, shifted by tap_d]: every synapse does one multiply-add per output
    element instead of D; the channel-major (Cin, T_pad B) copy makes every shifted slice a strided dense matrix.
    """
    t_in, batch, n_in = x.shape
    n_out = weight.shape[0]
    t_pad = t_in + pad_left + pad_right
    t_out = t_pad - kernel_size + 1
    x_cm = x.new_zeros(n_in, t_pad, batch)
    x_cm[:, pad_left: pad_left + t_in] = x.permute(2, 0, 1)
    x_cm = x_cm.view(n_in, t_pad * batch)
    flat_delay = delays.reshape(-1)
    order = torch.sort(flat_delay, stable=True).indices  # by delay, then row-major (o, i): CSR order per delay
    rows = torch.div(order, n_in, rounding_mode="floor")
    cols = (order - rows * n_in).to(torch.int64)
    values = weight.reshape(-1)[order]
    counts = torch.bincount(flat_delay[order] * n_out + rows, minlength=kernel_size * n_out).view(kernel_size, n_out)
    per_delay = counts.sum(1).tolist()
    crow = F.pad(counts.cumsum(1), (1, 0))
    y_cm = x.new_zeros(n_out, t_out * batch)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        _sparse_products(y_cm, x_cm, crow, cols, values, per_delay, kernel_size, batch, t_out, n_out, n_in)
    return y_cm.view(n_out, t_out, batch).permute(1, 2, 0).contiguous()


def _sparse_products(y_cm: torch.Tensor, x_cm: torch.Tensor, crow: torch.Tensor, cols: torch.Tensor,
                     values: torch.Tensor, per_delay: list[int], kernel_size: int, batch: int, t_out: int,
                     n_out: int, n_in: int) -> None:
    start = 0
    for d, nnz in enumerate(per_delay):
        if nnz == 0:
            continue
        tap = kernel_size - 1 - d
        w_d = torch.sparse_csr_tensor(crow[d], cols[start: start + nnz], values[start: start + nnz],
                                      (n_out, n_in), check_invariants=False)
        torch.addmm(y_cm, w_d, x_cm[:, tap * batch: (tap + t_out) * batch], out=y_cm)
        start += nnz


def synaptic_delay_hard(
    x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Integer synaptic delays: each synapse reads its input ``delay`` steps back.

    Without autograd on CPU: sparse per-delay products. With autograd or elsewhere: one dense product per distinct
    delay. Both equal the one-hot kernel's result but for the order of the sums over inputs.
    """
    grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if grad or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return _synaptic_hard_dense(x, weight, delays, kernel_size, pad_left, pad_right)
    return _synaptic_hard_sparse(x, weight, delays, kernel_size, pad_left, pad_right)
