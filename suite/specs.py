"""Frozen specifications: what to build (ModelSpec), how to train and score it (ProtocolSpec), one run (RunSpec).

Specs are plain data with YAML round trips and validation that names the offending key. A RunSpec has a stable short
hash id, so records, checkpoints and `run --all` resumption key on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from suite.errors import SuiteError
from suite.kinds import KIND_NAMES

DELAY_TYPES = KIND_NAMES
"""The built-in delay kinds; ``ModelSpec.delay_type`` accepts any registered kind (suite/kinds)."""
PASSTHROUGH_MODES = ("official", "zero")


#: Largest seed: numpy's legacy seeding (used by the runner) takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
#: Largest epoch count a protocol may ask for: ten times the longest published schedule (SHD, 150 epochs x ~7), a
#: guard against typos such as ``epochs: 1e9`` that would run for years.
MAX_EPOCHS = 10_000


def _check(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise SuiteError(f"{where}: {message}")


def _is_int(value: object) -> bool:
    """An integer, not a bool (YAML ``true`` is an int to Python) and not a float such as 64.5 or 64.0."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """A finite int or float, not a bool, NaN or infinity."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(value: Any, where: str, low: int, high: int | None = None) -> None:
    """``value`` must be an integer in ``low..high`` (no upper bound when ``high`` is None)."""
    bound = f"in {low}..{high}" if high is not None else f">= {low}"
    _check(_is_int(value) and low <= value and (high is None or value <= high), where,
           f"must be an integer {bound}, got {value!r}")


def check_real(value: Any, where: str, low: float, *, strict: bool = True, high: float | None = None) -> None:
    """``value`` must be a finite number above ``low`` (``>= low`` unless ``strict``) and at most ``high``."""
    ok = _is_real(value) and (value > low if strict else value >= low) and (high is None or value <= high)
    upper = "" if high is None else f" and <= {high}"
    _check(ok, where, f"must be a finite number {'>' if strict else '>='} {low}{upper}, got {value!r}")


def check_bool(value: Any, where: str) -> None:
    _check(isinstance(value, bool), where, f"must be true or false, got {value!r}")


def check_seed(value: Any, where: str) -> None:
    _check(_is_int(value) and 0 <= value <= MAX_SEED, where,
           f"must be a non-negative int up to 2**32 - 1 (numpy's seed range), got {value!r}")


