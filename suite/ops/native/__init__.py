"""Compiled C kernels of the PyTorch backend on CPU, built on first use with the system C compiler.

- ``depthwise.c``: the per-channel delay correlation (axonal, dendritic), forward and both gradients, float32.
- ``recurrences.c``: LIF and leaky readout over the whole sequence, forward and backward, float32 and float64.
- ``batchnorm_lif.c``: a hidden layer's BatchNorm (batch statistics) -> LIF -> dropout in two passes each way.
- ``gaussian.c``: the Gaussian per-channel delay kernels in the depthwise kernels' layout, and their position
  gradient from the depthwise backward's partial sums (the soft axonal/dendritic delay as one op).
- ``synaptic.c``: per-synapse delays over a window of taps (the soft synaptic delay at its active taps, and the
  hard synaptic delay as a gather), forward, input gradient and the gradient of the window's taps.

Why C: the fast depthwise correlation keeps a tile of output vectors in registers across the D taps (Numba's loops
reloaded and stored the accumulators every tap and were slower than oneDNN), and these kernels must run on PyTorch's
own OpenMP pool: a second thread pool on the same cores makes both wait (docs/kernels.md). The sources are
compiled with ``-O3 -march=native`` into a per-user cache keyed by the sources, the compiler and the CPU, loaded with
ctypes, and given libgomp's entry points from the libgomp PyTorch loaded (``pool.h``).

Nothing here is required: without a C compiler, on a platform other than Linux, or with ``SUITE_NATIVE=0``, the
backend uses PyTorch ops instead (same results within float rounding, slower) and ``status()`` says why
(``python -m suite doctor`` prints it).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import torch

from suite.usercache import user_cache_root

SOURCES = tuple(Path(__file__).with_name(name)
                for name in ("depthwise.c", "recurrences.c", "batchnorm_lif.c", "gaussian.c", "synaptic.c"))
HEADERS = tuple(Path(__file__).with_name(name) for name in ("pool.h", "neuron.h"))
FLAGS = ("-O3", "-march=native", "-std=gnu11", "-ffp-contract=fast", "-shared", "-fPIC")
LIBRARIES = ("-lm",)
COMPILE_TIMEOUT_S = 120
MIN_COLUMNS_PER_THREAD = 2048
"""Recurrences narrower than this per thread run on one thread: waking the pool costs more than it saves."""

_lock = threading.Lock()
_state: dict = {}


def cache_dir() -> Path:
    """Where compiled libraries live: ``$SUITE_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/delay-snn-suite/native``."""
    explicit = os.environ.get("SUITE_NATIVE_CACHE")
    if explicit:
        return Path(explicit)
    return user_cache_root() / "native"


def _cpu_identity() -> str:
    """Model and feature flags of this CPU: ``-march=native`` code must not be reused on a different one."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in ("model name", "flags")}))


def _run_compiler(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, errors="replace", check=False,
                          timeout=COMPILE_TIMEOUT_S)


def _build(compiler: str) -> Path:
    """Compile the sources (once per sources, compiler and CPU) and return the library's path."""
    version = _run_compiler(compiler, "--version").stdout
    texts = [path.read_text() for path in (*SOURCES, *HEADERS)]
    key = hashlib.sha256("\0".join([*texts, compiler, version, " ".join(FLAGS + LIBRARIES), _cpu_identity()]).encode())
    target = cache_dir() / f"suite-kernels-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        partial = Path(scratch) / target.name
        done = _run_compiler(compiler, *FLAGS, "-o", str(partial), *map(str, SOURCES), *LIBRARIES)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no output"]
            first = next((line for line in lines if "error" in line), lines[0])  # not gcc's "In function ..."
            raise OSError(f"{compiler} failed on the CPU kernels: {first}")
        os.replace(partial, target)  # atomic: a concurrent build of the same key writes the same bytes
    return target


def _torch_openmp() -> tuple[ctypes.CDLL | None, str]:
    """PyTorch's libgomp (already loaded by torch), whose pool the kernels borrow, or None for serial kernels."""
    if "ATen parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None, "serial: PyTorch's parallel backend is not OpenMP"
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None, "serial: no /proc/self/maps"
    loaded = sorted({line.split()[-1] for line in maps if "libgomp" in line.split()[-1]})
    torch_lib = str(Path(torch.__file__).parent / "lib")
    candidates = [path for path in loaded if path.startswith(torch_lib)] or loaded
    if not candidates:
        return None, "serial: PyTorch loaded no libgomp"
    return ctypes.CDLL(candidates[0]), f"threads from {candidates[0]}"


