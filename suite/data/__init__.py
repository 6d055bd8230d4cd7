"""Dataset layer: registered dataset kinds (GSC, SSC, SHD, plug-ins; real or embedded synthetic) as cached per-sample
feature sequences.

``build_datasets`` returns datasets whose items are ``(features FloatTensor (T_i, C), label int)``; ``make_loader``
batches them time-major and zero-padded into :class:`Batch`. Protocol YAML files describe the data with a ``data:``
mapping naming its kind, checked by :func:`validate_data_config`; what differs between kinds is asked of the kind
(suite.data.kinds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from suite.data import cache, gsc, ssc, synthetic
from suite.data.kinds import DatasetKind, dataset_kinds, get_dataset_kind, register_dataset_kind, validate_data_config
from suite.errors import SuiteError

__all__ = [
    "Batch", "DatasetKind", "build_datasets", "check_class_count", "dataset_kinds", "get_dataset_kind", "gsc",
    "make_loader", "n_classes", "n_inputs", "pad_collate", "register_dataset_kind", "ssc", "synthetic",
    "validate_data_config",
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


def _resolved(data_cfg: Mapping[str, Any]) -> tuple[DatasetKind, dict[str, Any]]:
    kind = validate_data_config(data_cfg, "data")
    return kind, kind.resolved(data_cfg)


def n_inputs(data_cfg: Mapping[str, Any]) -> int:
    """Input channels of layer 1, as the kind computes them (n_mels for gsc, 700 // n_bins for ssc/shd)."""
    kind, cfg = _resolved(data_cfg)
    return kind.n_inputs(cfg)


def n_classes(data_cfg: Mapping[str, Any]) -> int:
    """Output classes: the kind's official count (35 for gsc/ssc, 20 for shd), or the synthetic generator's."""
    kind, cfg = _resolved(data_cfg)
    if cfg["synthetic"] is not None:
        return int(synthetic.resolve_settings(cfg["synthetic"], kind.name).n_classes)  # type: ignore[arg-type]
    return kind.official_classes


def check_class_count(found: int, expected: int, where: str, kind: str) -> None:
    """More classes than the protocol's output layer is an error: their labels would crash training. Fewer is not
    (partial or synthetic data train; `data check` reports the count as differing from the official one)."""
    if found > expected:
        raise SuiteError(f"{where}: {found} classes ({get_dataset_kind(kind).class_source}), expected at most "
                         f"{expected} (the protocol's output classes)")


def build_datasets(data_cfg: Mapping[str, Any], root: Path | None, cache_dir: Path) -> dict[str, Dataset]:
    """Return {'train', 'valid', 'test'} datasets of ``(features (T_i, C), label)``, features cached in cache_dir.

    With ``synthetic`` set, data are generated once into ``cache_dir/synthetic/<kind>-<hash>`` and read by the same
    loaders as real data (``root`` is ignored). The kind's loader yields the split files and assembles the three
    sets (SHD, which has no valid file, holds part of train out or validates on test: suite.data.ssc.SpikeKind).
    """
    kind, cfg = _resolved(data_cfg)
    cache_dir = Path(cache_dir)
    if cfg["synthetic"] is not None:
        settings = synthetic.resolve_settings(cfg["synthetic"], kind.name)
        root = synthetic.ensure_generated(kind.name, settings, cache_dir / "synthetic")
    elif root is None:
        raise SuiteError(f"protocol {kind.name} needs --data-root pointing at {kind.root_hint}")
    sources = kind.sources(Path(root), cfg)
    for src in sources.values():
        check_class_count(len(src.class_names), n_classes(cfg), src.origin, kind.name)
    datasets: dict[str, Dataset] = {split: cache.load_or_build(src, cache_dir) for split, src in sources.items()}
    datasets = kind.assemble(datasets, cfg)
    return {split: datasets[split] for split in ("train", "valid", "test")}
