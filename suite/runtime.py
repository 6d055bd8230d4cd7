"""Process-wide CPU settings that training runs and benchmarks apply before any work (docs/performance.md).

Both change speed only: no reported accuracy depends on them, and the benchmarks apply them to every stack they
compare (ours, the published one and the dense reference run in the same process).
"""

from __future__ import annotations

import ctypes

import torch

from suite.errors import SuiteError

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 32 << 20
"""Blocks below this come from the heap instead of a fresh mapping; 32 MiB is the largest glibc accepts on 64-bit."""
TRIM_THRESHOLD_BYTES = 1 << 30
TOP_PAD_BYTES = 64 << 20


def flush_denormals() -> None:
    """Treat subnormal floats as zero on CPU. Once SIG has decayed, kernel taps, gradients and Adam moments hold
    values below 1e-38 that x86 CPUs process 10-100x slower (gsc-mini synaptic: 9 s instead of 0.9 s per epoch);
    they are far below float32 resolution of any sum they enter, so no reported number depends on them."""
    torch.set_flush_denormal(True)


def retain_freed_memory() -> bool:
    """Keep freed tensor memory in the process (glibc ``mallopt``) instead of returning it to the kernel.

    By default glibc serves every block above 128 KiB (adaptive up to 32 MiB) with its own ``mmap`` and unmaps it on
    free, so each training step's fresh activations are new pages: ~20 k minor page faults per step of the paper's
    GSC network at batch 16, 35 to 45 % of its time here. Raising the mmap threshold to 32 MiB and the trim
    threshold to 1 GiB makes freed blocks reusable (resident memory then stays at its high-water mark, which is what
    a training process reaches anyway). Returns False where the C library has no ``mallopt`` (not glibc).
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the process's own symbols, libc's among them
    if mallopt is None:
        return False
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                (_M_TOP_PAD, TOP_PAD_BYTES))
    return all(mallopt(param, value) == 1 for param, value in settings)


def configure_cpu_process(retain_memory: bool = True) -> dict[str, bool]:
    """Both settings (the allocator one unless ``retain_memory`` is False); returns what was applied."""
    flush_denormals()
    return {"flush_denormal": True, "retain_freed_memory": retain_memory and retain_freed_memory()}


def resolve_device(name: str, where: str) -> torch.device:
    """The torch device for a ``--device`` value, or a one-line SuiteError when it is malformed or not on this machine
    (torch itself fails deep inside the first ``.to()`` with a driver message and a traceback)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise SuiteError(f"{where}: {name!r} is not a device; expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SuiteError(f"{where}: no CUDA device is available to torch on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SuiteError(f"{where}: {name} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type != "cpu":
        raise SuiteError(f"{where}: device type {device.type!r} is not supported; expected cpu or cuda")
    return device

