"""A dataset kind defined outside the suite, as a plug-in would define it: precomputed frames in NumPy ``.npz`` files.

Format: ``root/frames_<split>.npz`` for train, valid and test, each holding ``features`` (every sample's frames
concatenated, float32 (sum of T_i, channels)), ``lengths`` (frames per sample), ``labels`` and ``classes`` (names).
Its synthetic generator draws the suite's delay task (suite.data.synthetic.class_table) as frames directly: event
type ``e`` lights channel ``e mod channels`` for the event's ticks. tests/test_data_kinds.py registers it through an
entry point.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from suite.data import synthetic
from suite.data.cache import SplitSource
from suite.data.kinds import DatasetKind, check_int_setting, register_dataset_kind
from suite.data.synthetic import SyntheticSettings
from suite.errors import SuiteError

KEYS = ("features", "lengths", "labels", "classes")


class FramesKind(DatasetKind):
    name = "frames"
    label = "test plug-in: precomputed frames in .npz files"
    splits = ("train", "valid", "test")
    official_sizes = MappingProxyType({"train": 40, "valid": 8, "test": 8})
    official_classes = 4
    root_hint = "a folder holding frames_train.npz, frames_valid.npz and frames_test.npz"
    settings = MappingProxyType({"channels": 12})
    class_source = "names in 'classes'"

    def validate(self, cfg: Mapping[str, Any], where: str) -> None:
        check_int_setting(cfg, "channels", 1, 64, where)

    def n_inputs(self, cfg: Mapping[str, Any]) -> int:
        return int(cfg["channels"])

    def sources(self, root: Path, cfg: Mapping[str, Any]) -> dict[str, SplitSource]:
        out = {}
        for split in self.splits:
            path = Path(root) / f"frames_{split}.npz"
            features, lengths, labels, classes = read(path, cfg["channels"])
            stat = path.stat()
            out[split] = SplitSource(
                kind=self.name, split=split, origin=str(path), fingerprint=[path.name, stat.st_size, stat.st_mtime_ns],
                settings={"channels": cfg["channels"]}, labels=labels, class_names=classes,
                n_channels=cfg["channels"], store_dtype="float32", features=_samples(features, lengths))
        return out

    def inspect(self, root: Path, deep: bool) -> tuple[dict[str, int], int]:
        read_all = {split: read(Path(root) / f"frames_{split}.npz", None) for split in self.splits}
        return {split: len(parts[1]) for split, parts in read_all.items()}, len(read_all["train"][3])

    def detect(self, root: Path) -> bool:
        return (Path(root) / "frames_train.npz").is_file()

    def class_origin(self, root: Path) -> Path:
        return Path(root) / "frames_train.npz"

    def write_synthetic(self, out_dir: Path, settings: SyntheticSettings, seed: int) -> None:
        table = synthetic.class_table(settings, self.name)
        channels = self.settings["channels"]
        event = settings.event_ms // synthetic.TICK_MS
        for index, (split, per_class) in enumerate(synthetic.split_counts(settings, self.name).items()):
            samples, labels = [], []
            for i in range(per_class):
                for label, spec in enumerate(table):
                    rng = np.random.default_rng([seed, index, label, i])
                    x = np.zeros((settings.clip_min_ms // synthetic.TICK_MS, channels), dtype=np.float32)
                    onset = int(rng.integers(1, 4))
                    for k, event_type in enumerate(spec.events):
                        x[onset: onset + event, event_type % channels] = 1.0
                        onset += event + (spec.gaps[k] if k < len(spec.gaps) else 0)
                    samples.append(x)
                    labels.append(label)
            np.savez(Path(out_dir) / f"frames_{split}.npz", features=np.concatenate(samples),
                     lengths=np.array([len(x) for x in samples]), labels=np.array(labels),
                     classes=np.array([spec.name for spec in table]))


def read(path: Path, channels: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """The four arrays of one split file, checked; every problem is one line naming the file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in KEYS if key not in data]
            if missing:
                raise SuiteError(f"{path}: missing array {missing[0]!r}, expected {', '.join(KEYS)}")
            features, lengths, labels, classes = (data[key] for key in KEYS)
    except (OSError, ValueError) as err:
        raise SuiteError(f"{path}: not a readable .npz file ({' '.join(str(err).split())})") from None
    if features.ndim != 2 or (channels is not None and features.shape[1] != channels):
        raise SuiteError(f"{path}: features of shape {features.shape}, expected (frames, {channels})")
    if lengths.sum() != len(features) or len(labels) != len(lengths):
        raise SuiteError(f"{path}: {len(lengths)} lengths summing to {lengths.sum()} and {len(labels)} labels for "
                         f"{len(features)} frames")
    return features, lengths, labels.astype(np.int64), tuple(str(c) for c in classes)


def _samples(features: np.ndarray, lengths: np.ndarray) -> Any:
    def run() -> Iterator[np.ndarray]:
        yield from np.split(features, np.cumsum(lengths)[:-1])
    return run


def register() -> None:
    """The entry point's target: called once by suite.registry."""
    register_dataset_kind(FramesKind())
