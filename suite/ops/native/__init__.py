"""Compiled CPU kernels of the ``cpu-kernels`` backend: a torch C++ extension built on first use.

- ``depthwise.c``: the per-channel delay correlation (axonal, dendritic), forward and both gradients, float32.
- ``recurrences.c``: LIF and leaky readout over the whole sequence, forward and backward, float32 and float64.
- ``batchnorm_lif.c``: a hidden layer's BatchNorm (batch statistics) -> LIF -> dropout in two passes each way.
- ``gaussian.c``: the Gaussian per-channel delay kernels in the depthwise kernels' layout, and their position
  gradient from the depthwise backward's partial sums (the soft axonal/dendritic delay as one op).
- ``synaptic.c``: per-synapse delays over a window of taps (the soft synaptic delay at its active taps, and the
  hard synaptic delay as a gather), forward, input gradient and the gradient of the window's taps.
- ``kernels.cpp``: registers each kernel as a typed operator (``torch.ops.suite_kernels.*``, TORCH_LIBRARY) that
  checks its tensors, and runs the kernels' threads with ATen's ``at::parallel_for`` on PyTorch's own pool (pool.h).

Why C: the fast depthwise correlation keeps a tile of output vectors in registers across the D taps (Numba's loops
reloaded and stored the accumulators every tap and were slower than oneDNN), and these kernels must run on PyTorch's
own OpenMP pool: a second thread pool on the same cores makes both wait (docs/kernels.md).

Build (:func:`library`, once per sources, compilers, torch version and CPU, into a per-user cache): the C sources with
the system C compiler (``-O3 -march=native``), then ``torch.utils.cpp_extension.load`` (ninja, the system C++
compiler) builds ``kernels.cpp`` linked with them, in a child process; the library is moved into the cache
atomically and loaded with ``torch.ops.load_library``. Where it cannot be built (not Linux, no C or C++ compiler, no
ninja, a compiler error) ``library()`` is None and ``status()`` says why: asking for the ``cpu-kernels`` backend then
is a one-line error (:func:`suite.ops.cpu_kernels.check_available`).
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import torch

from suite.usercache import user_cache_root

HERE = Path(__file__).parent
SOURCES = tuple(HERE / name for name in ("depthwise.c", "recurrences.c", "batchnorm_lif.c", "gaussian.c", "synaptic.c"))
GLUE = HERE / "kernels.cpp"
HEADERS = tuple(HERE / name for name in ("pool.h", "neuron.h"))
FLAGS = ("-O3", "-march=native", "-std=gnu11", "-ffp-contract=fast", "-fPIC")
GLUE_FLAGS = ("-O2", "-fopenmp")
"""The glue is compiled with OpenMP: at::parallel_for is a header template whose ``#pragma omp parallel`` must be
compiled into it (without it, parallel_for runs serially). It links libgomp.so.1, which the loader resolves to the
libgomp torch has already loaded (same soname): one OpenMP pool in the process."""
COMPILE_TIMEOUT_S = 300
MIN_COLUMNS_PER_THREAD = 2048
"""Recurrences narrower than this per thread run on one thread: waking the pool costs more than it saves."""
_BUILD_SCRIPT = """
import sys
from torch.utils.cpp_extension import load
name, glue, include, build, flags, *objects = sys.argv[1:]
load(name=name, sources=[glue], extra_cflags=flags.split(), extra_include_paths=[include],
     extra_ldflags=[*objects, "-fopenmp"], build_directory=build, is_python_module=False, verbose=False)