def _delay_kind(name: Any, where: str) -> Any:
    """The registered delay kind ``name`` (a :class:`suite.kinds.base.DelayKind`); SuiteError naming ``where``."""
    from suite.kinds import get_kind, kinds

    try:
        return get_kind(name) if isinstance(name, str) else get_kind("")
    except SuiteError:
        raise SuiteError(f"{where}: {name!r} is not one of {tuple(kinds())}") from None


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
        hidden = self.n_hidden
        _check(isinstance(hidden, list | tuple) and len(hidden) > 0 and all(_is_int(n) and n > 0 for n in hidden),
               "model.n_hidden", "must be a non-empty list of positive sizes, got "
               f"{list(hidden) if isinstance(hidden, list | tuple) else hidden!r} (whole numbers)")
        object.__setattr__(self, "n_hidden", tuple(int(n) for n in self.n_hidden))
        self.validate("model")

    def validate(self, where: str) -> None:
        """Raise SuiteError naming ``where`` and the key for any value the builders cannot honour (type and range)."""
        _check(isinstance(self.variant, str), f"{where}.variant", f"expected a name, got {self.variant!r}")
        kind = _delay_kind(self.delay_type, f"{where}.delay_type")
        _check(isinstance(self.passthrough, str) and self.passthrough in PASSTHROUGH_MODES, f"{where}.passthrough",
               f"{self.passthrough!r} is not one of {PASSTHROUGH_MODES}")
        for key in ("n_inputs", "n_outputs"):
            value = getattr(self, key)
            _check(_is_int(value) and value > 0, f"{where}.{key}", f"must be a positive size, got {value!r}")
        _check(_is_int(self.kernel_size) and self.kernel_size >= 1 and self.kernel_size % 2 == 1,
               f"{where}.kernel_size", f"must be a positive odd number of steps, got {self.kernel_size!r}")
        _check(_is_real(self.tau) and self.tau > 1.0, f"{where}.tau",
               f"must exceed 1 step (decay = 1 - 1/tau), got {self.tau!r}")
        for key in ("v_threshold", "surrogate_alpha", "sig_final"):
            check_real(getattr(self, key), f"{where}.{key}", 0.0)
        if self.sig_start is not None:
            check_real(self.sig_start, f"{where}.sig_start", 0.0)
        check_real(self.sig_decay_fraction, f"{where}.sig_decay_fraction", 0.0, high=1.0)
        for key in ("delay_sparsity", "weight_sparsity", "dropout"):
            value = getattr(self, key)
            _check(_is_real(value) and 0.0 <= value < 1.0, f"{where}.{key}", f"must be in [0, 1), got {value!r}")
        check_bool(self.batchnorm, f"{where}.batchnorm")
        _check(self.delay_sparsity == 0.0 or kind.sparse_delays, f"{where}.delay_sparsity",
               f"delay sparsity needs axonal or dendritic delays, not {self.delay_type!r}")
        kind.validate(self, where)

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

    def __post_init__(self) -> None:
        self.validate(f"protocol {self.name!r}")

    def validate(self, where: str) -> None:
        """Run on every ProtocolSpec built, from a file or not (see :func:`validate_protocol`)."""
        validate_protocol(self.version, self.embedded, self.optim, self.measure, self.seeds, self.data, where)

    def model_spec(self, variant_defaults: Mapping[str, Any], variant: str, n_inputs: int, n_outputs: int,
                   overrides: Mapping[str, Any] = ()) -> ModelSpec:  # type: ignore[assignment]
        """Protocol architecture, then the variant's defaults, then run overrides, in that order of precedence."""
        fixed = sorted({"n_inputs", "n_outputs"} & set(dict(overrides)))
        _check(not fixed, f"override {fixed[0] if fixed else ''}",
               "cannot be set: input and output sizes come from the protocol's data "
               "(n_mels for gsc, 700 // n_bins for ssc/shd; the class count)")
        values: dict[str, Any] = {"n_inputs": n_inputs, "n_outputs": n_outputs, **dict(self.model),
                                  **dict(variant_defaults), **dict(overrides), "variant": variant}
        known = {f.name for f in fields(ModelSpec)}
        unknown = sorted(set(values) - known)
        _check(not unknown, f"protocol {self.name}: model", f"unknown keys {unknown}; known: {sorted(known)}")
        values = {key: _typed(f"protocol {self.name}, variant {variant}: model.{key}", value, MODEL_TYPES[key])
                  for key, value in values.items()}
        sparse = self.model.get("delay_sparsity", 0.0)
        where = f"protocol {self.name}, variant {variant}: model.delay_type"
        if sparse and "delay_sparsity" not in overrides and not _delay_kind(values["delay_type"], where).sparse_delays:
            raise SuiteError(f"protocol {self.name}, variant {variant}: the protocol's delay_sparsity {sparse} needs "
                             f"axonal (official) or dendritic delays, not {values['delay_type']!r}; run an axonal "
                             "variant, or add --set delay_sparsity=0 to keep only the weight sparsity")
        try:
            return ModelSpec(**values)
        except SuiteError as err:
            raise SuiteError(f"protocol {self.name}, variant {variant}: {err}") from None

    def content(self) -> dict[str, Any]:
        """What a run's numbers depend on (not the name, description, source, seed list or embedded flag)."""
        return {key: getattr(self, key) for key in PROTOCOL_CONTENT_KEYS}

    @property
    def protocol_hash(self) -> str:
        """Stable 12-hex hash of :meth:`content`, after every override; part of every run id."""
        return content_hash(self.content())

    def with_overrides(self, overrides: Mapping[str, Any]) -> ProtocolSpec:
        """This protocol with ``optim``/``data``/``measure`` keys replaced (``epochs=1`` or ``optim.epochs=1``).

        The one place protocol overrides are applied: every key and value type is checked and the result is a full,
        validated ProtocolSpec, so nothing downstream sees an unchecked value. Model keys are run overrides (they
        take precedence over a variant's defaults) and are rejected here.
        """
        from suite.data import validate_data_config

        if not overrides:
            return self
        sections: dict[str, dict[str, Any]] = {s: dict(getattr(self, s)) for s in OVERRIDE_SECTIONS}
        for key, value in overrides.items():
            section, name = _override_section(key)
            _check(section is not None, f"--set {key}", f"unknown protocol key; known: {', '.join(protocol_keys())}")
            expected = OVERRIDE_SECTIONS[section].get(name)  # type: ignore[index]
            sections[section][name] = _typed(f"--set {key}", value, expected) if expected else value  # type: ignore
        validate_data_config(sections["data"], f"protocol {self.name} with --set: data")
        return dataclasses.replace(self, **sections)


def content_hash(content: Mapping[str, Any]) -> str:
    """12-hex sha256 of canonical JSON: equal for a ProtocolSpec and the protocol block of its run record."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def protocol_differences(content: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    """``key=value`` for every content key whose value differs from ``reference``'s (``version=2``, ``epochs=1``)."""
    diffs = []
    for section in PROTOCOL_CONTENT_KEYS:
        mine, theirs = content.get(section), reference.get(section)
        if not isinstance(mine, Mapping) or not isinstance(theirs, Mapping):
            if content_hash({"v": mine}) != content_hash({"v": theirs}):
                diffs.append(f"{section}={mine}")
            continue
        for key in sorted(set(mine) | set(theirs)):
            if content_hash({"v": mine.get(key)}) != content_hash({"v": theirs.get(key)}):
                value = mine.get(key, "unset")
                diffs.append(f"{key}={list(value) if isinstance(value, tuple) else value}")
    return diffs


