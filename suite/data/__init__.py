"""Dataset layer: GSC, SSC and SHD (real or embedded synthetic) as cached per-sample feature sequences.

``build_datasets`` returns datasets whose items are ``(features FloatTensor (T_i, C), label int)``; ``make_loader``
batches them time-major and zero-padded into :class:`Batch`. Protocol YAML files describe the data with a ``data:``
mapping checked by :func:`validate_data_config`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from suite.data import cache, gsc, ssc, synthetic
from suite.errors import SuiteError

KINDS = ("gsc", "ssc", "shd")
DEFAULTS: dict[str, Any] = {"n_mels": 40, "n_bins": 5, "time_step_ms": 10, "synthetic": None, "valid_holdout": None}
HOLDOUT_SEED = 0  # the SHD hold-out split is one fixed permutation for every run seed (docs/protocols.md)
CONFIG_KEYS = ("kind", *DEFAULTS)
OFFICIAL_SIZES: dict[str, dict[str, int]] = {"gsc": dict(gsc.OFFICIAL_SIZES), **ssc.OFFICIAL_SIZES}
OFFICIAL_CLASSES: dict[str, int] = {"gsc": gsc.OFFICIAL_CLASSES, **ssc.OFFICIAL_CLASSES}
ROOT_HINTS = {
    "gsc": gsc.ROOT_HINT,
    "ssc": "a folder holding ssc_train.h5, ssc_valid.h5 and ssc_test.h5",
    "shd": "a folder holding shd_train.h5 and shd_test.h5",
}

__all__ = [
    "CONFIG_KEYS", "KINDS", "OFFICIAL_CLASSES", "OFFICIAL_SIZES", "Batch", "build_datasets", "check_class_count",
    "make_loader", "n_classes", "n_inputs", "pad_collate", "validate_data_config",
]


@dataclass(frozen=True)
class Batch:
    """A time-major batch: ``x`` (T, B, C) float32 zero-padded to the longest sample, true ``lengths`` and labels."""

    x: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        return Batch(self.x.to(device), self.lengths.to(device), self.labels.to(device))


def pad_collate(items: Sequence[tuple[torch.Tensor, int]]) -> Batch:
    """Stack ``(features (T_i, C), label)`` items into a zero-padded (T_max, B, C) batch."""
    if not items:
        raise SuiteError("pad_collate: empty batch, expected at least one (features, label) item")
    feats = [torch.as_tensor(f, dtype=torch.float32) for f, _ in items]
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
    x = torch.zeros(int(lengths.max()), len(feats), feats[0].shape[1], dtype=torch.float32)
    for b, f in enumerate(feats):
        x[: f.shape[0], b] = f
    labels = torch.tensor([int(label) for _, label in items], dtype=torch.int64)
    return Batch(x, lengths, labels)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, drop_last: bool = False) -> DataLoader:
    """Deterministic batches for a seed: the shuffle draws from a private generator, no worker processes."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0,
                      collate_fn=pad_collate, drop_last=drop_last)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_data_config(data_cfg: Mapping[str, Any], where: str) -> None:
    """Check a protocol's ``data:`` mapping; ``where`` names it (e.g. "suite/protocols/gsc.yaml: data").

    Messages append the key, e.g. "suite/protocols/gsc.yaml: data.kind: unknown kind 'x', expected gsc, ssc or shd".
    """
    if not isinstance(data_cfg, Mapping):
        raise SuiteError(f"{where}: expected a mapping with keys {', '.join(CONFIG_KEYS)}, "
                         f"got {type(data_cfg).__name__}")
    for key in data_cfg:
        if key not in CONFIG_KEYS:
            raise SuiteError(f"{where}.{key}: unknown data key, expected one of {', '.join(CONFIG_KEYS)}")
    kind = data_cfg.get("kind")
    if kind is None:
        raise SuiteError(f"{where}.kind: missing, expected one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise SuiteError(f"{where}.kind: unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    n_mels = data_cfg.get("n_mels", DEFAULTS["n_mels"])
    if not _is_int(n_mels) or not 1 <= n_mels <= 512:
        raise SuiteError(f"{where}.n_mels: {n_mels!r}, expected an integer in 1..512")
    n_bins = data_cfg.get("n_bins", DEFAULTS["n_bins"])
    if not _is_int(n_bins) or not 1 <= n_bins <= ssc.N_CHANNELS:
        raise SuiteError(f"{where}.n_bins: {n_bins!r}, expected an integer in 1..{ssc.N_CHANNELS}")
    step = data_cfg.get("time_step_ms", DEFAULTS["time_step_ms"])
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 1000:
        raise SuiteError(f"{where}.time_step_ms: {step!r}, expected a number of ms in (0, 1000]")
    if kind == "gsc" and step > gsc.WINDOW_MS:
        raise SuiteError(f"{where}.time_step_ms: {step!r} exceeds the 25 ms fbank window, expected <= 25 for gsc")
    syn = data_cfg.get("synthetic")
    if syn is not None:
        synthetic.resolve_settings(syn, kind, f"{where}.synthetic")
    holdout = data_cfg.get("valid_holdout")
    if holdout is not None:
        if kind != "shd":
            raise SuiteError(f"{where}.valid_holdout: {holdout!r}, only for shd (gsc and ssc have a validation file)")
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout < 1:
            raise SuiteError(f"{where}.valid_holdout: {holdout!r}, expected a fraction of train in (0, 1) or null")


def holdout_split(train: Dataset, fraction: float) -> tuple[Subset, Subset]:
    """(rest, held out): ``round(fraction * n)`` training samples chosen by a fixed permutation (HOLDOUT_SEED)."""
    n = len(train)  # type: ignore[arg-type]
    order = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    n_valid = round(fraction * n)
    if not 0 < n_valid < n:
        raise SuiteError(f"data.valid_holdout: {fraction} of {n} training samples leaves an empty split")
    return Subset(train, sorted(order[n_valid:].tolist())), Subset(train, sorted(order[:n_valid].tolist()))


def _resolved(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    validate_data_config(data_cfg, "data")
    return {**DEFAULTS, **data_cfg}


def n_inputs(data_cfg: Mapping[str, Any]) -> int:
    """Input channels of layer 1: n_mels for gsc, 700 // n_bins for ssc/shd."""
    cfg = _resolved(data_cfg)
    return cfg["n_mels"] if cfg["kind"] == "gsc" else ssc.N_CHANNELS // cfg["n_bins"]


def n_classes(data_cfg: Mapping[str, Any]) -> int:
    """Output classes: 35 for gsc/ssc, 20 for shd, or the synthetic generator's class count."""
    cfg = _resolved(data_cfg)
    if cfg["synthetic"] is not None:
        return int(synthetic.resolve_settings(cfg["synthetic"], cfg["kind"]).n_classes)  # type: ignore[arg-type]
    return OFFICIAL_CLASSES[cfg["kind"]]


def check_class_count(found: int, expected: int, where: str, kind: str) -> None:
    """More classes than the protocol's output layer is an error: their labels would crash training. Fewer is not
    (partial or synthetic data train; `data check` reports the count as differing from the official one)."""
    if found > expected:
        what = "word folders" if kind == "gsc" else "class names in extra/keys"
        raise SuiteError(f"{where}: {found} classes ({what}), expected at most {expected} (the protocol's output "
                         "classes)")


def build_datasets(data_cfg: Mapping[str, Any], root: Path | None, cache_dir: Path) -> dict[str, Dataset]:
    """Return {'train', 'valid', 'test'} datasets of ``(features (T_i, C), label)``, features cached in cache_dir.

    With ``synthetic`` set, data are generated once into ``cache_dir/synthetic/<kind>-<hash>`` and read by the same
    loaders as real data (``root`` is ignored). SHD has no validation file: with ``valid_holdout`` (protocol ``shd``)
    that fraction of train, drawn by one fixed permutation (HOLDOUT_SEED), is the validation set and is not trained
    on; without it (``shd-dcls``) 'valid' IS the test set, as in DCLS-delays, which selects on test.
    """
    cfg = _resolved(data_cfg)
    kind = cfg["kind"]
    cache_dir = Path(cache_dir)
    if cfg["synthetic"] is not None:
        settings = synthetic.resolve_settings(cfg["synthetic"], kind)
        root = synthetic.ensure_generated(kind, settings, cache_dir / "synthetic")
    elif root is None:
        raise SuiteError(f"protocol {kind} needs --data-root pointing at {ROOT_HINTS[kind]}")
    root = Path(root)
    if kind == "gsc":
        sources = gsc.sources(root, cfg["n_mels"], cfg["time_step_ms"])
    else:
        sources = ssc.sources(root, kind, cfg["n_bins"], cfg["time_step_ms"])
    for src in sources.values():
        check_class_count(len(src.class_names), n_classes(cfg), src.origin, kind)
    datasets: dict[str, Dataset] = {split: cache.load_or_build(src, cache_dir) for split, src in sources.items()}
    if kind == "shd" and cfg["valid_holdout"] is None:
        datasets["valid"] = datasets["test"]
    elif kind == "shd":
        datasets["train"], datasets["valid"] = holdout_split(datasets["train"], cfg["valid_holdout"])
    return {split: datasets[split] for split in ("train", "valid", "test")}
