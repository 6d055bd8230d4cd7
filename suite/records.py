"""Run records: the record type, writing (atomic), loading, validation and grouping (docs/records.md).

A record carries the run spec and its hash, the resolved protocol and model spec, the environment (package versions,
device, git commit and dirty flag), the per-epoch history and the metrics. Loading validates the schema so a corrupt or
foreign file in a results directory is reported with its path instead of breaking a leaderboard. Every reader (the
runner, verify, the leaderboards, the site, the metrics table, bands) gets :class:`Record` objects from
:func:`load_record` / :func:`iter_records` and groups them with :func:`collect_runs`, so a record means the same
configuration, and the same comparability label, everywhere.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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


class Record(dict[str, Any]):
    """One schema-valid run record: its JSON object, the file it came from, and the accessors every reader shares.

    Build it with :func:`load_record` / :func:`iter_records` (validated on the way in) or :func:`write_record`. It stays
    the JSON object (a dict: ``record["metrics"]`` reaches what docs/records.md documents, ``json.dumps`` writes it),
    and compares equal to any dict with the same content, which is what a write -> load round trip must give.
    """

    def __init__(self, data: Mapping[str, Any], path: Path) -> None:
        super().__init__(data)
        self.path = path

    @property
    def run_id(self) -> str:
        return str(self["run_id"])

    @property
    def variant(self) -> str:
        return str(self["spec"]["variant"])

    @property
    def protocol(self) -> str:
        """The protocol's name (the ``protocol`` block is ``record["protocol"]``)."""
        return str(self["protocol"].get("name") or self["spec"]["protocol"])

    @property
    def protocol_version(self) -> int:
        return int(self["protocol"]["version"])

    @property
    def seed(self) -> int:
        return int(self["spec"]["seed"])

    @property
    def backend(self) -> str:
        return str(self["spec"].get("backend") or "torch")

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self["spec"].get("overrides") or {})

    @property
    def kernel_size(self) -> int | None:
        """D of the delays; None for a model without delays (its protocol's D does not describe it)."""
        from suite.kinds import uses_kernel_size

        model = self["model_spec"]
        kernel = model.get("kernel_size") if uses_kernel_size(model.get("delay_type")) else None
        return kernel if _is_int(kernel) else None

    @property
    def metrics(self) -> dict[str, Any]:
        return self["metrics"]

    @property
    def environment(self) -> dict[str, Any]:
        return self["environment"]

    @property
    def identity(self) -> dict[str, Any]:
        """The run-identity block (protocol hash, data fingerprint); empty for records written before identities."""
        identity = self.get("identity")
        return identity if isinstance(identity, dict) else {}

    @property
    def created(self) -> str:
        return str(self.get("created", ""))

    def metric(self, key: str) -> float | None:
        """A finite number at ``metrics[key]`` (a dotted key reaches into nested objects), else None."""
        node: Any = self["metrics"]
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        if not _is_number(node) or not math.isfinite(node):
            return None
        return float(node)


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


def record_name_parts(path: Path) -> tuple[str, str, str, str] | None:
    """(protocol, variant, ``seedN``, run id) from a file name :func:`record_path` made, else None."""
    parts = path.stem.rsplit("__", 3)
    return (parts[0], parts[1], parts[2], parts[3]) if len(parts) == 4 else None


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
    if isinstance(data, Mapping):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    return data


def write_record(path: Path, record: Mapping[str, Any]) -> Record:
    """Validate ``record`` and write it atomically to ``path``; returns the :class:`Record` a reader would load."""
    data = dict(record)
    validate_record(data, str(path))
    atomic_write_text(path, strict_json(data, indent=2, sort_keys=True) + "\n")
    return Record(data, path)


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


def load_record(path: Path) -> Record:
    """The validated record in ``path``; any problem is one SuiteError line naming the file (docs/records.md)."""
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
    return Record(record, path)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a run record is strict JSON: null for a missing number)")


def iter_records(results_dir: Path) -> Iterator[tuple[Path, Record | SuiteError]]:
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


def load_trained_model(path: Path, record: Mapping[str, Any]) -> Any:
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