def _typed(where: str, value: Any, expected: type | tuple[type, ...]) -> Any:
    """``value`` as the ``expected`` type (an int is accepted for a float, then stored as a float), else SuiteError."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if float in kinds and int not in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tuple in kinds and isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in value):
        return tuple(value)
    ok = any(isinstance(value, kind) and not (kind is int and isinstance(value, bool)) for kind in kinds
             if kind is not tuple)
    names = " or ".join("list of integers" if k is tuple else "null" if k is type(None) else k.__name__
                        for k in kinds)
    _check(ok, where, f"{value!r} has the wrong type, expected {names}")
    return value


MODEL_TYPES: dict[str, type | tuple[type, ...]] = {
    f.name: (float, type(None)) if f.name == "sig_start" else tuple if f.name == "n_hidden" else type(f.default)
    for f in fields(ModelSpec)
}
PROTOCOL_CONTENT_KEYS = ("version", "data", "model", "optim", "measure")

MEASURE_DEFAULTS: dict[str, Any] = {
    "memory": True,  # peak memory of a training step and of inference, each in a fresh subprocess
    "training_latency": True,
    "warmup": 2,
    "repeats": 10,
}

OPTIM_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 128,
    "max_lr_w": 5e-3,  # OneCycleLR's peak; it starts at max_lr_w / 25 (the official schedule)
    "lr_pos": 0.1,
    "weight_decay": 1e-5,
}

#: Keys that once existed and now fail with a reason rather than "unknown key".
REMOVED_OPTIM_KEYS = {
    "lr_w": "has no effect: OneCycleLR sets the weights' learning rate (it starts at max_lr_w / 25 and peaks at "
            "max_lr_w); remove lr_w and set max_lr_w",
}


def validate_protocol(version: Any, embedded: Any, optim: Any, measure: Any, seeds: Any, data: Any,
                      where: str) -> None:
    """Type and range of every protocol section but ``model`` (checked as a ModelSpec once the data fix its input and
    output sizes)."""
    from suite.data import validate_data_config

    check_int(version, f"{where}: version", 1)
    check_bool(embedded, f"{where}: embedded")
    validate_optim(optim, f"{where}: optim")
    validate_measure(measure, f"{where}: measure")
    _check(isinstance(seeds, list | tuple) and len(seeds) > 0 and all(_is_int(s) and 0 <= s <= MAX_SEED for s in seeds),
           f"{where}: seeds", f"must be a non-empty list of integers in 0..2**32 - 1, got {seeds!r}")
    validate_data_config(data, f"{where}: data")


def validate_optim(optim: Mapping[str, Any], where: str) -> None:
    """Keys, types and ranges of a protocol's ``optim`` mapping (defaults merged in or not)."""
    _check(isinstance(optim, Mapping), where, f"expected a mapping, got {type(optim).__name__}")
    for key, reason in REMOVED_OPTIM_KEYS.items():
        _check(key not in optim, f"{where}.{key}", reason)
    unknown = sorted(set(optim) - set(OPTIM_DEFAULTS))
    _check(not unknown, where, f"unknown keys {unknown}; known: {sorted(OPTIM_DEFAULTS)}")
    values = {**OPTIM_DEFAULTS, **optim}
    check_int(values["epochs"], f"{where}.epochs", 1, MAX_EPOCHS)
    check_int(values["batch_size"], f"{where}.batch_size", 1)
    check_real(values["max_lr_w"], f"{where}.max_lr_w", 0.0)
    check_real(values["lr_pos"], f"{where}.lr_pos", 0.0)
    check_real(values["weight_decay"], f"{where}.weight_decay", 0.0, strict=False)


def validate_measure(measure: Mapping[str, Any], where: str) -> None:
    """Keys, types and ranges of a protocol's ``measure`` mapping; warmup >= 1 because the first call pays one-off
    costs (allocations, kernel loading) that are not the model's latency."""
    _check(isinstance(measure, Mapping), where, f"expected a mapping, got {type(measure).__name__}")
    unknown = sorted(set(measure) - set(MEASURE_DEFAULTS))
    _check(not unknown, where, f"unknown keys {unknown}; known: {sorted(MEASURE_DEFAULTS)}")
    values = {**MEASURE_DEFAULTS, **measure}
    check_bool(values["memory"], f"{where}.memory")
    check_bool(values["training_latency"], f"{where}.training_latency")
    check_int(values["warmup"], f"{where}.warmup", 1)
    check_int(values["repeats"], f"{where}.repeats", 1)