def _declare(lib: ctypes.CDLL) -> None:
    pointer, int_, long_, double = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double
    pool = [pointer, pointer, pointer, int_]
    lib.suite_depthwise_forward.argtypes = [pointer] * 5 + [int_] * 6 + pool
    lib.suite_depthwise_backward.argtypes = [pointer] * 8 + [int_] * 6 + pool
    lib.suite_depthwise_forward.restype = lib.suite_depthwise_backward.restype = None
    lib.suite_scratch_floats.argtypes = [int_] * 5
    lib.suite_scratch_floats.restype = long_
    lib.suite_recurrence.argtypes = [int_, int_] + [pointer] * 5 + [double] * 4 + [long_] * 3 + pool
    lib.suite_bn_lif_forward.argtypes = [int_] + [pointer] * 14 + [int_] + [double] * 3 + [long_] * 4 + pool
    lib.suite_bn_lif_backward.argtypes = [int_] + [pointer] * 15 + [int_] + [double] * 4 + [long_] * 4 + pool
    lib.suite_recurrence.restype = lib.suite_bn_lif_forward.restype = lib.suite_bn_lif_backward.restype = None
    lib.suite_bn_lif_scratch.argtypes = [long_] * 3
    lib.suite_bn_lif_scratch.restype = long_
    lib.suite_gaussian_taps.argtypes = [pointer] + [int_] * 3 + [double] * 2 + [pointer] + pool
    lib.suite_gaussian_position_grad.argtypes = [pointer] * 3 + [int_] * 5 + [double, pointer]
    lib.suite_gaussian_taps.restype = lib.suite_gaussian_position_grad.restype = None
    lib.suite_lif_delay_forward.argtypes = [pointer] * 6 + [double] * 2 + [int_] * 6 + pool
    lib.suite_lif_delay_backward.argtypes = [pointer] * 16 + [double] * 4 + [int_] * 6 + pool
    lib.suite_lif_delay_forward.restype = lib.suite_lif_delay_backward.restype = None
    lib.suite_set_team_barrier.argtypes, lib.suite_set_team_barrier.restype = [pointer], None
    lib.suite_window_correlate.argtypes = [pointer] * 4 + [int_] * 6 + pool
    lib.suite_window_tap_grad.argtypes = [pointer] * 4 + [int_] * 7 + pool
    lib.suite_window_correlate.restype = lib.suite_window_tap_grad.restype = None