# -------------------------------------------------------------------------------------------------------- grouping
@dataclass
class RunGroup:
    """The seeds of one configuration: what a leaderboard row, a verify check and a claim are computed from."""

    protocol: str
    protocol_version: int | None
    variant: str
    kernel_size: int | None
    overrides: str
    backend: str
    protocol_label: str = ""
    not_comparable: str | None = None
    protocol_hash: str = ""
    records: list[Record] = field(default_factory=list)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.protocol, self.protocol_hash, self.protocol_version, self.variant, self.kernel_size,
                self.overrides, self.backend)

    @property
    def label(self) -> str:
        """Short human name: variant, D, overrides and a non-default backend."""
        parts = [self.variant]
        if self.kernel_size is not None:
            parts.append(f"D={self.kernel_size}")
        if self.overrides:
            parts.append(self.overrides)
        if self.backend != "torch":
            parts.append(f"[{self.backend}]")
        return " ".join(parts)

    @property
    def seeds(self) -> list[int]:
        return [rec.seed for rec in self.records]

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(rec.path for rec in self.records)

    def values(self, metric_key: str) -> list[tuple[Path, float | None]]:
        """``(file, value or None)`` per seed for a record metric key."""
        return [(rec.path, rec.metric(metric_key)) for rec in self.records]


def overrides_text(overrides: Any) -> str:
    """Canonical overrides string; kernel_size is left out because it has its own column."""
    if not overrides:
        return ""
    items = overrides.items() if isinstance(overrides, dict) else overrides
    return ",".join(f"{k}={v}" for k, v in sorted((str(k), v) for k, v in items) if k != "kernel_size")


def group_of(record: Record) -> RunGroup:
    """The (empty) configuration ``record`` belongs to; a record whose protocol content differs from the registered
    protocol's gets its own label and a NOT COMPARABLE reason (suite/identity.py)."""
    from suite.identity import comparability, record_content
    from suite.specs import content_hash

    protocol = record["protocol"]
    label, reason = comparability(record.protocol, protocol)
    return RunGroup(protocol=record.protocol, protocol_version=record.protocol_version, variant=record.variant,
                    kernel_size=record.kernel_size, overrides=overrides_text(record.overrides),
                    backend=record.backend, protocol_label=label, not_comparable=reason,
                    protocol_hash=content_hash(record_content(protocol)))


def collect_runs(results_dir: Path) -> tuple[list[RunGroup], list[tuple[Path, str]], list[str]]:
    """Group the valid records under ``results_dir``; return (groups, [(bad file, reason)], warnings).

    The one grouping of the suite: verify, the leaderboards, the site, the claims, the bands and the metrics table all
    read their configurations from here. A file ``iter_records`` cannot load lands in the second list and nothing
    else is affected. Two records of one seed in one group (a copied file, or a rerun with --official-metric) keep
    the newest and add a warning, so a seed is never counted twice.
    """
    groups: dict[tuple[Any, ...], RunGroup] = {}
    errors: list[tuple[Path, str]] = []
    warnings: list[str] = []
    for path, item in iter_records(Path(results_dir)):
        if isinstance(item, SuiteError):
            errors.append((path, str(item)))
            continue
        group = group_of(item)
        groups.setdefault(group.key, group).records.append(item)
    contents: dict[str, set[str]] = {}
    for group in groups.values():
        contents.setdefault(group.protocol_label, set()).add(group.protocol_hash)
    for group in groups.values():  # an unregistered protocol run with other content: told apart by its hash
        if len(contents[group.protocol_label]) > 1:
            group.protocol_label += f" [protocol {group.protocol_hash[:6]}]"
        fingerprints = {rec.identity.get("data_fingerprint") for rec in group.records}
        if len(fingerprints) > 1:
            warnings.append(f"{group.protocol_label}: {group.label} pools records made on {len(fingerprints)} "
                            f"different data fingerprints (another --data-root or copy of the data)")
        by_seed: dict[int, Record] = {}
        for rec in sorted(group.records, key=lambda r: (r.created, str(r.path))):
            if rec.seed in by_seed:
                warnings.append(f"{by_seed[rec.seed].path}: same run as {rec.path.name} ({group.label}, seed "
                                f"{rec.seed}); using the newer {rec.path.name}")
            by_seed[rec.seed] = rec
        group.records = [by_seed[s] for s in sorted(by_seed)]
    ordered = sorted(groups.values(), key=lambda g: tuple("" if v is None else str(v) for v in g.key))
    return ordered, errors, warnings
