"""On-disk feature cache: features are computed once per (files, sizes, mtimes, settings) and then memory-mapped.

Layout: ``cache_dir/features/<kind>-<split>-<key>/`` with ``features.bin`` (all frames of all samples concatenated,
row-major ``(total_frames, channels)``), ``lengths.npy``, ``labels.npy`` and ``meta.json``. A folder is written
under a temporary name and renamed when complete, so a crash never leaves a half cache that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from suite.errors import SuiteError

#: Bump when feature computation changes, so old caches are not reused.
FEATURE_VERSION = 1
#: Cache folders smaller than this are read into memory; larger ones are memory-mapped.
IN_MEMORY_BYTES = 256 * 1024 * 1024
#: Show a progress bar when building a split with at least this many samples.
PROGRESS_MIN_SAMPLES = 2000
#: features.bin is written in pieces of about this size (few large writes instead of one per sample).
WRITE_BYTES = 16 * 1024 * 1024
#: Counters for tests and logs: a second build of the same data must only add hits.
STATS: dict[str, int] = {"hits": 0, "misses": 0}


@dataclass
class SplitSource:
    """What a loader knows cheaply about a split: enough to name the cache entry and, on a miss, fill it."""

    kind: str
    split: str
    origin: str
    fingerprint: list[Any]
    settings: dict[str, Any]
    labels: np.ndarray
    class_names: Sequence[str]
    n_channels: int
    store_dtype: str
    features: Callable[[], Iterator[np.ndarray]]


class FeatureDataset(Dataset):
    """Items are ``(features FloatTensor (T_i, C), label int)`` read from a cache folder."""

    def __init__(self, path: Path, from_cache: bool) -> None:
        self.path = Path(path)
        self.from_cache = from_cache
        meta = json.loads((self.path / "meta.json").read_text())
        self.kind: str = meta["kind"]
        self.split: str = meta["split"]
        self.class_names: tuple[str, ...] = tuple(meta["class_names"])
        self.n_channels: int = meta["n_channels"]
        self.lengths: np.ndarray = np.load(self.path / "lengths.npy")
        self.labels: np.ndarray = np.load(self.path / "labels.npy")
        self.offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        total = int(self.offsets[-1])
        dtype = np.dtype(meta["dtype"])
        shape = (total, self.n_channels)
        if total * self.n_channels * dtype.itemsize <= IN_MEMORY_BYTES:
            data = np.fromfile(self.path / "features.bin", dtype=dtype).reshape(shape)
            self._features: np.ndarray | torch.Tensor = torch.from_numpy(data.astype(np.float32, copy=False))
        else:
            self._features = np.memmap(self.path / "features.bin", dtype=dtype, mode="r", shape=shape)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.kind}/{self.split}: index {index} out of range 0..{len(self) - 1}")
        index %= len(self)
        a, b = int(self.offsets[index]), int(self.offsets[index + 1])
        rows = self._features[a:b]
        if isinstance(rows, torch.Tensor):
            return rows.clone(), int(self.labels[index])
        return torch.from_numpy(np.asarray(rows, dtype=np.float32).copy()), int(self.labels[index])

    def __repr__(self) -> str:
        return (f"FeatureDataset({self.kind}/{self.split}: {len(self)} samples, {self.n_channels} channels, "
                f"{len(self.class_names)} classes, cache={self.path})")


def cache_key(source: SplitSource) -> str:
    """Hash of everything the features depend on: the file list with sizes and mtimes, and the settings."""
    payload = {
        "version": FEATURE_VERSION, "kind": source.kind, "split": source.split, "settings": source.settings,
        "dtype": source.store_dtype, "n_channels": source.n_channels, "fingerprint": source.fingerprint,
        "class_names": list(source.class_names),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def load_or_build(source: SplitSource, cache_dir: Path) -> FeatureDataset:
    """Return the cached split, computing and storing it first on a miss."""
    target = Path(cache_dir) / "features" / f"{source.kind}-{source.split}-{cache_key(source)}"
    if (target / "meta.json").is_file():
        problem = _entry_problem(target, source)
        if problem is None:
            STATS["hits"] += 1
            return FeatureDataset(target, from_cache=True)
        print(f"warning: {target}: corrupt feature cache entry ({problem}); rebuilding it", file=sys.stderr)
        try:
            shutil.rmtree(target)
        except OSError as err:
            raise SuiteError(f"{target}: corrupt feature cache entry cannot be removed ({err.strerror})") from None
    STATS["misses"] += 1
    _build(source, target)
    return FeatureDataset(target, from_cache=False)


def _entry_problem(path: Path, source: SplitSource) -> str | None:
    """Why a cache folder cannot be what its name promises (unreadable, or sizes that disagree), or None.

    Checks what a torn copy, a truncated file or a foreign folder breaks: meta.json, the length and label arrays
    (no pickles), the dataset's labels and classes, and features.bin holding exactly the frames of the lengths.
    """
    try:
        meta = json.loads((path / "meta.json").read_text())
        lengths = np.load(path / "lengths.npy", allow_pickle=False)
        labels = np.load(path / "labels.npy", allow_pickle=False)
        itemsize = np.dtype(meta["dtype"]).itemsize
        n_channels, n_classes = int(meta["n_channels"]), len(meta["class_names"])
        size = (path / "features.bin").stat().st_size
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{type(err).__name__}: {err}".splitlines()[0][:200]
    if lengths.ndim != 1 or labels.shape != lengths.shape or not np.array_equal(labels, source.labels):
        return f"{len(labels)} labels and {len(lengths)} lengths, not the dataset's {len(source.labels)} labels"
    if (len(lengths) and lengths.min() < 1) or n_classes != len(source.class_names):
        return "a sample length below 1 or another class list"
    if n_channels != source.n_channels or size != int(lengths.sum()) * n_channels * itemsize:
        return f"features.bin holds {size} bytes, the lengths need {int(lengths.sum()) * n_channels * itemsize}"
    return None


def _build(source: SplitSource, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        lengths = _write_features(source, tmp / "features.bin")
        if len(lengths) != len(source.labels):
            raise SuiteError(f"{source.origin}: {source.split} produced {len(lengths)} samples, "
                             f"expected {len(source.labels)}")
        np.save(tmp / "lengths.npy", np.asarray(lengths, dtype=np.int64))
        np.save(tmp / "labels.npy", np.asarray(source.labels, dtype=np.int64))
        meta = {
            "kind": source.kind, "split": source.split, "origin": source.origin, "settings": source.settings,
            "class_names": list(source.class_names), "n_channels": source.n_channels, "dtype": source.store_dtype,
            "n_samples": len(lengths), "total_frames": int(sum(lengths)), "feature_version": FEATURE_VERSION,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "meta.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_features(source: SplitSource, path: Path) -> list[int]:
    dtype = np.dtype(source.store_dtype)
    limit = np.iinfo(dtype).max if dtype.kind in "iu" else None
    lengths: list[int] = []
    pieces: list[bytes] = []
    buffered = 0
    with open(path, "wb") as f, _progress(source) as advance:
        for feats in source.features():
            if feats.ndim != 2 or feats.shape[1] != source.n_channels or feats.shape[0] < 1:
                raise SuiteError(f"{source.origin}: {source.split} sample {len(lengths)} has features of shape "
                                 f"{tuple(feats.shape)}, expected (T >= 1, {source.n_channels})")
            if limit is not None and feats.size and feats.max() > limit:
                raise SuiteError(f"{source.origin}: {source.split} sample {len(lengths)} has a count "
                                 f"{feats.max()} above {limit}")
            pieces.append(np.ascontiguousarray(feats, dtype=dtype).tobytes())
            buffered += len(pieces[-1])
            if buffered >= WRITE_BYTES:
                f.write(b"".join(pieces))
                pieces, buffered = [], 0
            lengths.append(int(feats.shape[0]))
            advance()
        f.write(b"".join(pieces))
    return lengths


class _progress:
    """A rich progress bar on stderr for long builds (real datasets); silent for small ones and when stderr is not a
    terminal (rich would only leave blank lines in a log)."""

    def __init__(self, source: SplitSource) -> None:
        self.total = len(source.labels)
        self.label = f"features {source.kind}/{source.split}"
        self.bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        import rich.progress as rp
        from rich.console import Console
        from rich.text import Text

        console = Console(file=sys.stderr)
        if self.total < PROGRESS_MIN_SAMPLES or not console.is_terminal:
            return lambda: None

        class Rate(rp.ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{task.speed:,.0f} samples/s" if task.speed else "")

        self.bar = rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(), Rate(),
                               rp.TimeElapsedColumn(), rp.TextColumn("ETA"), rp.TimeRemainingColumn(),
                               console=console, transient=True)
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
