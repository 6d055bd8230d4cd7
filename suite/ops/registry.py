"""Backend lookup by name. Backends register a module path here; importing happens on first use so that a missing
optional dependency (numba) only matters to whoever asks for that backend."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from suite.errors import SuiteError
from suite.ops import BACKEND_FUNCTIONS


@dataclass(frozen=True)
class Backend:
    name: str
    module: str
    description: str


BACKENDS: dict[str, Backend] = {}
_LOADED: dict[str, ModuleType] = {}


def register_backend(name: str, module: str, description: str) -> None:
    BACKENDS[name] = Backend(name, module, description)


register_backend("torch", "suite.ops.pytorch",
                 "the PyTorch reference (CPU and CUDA): oneDNN/cuDNN depthwise delays, per-step LIF, matmul synaptic "
                 "delays")
register_backend("cpu-kernels", "suite.ops.cpu_kernels",
                 "compiled CPU kernels (torch C++ extension, built on first use) with fused training stages; CPU only")
register_backend("numba-cuda", "suite.ops.numba_cuda",
                 "numba.cuda.jit kernels (GPU, or CPU via NUMBA_ENABLE_CUDASIM=1)")

AUTO = "auto"
DEFAULT_BACKEND = AUTO
"""What ``run``, ``sweep``, ``bench`` and the metrics use when no backend is named: :func:`resolve` turns it into a
registered name once, when a run is set up (the resolved name is what the run id and the record hold)."""
CPU_ONLY = frozenset({"cpu-kernels"})
BACKEND_HELP = ("torch (the PyTorch reference), cpu-kernels (compiled CPU kernels, fused stages), numba-cuda, or auto "
                "(default): cpu-kernels on a CPU device where they build, else torch, per variant among its "
                "backends; the resolved name enters the run id and the record")


def resolve(name: str, device: str, supported: tuple[str, ...] | None = None) -> str:
    """The registered backend a run uses: ``auto`` is ``cpu-kernels`` on a CPU device where the kernels build, else
    ``torch``, taking only backends in ``supported`` (a variant's) when given; a named backend is checked
    (SuiteError: unknown, unusable here, or CPU-only on another device)."""
    device_type = device.split(":")[0]
    if name == AUTO:
        for candidate in ("cpu-kernels", "torch"):
            if (supported is not None and candidate not in supported) or \
                    (candidate in CPU_ONLY and device_type != "cpu"):
                continue
            try:
                get_ops(candidate)
                return candidate
            except SuiteError:
                continue
        raise SuiteError(f"backend 'auto' picks cpu-kernels or torch; the variant supports "
                         f"{', '.join(supported or ())} on device {device!r}: name one with --backend")
    get_ops(name)
    if name in CPU_ONLY and device_type != "cpu":
        raise SuiteError(f"backend {name!r} runs on the CPU only, not on device {device!r}; use --backend torch")
    return name


def get_ops(name: str) -> ModuleType:
    """The backend module for ``name``; raises SuiteError for an unknown or unusable backend."""
    ops = _LOADED.get(name)
    if ops is not None:
        return ops
    if name not in BACKENDS:
        raise SuiteError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))} (or {AUTO!r})")
    try:
        ops = importlib.import_module(BACKENDS[name].module)
    except ImportError as err:
        raise SuiteError(f"backend {name!r} cannot be imported: {err}") from None
    check = getattr(ops, "check_available", None)
    if check is not None:
        check()
    missing = [f for f in BACKEND_FUNCTIONS if not hasattr(ops, f)]
    if missing:
        raise SuiteError(f"backend {name!r} ({BACKENDS[name].module}) lacks {missing}")
    _LOADED[name] = ops
    return ops
