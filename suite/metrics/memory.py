"""Peak memory of a training step and of batch inference (docs/metrics.md "Memory").

Both numbers are *peak tensor memory*: the bytes held at the worst moment of one call, persistent tensors included
(parameters, buffers, gradients, optimiser state, the batch) plus the call's transient peak (activations, saved
tensors, workspaces).

- CUDA: ``persistent = torch.cuda.memory_allocated()`` before the call; ``transient = max_memory_allocated() -
  memory_allocated()`` around it after ``reset_peak_memory_stats`` (PyTorch's caching-allocator counters).
- CPU: PyTorch keeps no allocation counters for CPU tensors, and ``tracemalloc`` only sees Python's own allocator
  (tensor storage comes from ``c10::alloc_cpu`` via ``posix_memalign``), so neither can be used. The measurement runs
  in a fresh subprocess (``python -m suite.metrics.memory``, JSON on stdin and stdout) with glibc's mmap threshold
  fixed at 64 KiB (``MALLOC_MMAP_THRESHOLD_``): every tensor storage above that is its own mapping, returned to the
  kernel when freed, so the process's resident set follows live tensor memory instead of the allocator's free lists.
  After the warm-up calls (optimiser state, lazy library initialisation, code pages), the kernel's RSS high-water mark
  is reset (``/proc/self/clear_refs`` = 5) and ``transient = VmHWM after - VmRSS before``; ``persistent`` is the sum
  of the distinct storages of the parameters, buffers, gradients, optimiser state and batch. Without
  ``/proc/self/clear_refs`` (not Linux) the warm-up is skipped and ``ru_maxrss`` after minus before the first call is
  used instead (an upper-biased fallback, labelled in ``method``).

This module is the suite's one memory worker: every fresh-process measurement, this module's and ``suite bench``'s
(mode ``bench``, :func:`suite.bench.memory_worker`), goes through :func:`measure_in_subprocess` and :func:`main`.
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from suite.errors import SuiteError

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
"""Environment of the measuring subprocess: glibc serves allocations >= 64 KiB by mmap and unmaps them on free."""
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _status_bytes(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise SuiteError(f"{_STATUS}: no {key} line")
    return int(match.group(1)) * 1024


def hwm_reset_available() -> bool:
    """True where the kernel's RSS high-water mark can be reset (Linux >= 4.0, /proc writable)."""
    try:
        _CLEAR_REFS.write_text("5")
        return _STATUS.exists()
    except OSError:
        return False


def cpu_method() -> str:
    return "rss-hwm-reset" if hwm_reset_available() else "ru_maxrss-delta"


def peak_memory(fn: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """Transient peak bytes of one call ``fn()`` above the memory in use when it starts.

    CUDA: PyTorch's allocator counters (exact tensor bytes). CPU: resident-set high-water mark after a reset, meant for
    a fresh process started with :data:`MALLOC_ENV` (see the module docstring); elsewhere freed memory that glibc kept
    may be reused unseen and the number is a lower bound.
    """
    dev = torch.device(device)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - before)
    if hwm_reset_available():
        _CLEAR_REFS.write_text("5")
        before = _status_bytes("VmRSS")
        fn()
        return max(0, _status_bytes("VmHWM") - before)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return max(0, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * scale)


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and shared tensors counted once)."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.numel() == 0:
            continue
        storage = t.untyped_storage()
        key = (str(t.device), storage.data_ptr())
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


def peak_rss_bytes() -> int:
    """This process's resident-set high-water mark: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``VmHWM`` belongs to the address space, which ``exec`` replaces; ``ru_maxrss`` does not restart at ``exec``, so in a
    child of a large process it reports at least the parent's resident set at ``fork``.
    """
    try:
        return _status_bytes("VmHWM")
    except (OSError, SuiteError):
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def prepare_worker(request: Mapping[str, Any]) -> torch.device:
    """Set up a fresh measuring process as every worker mode needs it: the backend (compiled kernels) built or loaded
    before anything is measured (so no compiler memory is counted), the requested thread count, the seed."""
    device = torch.device(request.get("device", "cpu"))
    from suite.ops.registry import get_ops

    get_ops(request.get("backend", "torch"))
    if request.get("threads"):
        torch.set_num_threads(int(request["threads"]))
    torch.manual_seed(int(request.get("seed", 0)))
    return device


def _optimiser_tensors(optimisers: Iterable[torch.optim.Optimizer]) -> list[torch.Tensor]:
    found = []
    for opt in optimisers:
        for state in opt.state.values():
            found += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return found


