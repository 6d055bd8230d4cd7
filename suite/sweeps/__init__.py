"""Sweeps: versioned YAML grids of runs (protocols x variants x overrides x seeds) shipped as suite/sweeps/NAME.yaml.

A sweep file has ``name``, ``version``, ``description``, ``source``, ``grids`` and ``resources``. Each grid expands to
the cartesian product of its ``protocols`` (names, or protocol files relative to the sweep file), ``variants`` (names
or ``all``: every registered variant), each ``overrides`` key's list of model values, and ``seeds`` (default: each
protocol's seeds). ``resources`` is what one job asks a scheduler for (gpus, cpus, mem_gb, time_hours, partition) and
the per-epoch minutes the dry run uses for the expected compute. Expansion yields the same RunSpecs as ``run``, so
records, run ids and resumption are shared with it.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.errors import SuiteError
from suite.ops.registry import AUTO, DEFAULT_BACKEND, resolve
from suite.specs import ProtocolSpec, RunSpec, load_yaml

SWEEP_DIR = Path(__file__).parent
TOP_KEYS = ("name", "version", "description", "source", "grids", "resources")
GRID_KEYS = ("protocols", "variants", "overrides", "seeds")
RESOURCE_KEYS = ("gpus", "cpus", "mem_gb", "time_hours", "partition", "epoch_minutes", "epoch_minutes_source")
RESOURCE_DEFAULTS: dict[str, Any] = {"gpus": 0, "cpus": 1, "mem_gb": 4, "time_hours": 1, "partition": None,
                                     "epoch_minutes": {}}


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its RunSpec, the protocol it resolves to, and how a worker finds that protocol again."""

    spec: RunSpec
    protocol: ProtocolSpec
    protocol_ref: str  # a built-in name or an absolute path to a protocol file


@dataclass(frozen=True)
class Sweep:
    name: str
    version: int
    description: str
    source: str
    path: Path
    runs: tuple[PlannedRun, ...]
    resources: Mapping[str, Any] = field(default_factory=dict)

    def on_backend(self, backend_of: Callable[[str], str]) -> Sweep:
        """The same runs, each on the backend ``backend_of(variant)`` names (a resolved name: it is part of every run
        id)."""
        runs = tuple(dataclasses.replace(r, spec=dataclasses.replace(r.spec, backend=backend_of(r.spec.variant)))
                     for r in self.runs)
        return dataclasses.replace(self, runs=runs)


def sweep_names() -> list[str]:
    return sorted(p.stem for p in SWEEP_DIR.glob("*.yaml"))


def _list(value: Any, where: str, kind: type | tuple[type, ...]) -> list[Any]:
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) and not isinstance(v, bool)
                                                            for v in value):
        raise SuiteError(f"{where}: {value!r}, expected a non-empty list of {getattr(kind, '__name__', kind)}")
    return value


def _protocol_ref(entry: str, base: Path) -> str:
    if entry.endswith((".yaml", ".yml")):
        path = Path(entry) if Path(entry).is_absolute() else base / entry
        return str(path.resolve())
    return entry


def data_root_for(root: Path | None, kind: str) -> Path | None:
    """``root/<kind>`` when it exists (one --data-root for GSC and SSC, as `data download --root DIR/<kind>` fills
    it), else ``root`` itself."""
    if root is not None and (root / kind).is_dir():
        return (root / kind).resolve()
    return root.resolve() if root is not None else None


def _fingerprint(protocol: ProtocolSpec, data_root: Path | None) -> str:
    """The data part of the runs' identity; empty (ids unresolved, nothing launchable) for real data without a root."""
    from suite.data.identity import data_fingerprint

    if protocol.data.get("synthetic") is None and data_root is None:
        return ""
    return data_fingerprint(protocol.data, data_root_for(data_root, protocol.data["kind"]))


