"""Environment capture, written once: what a reader needs to trust or reproduce a number.

The run record's ``environment`` block (:func:`record_environment`, docs/records.md), ``suite bench``'s report and
``suite doctor``'s header all take their facts from here: package versions, the machine and CPU, the device and the
git state of the code that ran.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root when running from a checkout
#: Distributions whose versions change numbers or speed; every run record names them (null when not installed).
PACKAGES = ("delay-snn-suite", "torch", "torchaudio", "numpy", "numba", "numba-cuda", "dcls", "spikingjelly")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=CHECKOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, why not known) of the code that runs. An installed package (a wheel in site-packages) is not a
    checkout even when site-packages lies inside some other repository, so the top level must be the package's own."""
    top = _git("rev-parse", "--show-toplevel")
    if top is None:
        return None, None, "not a git checkout (installed package, or git unavailable)"
    if Path(top).resolve() != CHECKOUT:
        return None, None, f"not a git checkout (the package is installed inside another repository, {top})"
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, bool(status) if status is not None else None, None if commit else "git rev-parse HEAD failed"


def package_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else what ``platform`` knows of the processor."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record_environment(device: str) -> dict[str, Any]:
    """The run record's ``environment`` block: package versions, machine, device, CPU kernels and git state."""
    import torch

    from suite.ops import native

    commit, dirty, git_note = git_state()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.machine(),
        "git_commit": commit,
        "git_dirty": dirty,
        "git_note": git_note,  # why git_commit is null; null when it is known
        "packages": {p: package_version(p) for p in PACKAGES},
        "cpu_kernels": native.status() if device == "cpu" else None,
    }
