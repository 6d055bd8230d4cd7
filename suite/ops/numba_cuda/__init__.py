"""numba-cuda kernel backend: the ops of :mod:`suite.ops.pytorch` as ``numba.cuda.jit`` kernels (see ``kernels.py``)
wrapped in ``torch.autograd.Function``s, same signatures, same semantics.

Why a second backend: it shows what hand-written per-neuron / per-synapse kernels cost against cuDNN, and it is the
template for custom delay kernels. Tensors are exchanged without copies through ``__cuda_array_interface__``
(``numba.cuda.as_cuda_array``) and every kernel is launched on torch's current stream
(``numba.cuda.external_stream``), so no synchronisation is added between torch and Numba work.

With ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) the same kernels run in Numba's CUDA simulator on CPU
tensors, viewed as NumPy arrays. That path exists for testing only: it is thousands of times slower than the GPU.

Numba is optional: importing this module without numba / numba-cuda raises ImportError (the registry turns it into a
SuiteError); choosing the backend without a GPU and without the simulator raises SuiteError from
:func:`check_available`. All float tensors must be float32 (what cuDNN-free float32 kernels are written for).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from suite.errors import SuiteError
from suite.ops.pytorch import KERNEL_NORM_EPS, SIGMA_OFFSET, WINDOW_MAX_TAPS, synaptic_window, synaptic_window_taps

try:
    from numba import cuda

    from suite.ops.numba_cuda import kernels as _k
except Exception as err:  # a missing or broken numba must surface as ImportError only (the registry's contract)
    raise ImportError(
        f"the numba-cuda backend needs numba and numba-cuda (pip install 'delay-snn-suite[numba]'): "
        f"{type(err).__name__}: {err}"
    ) from err

SIMULATOR: bool = _k.SIMULATOR
"""True when numba.cuda was imported with NUMBA_ENABLE_CUDASIM=1: kernels run on CPU tensors, slowly."""
THREADS_PER_BLOCK = 32 if SIMULATOR else 128
"""1-D launches; the simulator runs every thread of a block as a Python thread, so it gets small blocks."""

# Per-channel / per-row helper kernels are small by nature; Numba would warn on every such launch (the category's
# module moved between numba-cuda releases, so the filter matches the message only).
warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU under-utilization")

assert _k.NORM_EPS == KERNEL_NORM_EPS, "kernels.NORM_EPS must equal suite.ops.pytorch.KERNEL_NORM_EPS"


def is_simulator() -> bool:
    """Whether this process runs the kernels in Numba's CUDA simulator."""
    return SIMULATOR


def check_available() -> None:
    """Raise SuiteError (one line, says what to do) when the kernels cannot run in this process."""
    if SIMULATOR:
        return
    if not cuda.is_available():
        raise SuiteError("backend 'numba-cuda' needs an NVIDIA GPU and driver, and Numba finds none: set "
                         "NUMBA_ENABLE_CUDASIM=1 to run its kernels in Numba's slow CPU simulator (testing only), "
                         "or use --backend torch")
    if not torch.cuda.is_available():
        raise SuiteError(f"backend 'numba-cuda' shares CUDA tensors with torch, but this torch build sees no GPU "
                         f"(torch.version.cuda={torch.version.cuda}): install a CUDA build of torch, or use "
                         f"--backend torch")