def _expand(grid: Any, where: str, base: Path, backend: str, data_root: Path | None) -> list[PlannedRun]:
    from suite.registry import get_protocol, get_variant, variants

    if not isinstance(grid, Mapping):
        raise SuiteError(f"{where}: expected a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise SuiteError(f"{where}: unknown keys {unknown}, expected among {', '.join(GRID_KEYS)}")
    for key in ("protocols", "variants"):
        if key not in grid:
            raise SuiteError(f"{where}: missing key {key!r}")
    refs = [_protocol_ref(p, base) for p in _list(grid["protocols"], f"{where}.protocols", str)]
    names = list(variants()) if grid["variants"] == "all" else _list(grid["variants"], f"{where}.variants", str)
    for name in names:
        try:
            get_variant(name)
        except SuiteError as err:
            raise SuiteError(f"{where}.variants: {err}") from None
    overrides = grid.get("overrides", {})
    if not isinstance(overrides, Mapping):
        raise SuiteError(f"{where}.overrides: expected a mapping of model key -> list of values")
    values = [_list(v, f"{where}.overrides.{k}", (int, float, str)) for k, v in overrides.items()]
    combos = [dict(zip(overrides, combo, strict=True)) for combo in itertools.product(*values)]
    seeds = grid.get("seeds")
    if seeds is not None:
        seeds = _list(seeds, f"{where}.seeds", int)
    runs = []
    for ref in refs:
        protocol = get_protocol(ref)
        fingerprint = _fingerprint(protocol, data_root)
        for variant in names:
            for combo in combos:
                try:  # a bad override fails here, naming the sweep, not in a job hours later
                    protocol.model_spec(get_variant(variant).defaults, variant, 1, 1, combo)
                except SuiteError as err:
                    raise SuiteError(f"{where}.overrides: {err}") from None
                for seed in seeds if seeds is not None else protocol.seeds:
                    spec = RunSpec(variant, protocol.name, backend, seed, tuple(sorted(combo.items())),
                                   protocol_hash=protocol.protocol_hash, data_fingerprint=fingerprint)
                    runs.append(PlannedRun(spec, protocol, ref))
    return runs


def load_sweep(name_or_path: str | Path, backend: str = DEFAULT_BACKEND, data_root: Path | None = None,
               device: str = "cpu") -> Sweep:
    """A shipped sweep by name, or a sweep file; every error names the file and key. ``backend`` is resolved for
    ``device`` (:func:`suite.ops.registry.resolve`) before it enters the run ids.

    Each run's id is resolved against its protocol's content and the data under ``data_root`` (as `run` does), so a
    sweep finds the records `run` wrote and never takes a record of other data for its own. Without ``data_root``,
    runs on real datasets keep an empty data fingerprint: they can be listed, not launched.
    """
    requested, backend = backend, resolve(backend, device)
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = SWEEP_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise SuiteError(f"unknown sweep {str(name_or_path)!r}; shipped: {', '.join(sweep_names())} "
                             "(or give a sweep .yaml file)")
    where = str(path)
    try:
        data = load_yaml(path.read_text(), where)
    except OSError as err:
        raise SuiteError(f"{where}: cannot read ({err.strerror})") from None
    if not isinstance(data, Mapping):
        raise SuiteError(f"{where}: expected a mapping at the top level")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise SuiteError(f"{where}: unknown keys {unknown}, expected among {', '.join(TOP_KEYS)}")
    for key in ("name", "version", "grids"):
        if key not in data:
            raise SuiteError(f"{where}: missing key {key!r}")
    if not isinstance(data["version"], int) or isinstance(data["version"], bool):
        raise SuiteError(f"{where}: version: {data['version']!r}, expected an integer")
    grids = data["grids"]
    if not isinstance(grids, list) or not grids:
        raise SuiteError(f"{where}: grids: expected a non-empty list of grids")
    resources = data.get("resources") or {}
    if not isinstance(resources, Mapping) or set(resources) - set(RESOURCE_KEYS):
        raise SuiteError(f"{where}: resources: expected a mapping with keys among {', '.join(RESOURCE_KEYS)}")
    runs: list[PlannedRun] = []
    seen: set[str] = set()
    for i, grid in enumerate(grids):
        for run in _expand(grid, f"{where}: grids[{i}]", path.parent, backend, data_root):
            if run.spec.run_id not in seen:  # grids may overlap; a run is run once
                seen.add(run.spec.run_id)
                runs.append(run)
    sweep = Sweep(str(data["name"]), data["version"], str(data.get("description", "")), str(data.get("source", "")),
                  path, tuple(runs), {**RESOURCE_DEFAULTS, **resources})
    if requested != AUTO:
        return sweep
    from suite.registry import get_variant

    # auto resolves per variant, among the backends the variant supports (as `run` does)
    return sweep.on_backend(lambda variant: resolve(AUTO, device, get_variant(variant).supported_backends()))
