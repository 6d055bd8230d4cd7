"""Frozen specifications: what to build (ModelSpec), how to train and score it (ProtocolSpec), one run (RunSpec).

Specs are plain data with YAML round trips and validation that names the offending key. A RunSpec has a stable short
hash id, so records, checkpoints and `run --all` resumption key on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from suite.errors import SuiteError

DELAY_TYPES = ("none", "synaptic", "axonal", "dendritic")
PASSTHROUGH_MODES = ("official", "zero")


def _check(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise SuiteError(f"{where}: {message}")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a feed-forward delay SNN (defaults: the paper's GSC model, docs/protocol-facts.md 'Network').

    ``passthrough`` only matters when ``delay_sparsity > 0``: ``official`` reproduces the released code (masked lines
    pass through the front-padded input, i.e. delayed by D - 1, and each layer grows by D - 1 + (D - 1) / 2 steps);
    ``zero`` gives masked lines delay 0, which is what "sparse delays" means.
    """

    variant: str = "axonal"
    delay_type: str = "axonal"
    n_inputs: int = 40
    n_hidden: tuple[int, ...] = (512, 512, 512)
    n_outputs: int = 35
    kernel_size: int = 31
    tau: float = 1.5
    v_threshold: float = 1.0
    surrogate_alpha: float = 5.0
    dropout: float = 0.25
    batchnorm: bool = True
    delay_sparsity: float = 0.0
    passthrough: str = "official"
    weight_sparsity: float = 0.0
    sig_final: float = 0.23
    sig_start: float | None = None
    sig_decay_fraction: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_hidden", tuple(int(n) for n in self.n_hidden))
        self.validate("model")

    def validate(self, where: str) -> None:
        """Raise SuiteError naming ``where`` and the key for any value the builders cannot honour."""
        _check(self.delay_type in DELAY_TYPES, f"{where}.delay_type",
               f"{self.delay_type!r} is not one of {DELAY_TYPES}")
        _check(self.passthrough in PASSTHROUGH_MODES, f"{where}.passthrough",
               f"{self.passthrough!r} is not one of {PASSTHROUGH_MODES}")
        for key in ("n_inputs", "n_outputs"):
            _check(int(getattr(self, key)) > 0, f"{where}.{key}", f"must be a positive size, got {getattr(self, key)}")
        _check(len(self.n_hidden) > 0 and all(n > 0 for n in self.n_hidden), f"{where}.n_hidden",
               f"must be a non-empty list of positive sizes, got {list(self.n_hidden)}")
        _check(self.kernel_size >= 1 and self.kernel_size % 2 == 1, f"{where}.kernel_size",
               f"must be a positive odd number of steps, got {self.kernel_size}")
        _check(self.tau > 1.0, f"{where}.tau", f"must exceed 1 step (decay = 1 - 1/tau), got {self.tau}")
        _check(0.0 < self.sig_decay_fraction <= 1.0, f"{where}.sig_decay_fraction",
               f"must be in (0, 1], got {self.sig_decay_fraction}")
        for key in ("delay_sparsity", "weight_sparsity", "dropout"):
            value = getattr(self, key)
            _check(0.0 <= value < 1.0, f"{where}.{key}", f"must be in [0, 1), got {value}")
        _check(self.delay_sparsity == 0.0 or self.delay_type in ("axonal", "dendritic"), f"{where}.delay_sparsity",
               f"delay sparsity needs axonal or dendritic delays, not {self.delay_type!r}")

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        """(N_in, N_out) of every layer, the output layer last."""
        sizes = [self.n_inputs, *self.n_hidden, self.n_outputs]
        return list(itertools.pairwise(sizes))

    @property
    def sig_init(self) -> float:
        """Initial Gaussian SIG: ``sig_start`` if set (DCLS-delays SHD: D // 3), else D // 2 (official ``sigInit``)."""
        return float(self.sig_start) if self.sig_start is not None else float(self.kernel_size // 2)

    def sig_decay_epochs(self, epochs: int) -> int:
        """Epochs over which SIG decays: epochs // 4 in the paper (``final_epoch``), epochs // 2 in DCLS-delays SHD."""
        return int(epochs * self.sig_decay_fraction)


@dataclass(frozen=True)
class ProtocolSpec:
    """A versioned training and evaluation protocol loaded from ``suite/protocols/NAME.yaml``."""

    name: str
    version: int
    description: str
    data: Mapping[str, Any]
    model: Mapping[str, Any]
    optim: Mapping[str, Any]
    seeds: tuple[int, ...] = (0,)
    embedded: bool = False
    source: str = ""
    measure: Mapping[str, Any] = field(default_factory=dict)

    def model_spec(self, variant_defaults: Mapping[str, Any], variant: str, n_inputs: int, n_outputs: int,
                   overrides: Mapping[str, Any] = ()) -> ModelSpec:  # type: ignore[assignment]
        """Protocol architecture, then the variant's defaults, then run overrides, in that order of precedence."""
        values: dict[str, Any] = {"n_inputs": n_inputs, "n_outputs": n_outputs, **dict(self.model),
                                  **dict(variant_defaults), **dict(overrides), "variant": variant}
        known = {f.name for f in fields(ModelSpec)}
        unknown = sorted(set(values) - known)
        _check(not unknown, f"protocol {self.name}: model", f"unknown keys {unknown}; known: {sorted(known)}")
        try:
            return ModelSpec(**values)
        except TypeError as err:
            raise SuiteError(f"protocol {self.name}: model: {err}") from None


MEASURE_DEFAULTS: dict[str, Any] = {
    "memory": True,  # peak memory of a training step and of inference, each in a fresh subprocess
    "training_latency": True,
    "warmup": 2,
    "repeats": 10,
}

OPTIM_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 128,
    "lr_w": 1e-3,
    "max_lr_w": 5e-3,
    "lr_pos": 0.1,
    "weight_decay": 1e-5,
}


