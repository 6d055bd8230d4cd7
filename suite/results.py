"""Run records: one JSON file per run, written atomically, with a versioned schema (docs/records.md).

A record carries the run spec and its hash, the resolved protocol and model spec, the environment (package versions,
device, git commit and dirty flag), the per-epoch history and the metrics. Loading validates the schema so a corrupt or
foreign file in a results directory is reported with its path instead of breaking a leaderboard.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from suite.errors import SuiteError

SCHEMA = "delay-snn-suite/run-record"
SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema", "schema_version", "run_id", "spec", "protocol", "model_spec", "environment", "history",
                 "metrics")
REQUIRED_METRICS = ("test_acc_at_best_valid", "test_acc_last_epoch", "best_valid_acc")
RECORDS_DIR = "records"
CHECKPOINTS_DIR = "checkpoints"


def _umask() -> int:
    """The process umask (POSIX offers no read-only call: set it and put it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename: readers never see half a file.

    The file gets the mode ``open()`` would give it (0666 minus the umask), not mkstemp's private 0600, so results
    directories can be shared as the user's umask intends.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def record_path(out_dir: Path, protocol: str, variant: str, seed: int, run_id: str) -> Path:
    return out_dir / RECORDS_DIR / f"{protocol}__{variant}__seed{seed}__{run_id}.json"


def find_record(out_dir: Path, run_id: str) -> Path | None:
    """The record of ``run_id`` in ``out_dir`` if one exists (the file name ends with the id)."""
    matches = sorted((out_dir / RECORDS_DIR).glob(f"*__{run_id}.json"))
    return matches[0] if matches else None


def write_record(path: Path, record: dict[str, Any]) -> None:
    validate_record(record, str(path))
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def validate_record(record: Any, where: str) -> None:
    """Raise SuiteError naming ``where`` if ``record`` is not a run record of this schema version."""
    if not isinstance(record, dict):
        raise SuiteError(f"{where}: not a run record (top level is {type(record).__name__}, expected an object)")
    if record.get("schema") != SCHEMA:
        raise SuiteError(f"{where}: not a run record (schema is {record.get('schema')!r}, expected {SCHEMA!r})")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise SuiteError(f"{where}: record schema version {record.get('schema_version')!r} is not supported "
                         f"(this suite reads version {SCHEMA_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise SuiteError(f"{where}: run record lacks keys {missing}")
    metrics = record["metrics"]
    if not isinstance(metrics, dict):
        raise SuiteError(f"{where}: 'metrics' must be an object")
    for key in REQUIRED_METRICS:
        value = metrics.get(key)
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise SuiteError(f"{where}: metrics.{key} must be a fraction in [0, 1], got {value!r}")
    for key in ("variant", "protocol", "seed"):
        if key not in record["spec"]:
            raise SuiteError(f"{where}: spec lacks {key!r}")


def load_record(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise SuiteError(f"{path}: cannot read ({err.strerror})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise SuiteError(f"{path}: corrupt JSON at line {err.lineno} column {err.colno} ({err.msg})") from None
    validate_record(record, str(path))
    return record


def iter_records(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any] | SuiteError]]:
    """Every ``*.json`` under ``results_dir/records`` (or ``results_dir`` itself) with its record or its error."""
    if not results_dir.exists():
        raise SuiteError(f"{results_dir}: results directory does not exist")
    base = results_dir / RECORDS_DIR if (results_dir / RECORDS_DIR).is_dir() else results_dir
    for path in sorted(base.glob("*.json")):
        try:
            yield path, load_record(path)
        except SuiteError as err:
            yield path, err


def load_trained_model(path: Path, record: dict[str, Any]) -> Any:
    """Rebuild the selected model of a record: its ModelSpec and ``models/<run_id>.pt`` beside ``records/``."""
    import torch

    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec

    weights = path.parent.parent / "models" / f"{record['run_id']}.pt"
    if not weights.exists():
        raise SuiteError(f"{path}: its model file {weights} is missing")
    spec = ModelSpec(**record["model_spec"])
    net = DelayNetwork(spec, record["spec"].get("backend", "torch"))
    try:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as err:
        raise SuiteError(f"{weights}: cannot load into {spec.variant} ({type(err).__name__})") from None
    return net


CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root when running from a checkout


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


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict[str, Any]:
    """Package versions, machine, device and git state: what a reader needs to trust or reproduce a number."""
    import torch

    from suite.ops import native

    commit, dirty, git_note = git_state()
    env: dict[str, Any] = {
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
        "packages": {p: _version(p) for p in ("delay-snn-suite", "torch", "torchaudio", "numpy", "numba",
                                              "numba-cuda", "dcls", "spikingjelly")},
        "cpu_kernels": native.status() if device == "cpu" else None,
    }
    return env
