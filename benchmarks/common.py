"""Shared set-up of the asv benchmarks: threads, fixed-seed inputs, the paper's sizes, the backends on this machine.

Benchmarks import the project lazily inside ``setup`` so that one file imports on every commit ``benchmarks/record.sh``
visits; a feature a commit lacks raises ``NotImplementedError`` in ``setup``, which asv reports as skipped.
"""

from __future__ import annotations

import importlib.util
import os

# asv.conf.json uses the forkserver launch method: this module (and torch) is imported once in the server process and
# every benchmark runs in a fork of it. Two rules keep the forks healthy: the server must not initialise CUDA (hence
# the NVML-based device check) and must not start OpenMP's thread pool (hence no thread setting or tensor work at
# import: ``prepare()`` does it inside each benchmark's setup).
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


def _isolate_worktree() -> None:
    """Under benchmarks/record.sh (SUITE_BENCH_WORKTREE set), import the project from that worktree only.

    The editable install's import hook maps ``suite.*`` to the main checkout; left in place it would serve a module that
    an old commit lacks from the main checkout instead of failing, so it is removed here.
    """
    import sys

    worktree = os.environ.get("SUITE_BENCH_WORKTREE")
    if not worktree:
        return
    def keep(hook: object) -> bool:
        return "editable" not in getattr(hook, "__name__", type(hook).__name__).lower()

    sys.meta_path[:] = [f for f in sys.meta_path if keep(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if keep(h)]
    sys.path_importer_cache.clear()
    if worktree not in sys.path:
        sys.path.insert(0, worktree)


_isolate_worktree()

import torch  # noqa: E402

THREADS = int(os.environ.get("SUITE_BENCH_THREADS", "2"))
"""Intra-op threads for every benchmark (the CPU table in docs/performance.md uses 2)."""

try:  # imported here so that the forked benchmark processes find them loaded; old commits may lack some
    import suite.models.network
    import suite.ops.pytorch
    import suite.specs  # noqa: F401
except ImportError:
    pass
try:
    import DCLS.construct.modules  # noqa: F401
    import spikingjelly.activation_based.neuron  # noqa: F401
except ImportError:
    pass


def prepare() -> None:
    """Call first in every setup: the thread count (and the thread pool) of this benchmark process, and the process
    settings the runner uses (``suite.runtime``; commits older than that module run without them)."""
    torch.set_num_threads(THREADS)
    try:
        from suite.runtime import configure_cpu_process
    except ImportError:
        return
    configure_cpu_process()


# The paper's sizes (docs/protocol-facts.md): GSC 40 inputs x 98 frames, SSC 140 x 100, hidden 512, outputs 35,
# batch 16 on CPU.
GSC_INPUTS, GSC_STEPS = 40, 98
SSC_INPUTS = 140
HIDDEN, OUTPUTS = 512, 35
BATCH = 16 if not torch.cuda.is_available() else 128
KERNEL_SIZES = [15, 31]
try:
    from suite.kinds import PUBLISHED_KINDS as DELAY_KINDS
except ImportError:  # commits before suite/kinds: the delay types of specs.py less 'none'
    from suite.specs import DELAY_TYPES as _ALL_TYPES

    DELAY_KINDS = _ALL_TYPES[1:]
DELAY_TYPES = list(DELAY_KINDS)


def backends() -> list[str]:
    """'torch' and 'cpu-kernels' on CPU (commits before the named backends skip 'cpu-kernels': their 'torch' ran the
    compiled kernels), plus 'torch-cuda' and 'numba-cuda' where a GPU (and numba) is present."""
    names = ["torch", "cpu-kernels"]
    if torch.cuda.is_available():
        names.append("torch-cuda")
        if importlib.util.find_spec("numba") is not None:
            names.append("numba-cuda")
    return names


def resolve(name: str) -> tuple[str, torch.device]:
    """Benchmark backend label -> (ops backend name, device)."""
    if name in ("torch", "cpu-kernels"):
        return name, torch.device("cpu")
    if name == "torch-cuda":
        return "torch", torch.device("cuda")
    return name, torch.device("cuda")


def ops_for(name: str):
    """(ops module, device) of a benchmark backend label; NotImplementedError (asv: skipped) when unusable."""
    from suite.ops.registry import get_ops

    backend, device = resolve(name)
    try:
        return get_ops(backend), device
    except Exception as err:  # SuiteError from the registry, or an import problem in an old commit
        raise NotImplementedError(f"backend {name}: {err}") from None


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def spikes(steps: int, batch: int, channels: int, rate: float = 0.15, seed: int = 0) -> torch.Tensor:
    """Fixed-seed binary spike trains (T, B, C)."""
    return (torch.rand(steps, batch, channels, generator=generator(seed)) < rate).float()


def features(steps: int, batch: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Fixed-seed real-valued inputs in [0, 3) (the hidden layers of a fresh model spike on them)."""
    return torch.rand(steps, batch, channels, generator=generator(seed)) * 3.0


def positions(shape: tuple[int, ...], kernel_size: int, seed: int = 1) -> torch.Tensor:
    half = kernel_size // 2
    return torch.empty(shape).uniform_(-half - 1, half, generator=generator(seed)).clamp_(-half, half)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device: torch.device, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` after one warm-up call (for the ratio ``track_*`` benchmarks)."""
    from suite.timing import time_callable

    return time_callable(fn, device, warmup=1, repeats=repeats)["median_s"]