DATA_TYPES: dict[str, type | tuple[type, ...]] = {"kind": str, "n_mels": int, "n_bins": int,
                                                  "time_step_ms": (int, float), "synthetic": (dict, type(None))}
OPTIM_TYPES: dict[str, type | tuple[type, ...]] = {k: int if k in ("epochs", "batch_size") else float
                                                   for k in OPTIM_DEFAULTS}
MEASURE_TYPES: dict[str, type | tuple[type, ...]] = {k: type(v) for k, v in MEASURE_DEFAULTS.items()}
OVERRIDE_SECTIONS = {"optim": OPTIM_TYPES, "data": DATA_TYPES, "measure": MEASURE_TYPES}


def protocol_keys() -> list[str]:
    """Keys ``--set`` accepts for the protocol itself (bare or as ``section.key``)."""
    return [key for types in OVERRIDE_SECTIONS.values() for key in types]


def _override_section(key: str) -> tuple[str | None, str]:
    """``('optim', 'epochs')`` for ``epochs`` or ``optim.epochs``; ``(None, key)`` when it is no protocol key."""
    section, dot, name = key.partition(".")
    if dot:
        return (section, name) if name in OVERRIDE_SECTIONS.get(section, {}) else (None, key)
    found = [s for s, types in OVERRIDE_SECTIONS.items() if key in types]
    return (found[0], key) if found else (None, key)


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` pairs as (protocol overrides, model overrides); an unknown key is a one-line error naming it."""
    protocol: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for key, value in overrides.items():
        name = key.removeprefix("model.")
        if _override_section(key)[0] is not None:
            protocol[key] = value
        elif name in ("n_inputs", "n_outputs"):
            raise SuiteError(f"--set {key}: cannot be set: input and output sizes come from the protocol's data")
        elif name in MODEL_TYPES and name != "variant":
            model[name] = _typed(f"--set {key}", value, MODEL_TYPES[name])
        else:
            models = sorted(set(MODEL_TYPES) - {"variant", "n_inputs", "n_outputs"})
            raise SuiteError(f"--set {key}: unknown key; protocol keys: {', '.join(protocol_keys())}; "
                             f"model keys: {', '.join(models)}")
    return protocol, model


@dataclass(frozen=True)
class RunSpec:
    """One training run: a variant on a protocol with a backend and a seed, plus model overrides.

    ``protocol_hash`` (the resolved protocol's content, every override applied) and ``data_fingerprint`` (the
    data it trains on) make the run id name what was run, not just the protocol's name.
    """

    variant: str
    protocol: str
    backend: str = "torch"
    seed: int = 0
    overrides: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    official_metric: bool = False
    protocol_hash: str = ""
    data_fingerprint: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.overrides, Mapping):
            object.__setattr__(self, "overrides", tuple(sorted(self.overrides.items())))
        check_seed(self.seed, "run.seed")
        for key in ("variant", "protocol", "backend"):
            _check(isinstance(getattr(self, key), str), f"run.{key}", f"must be a name, got {getattr(self, key)!r}")
        check_bool(self.official_metric, "run.official_metric")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["overrides"] = dict(self.overrides)
        return data

    @property
    def run_id(self) -> str:
        """Stable 10-hex id of everything that changes the result: the spec, protocol content and data identity."""
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
    for key in ("data", "model", "optim"):
        _check(isinstance(data[key], Mapping), f"{where}: {key}", "must be a mapping")
    known_model = {f.name for f in fields(ModelSpec)} - {"variant", "n_inputs", "n_outputs"}
    unknown_model = sorted(set(data["model"]) - known_model)
    _check(not unknown_model, f"{where}: model", f"unknown keys {unknown_model}; known: {sorted(known_model)}")
    from suite.results import SAFE_NAME

    _check(isinstance(data["name"], str) and SAFE_NAME.fullmatch(data["name"]) is not None, f"{where}: name",
           f"{data['name']!r} cannot name files (letters, digits, '.', '_', '+', '-'; no leading '.')")
    measure, seeds, embedded = data.get("measure", {}), data.get("seeds", [0]), data.get("embedded", False)
    validate_protocol(data["version"], embedded, data["optim"], measure, seeds, data["data"], where)
    return ProtocolSpec(
        name=str(data["name"]),
        version=data["version"],
        description=str(data.get("description", "")),
        data=dict(data["data"]),
        model=dict(data["model"]),
        optim={**OPTIM_DEFAULTS, **data["optim"]},
        seeds=tuple(seeds),
        embedded=embedded,
        source=str(data.get("source", "")),
        measure={**MEASURE_DEFAULTS, **measure},
    )
