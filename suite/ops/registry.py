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


register_backend("torch", "suite.ops.pytorch", "PyTorch ops (CPU and CUDA): conv1d delays, whole-sequence LIF")
register_backend("numba-cuda", "suite.ops.numba_cuda",
                 "numba.cuda.jit kernels (GPU, or CPU via NUMBA_ENABLE_CUDASIM=1)")


def get_ops(name: str) -> ModuleType:
    """The backend module for ``name``; raises SuiteError for an unknown or unusable backend."""
    ops = _LOADED.get(name)
    if ops is not None:
        return ops
    if name not in BACKENDS:
        raise SuiteError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))}")
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
