"""Run records: one JSON file per run, written atomically, with a versioned schema (docs/records.md).

A record carries the run spec and its hash, the resolved protocol and model spec, the environment (package versions,
device, git commit and dirty flag), the per-epoch history and the metrics. Loading validates the schema so a corrupt or
foreign file in a results directory is reported with its path instead of breaking a leaderboard.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import stat
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
MODELS_DIR = "models"
#: Run ids are hex digests (RunSpec.run_id); anything else in a record could steer a file name out of its folder.
RUN_ID = re.compile(r"[0-9a-f]{6,64}")
#: Protocol names end up in file names (leaderboard tables, plots): no separators, no leading dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9._+\-]{0,127}")
#: A run record is a few hundred kB at most; a larger file is not one, and is never read into memory.
MAX_RECORD_BYTES = 32 * 1024 * 1024


def _umask() -> int:
    """The process umask (POSIX offers no read-only call: set it and put it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename: readers never see half a file.

    A filesystem failure (disk full, file too large, read-only or unwritable folder, a file where a folder should be)
    is a SuiteError naming the path; the previous file, if any, is left as it was. The file gets the mode ``open()``
    would give it (0666 minus the umask), not mkstemp's private 0600, so results directories can be shared as the
    user's umask intends.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise SuiteError(f"{path}: cannot write ({os_reason(err, str(path), tmp)})") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            Path(tmp).unlink(missing_ok=True)


def os_reason(err: OSError, *named: str | None) -> str:
    """The strerror of an OSError, plus the path it concerns unless that is one the message already names."""
    reason = err.strerror or type(err).__name__
    return f"{reason}: {err.filename}" if err.filename and str(err.filename) not in named else reason


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def record_path(out_dir: Path, protocol: str, variant: str, seed: int, run_id: str) -> Path:
    return out_dir / RECORDS_DIR / f"{protocol}__{variant}__seed{seed}__{run_id}.json"


def find_record(out_dir: Path, run_id: str) -> Path | None:
    """The record of ``run_id`` in ``out_dir`` if one exists (the file name ends with the id)."""
    matches = sorted((out_dir / RECORDS_DIR).glob(f"*__{run_id}.json"))
    return matches[0] if matches else None


def strict_json(data: Any, **options: Any) -> str:
    """``json.dumps`` that writes only strict JSON: NaN and infinities (which ``json`` would write as the non-JSON
    tokens NaN / Infinity) become null, e.g. the loss of a diverged epoch (docs/metrics.md)."""
    return json.dumps(_finite(data), allow_nan=False, **options)


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data


def write_record(path: Path, record: dict[str, Any]) -> None:
    validate_record(record, str(path))
    atomic_write_text(path, strict_json(record, indent=2, sort_keys=True) + "\n")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # bool is an int subclass in Python


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _need(ok: bool, where: str, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise SuiteError(f"{where}: {key} must be {expected}, got {value!r}"[:400])


def _metric_ok(value: Any) -> bool:
    """Metric values: numbers, null, strings (a method's name), or lists of those (per-layer values)."""
    if isinstance(value, list):
        return all(v is None or isinstance(v, str) or _is_number(v) for v in value)
    return value is None or isinstance(value, str) or _is_number(value)


def validate_record(record: Any, where: str) -> None:
    """Raise SuiteError naming ``where`` and the field if ``record`` is not a run record of this schema version.

    Types are checked strictly (``true`` is not a number, ``"0"`` is not a seed) on every field a reader relies on;
    docs/records.md and suite/schemas/run-record.schema.json describe the full record.
    """
    if not isinstance(record, dict):
        raise SuiteError(f"{where}: not a run record (top level is {type(record).__name__}, expected an object)")
    if record.get("schema") != SCHEMA:
        raise SuiteError(f"{where}: not a run record (schema is {record.get('schema')!r}, expected {SCHEMA!r})")
    if record.get("schema_version") != SCHEMA_VERSION or not _is_int(record.get("schema_version")):
        raise SuiteError(f"{where}: record schema version {record.get('schema_version')!r} is not supported "
                         f"(this suite reads version {SCHEMA_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise SuiteError(f"{where}: run record lacks keys {missing}")
    run_id = record["run_id"]
    _need(isinstance(run_id, str) and RUN_ID.fullmatch(run_id) is not None, where, "run_id",
          "a hex string of 6 to 64 characters", run_id)
    for key in ("spec", "protocol", "model_spec", "environment", "metrics"):
        _need(isinstance(record[key], dict), where, key, "an object", record[key])
    _need(isinstance(record["history"], list), where, "history", "a list", record["history"])
    spec, protocol, model = record["spec"], record["protocol"], record["model_spec"]
    for key in ("variant", "protocol"):
        if key not in spec:
            raise SuiteError(f"{where}: spec lacks {key!r}")
    _need(isinstance(spec["variant"], str) and spec["variant"] != "", where, "spec.variant", "a non-empty string",
          spec["variant"])
    _need(isinstance(spec["protocol"], str) and SAFE_NAME.fullmatch(spec["protocol"]) is not None, where,
          "spec.protocol", "a name of letters, digits and . _ + - (not starting with a dot)", spec["protocol"])
    if "seed" not in spec:
        raise SuiteError(f"{where}: spec lacks 'seed'")
    _need(_is_int(spec["seed"]) and spec["seed"] >= 0, where, "spec.seed", "a non-negative integer", spec["seed"])
    _need(isinstance(spec.get("backend", "torch"), str), where, "spec.backend", "a string", spec.get("backend"))
    _need(isinstance(spec.get("overrides", {}), dict), where, "spec.overrides", "an object", spec.get("overrides"))
    _need(isinstance(spec.get("official_metric", False), bool), where, "spec.official_metric", "true or false",
          spec.get("official_metric"))
    name = protocol.get("name", spec["protocol"])
    _need(isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None, where, "protocol.name",
          "a name of letters, digits and . _ + - (not starting with a dot)", name)
    _need(name == spec["protocol"], where, "protocol.name", f"the spec's protocol {spec['protocol']!r}", name)
    version = protocol.get("version")
    _need(_is_int(version) and version >= 1, where, "protocol.version", "a positive integer", version)
    _need(model.get("variant", spec["variant"]) == spec["variant"], where, "model_spec.variant",
          f"the spec's variant {spec['variant']!r}", model.get("variant"))
    kernel = model.get("kernel_size")
    _need(kernel is None or (_is_int(kernel) and kernel >= 1 and kernel % 2 == 1), where, "model_spec.kernel_size",
          "a positive odd integer", kernel)
    metrics = record["metrics"]
    for key in REQUIRED_METRICS:
        value = metrics.get(key)
        _need(_is_number(value) and 0.0 <= value <= 1.0, where, f"metrics.{key}", "a fraction in [0, 1]", value)
    for key, value in metrics.items():
        _need(_metric_ok(value), where, f"metrics.{key}", "a number, string, null or a list of those", value)
    for key in ("best_epoch", "epochs"):
        _need(key not in metrics or _is_int(metrics[key]), where, f"metrics.{key}", "an integer", metrics.get(key))


def read_regular_file(path: Path, limit: int = MAX_RECORD_BYTES, follow_links: bool = False) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a FIFO, device or folder; not a link unless
    ``follow_links``) of at most ``limit`` bytes.

    Checked on the open descriptor (O_NONBLOCK and O_NOFOLLOW, then fstat), so a FIFO named ``*.json`` never blocks
    and a link planted in a shared folder is never followed out of it.
    """
    nofollow = 0 if follow_links else getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | nofollow)
    except OSError as err:
        if nofollow and os.path.islink(path):
            raise SuiteError(f"{path}: is a symbolic link; not followed") from None
        raise SuiteError(f"{path}: cannot read ({os_reason(err, str(path))})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
                "not a regular file"
            raise SuiteError(f"{path}: is {kind}, not a file")
        if info.st_size > limit:
            raise SuiteError(f"{path}: {info.st_size} bytes, over the limit of {limit} for this kind of file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as err:
        raise SuiteError(f"{path}: cannot read ({os_reason(err, str(path))})") from None
    finally:
        os.close(fd)


def load_record(path: Path) -> dict[str, Any]:
    data = read_regular_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SuiteError(f"{path}: not UTF-8 text (byte {err.start}); not a run record") from None
    try:
        record = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise SuiteError(f"{path}: corrupt JSON at line {err.lineno} column {err.colno} ({err.msg})") from None
    except ValueError as err:
        raise SuiteError(f"{path}: {err}") from None
    validate_record(record, str(path))
    return record


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a run record is strict JSON: null for a missing number)")


def iter_records(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any] | SuiteError]]:
    """Every ``*.json`` under ``results_dir/records`` (or ``results_dir`` itself) with its record or its error."""
    if not results_dir.exists():
        raise SuiteError(f"{results_dir}: results directory does not exist")
    if not results_dir.is_dir():
        raise SuiteError(f"{results_dir}: not a results directory (a file)")
    base = results_dir / RECORDS_DIR if (results_dir / RECORDS_DIR).is_dir() else results_dir
    try:
        paths = sorted(base.glob("*.json"))
    except OSError as err:
        raise SuiteError(f"{base}: cannot list ({os_reason(err, str(base))})") from None
    for path in paths:
        try:
            yield path, load_record(path)
        except SuiteError as err:
            yield path, err


def load_trained_model(path: Path, record: dict[str, Any]) -> Any:
    """Rebuild the selected model of a record: its ModelSpec and ``models/<run_id>.pt`` beside ``records/``."""
    import torch

    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec

    validate_record(record, str(path))  # the run id names the weights file: only hex ids get this far
    weights = path.parent.parent / MODELS_DIR / f"{record['run_id']}.pt"
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