def _load() -> None:
    if platform.system() != "Linux":
        _state["reason"] = f"built only on Linux, not {platform.system()}"
        return
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        _state["reason"] = f"no C compiler ({os.environ.get('CC', 'cc')}) on PATH"
        return
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
        _declare(lib)
        gomp, threads = _torch_openmp()
        entries = [ctypes.cast(getattr(gomp, name), ctypes.c_void_p) if gomp else None
                   for name in ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads", "GOMP_barrier")]
        lib.suite_set_team_barrier(entries.pop())  # the axonal fusion's backward has two phases in one region
    except OSError as err:
        _state["reason"] = str(err)
        return
    except Exception as err:  # any failure to build or load: the backend reports it (status() says why)
        _state["reason"] = f"{type(err).__name__}: {err}"
        return
    _state.update(lib=lib, vector_width=lib.suite_vector_width(), threads=threads, pool=entries,
                  window_tile=lib.suite_window_tile(), window_max=lib.suite_window_max())


def library() -> ctypes.CDLL | None:
    """The loaded library (building it on the first call), or None when it is unavailable."""
    if not _state:  # every eligibility check calls this: the lock is only needed until the first load is done
        with _lock:
            if not _state:
                _load()
    return _state.get("lib")


def status() -> str:
    """One line: whether the compiled kernels are in use, and why not if they are not."""
    if library() is None:
        return f"unavailable ({_state['reason']})"
    return f"compiled ({_state['threads']}), cache {cache_dir()}"


def _loaded() -> ctypes.CDLL:
    """The library, for the kernel wrappers (callers check eligibility first; this is the guard if they did not)."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"compiled CPU kernels {status()}")
    return lib


def _pool(columns: int | None = None) -> list:
    """The pool arguments of every kernel; ``columns`` caps the threads of a narrow recurrence."""
    threads = torch.get_num_threads()
    if columns is not None:
        threads = max(1, min(threads, columns // MIN_COLUMNS_PER_THREAD))
    return [*_state["pool"], threads]


# ------------------------------------------------------------------------------------------- recurrences

LIF_FORWARD, LIF_BACKWARD, READOUT_FORWARD, READOUT_BACKWARD = range(4)


def recurrences_eligible(x: torch.Tensor) -> bool:
    """CPU float32/float64 tensors with the library available."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and library() is not None


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(T, ...) -> contiguous (T, N) (a view when ``x`` is contiguous)."""
    return x.detach().contiguous().reshape(x.shape[0], math.prod(x.shape[1:]))


def _recurrence(kind: int, first: torch.Tensor, out: torch.Tensor, *, grad: torch.Tensor | None = None,
                out2: torch.Tensor | None = None, decay: float = 0.0, threshold: float = 0.0, scale: float = 0.0,
                half_alpha: float = 0.0, h_rows: int = 0) -> None:
    """Run one recurrence kernel; ``first`` and ``grad`` are contiguous (T, N), outputs are preallocated."""
    steps, width = first.shape
    scratch_row = first.new_empty(width) if kind == LIF_FORWARD else None
    address = [t.data_ptr() if t is not None else None for t in (first, grad, out, out2, scratch_row)]
    _loaded().suite_recurrence(kind, int(first.dtype == torch.float64), *address, decay, threshold, scale, half_alpha,
                               steps, width, h_rows, *_pool(width))


def lif_forward(x: torch.Tensor, decay: float, v_threshold: float, keep_h: bool) -> tuple[torch.Tensor | None,
                                                                                            torch.Tensor]:
    """(H, S) of the LIF over (T, ...) ``x``; H is None unless ``keep_h`` (the backward needs it)."""
    rows = _rows(x)
    h_seq = torch.empty_like(rows) if keep_h else rows.new_empty(1, rows.shape[1])
    spikes = torch.empty_like(rows)
    _recurrence(LIF_FORWARD, rows, h_seq, out2=spikes, decay=decay, threshold=v_threshold, h_rows=h_seq.shape[0])
    return (h_seq.view(x.shape) if keep_h else None), spikes.view(x.shape)


def lif_backward(h_seq: torch.Tensor, grad_spikes: torch.Tensor, decay: float, v_threshold: float, scale: float,
                 half_alpha: float) -> torch.Tensor:
    """dL/dX of the LIF from the saved H and dL/dS."""
    rows = _rows(h_seq)
    grad_x = torch.empty_like(rows)
    _recurrence(LIF_BACKWARD, rows, grad_x, grad=_rows(grad_spikes.to(h_seq.dtype)), decay=decay,
                threshold=v_threshold, scale=scale, half_alpha=half_alpha)
    return grad_x.view(h_seq.shape)


def leaky(x: torch.Tensor, decay: float, backward: bool) -> torch.Tensor:
    """The readout's V over (T, ...) ``x`` (forward), or dL/dX from dL/dV (``backward``: the reversed recurrence)."""
    rows = _rows(x)
    out = torch.empty_like(rows)
    _recurrence(READOUT_BACKWARD if backward else READOUT_FORWARD, rows, out, decay=decay)
    return out.view(x.shape)


# ------------------------------------------------------------------------------------ depthwise correlation


def depthwise_eligible(x: torch.Tensor, kernel: torch.Tensor, pad_left: int, pad_right: int) -> bool:
    """CPU float32 (T, B, C) input and (C, D) kernel, 0 <= pad_left < D, pad_right >= 0, and the library available.
    Anything else (a kernel of the wrong shape included) goes to oneDNN, which raises the shape errors."""
    return (x.device.type == kernel.device.type == "cpu" and x.dtype == kernel.dtype == torch.float32
            and x.dim() == 3 and kernel.dim() == 2 and kernel.shape[0] == x.shape[2]
            and 0 <= pad_left < kernel.shape[1] and pad_right >= 0 and library() is not None)


def _padded_channels(channels: int) -> int:
    """Channels rounded up to whole vectors of the kernels."""
    _loaded()
    width = _state["vector_width"]
    return -(-channels // width) * width


def _taps(kernel: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """The (C, D) kernel as the kernels read it: tap-major (D, Cp), channels zero-padded to whole vectors."""
    channels, taps = kernel.shape
    out = kernel.new_zeros(taps, _padded_channels(channels))
    out[:, :channels] = (kernel.detach().flip(1) if reverse else kernel.detach()).t()
    return out


def _scratch(x: torch.Tensor, pool: list, taps: int, front: int, steps_out: int, backward: bool) -> torch.Tensor:
    """The per-thread buffers of a depthwise forward or backward over x (T, B, C) with ``taps`` taps."""
    return x.new_empty(pool[-1] * _loaded().suite_scratch_floats(x.shape[0], taps, front, steps_out, int(backward)))


def _weight_grad_partial(x: torch.Tensor, pool: list, reversed_taps: torch.Tensor) -> torch.Tensor:
    """The zeroed per-thread partial sums of dL/dtaps a depthwise backward adds into: (threads, rows, Cp)."""
    rows = _loaded().suite_weight_grad_rows(reversed_taps.shape[0])
    return x.new_zeros(pool[-1], rows, reversed_taps.shape[1])


def _correlate(x: torch.Tensor, taps: torch.Tensor, front: int, steps_out: int, moments: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y (steps_out, B, C), ``y[t] = sum_k taps[k] x[t + k - front]`` with x = 0 outside its steps; ``taps`` is
    (D, Cp) as :func:`_taps` lays it out. With ``moments``, also y's per-(batch item, channel) mean and sum of squared
    deviations over its steps, (B, 2, C) float64 (what :func:`batchnorm_lif_forward` takes instead of a pass over
    y); else None."""
    lib = _loaded()
    steps, batch, channels = x.shape
    out = x.new_empty(steps_out, batch, channels)
    stats = torch.empty(batch, 2, channels, dtype=torch.float64) if moments else None
    pool = _pool()
    scratch = _scratch(x, pool, taps.shape[0], front, steps_out, backward=False)
    lib.suite_depthwise_forward(x.data_ptr(), taps.data_ptr(), out.data_ptr(), stats.data_ptr() if moments else None,
                                scratch.data_ptr(), steps, batch, channels, taps.shape[0], front, steps_out, *pool)
    return out, stats


def _correlate_backward(x: torch.Tensor, reversed_taps: torch.Tensor, grad_y: torch.Tensor, pad_left: int,
                        need_x: bool, need_taps: bool, batchnorm: tuple[torch.Tensor, torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """dL/dx (T, B, C) and the per-thread partial sums of dL/dtaps, (threads, suite_weight_grad_rows(D), Cp), in one
    pass, each only if asked for. The input gradient is the correlation of the gradient, padded by
    D - 1 - pad_left in front, with reversed taps; each thread sums its share of the tap gradient into its own partial.
    With ``batchnorm = (channel, y)`` (``channel`` (4, C): a, mean dY, mean, m2 from :func:`batchnorm_lif_backward`
    with ``defer_input_grad``; ``y`` the BatchNorm input), ``grad_y`` is dY and the gradient of y is
    ``a ((dY - mean dY) - (y - mean) m2)``, computed as it is gathered.
    """
    lib = _loaded()
    steps, batch, channels = x.shape
    taps = reversed_taps.shape[0]
    grad_y = grad_y.detach().contiguous()
    pool = _pool()
    grad_x = x.new_empty(steps, batch, channels) if need_x else None
    partial = _weight_grad_partial(x, pool, reversed_taps) if need_taps else None
    scratch = _scratch(x, pool, taps, pad_left, grad_y.shape[0], backward=True)
    y = bn = None
    if batchnorm is not None:
        channel, y = batchnorm[0], batchnorm[1].detach().contiguous()
        bn = x.new_zeros(4, reversed_taps.shape[1])
        bn[:, :channels] = channel
    lib.suite_depthwise_backward(
        x.data_ptr(), grad_y.data_ptr(), y.data_ptr() if y is not None else None,
        bn.data_ptr() if bn is not None else None, reversed_taps.data_ptr(),
        grad_x.data_ptr() if need_x else None, partial.data_ptr() if need_taps else None, scratch.data_ptr(), steps,
        batch, channels, taps, pad_left, grad_y.shape[0], *pool)
    return grad_x, partial


def _steps_out(steps: int, taps: int, pad_left: int, pad_right: int) -> int:
    return steps + pad_left + pad_right - taps + 1


def depthwise_forward(x: torch.Tensor, kernel: torch.Tensor, pad_left: int, pad_right: int) -> torch.Tensor:
    """The padded correlation of a (T, B, C) input with a (C, D) kernel:
    ``y[t] = sum_k kernel[:, k] x[t + k - pad_left]`` (x = 0 outside [0, T)), t < T + pad_left + pad_right - D + 1.
    """
    steps_out = _steps_out(x.shape[0], kernel.shape[1], pad_left, pad_right)
    return _correlate(x.detach().contiguous(), _taps(kernel), pad_left, steps_out)[0]


def depthwise_backward(x: torch.Tensor, kernel: torch.Tensor, grad_y: torch.Tensor, pad_left: int, need_x: bool,
                       need_k: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """dL/dx (T, B, C) and dL/dkernel (C, D) of :func:`depthwise_forward`, each only if asked for, in one pass."""
    if not (need_x or need_k):
        return None, None
    grad_x, partial = _correlate_backward(x, _taps(kernel, reverse=True), grad_y, pad_left, need_x, need_k)
    channels, taps = kernel.shape
    grad_k = partial.sum(0)[:taps, :channels].t() if partial is not None else None
    return grad_x, grad_k


def gaussian_delay_eligible(x: torch.Tensor, pos: torch.Tensor, kernel_size: int, pad_left: int,
                            pad_right: int) -> bool:
    """CPU float32 (T, B, C) input, (C,) float32 positions, 0 <= pad_left < D, pad_right >= 0, library available."""
    return (x.device.type == pos.device.type == "cpu" and x.dtype == pos.dtype == torch.float32 and x.dim() == 3
            and pos.shape == (x.shape[2],) and 0 <= pad_left < kernel_size and pad_right >= 0
            and library() is not None)


def gaussian_taps(pos: torch.Tensor, kernel_size: int, sigma: float, eps: float) -> torch.Tensor:
    """The Gaussian kernels of the (C,) float32 positions in the depthwise kernels' layout, (D, Cp): row k holds tap k
    of every channel (``sigma`` = |SIG| + offset; ``eps`` the normaliser's)."""
    pos = pos.detach().contiguous()
    taps = pos.new_empty(kernel_size, _padded_channels(pos.shape[0]))
    _loaded().suite_gaussian_taps(pos.data_ptr(), pos.shape[0], kernel_size, taps.shape[1], sigma, eps,
                                  taps.data_ptr(), *_pool())
    return taps


def gaussian_kernel(pos: torch.Tensor, kernel_size: int, sigma: float, eps: float) -> torch.Tensor:
    """The (C, D) kernel of :func:`gaussian_taps`, for tests and inspection."""
    return gaussian_taps(pos, kernel_size, sigma, eps)[:, :pos.shape[0]].t()


def gaussian_delay_forward(x: torch.Tensor, taps: torch.Tensor, pad_left: int, pad_right: int,
                           moments: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`depthwise_forward` with the kernels of :func:`gaussian_taps`; with ``moments`` also the output's
    (B, 2, C) moments (see :func:`_correlate`), else None."""
    steps_out = _steps_out(x.shape[0], taps.shape[0], pad_left, pad_right)
    return _correlate(x.detach().contiguous(), taps, pad_left, steps_out, moments)


def gaussian_delay_backward(x: torch.Tensor, pos: torch.Tensor, taps: torch.Tensor, sigma: float,
                            grad_y: torch.Tensor, pad_left: int, need_x: bool, need_pos: bool,
                            batchnorm: tuple[torch.Tensor, torch.Tensor] | None = None
                            ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """dL/dx and dL/dpos of :func:`gaussian_delay_forward` (``taps``: the forward's), each only if asked for: one
    depthwise backward pass, then the position gradient in closed form from its per-thread partial sums of the kernel
    gradient. ``batchnorm``: see :func:`_correlate_backward`."""
    if not (need_x or need_pos):
        return None, None
    grad_x, partial = _correlate_backward(x, taps.flip(0), grad_y, pad_left, need_x, need_pos, batchnorm)
    return grad_x, _position_grad(pos, taps, partial, sigma)


def _position_grad(pos: torch.Tensor, taps: torch.Tensor, partial: torch.Tensor | None,
                   sigma: float) -> torch.Tensor | None:
    """dL/dpos of the Gaussian kernels ``taps`` from the depthwise backward's kernel-gradient partials (None: not
    asked)."""
    if partial is None:
        return None
    pos = pos.detach().contiguous()
    grad_pos = torch.empty_like(pos)
    _loaded().suite_gaussian_position_grad(pos.data_ptr(), taps.data_ptr(), partial.data_ptr(), partial.shape[0],
                                           partial.shape[1], pos.shape[0], taps.shape[0], partial.shape[2], sigma,
                                           grad_pos.data_ptr())
    return grad_pos


# ------------------------------------------------------------------------- BatchNorm -> LIF -> dropout


def _mask(keep: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """The (B, C) dropout mask as the kernels read it (ones without dropout; a broadcastable mask is expanded, any
    other shape raises as ``x * keep`` would)."""
    if keep is None:
        return x.new_ones(x.shape[1], x.shape[2])
    return keep.detach().to(x.dtype).expand(x.shape[1], x.shape[2]).contiguous()


CHUNK_BYTES = 1 << 19  # H of the whole batch over one checkpointed chunk: each of two threads keeps its half in L2


def _chunk_steps(x: torch.Tensor) -> int:
    """Steps per chunk of the BatchNorm -> LIF kernels' checkpoints over x (T, B, C) (see batchnorm_lif.c)."""
    return max(1, CHUNK_BYTES // (x.shape[1] * x.shape[2] * x.element_size()))


def _bn_scratch(x: torch.Tensor, pool: list, every: int) -> torch.Tensor:
    """The per-thread buffers of the BatchNorm -> LIF kernels over x (T, B, C): a chunk's H, V and one row."""
    return x.new_empty(pool[-1] * _loaded().suite_bn_lif_scratch(x.shape[1], x.shape[2], every))


def _bn_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor, eps: float,
                decay: float, v_threshold: float, moments: torch.Tensor | None, stats_only: bool
                ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """suite_bn_lif_forward: (output, checkpoints, mean, var, channel rows a, beta, mean); output and checkpoints
    None if stats_only."""
    lib = _loaded()
    steps, batch, channels = x.shape
    pool = _pool(batch * channels)
    dtype = x.dtype
    out = checkpoints = scratch = row = None
    every = _chunk_steps(x)
    if not stats_only:
        out, row = torch.empty_like(x), x.new_empty(batch, channels)
        checkpoints, scratch = x.new_empty(-(-steps // every), batch, channels), _bn_scratch(x, pool, every)
    channel = x.new_empty(4, channels)
    gamma, beta = (p.detach().to(dtype).contiguous() for p in (weight, bias))  # alive across the call
    f64 = torch.float64
    mean, var = torch.empty(channels, dtype=f64), torch.empty(channels, dtype=f64)
    work = torch.empty(2, channels, dtype=f64)
    partial = torch.zeros(pool[-1], 2, channels, dtype=f64)
    address = [t.data_ptr() if t is not None else None for t in (keep, out, checkpoints, scratch, row, moments)]
    lib.suite_bn_lif_forward(
        int(dtype == f64), x.data_ptr(), gamma.data_ptr(), beta.data_ptr(), *address[:5], channel.data_ptr(),
        mean.data_ptr(), var.data_ptr(), work.data_ptr(), partial.data_ptr(), address[5], int(stats_only), eps, decay,
        v_threshold, steps, batch, channels, every, *pool)
    return out, checkpoints, mean, var, channel


class NeuronState(NamedTuple):
    """What :func:`batchnorm_lif_backward` needs of its forward besides x: H is not stored but computed again, chunk
    by chunk, from the membrane ``checkpoints`` (chunks, B, C) and the ``rows`` a, beta, mean (4, C) of the forward
    (bit-identical to a stored H)."""

    checkpoints: torch.Tensor
    rows: torch.Tensor


def batchnorm_lif_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor | None,
                          eps: float, decay: float, v_threshold: float, moments: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, NeuronState, torch.Tensor, torch.Tensor]:
    """(output, the state the backward needs, batch mean, biased batch variance) of BatchNorm with batch statistics
    -> LIF -> ``* keep``.

    ``x`` (T, B, C) contiguous; ``keep`` (B, C) or None; mean and variance come back as float64 (C,) tensors.
    ``moments``: x's per-batch-item moments from :func:`gaussian_delay_forward` (float32 x only), which replace the
    statistics pass over x.
    """
    out, checkpoints, mean, var, rows = _bn_forward(x, weight, bias, _mask(keep, x), eps, decay, v_threshold, moments,
                                                    False)
    return out, NeuronState(checkpoints, rows), mean, var  # type: ignore[arg-type, return-value]


def batchnorm_lif_backward(x: torch.Tensor, state: NeuronState, grad_out: torch.Tensor, keep: torch.Tensor | None,
                           weight: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, decay: float,
                           v_threshold: float, scale: float, half_alpha: float, defer_input_grad: bool = False
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """dL/dx, dL/dweight, dL/dbias of :func:`batchnorm_lif_forward` (``state``, ``mean``, ``invstd``: what it returned,
    the stats as float64) and the (4, C) rows a, mean dY, mean, m2 of dL/dx = a ((dY - mean dY) - (x - mean) m2).
    With ``defer_input_grad`` the first tensor is dY instead (the dendritic delay's backward applies that formula as
    it gathers it)."""
    lib = _loaded()
    steps, batch, channels = x.shape
    dtype = x.dtype
    keep, pool = _mask(keep, x), _pool(batch * channels)
    grad = grad_out.detach().to(dtype).contiguous()
    grad_x, channel = torch.empty_like(x), x.new_empty(4, channels)
    gamma = weight.detach().to(dtype).contiguous()  # alive across the call
    f64 = torch.float64
    grad_weight, grad_bias = torch.empty(channels, dtype=f64), torch.empty(channels, dtype=f64)
    work = torch.empty(channels, dtype=f64)
    partial = torch.zeros(pool[-1], 2, channels, dtype=f64)
    every = _chunk_steps(x)
    scratch = _bn_scratch(x, pool, every)
    lib.suite_bn_lif_backward(
        int(dtype == f64), x.data_ptr(), state.checkpoints.data_ptr(), state.rows.data_ptr(), scratch.data_ptr(),
        grad.data_ptr(), keep.data_ptr(), gamma.data_ptr(), mean.data_ptr(), invstd.data_ptr(), grad_x.data_ptr(),
        channel.data_ptr(), grad_weight.data_ptr(), grad_bias.data_ptr(), work.data_ptr(), partial.data_ptr(),
        int(defer_input_grad), decay, v_threshold, scale, half_alpha, steps, batch, channels, every, *pool)
    return grad_x, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), channel


# -------------------------------------------- BatchNorm -> LIF -> dropout -> the next layer's axonal delay


def lif_delay_forward(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, keep: torch.Tensor | None,
                      eps: float, decay: float, v_threshold: float, taps: torch.Tensor, pad_left: int, pad_right: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, channel rows, batch mean, biased batch variance): :func:`batchnorm_lif_forward` of the float32 (T, B, C)
    ``z`` followed by :func:`gaussian_delay_forward` of its output with ``taps`` (:func:`gaussian_taps`). Neither the
    spikes nor H are stored (built block by block in the depthwise kernel's buffers); the (4, C) channel rows (a,
    beta, mean as the kernels use them) are what :func:`lif_delay_backward` needs to compute H again."""
    lib = _loaded()
    z = z.detach().contiguous()
    steps, batch, channels = z.shape
    keep = _mask(keep, z)
    _, _, mean, var, channel = _bn_forward(z, weight, bias, keep, eps, decay, v_threshold, None, True)
    kernel_size = taps.shape[0]
    steps_out = _steps_out(steps, kernel_size, pad_left, pad_right)
    y = z.new_empty(steps_out, batch, channels)
    pool = _pool()
    scratch = _scratch(z, pool, kernel_size, pad_left, steps_out, backward=False)
    lib.suite_lif_delay_forward(z.data_ptr(), keep.data_ptr(), channel.data_ptr(), taps.data_ptr(), y.data_ptr(),
                                scratch.data_ptr(), decay, v_threshold, steps, batch, channels, kernel_size, pad_left,
                                steps_out, *pool)
    return y, channel, mean, var


def lif_delay_backward(z: torch.Tensor, channel: torch.Tensor, keep: torch.Tensor | None, weight: torch.Tensor,
                       mean: torch.Tensor, invstd: torch.Tensor, pos: torch.Tensor, taps: torch.Tensor, sigma: float,
                       grad_y: torch.Tensor, pad_left: int, need_pos: bool, decay: float,
                       v_threshold: float, scale: float, half_alpha: float
                       ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(dL/dz, dL/dpos or None, dL/dweight, dL/dbias) of :func:`lif_delay_forward` (``channel``: its channel rows):
    one parallel region that computes each block's H and spikes again, runs the LIF's reverse recurrence on it (the
    spikes' gradient is never stored), and then finishes the BatchNorm input gradient in place."""
    lib = _loaded()
    steps, batch, channels = z.shape
    keep = _mask(keep, z)
    kernel_size, reversed_taps = taps.shape[0], taps.flip(0)
    grad_y = grad_y.detach().contiguous()
    gamma = weight.detach().float().contiguous()  # alive across the call
    pool = _pool()
    f64 = torch.float64
    grad_z, rows = torch.empty_like(z), z.new_empty(4, channels)
    grad_weight, grad_bias, work = (torch.empty(channels, dtype=f64) for _ in range(3))
    bn_partial = torch.zeros(pool[-1], 2, channels, dtype=f64)
    dw_partial = _weight_grad_partial(z, pool, reversed_taps) if need_pos else None
    scratch = _scratch(z, pool, kernel_size, pad_left, grad_y.shape[0], backward=True)
    lib.suite_lif_delay_backward(
        z.data_ptr(), keep.data_ptr(), channel.data_ptr(), grad_y.data_ptr(), reversed_taps.data_ptr(),
        grad_z.data_ptr(), bn_partial.data_ptr(), dw_partial.data_ptr() if dw_partial is not None else None,
        scratch.data_ptr(), gamma.data_ptr(), mean.data_ptr(), invstd.data_ptr(), grad_weight.data_ptr(),
        grad_bias.data_ptr(), work.data_ptr(), rows.data_ptr(), decay, v_threshold, scale, half_alpha, steps, batch,
        channels, kernel_size, pad_left, grad_y.shape[0], *pool)
    grad_weight, grad_bias = grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)
    return grad_z, _position_grad(pos, taps, dw_partial, sigma), grad_weight, grad_bias


# ---------------------------------------------------------------------------------------------- synaptic windows


def window_eligible(x: torch.Tensor, window: int) -> bool:
    """CPU float32 (T, B, N_in) input, a window of at most the kernels' ``MAX_WINDOW`` taps, library available."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 3 and library() is not None
            and 1 <= window <= _state["window_max"])


def window_series(x: torch.Tensor, front: int, rows: int, source: bool = True) -> torch.Tensor:
    """x (T, B, C) as the window kernels read it: channel-major (C, rows, Bp) with x[t] at row ``front + t`` and
    zeros elsewhere, Bp = B rounded up to whole vectors. A ``source`` of :func:`window_correlate` gets TILE more zero
    rows (what a last, partial tile of outputs reads)."""
    steps, batch, channels = x.shape
    _loaded()
    width = _state["vector_width"]
    out = x.new_zeros(channels, rows + (_state["window_tile"] if source else 0), -(-batch // width) * width)
    out[:, front: front + steps, :batch] = x.detach().permute(2, 0, 1)
    return out


def time_major(series: torch.Tensor, batch: int) -> torch.Tensor:
    """(C, T, Bp) channel-major series back to a (T, B, C) tensor."""
    return series[:, :, :batch].permute(1, 2, 0).contiguous()


def window_correlate(src: torch.Tensor, taps: torch.Tensor, start: torch.Tensor, steps_out: int) -> torch.Tensor:
    """``dst[d, t] = sum_s sum_k taps[d, s, k] src[s, t + start[d, s] + k]`` for t < steps_out: (n_dst, steps_out,
    Bp) from :func:`window_series` sources, taps (n_dst, n_src, W) float32 and start (n_dst, n_src) int32."""
    lib = _loaded()
    n_src, rows, padded = src.shape
    n_dst, _, window = taps.shape
    dst = src.new_empty(n_dst, steps_out, padded)
    lib.suite_window_correlate(src.data_ptr(), taps.data_ptr(), start.data_ptr(), dst.data_ptr(), n_dst, n_src,
                               window, rows, steps_out, padded // _state["vector_width"], *_pool())
    return dst


def window_tap_grad(x: torch.Tensor, grad_y: torch.Tensor, start: torch.Tensor, window: int) -> torch.Tensor:
    """``ga[o, i, k] = sum_t <grad_y[t, :, o], x[i, t + start[o, i] + k]>``: (n_out, n_in, window) from a
    :func:`window_series` input ``x`` and the (T_out, B, n_out) output gradient."""
    lib = _loaded()
    n_in, rows, padded = x.shape
    steps_out, _, n_out = grad_y.shape
    series = window_series(grad_y, 0, steps_out + window - 1, source=False)
    ga = x.new_empty(n_out, n_in, window)
    lib.suite_window_tap_grad(x.data_ptr(), series.data_ptr(), start.data_ptr(), ga.data_ptr(), n_out, n_in, window,
                              rows, steps_out, padded // _state["vector_width"], series.shape[1], *_pool())
    return ga