# ------------------------------------------------------------------------------------------------ torch <-> numba
def _prepare(op: str, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Check device and dtype (float tensors must be float32), return contiguous tensors for the kernels."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise SuiteError(f"{op}: tensors are on different devices {sorted(str(d) for d in devices)}")
    device = next(iter(devices))
    if SIMULATOR and device.type != "cpu":
        raise SuiteError(f"{op}: the Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1) runs on CPU tensors, got {device}; "
                         f"unset NUMBA_ENABLE_CUDASIM to run the kernels on the GPU")
    if not SIMULATOR and device.type != "cuda":
        raise SuiteError(f"{op}: backend 'numba-cuda' runs on the GPU but got tensors on {device}; move the model and "
                         f"data to CUDA (--device cuda), or use --backend torch")
    for t in tensors:
        if t.is_floating_point() and t.dtype != torch.float32:
            raise SuiteError(f"{op}: the numba-cuda kernels are float32-only, got {t.dtype}; use --backend torch")
    return [t.contiguous() for t in tensors]


def _arr(t: torch.Tensor) -> Any:
    """Zero-copy view for a kernel: a DeviceNDArray over the CUDA tensor, or a NumPy view in the simulator.

    ``sync=False``: the kernels run on torch's current stream, so stream order already protects the data.
    """
    t = t.detach()
    if SIMULATOR:
        return t.numpy()
    return cuda.as_cuda_array(t, sync=False)


@contextmanager
def _stream(ref: torch.Tensor) -> Iterator[Any]:
    """Numba stream that is torch's current stream on ``ref``'s device (the simulator has no streams: 0)."""
    if SIMULATOR:
        yield 0
        return
    # torch's device guard makes that device's primary context current; Numba launches into the current context
    # (numba.cuda.gpus[i] would push/pop contexts and refuses to switch devices within a thread).
    with torch.cuda.device(ref.device):
        yield cuda.external_stream(torch.cuda.current_stream(ref.device).cuda_stream)


def _launch(kernel: Any, n_threads: int, stream: Any, *args: Any) -> None:
    """1-D launch over ``n_threads`` work items (nothing to do for empty tensors)."""
    if n_threads > 0:
        kernel[(n_threads + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, THREADS_PER_BLOCK, stream](*args)


def _launch_tiles(kernel: Any, n_rows: int, n_cols: int, stream: Any, *args: Any) -> None:
    """2-D launch of a tiled GEMM kernel: blocks of TILE x TILE threads, x along columns, y along rows."""
    if n_rows > 0 and n_cols > 0:
        tile = _k.TILE
        grid = ((n_cols + tile - 1) // tile, (n_rows + tile - 1) // tile)
        kernel[grid, (tile, tile), stream](*args)


def _f32(value: float) -> np.float32:
    """Scalars go in as float32 so the kernels' arithmetic stays in float32, like torch's on float32 tensors."""
    return np.float32(value)


def _sigma(sig: float | torch.Tensor) -> float:
    """Gaussian standard deviation |SIG| + 0.27, as in suite.ops.pytorch.gaussian_kernel."""
    return abs(float(sig)) + SIGMA_OFFSET


def _out_length(op: str, t_in: int, kernel_size: int, pad_left: int, pad_right: int) -> int:
    t_out = t_in + pad_left + pad_right - kernel_size + 1
    if t_out <= 0:
        raise SuiteError(f"{op}: {t_in} steps padded by {pad_left} + {pad_right} are shorter than the kernel "
                         f"({kernel_size} taps)")
    return t_out


def _check_delays(op: str, delays: torch.Tensor, kernel_size: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Integer delays of the expected shape within [0, D - 1]; the kernels would read the wrong steps otherwise."""
    if tuple(delays.shape) != shape:
        raise SuiteError(f"{op}: delays have shape {tuple(delays.shape)}, expected {shape}")
    if delays.is_floating_point():
        raise SuiteError(f"{op}: delays must be an integer tensor, got {delays.dtype}")
    if delays.numel():
        low, high = (int(v) for v in torch.aminmax(delays))  # one device sync: hard delays run in evaluation
        if low < 0 or high > kernel_size - 1:
            raise SuiteError(f"{op}: delays must lie in [0, {kernel_size - 1}], got [{low}, {high}]")
    return delays.to(torch.int64).contiguous()


def _flat_time(x: torch.Tensor) -> torch.Tensor:
    """(T, ...) -> (T, M) view: the neuron kernels run one thread per column."""
    return x.reshape(x.shape[0], x.numel() // x.shape[0] if x.shape[0] else 0)


# ------------------------------------------------------------------------------------------------------------ LIF
class _LIFSpikes(torch.autograd.Function):
    """Multi-step LIF; saves only H (spikes are H >= thr), backward is one reverse-time kernel."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, tau: float, v_threshold: float, alpha: float) -> torch.Tensor:  # type: ignore[override]
        (x,) = _prepare("lif_spikes", x)
        flat = _flat_time(x)
        h_seq, spikes = torch.empty_like(flat), torch.empty_like(flat)
        decay = 1.0 - 1.0 / tau
        with _stream(x) as stream:
            _launch(_k.lif_forward, flat.shape[1], stream, _arr(flat), _arr(h_seq), _arr(spikes), _f32(decay),
                    _f32(v_threshold))
        ctx.save_for_backward(h_seq)
        ctx.decay, ctx.v_threshold, ctx.alpha = decay, v_threshold, alpha
        return spikes.view(x.shape)

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        (grad,) = _prepare("lif_spikes backward", grad_spikes)
        grad_flat = _flat_time(grad)
        grad_x = torch.empty_like(grad_flat)
        with _stream(grad) as stream:
            _launch(_k.lif_backward, grad_flat.shape[1], stream, _arr(grad_flat), _arr(h_seq), _arr(grad_x),
                    _f32(ctx.decay), _f32(ctx.v_threshold), _f32(ctx.alpha / 2), _f32(math.pi / 2 * ctx.alpha))
        return grad_x.view(grad_spikes.shape), None, None, None


class _LeakyReadout(torch.autograd.Function):
    """Non-spiking output layer: V[t] = decay V[t-1] + X[t], forward and adjoint as one-thread-per-neuron loops."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, tau: float) -> torch.Tensor:  # type: ignore[override]
        (x,) = _prepare("leaky_readout", x)
        flat = _flat_time(x)
        v_seq = torch.empty_like(flat)
        decay = 1.0 - 1.0 / tau
        with _stream(x) as stream:
            _launch(_k.readout_forward, flat.shape[1], stream, _arr(flat), _arr(v_seq), _f32(decay))
        ctx.decay = decay
        return v_seq.view(x.shape)

    @staticmethod
    def backward(ctx: Any, grad_v_seq: torch.Tensor):  # type: ignore[override]
        (grad,) = _prepare("leaky_readout backward", grad_v_seq)
        grad_flat = _flat_time(grad)
        grad_x = torch.empty_like(grad_flat)
        with _stream(grad) as stream:
            _launch(_k.readout_backward, grad_flat.shape[1], stream, _arr(grad_flat), _arr(grad_x), _f32(ctx.decay))
        return grad_x.view(grad_v_seq.shape), None


def lif_spikes(x: torch.Tensor, tau: float, v_threshold: float, alpha: float) -> torch.Tensor:
    """Spikes of a multi-step LIF over ``x`` of shape (T, ...): H = (1 - 1/tau) V + X, S = H >= thr, V = H (1 - S)."""
    return _LIFSpikes.apply(x, tau, v_threshold, alpha)


def leaky_readout(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Membrane sequence of a non-spiking LIF (the paper's output layer, threshold 1e9)."""
    return _LeakyReadout.apply(x, tau)


# --------------------------------------------------------------------------------------------------- channel delays
class _ChannelDelay(torch.autograd.Function):
    """Depthwise Gaussian delay; the position gradient is the exact derivative of the normalised DCLS kernel."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int,  # type: ignore[override]
                pad_left: int, pad_right: int) -> torch.Tensor:
        x, pos = _prepare("channel_delay", x, pos)
        t_in, n_batch, n_ch = x.shape
        if tuple(pos.shape) != (n_ch,):
            raise SuiteError(f"channel_delay: pos has shape {tuple(pos.shape)}, expected ({n_ch},)")
        t_out = _out_length("channel_delay", t_in, kernel_size, pad_left, pad_right)
        sigma = _sigma(sig)
        kernel = x.new_empty(n_ch, kernel_size)
        y = x.new_empty(t_out, n_batch, n_ch)
        with _stream(x) as stream:
            _launch(_k.gaussian_rows, n_ch, stream, _arr(pos), _arr(kernel), sigma)
            _launch(_k.channel_forward, y.numel(), stream, _arr(x), _arr(kernel), _arr(y), pad_left)
        ctx.save_for_backward(x, pos, kernel)
        ctx.sigma, ctx.pad_left = sigma, pad_left
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):  # type: ignore[override]
        x, pos, kernel = ctx.saved_tensors
        (grad_y,) = _prepare("channel_delay backward", grad_y)
        grad_x = grad_pos = None
        with _stream(grad_y) as stream:
            if ctx.needs_input_grad[0]:
                grad_x = torch.empty_like(x)
                _launch(_k.channel_backward_input, grad_x.numel(), stream, _arr(grad_y), _arr(kernel), _arr(grad_x),
                        ctx.pad_left)
            if ctx.needs_input_grad[1]:
                rows = grad_y.shape[0] * grad_y.shape[1]
                n_chunks = max(1, (rows + _k.ROW_CHUNK - 1) // _k.ROW_CHUNK)
                partial = x.new_empty(n_chunks, kernel.shape[1], x.shape[2])
                grad_pos = torch.empty_like(pos)
                _launch(_k.channel_backward_kernel_partial, partial.numel(), stream, _arr(grad_y), _arr(x),
                        _arr(partial), ctx.pad_left)
                _launch(_k.channel_backward_pos, pos.numel(), stream, _arr(pos), _arr(partial), _arr(grad_pos),
                        ctx.sigma)
        return grad_x, grad_pos, None, None, None, None


class _ChannelDelayHard(torch.autograd.Function):
    """Integer per-channel delays: a gather forward, its scatter-free adjoint backward (no gradient to delays)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int,  # type: ignore[override]
                pad_right: int) -> torch.Tensor:
        (x,) = _prepare("channel_delay_hard", x)
        t_in, n_batch, n_ch = x.shape
        delays = _check_delays("channel_delay_hard", delays, kernel_size, (n_ch,))
        _prepare("channel_delay_hard", x, delays)
        t_out = _out_length("channel_delay_hard", t_in, kernel_size, pad_left, pad_right)
        y = x.new_empty(t_out, n_batch, n_ch)
        with _stream(x) as stream:
            _launch(_k.channel_hard_forward, y.numel(), stream, _arr(x), _arr(delays), _arr(y), kernel_size, pad_left)
        ctx.save_for_backward(delays)
        ctx.t_in, ctx.kernel_size, ctx.pad_left = t_in, kernel_size, pad_left
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):  # type: ignore[override]
        (delays,) = ctx.saved_tensors
        (grad_y,) = _prepare("channel_delay_hard backward", grad_y)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_y.new_empty(ctx.t_in, grad_y.shape[1], grad_y.shape[2])
            with _stream(grad_y) as stream:
                _launch(_k.channel_hard_backward, grad_x.numel(), stream, _arr(grad_y), _arr(delays), _arr(grad_x),
                        ctx.kernel_size, ctx.pad_left)
        return grad_x, None, None, None, None


def channel_delay(
    x: torch.Tensor, pos: torch.Tensor, sig: float, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Per-channel soft delay: x (T, B, C), pos (C,) -> (T + pad_left + pad_right - D + 1, B, C)."""
    return _ChannelDelay.apply(x, pos, sig, kernel_size, pad_left, pad_right)


def channel_delay_hard(
    x: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Per-channel integer delays (C,) in [0, D-1]."""
    return _ChannelDelayHard.apply(x, delays, kernel_size, pad_left, pad_right)


# -------------------------------------------------------------------------------------------------- synaptic delays
class _SynapticDelay(torch.autograd.Function):
    """Per-synapse Gaussian delays as a tap-shifted GEMM; the (D, Cin, Cout) kernel is rebuilt in the backward
    rather than saved (it is cheap, and it would be the largest saved tensor)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, pos: torch.Tensor, sig: float,  # type: ignore[override]
                kernel_size: int, pad_left: int, pad_right: int) -> torch.Tensor:
        x, weight, pos = _prepare("synaptic_delay", x, weight, pos)
        t_in, n_batch, n_in = x.shape
        n_out = weight.shape[0]
        _check_synaptic("synaptic_delay", x, weight, pos)
        t_out = _out_length("synaptic_delay", t_in, kernel_size, pad_left, pad_right)
        sigma = _sigma(sig)
        operand = x.new_empty(kernel_size * n_in, n_out)
        y = x.new_empty(t_out, n_batch, n_out)
        with _stream(x) as stream:
            _launch(_k.synaptic_kernel_matrix, weight.numel(), stream, _arr(weight), _arr(pos), _arr(operand), sigma,
                    False)
            _launch_tiles(_k.shifted_gemm, t_out * n_batch, n_out, stream, _arr(x.view(t_in * n_batch, n_in)),
                          _arr(operand), _arr(y.view(t_out * n_batch, n_out)), -pad_left * n_batch, n_batch)
        ctx.save_for_backward(x, weight, pos)
        ctx.sigma, ctx.kernel_size, ctx.pad_left = sigma, kernel_size, pad_left
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):  # type: ignore[override]
        x, weight, pos = ctx.saved_tensors
        (grad_y,) = _prepare("synaptic_delay backward", grad_y)
        t_in, n_batch, n_in = x.shape
        t_out, n_out = grad_y.shape[0], weight.shape[0]
        grad_y2 = grad_y.view(t_out * n_batch, n_out)
        x2 = x.view(t_in * n_batch, n_in)
        grad_x = grad_w = grad_pos = None
        with _stream(grad_y) as stream:
            if ctx.needs_input_grad[0]:
                operand_t = x.new_empty(ctx.kernel_size * n_out, n_in)
                grad_x = torch.empty_like(x)
                _launch(_k.synaptic_kernel_matrix, weight.numel(), stream, _arr(weight), _arr(pos), _arr(operand_t),
                        ctx.sigma, True)
                _launch_tiles(_k.shifted_gemm, t_in * n_batch, n_in, stream, _arr(grad_y2), _arr(operand_t),
                              _arr(grad_x.view(t_in * n_batch, n_in)), ctx.pad_left * n_batch, -n_batch)
            if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
                grad_k = x.new_empty(ctx.kernel_size * n_in, n_out)
                grad_w, grad_pos = torch.empty_like(weight), torch.empty_like(pos)
                _launch_tiles(_k.shifted_gemm_tn, grad_k.shape[0], n_out, stream, _arr(x2), _arr(grad_y2),
                              _arr(grad_k), -ctx.pad_left * n_batch, n_batch)
                _launch(_k.synaptic_kernel_grad, weight.numel(), stream, _arr(weight), _arr(pos), _arr(grad_k),
                        _arr(grad_w), _arr(grad_pos), ctx.sigma)
        if not ctx.needs_input_grad[1]:
            grad_w = None
        if not ctx.needs_input_grad[2]:
            grad_pos = None
        return grad_x, grad_w, grad_pos, None, None, None, None


class _SynapticWindow(torch.autograd.Function):
    """Per-synapse delays over a window of W taps from each synapse's first tap ``start`` (the soft delay at a narrow
    width, :func:`suite.ops.pytorch.synaptic_window`; the hard delay with W = 1): a direct gather-sum, W instead of D
    multiply-adds per synapse and output element. The taps' gradient flows back to weight and positions through the
    caller's torch graph."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, taps: torch.Tensor, start: torch.Tensor,  # type: ignore[override]
                kernel_size: int, pad_left: int, pad_right: int) -> torch.Tensor:
        x, taps = _prepare("synaptic_delay", x, taps)
        t_in, n_batch, _ = x.shape
        t_out = _out_length("synaptic_delay", t_in, kernel_size, pad_left, pad_right)
        start = start.to(torch.int64).contiguous()
        y = x.new_empty(t_out, n_batch, taps.shape[0])
        with _stream(x) as stream:
            _launch(_k.synaptic_window_forward, y.numel(), stream, _arr(x), _arr(taps.permute(1, 0, 2).contiguous()),
                    _arr(start.t().contiguous()), _arr(y), pad_left)
        ctx.save_for_backward(x, taps, start)
        ctx.pad_left = pad_left
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor):  # type: ignore[override]
        x, taps, start = ctx.saved_tensors
        (grad_y,) = _prepare("synaptic_delay backward", grad_y)
        grad_x = grad_taps = None
        with _stream(grad_y) as stream:
            if ctx.needs_input_grad[0]:
                grad_x = torch.empty_like(x)
                _launch(_k.synaptic_window_backward_input, grad_x.numel(), stream, _arr(grad_y), _arr(taps),
                        _arr(start), _arr(grad_x), ctx.pad_left)
            if ctx.needs_input_grad[1]:
                grad_taps = torch.empty_like(taps)
                _launch(_k.synaptic_window_backward_taps, start.numel(), stream, _arr(grad_y), _arr(x), _arr(start),
                        _arr(grad_taps), ctx.pad_left)
        return grad_x, grad_taps, None, None, None, None