"""

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


def _run(args: list[str], what: str, **kwargs) -> None:
    """Run a build step; OSError ``what: <its first error line>`` (not gcc's "In function ...") when it fails."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, errors="replace", check=False,
                              timeout=COMPILE_TIMEOUT_S, **kwargs)
    except subprocess.TimeoutExpired:
        raise OSError(f"{what}: took longer than {COMPILE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["no output"]
        first = next((line for line in lines if re.search(r"\berror:", line, re.IGNORECASE)), lines[-1])
        raise OSError(f"{what}: {first.strip()}")


def _version(compiler: str) -> str:
    return subprocess.run([compiler, "--version"], capture_output=True, text=True, errors="replace", check=False,
                          timeout=COMPILE_TIMEOUT_S).stdout


def _build(compiler: str, cxx: str) -> Path:
    """Build the extension (once per sources, compilers, torch and CPU) into the cache and return its path; nothing
    is loaded into this process (a child process runs cpp_extension), so a build can be repeated in tests."""
    texts = [path.read_text() for path in (*SOURCES, GLUE, *HEADERS)]
    key = hashlib.sha256("\0".join([*texts, compiler, _version(compiler), cxx, _version(cxx), " ".join(FLAGS),
                                     " ".join(GLUE_FLAGS), torch.__version__, _cpu_identity()]).encode())
    name = f"suite_kernels_{key.hexdigest()[:16]}"
    target = cache_dir() / f"{name}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        _run([compiler, *FLAGS, "-c", *map(str, SOURCES)], f"{compiler} failed on the CPU kernels", cwd=scratch)
        objects = [str(Path(scratch) / f"{source.stem}.o") for source in SOURCES]
        env = {**os.environ, "CXX": cxx, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                                   os.environ.get("PATH", "")])}  # a venv's ninja
        build = Path(scratch) / "build"
        build.mkdir()
        _run([sys.executable, "-c", _BUILD_SCRIPT, name, str(GLUE), str(HERE), str(build), " ".join(GLUE_FLAGS),
              *objects],
             f"{cxx} failed on the CPU kernels' torch extension (torch.utils.cpp_extension)", env=env)
        os.replace(build / f"{name}.so", target)  # atomic: a concurrent build of the same key writes the same bytes
    return target


def _register(path: Path) -> None:
    """Load the extension's operators, unless an earlier load in this process registered them already."""
    try:
        torch.ops.suite_kernels.constants  # noqa: B018 (the lookup raises when the namespace has no such operator)
    except (AttributeError, RuntimeError):
        torch.ops.load_library(str(path))


def _load() -> None:
    if platform.system() != "Linux":
        _state["reason"] = f"built only on Linux, not {platform.system()}"
        return
    compilers = {"C": os.environ.get("CC", "cc"), "C++": os.environ.get("CXX", "c++")}
    found = {kind: shutil.which(name) for kind, name in compilers.items()}
    missing = [f"no {kind} compiler ({compilers[kind]}) on PATH" for kind, path in found.items() if path is None]
    if missing:
        _state["reason"] = "; ".join(missing)
        return
    try:
        _register(_build(found["C"], found["C++"]))  # type: ignore[arg-type]
        vector_width, window_tile, window_max = torch.ops.suite_kernels.constants()
    except OSError as err:
        _state["reason"] = str(err)
        return
    except Exception as err:  # any failure to build or load: the backend reports it (status() says why)
        _state["reason"] = f"{type(err).__name__}: {err}"
        return
    _state.update(ops=torch.ops.suite_kernels, vector_width=vector_width, window_tile=window_tile,
                  window_max=window_max)


def library() -> torch._ops._OpNamespace | None:
    """The operators (``torch.ops.suite_kernels``; built and loaded on the first call), or None when unavailable."""
    if not _state:  # every eligibility check calls this: the lock is only needed until the first load is done
        with _lock:
            if not _state:
                _load()
    return _state.get("ops")


def status() -> str:
    """One line: whether the compiled kernels are in use, and why not if they are not."""
    if library() is None:
        return f"unavailable ({_state['reason']})"
    return f"compiled (torch extension, threads on PyTorch's pool), cache {cache_dir()}"


def _loaded() -> torch._ops._OpNamespace:
    """The operators, for the kernel wrappers (callers check eligibility first; this is the guard if they did not)."""
    lib = library()
    if lib is None:
        raise RuntimeError(f"compiled CPU kernels {status()}")
    return lib


