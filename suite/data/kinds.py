"""Dataset kinds: one registered object per dataset format, the unit of extension for data (as variants are for
methods).

A kind owns everything that differs between datasets: the protocol ``data:`` settings it reads (beyond ``kind`` and
``synthetic``) with their defaults and checks, its input width, the cacheable split sources its loader yields, the
official split sizes and class count, the structural checks of ``data check``, its synthetic generator in the real
file format, its download archives and its label. The shared machinery (feature cache, data fingerprint, batching,
training) asks the kind and never switches on its name. Built-in kinds: ``gsc`` (suite/data/gsc.py), ``ssc`` and
``shd`` (suite/data/ssc.py). Other packages add kinds through the ``suite.variants`` entry points of
:mod:`suite.registry` by calling :func:`register_dataset_kind` (docs/adding-a-dataset.md).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.data import Dataset, Subset

from suite.errors import SuiteError

if TYPE_CHECKING:
    from suite.data.cache import SplitSource
    from suite.data.download import Source
    from suite.data.synthetic import SyntheticSettings

#: Keys every ``data:`` mapping may hold whatever its kind; the rest are the kinds' own settings.
COMMON_KEYS = ("kind", "synthetic")
#: The synthetic generator's per-class counts exist for these splits only (SyntheticSettings.<split>_per_class).
SYNTHETIC_SPLITS = ("train", "valid", "test")
HOLDOUT_SEED = 0  # a held-out validation split is one fixed permutation for every run seed (docs/protocols.md)


class DatasetKind(ABC):
    """What the suite needs from a dataset format; subclass it and register an instance.

    Attributes (set by the subclass): ``name`` (the protocols' ``data.kind``, also the cache-folder prefix),
    ``label`` (one line for ``list``), ``splits`` (the split files the format holds, train first), ``official_sizes``
    (samples per split of the published release), ``official_classes``, ``root_hint`` (what ``--data-root`` must
    point at), ``settings`` (the ``data:`` keys this kind reads, with their defaults), ``class_source`` (where class
    names come from, for error messages), ``download`` (a :class:`suite.data.download.Source`, or None),
    ``check_note`` (a line ``data check`` prints, or "") and ``origin`` (set at registration).
    """

    name: str
    label: str
    splits: tuple[str, ...]
    official_sizes: Mapping[str, int]
    official_classes: int
    root_hint: str
    settings: Mapping[str, Any]
    class_source: str
    download: Source | None = None
    check_note: str = ""
    origin: str = "suite"

    @abstractmethod
    def validate(self, cfg: Mapping[str, Any], where: str) -> None:
        """Check the values of this kind's settings in ``cfg`` (defaults filled in); messages start ``where.KEY``."""

    @abstractmethod
    def n_inputs(self, cfg: Mapping[str, Any]) -> int:
        """Input channels of layer 1 for the resolved ``cfg``."""

    @abstractmethod
    def sources(self, root: Path, cfg: Mapping[str, Any]) -> dict[str, SplitSource]:
        """One cacheable source per split in ``self.splits``: cheap facts now (file stats, labels, class names),
        features deferred until a cache miss. Structural problems raise a one-line SuiteError naming the file."""

    @abstractmethod
    def inspect(self, root: Path, deep: bool) -> tuple[dict[str, int], int]:
        """``data check``: samples per split and the class count; ``deep`` also opens every file or sample."""

    @abstractmethod
    def detect(self, root: Path) -> bool:
        """Whether ``root`` holds files of this kind (``data check`` without ``--format``)."""

    @abstractmethod
    def class_origin(self, root: Path) -> Path:
        """The path a class-count error names: what training reads the class names from."""

    @abstractmethod
    def write_synthetic(self, out_dir: Path, settings: SyntheticSettings, seed: int) -> None:
        """Write the generated delay task (suite.data.synthetic) into ``out_dir`` in this kind's real file format,
        one file set per split of ``self.splits``; the embedded protocols and the tests train on it."""

    def assemble(self, datasets: dict[str, Dataset], cfg: Mapping[str, Any]) -> dict[str, Dataset]:
        """{'train', 'valid', 'test'} from the loaded splits; a format without a valid file overrides this."""
        return datasets

    def resolved(self, data_cfg: Mapping[str, Any]) -> dict[str, Any]:
        """``data_cfg`` with this kind's defaults filled in (the mapping itself, unresolved, is the protocol's)."""
        return {"synthetic": None, **self.settings, **data_cfg}


_KINDS: dict[str, DatasetKind] = {}


def register_dataset_kind(kind: DatasetKind, origin: str | None = None) -> DatasetKind:
    """Register ``kind`` under ``kind.name``; ``origin`` defaults to the plug-in whose entry point is loading."""
    if not isinstance(kind, DatasetKind):
        raise SuiteError(f"register_dataset_kind: {type(kind).__name__} is not a suite.data.kinds.DatasetKind")
    # Plug-ins load only through suite.registry; while it is not imported, no entry point is loading.
    registry = sys.modules.get("suite.registry")
    origin = origin or (registry.plugin_origin() if registry is not None else None) or "suite"
    name = getattr(kind, "name", None)
    if not isinstance(name, str) or not name.isidentifier() or name in COMMON_KEYS:
        raise SuiteError(f"dataset kind {name!r} from {origin}: expected a name of letters, digits and '_'")
    if name in _KINDS:
        raise SuiteError(f"dataset kind {name!r} from {origin} is already registered by {_KINDS[name].origin}")
    shared = sorted(set(kind.settings) & set(COMMON_KEYS))
    if shared:
        raise SuiteError(f"dataset kind {name!r} from {origin}: setting {shared[0]!r} is a common data key")
    if "train" not in kind.splits or set(kind.splits) - set(SYNTHETIC_SPLITS):
        raise SuiteError(f"dataset kind {name!r} from {origin}: splits {kind.splits}, expected train and others "
                         f"among {', '.join(SYNTHETIC_SPLITS)}")
    kind.origin = origin
    _KINDS[name] = kind
    return kind


def dataset_kinds() -> dict[str, DatasetKind]:
    """Every registered kind, built-in first, then plug-ins, in registration order."""
    from suite.registry import load_plugins

    load_plugins()
    return dict(_KINDS)


def get_dataset_kind(name: Any, where: str = "data.kind") -> DatasetKind:
    """The kind called ``name``; unknown: a one-line error at ``where`` listing the registered kinds."""
    if isinstance(name, str) and name in _KINDS:
        return _KINDS[name]
    known = dataset_kinds()
    if name is None:
        raise SuiteError(f"{where}: missing, expected one of {', '.join(known)}")
    if not isinstance(name, str) or name not in known:
        raise SuiteError(f"{where}: unknown kind {name!r}, expected one of {', '.join(known)}")
    return known[name]


def data_keys() -> dict[str, DatasetKind]:
    """Every kind setting key, mapped to the first kind declaring it (for 'a setting of ...' messages)."""
    owners: dict[str, DatasetKind] = {}
    for kind in dataset_kinds().values():
        for key in kind.settings:
            owners.setdefault(key, kind)
    return owners


def validate_data_config(data_cfg: Mapping[str, Any], where: str) -> DatasetKind:
    """Check a protocol's ``data:`` mapping and return its kind; ``where`` names it ("suite/protocols/gsc.yaml: data").

    Messages append the key, e.g. "suite/protocols/gsc.yaml: data.kind: unknown kind 'x', expected one of gsc, ssc,
    shd". A key another kind reads is accepted at that kind's default (a shared template may carry it) and refused
    with any other value, which this kind would silently ignore.
    """
    from suite.data import synthetic

    if not isinstance(data_cfg, Mapping):
        raise SuiteError(f"{where}: expected a mapping with keys {', '.join((*COMMON_KEYS, *data_keys()))}, "
                         f"got {type(data_cfg).__name__}")
    kind = get_dataset_kind(data_cfg.get("kind"), f"{where}.kind")
    owners = data_keys()
    for key in data_cfg:
        if key not in COMMON_KEYS and key not in owners:
            raise SuiteError(f"{where}.{key}: unknown data key, expected one of "
                             f"{', '.join((*COMMON_KEYS, *owners))}")
    for key, value in data_cfg.items():
        if key in COMMON_KEYS or key in kind.settings:
            continue
        readers = [k.name for k in dataset_kinds().values() if key in k.settings]
        if not _same(value, owners[key].settings[key]):
            raise SuiteError(f"{where}.{key}: {value!r}, only for {', '.join(readers)} (kind {kind.name} does not "
                             "read it)")
    kind.validate(kind.resolved(data_cfg), where)
    syn = data_cfg.get("synthetic")
    if syn is not None:
        synthetic.resolve_settings(syn, kind.name, f"{where}.synthetic")
    return kind


def _same(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and value == default)


def is_int(value: object) -> bool:
    """An int, not a bool (YAML ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int_setting(cfg: Mapping[str, Any], key: str, low: int, high: int, where: str) -> None:
    """``cfg[key]`` must be an integer in ``low..high``."""
    value = cfg[key]
    if not is_int(value) or not low <= value <= high:
        raise SuiteError(f"{where}.{key}: {value!r}, expected an integer in {low}..{high}")


def check_time_step(cfg: Mapping[str, Any], where: str, limit_ms: float = 1000, why: str = "") -> None:
    """``time_step_ms``: a number of ms in (0, limit_ms]; ``why`` explains a limit below 1000 ms."""
    step = cfg["time_step_ms"]
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 1000:
        raise SuiteError(f"{where}.time_step_ms: {step!r}, expected a number of ms in (0, 1000]")
    if step > limit_ms:
        raise SuiteError(f"{where}.time_step_ms: {step!r} {why}")


def holdout_split(train: Dataset, fraction: float) -> tuple[Subset, Subset]:
    """(rest, held out): ``round(fraction * n)`` training samples chosen by a fixed permutation (HOLDOUT_SEED)."""
    n = len(train)  # type: ignore[arg-type]
    order = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    n_valid = round(fraction * n)
    if not 0 < n_valid < n:
        raise SuiteError(f"data.valid_holdout: {fraction} of {n} training samples leaves an empty split")
    return Subset(train, sorted(order[n_valid:].tolist())), Subset(train, sorted(order[:n_valid].tolist()))