@dataclass(frozen=True)
class RunSpec:
    """One training run: a variant on a protocol with a backend and a seed, plus model overrides."""

    variant: str
    protocol: str
    backend: str = "torch"
    seed: int = 0
    overrides: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    official_metric: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.overrides, Mapping):
            object.__setattr__(self, "overrides", tuple(sorted(self.overrides.items())))
        _check(isinstance(self.seed, int) and self.seed >= 0, "run.seed",
               f"must be a non-negative int, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["overrides"] = dict(self.overrides)
        return data

    @property
    def run_id(self) -> str:
        """Stable 10-hex id of everything that changes the result (not the output directory or the data root)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]

    @property
    def label(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.overrides)
        return f"{self.variant}[{self.protocol},{self.backend},seed={self.seed}{extra}]"


def spec_to_yaml(spec: ModelSpec | RunSpec) -> str:
    """YAML text of a spec (tuples become lists)."""
    data = spec.to_dict() if isinstance(spec, RunSpec) else dataclasses.asdict(spec)
    return yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=True)


def _from_mapping(cls: type, data: Any, where: str) -> Any:
    _check(isinstance(data, Mapping), where, f"expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    _check(not unknown, where, f"unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as err:
        raise SuiteError(f"{where}: {err}") from None


def model_spec_from_yaml(text: str, where: str = "model spec") -> ModelSpec:
    return _from_mapping(ModelSpec, load_yaml(text, where), where)


def run_spec_from_yaml(text: str, where: str = "run spec") -> RunSpec:
    data = load_yaml(text, where)
    if isinstance(data, Mapping) and isinstance(data.get("overrides"), Mapping):
        data = {**data, "overrides": tuple(sorted(data["overrides"].items()))}
    return _from_mapping(RunSpec, data, where)


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` whose syntax errors are one-line SuiteErrors naming ``where`` and the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise SuiteError(f"{where}:{at} malformed YAML ({getattr(err, 'problem', None) or err})") from None


PROTOCOL_KEYS = {f.name for f in fields(ProtocolSpec)}


def load_protocol_file(path: Path) -> ProtocolSpec:
    """Read and validate one protocol YAML file; every error names the file and key."""
    where = str(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SuiteError(f"{where}: cannot read protocol file ({err.strerror})") from None
    data = load_yaml(text, where)
    _check(isinstance(data, Mapping), where, "expected a mapping at the top level")
    unknown = sorted(set(data) - PROTOCOL_KEYS)
    _check(not unknown, where, f"unknown keys {unknown}; known: {sorted(PROTOCOL_KEYS)}")
    for key in ("name", "version", "data", "model", "optim"):
        _check(key in data, where, f"missing key {key!r}")
    _check(isinstance(data["version"], int), f"{where}: version", "must be an integer")
    for key in ("data", "model", "optim"):
        _check(isinstance(data[key], Mapping), f"{where}: {key}", "must be a mapping")
    unknown_optim = sorted(set(data["optim"]) - set(OPTIM_DEFAULTS))
    _check(not unknown_optim, f"{where}: optim", f"unknown keys {unknown_optim}; known: {sorted(OPTIM_DEFAULTS)}")
    known_model = {f.name for f in fields(ModelSpec)} - {"variant", "n_inputs", "n_outputs"}
    unknown_model = sorted(set(data["model"]) - known_model)
    _check(not unknown_model, f"{where}: model", f"unknown keys {unknown_model}; known: {sorted(known_model)}")
    measure = data.get("measure", {})
    _check(isinstance(measure, Mapping) and not set(measure) - set(MEASURE_DEFAULTS), f"{where}: measure",
           f"must be a mapping with keys among {sorted(MEASURE_DEFAULTS)}")
    seeds = data.get("seeds", [0])
    _check(isinstance(seeds, list) and all(isinstance(s, int) and s >= 0 for s in seeds) and seeds,
           f"{where}: seeds", "must be a non-empty list of non-negative integers")
    return ProtocolSpec(
        name=str(data["name"]),
        version=data["version"],
        description=str(data.get("description", "")),
        data=dict(data["data"]),
        model=dict(data["model"]),
        optim={**OPTIM_DEFAULTS, **data["optim"]},
        seeds=tuple(seeds),
        embedded=bool(data.get("embedded", False)),
        source=str(data.get("source", "")),
        measure={**MEASURE_DEFAULTS, **measure},
    )