def _pool(columns: int | None = None) -> int:
    """The team size of every kernel (its scratch and partial sums are per member): PyTorch's thread count;
    ``columns`` caps the threads of a narrow recurrence."""
    threads = torch.get_num_threads()
    if columns is not None:
        threads = max(1, min(threads, columns // MIN_COLUMNS_PER_THREAD))
    return threads


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
    _loaded().recurrence(kind, first, grad, out, out2, scratch_row, decay, threshold, scale, half_alpha, steps, width,
                         h_rows, _pool(width))


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


def _scratch(x: torch.Tensor, pool: int, taps: int, front: int, steps_out: int, backward: bool) -> torch.Tensor:
    """The per-thread buffers of a depthwise forward or backward over x (T, B, C) with ``taps`` taps."""
    return x.new_empty(pool * _loaded().scratch_floats(x.shape[0], taps, front, steps_out, backward))


def _weight_grad_partial(x: torch.Tensor, pool: int, reversed_taps: torch.Tensor) -> torch.Tensor:
    """The zeroed per-thread partial sums of dL/dtaps a depthwise backward adds into: (threads, rows, Cp)."""
    rows = _loaded().weight_grad_rows(reversed_taps.shape[0])
    return x.new_zeros(pool, rows, reversed_taps.shape[1])


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
    lib.depthwise_forward(x, taps, out, stats, scratch, steps, batch, channels, taps.shape[0], front, steps_out, pool)
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
    lib.depthwise_backward(x, grad_y, y, bn, reversed_taps, grad_x, partial, scratch, steps, batch, channels, taps,
                           pad_left, grad_y.shape[0], pool)
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
    _loaded().gaussian_taps(pos, pos.shape[0], kernel_size, taps.shape[1], sigma, eps, taps, _pool())
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
    _loaded().gaussian_position_grad(pos, taps, partial, partial.shape[0], partial.shape[1], pos.shape[0],
                                     taps.shape[0], partial.shape[2], sigma, grad_pos)
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


def _bn_scratch(x: torch.Tensor, pool: int, every: int) -> torch.Tensor:
    """The per-thread buffers of the BatchNorm -> LIF kernels over x (T, B, C): a chunk's H, V and one row."""
    return x.new_empty(pool * _loaded().bn_lif_scratch(x.shape[1], x.shape[2], every))


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
    gamma, beta = (p.detach().to(dtype).contiguous() for p in (weight, bias))
    f64 = torch.float64
    mean, var = torch.empty(channels, dtype=f64), torch.empty(channels, dtype=f64)
    work = torch.empty(2, channels, dtype=f64)
    partial = torch.zeros(pool, 2, channels, dtype=f64)
    lib.bn_lif_forward(x, gamma, beta, keep, out, checkpoints, scratch, row, channel, mean, var, work, partial, moments,
                       stats_only, eps, decay, v_threshold, steps, batch, channels, every, pool)
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
    gamma = weight.detach().to(dtype).contiguous()
    f64 = torch.float64
    grad_weight, grad_bias = torch.empty(channels, dtype=f64), torch.empty(channels, dtype=f64)
    work = torch.empty(channels, dtype=f64)
    partial = torch.zeros(pool, 2, channels, dtype=f64)
    every = _chunk_steps(x)
    scratch = _bn_scratch(x, pool, every)
    lib.bn_lif_backward(x, state.checkpoints, state.rows, scratch, grad, keep, gamma, mean, invstd, grad_x, channel,
                        grad_weight, grad_bias, work, partial, defer_input_grad, decay, v_threshold, scale, half_alpha,
                        steps, batch, channels, every, pool)
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
    lib.lif_delay_forward(z, keep, channel, taps, y, scratch, decay, v_threshold, steps, batch, channels, kernel_size,
                          pad_left, steps_out, pool)
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
    gamma = weight.detach().float().contiguous()
    pool = _pool()
    f64 = torch.float64
    grad_z, rows = torch.empty_like(z), z.new_empty(4, channels)
    grad_weight, grad_bias, work = (torch.empty(channels, dtype=f64) for _ in range(3))
    bn_partial = torch.zeros(pool, 2, channels, dtype=f64)
    dw_partial = _weight_grad_partial(z, pool, reversed_taps) if need_pos else None
    scratch = _scratch(z, pool, kernel_size, pad_left, grad_y.shape[0], backward=True)
    lib.lif_delay_backward(z, keep, channel, grad_y, reversed_taps, grad_z, bn_partial, dw_partial, scratch, gamma,
                           mean, invstd, grad_weight, grad_bias, work, rows, decay, v_threshold, scale, half_alpha,
                           steps, batch, channels, kernel_size, pad_left, grad_y.shape[0], pool)
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
    lib.window_correlate(src, taps, start, dst, n_dst, n_src, window, rows, steps_out,
                         padded // _state["vector_width"], _pool())
    return dst


def window_tap_grad(x: torch.Tensor, grad_y: torch.Tensor, start: torch.Tensor, window: int) -> torch.Tensor:
    """``ga[o, i, k] = sum_t <grad_y[t, :, o], x[i, t + start[o, i] + k]>``: (n_out, n_in, window) from a
    :func:`window_series` input ``x`` and the (T_out, B, n_out) output gradient."""
    lib = _loaded()
    n_in, rows, padded = x.shape
    steps_out, _, n_out = grad_y.shape
    series = window_series(grad_y, 0, steps_out + window - 1, source=False)
    ga = x.new_empty(n_out, n_in, window)
    lib.window_tap_grad(x, series, start, ga, n_out, n_in, window, rows, steps_out, padded // _state["vector_width"],
                        series.shape[1], _pool())
    return ga