def _measure(request: Mapping[str, Any]) -> dict[str, Any]:
    """Run inside the fresh subprocess: build, warm up, measure one call."""
    from suite.metrics.latency import make_train_step
    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec

    mode = request["mode"]
    device = prepare_worker(request)
    method = cpu_method() if device.type == "cpu" else "cuda-max-memory-allocated"
    warmup = int(request.get("warmup", 1)) if method != "ru_maxrss-delta" else 0
    keep: list[torch.Tensor] = []
    if mode == "probe":  # known allocation, for testing the method itself
        n = int(request["bytes"]) // 4

        def fn() -> None:
            t = torch.ones(n, device=device)
            del t
    else:
        spec = ModelSpec(**request["spec"])
        batch, steps = int(request["batch"]), int(request["T"])
        net = DelayNetwork(spec, request.get("backend", "torch")).to(device)
        x = torch.rand(steps, batch, spec.n_inputs, device=device)
        labels = torch.randint(0, spec.n_outputs, (batch,), device=device)
        if mode == "train":
            step = make_train_step(net, x, labels)
            model = net

            def fn() -> None:
                step()
        elif mode == "inference":
            model = net.hard_copy()
            del net

            def fn() -> None:
                with torch.no_grad():
                    model(x)
        else:
            raise SuiteError(f"memory request: mode must be 'train', 'inference' or 'probe', got {mode!r}")
        keep = [x, labels, *model.parameters(), *model.buffers()]
    for _ in range(warmup):
        fn()
    if mode == "train":
        keep += [p.grad for p in model.parameters() if p.grad is not None]
        keep += _optimiser_tensors(step.optimisers)  # type: ignore[attr-defined]
    gc.collect()
    persistent = torch.cuda.memory_allocated(device) if device.type == "cuda" else tensor_bytes(keep)
    transient = peak_memory(fn, device)
    return {"peak_bytes": int(persistent + transient), "persistent_bytes": int(persistent),
            "transient_bytes": int(transient), "device": str(device), "method": method, "mode": mode,
            "warmup": warmup, "threads": torch.get_num_threads()}


def measure_in_subprocess(request: Mapping[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run one measurement request in a fresh ``python -m suite.metrics.memory`` process; return its JSON answer."""
    env = {**os.environ, **MALLOC_ENV}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "suite.metrics.memory"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise SuiteError(f"memory measurement ({request.get('mode')}) took longer than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SuiteError(f"memory measurement ({request.get('mode')}) failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _spec_dict(spec: Any) -> dict[str, Any]:
    data = asdict(spec) if is_dataclass(spec) else dict(spec)
    return json.loads(json.dumps(data))


def training_step_peak_memory(spec: Mapping[str, Any] | Any, backend: str = "torch", batch: int = 128, T: int = 100,
                              device: str = "cpu", seed: int = 0, warmup: int = 1, threads: int | None = None,
                              timeout: float = 600.0) -> dict[str, Any]:
    """Peak memory of one training step (the protocol's step, :func:`suite.metrics.latency.make_train_step`) of a
    freshly built model of ``spec`` (a ModelSpec or its dict) on a random (T, batch) input, in a subprocess.

    Keys: ``peak_bytes``, ``persistent_bytes``, ``transient_bytes``, ``device``, ``method``, ``mode``, ``warmup``,
    ``threads``.
    """
    return measure_in_subprocess({"mode": "train", "spec": _spec_dict(spec), "backend": backend, "batch": batch,
                                  "T": T, "device": device, "seed": seed, "warmup": warmup, "threads": threads},
                                 timeout)


def inference_peak_memory(spec: Mapping[str, Any] | Any, backend: str = "torch", batch: int = 128, T: int = 100,
                          device: str = "cpu", seed: int = 0, warmup: int = 1, threads: int | None = None,
                          timeout: float = 600.0) -> dict[str, Any]:
    """Peak memory of one hard-delay eval forward (no autograd) of ``spec`` on a (T, batch) input, in a subprocess.
    Same keys as :func:`training_step_peak_memory`."""
    return measure_in_subprocess({"mode": "inference", "spec": _spec_dict(spec), "backend": backend, "batch": batch,
                                  "T": T, "device": device, "seed": seed, "warmup": warmup, "threads": threads},
                                 timeout)


def main() -> None:
    """``python -m suite.metrics.memory``: one JSON request on stdin, one JSON answer line on stdout."""
    request = json.loads(sys.stdin.read())
    if request.get("mode") == "bench":
        from suite.bench import memory_worker

        print(json.dumps(memory_worker(request)))
    else:
        print(json.dumps(_measure(request)))


if __name__ == "__main__":
    main()