def _check_synaptic(op: str, x: torch.Tensor, weight: torch.Tensor, pos: torch.Tensor | None = None) -> None:
    n_in = x.shape[-1]
    if weight.dim() != 2 or weight.shape[1] != n_in or (pos is not None and pos.shape != weight.shape):
        shapes = f"weight {tuple(weight.shape)}" + (f" and pos {tuple(pos.shape)}" if pos is not None else "")
        raise SuiteError(f"{op}: {shapes} must {'both ' if pos is not None else ''}be (N_out, {n_in})")


def synaptic_delay(
    x: torch.Tensor,
    weight: torch.Tensor,
    pos: torch.Tensor,
    sig: float,
    kernel_size: int,
    pad_left: int,
    pad_right: int,
) -> torch.Tensor:
    """One soft delay per synapse: x (T, B, Cin), weight and pos (Cout, Cin) -> (T', B, Cout).

    The same rule as the torch backend, chosen by the width alone: while a synapse's window
    (:func:`suite.ops.pytorch.synaptic_window`) has at most ``WINDOW_MAX_TAPS`` taps, the gather over each synapse's
    window; otherwise the full kernel as a tap-shifted GEMM.
    """
    window = synaptic_window(sig, kernel_size)[0]
    if window <= WINDOW_MAX_TAPS:
        _prepare("synaptic_delay", x, weight, pos)
        _check_synaptic("synaptic_delay", x, weight, pos)
        taps, start = synaptic_window_taps(weight, pos, float(sig), kernel_size)
        return _SynapticWindow.apply(x, taps, start, kernel_size, pad_left, pad_right)
    return _SynapticDelay.apply(x, weight, pos, sig, kernel_size, pad_left, pad_right)


def synaptic_delay_hard(
    x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, kernel_size: int, pad_left: int, pad_right: int
) -> torch.Tensor:
    """Integer synaptic delays (Cout, Cin) in [0, D-1]: the window op with one tap per synapse, D - 1 - delay."""
    x, weight = _prepare("synaptic_delay_hard", x, weight)
    _check_synaptic("synaptic_delay_hard", x, weight)
    delays = _check_delays("synaptic_delay_hard", delays, kernel_size, tuple(weight.shape))
    _prepare("synaptic_delay_hard", x, delays)
    return _SynapticWindow.apply(x, weight.unsqueeze(-1), kernel_size - 1 - delays, kernel_size, pad_left, pad_right)
