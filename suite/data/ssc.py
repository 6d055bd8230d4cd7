"""SSC and SHD loader: HDF5 spike files turned into binned spike-count frames as in the official code.

Files: ``ssc_{train,valid,test}.h5`` or ``shd_{train,test}.h5`` with ``spikes/times`` (per-sample float arrays, s),
``spikes/units`` (per-sample channel ids 0..699), ``labels`` and ``extra/keys`` (class names).

Frames follow spikingjelly's ``integrate_events_by_fixed_duration_shd`` (used by DCLS-delays and the official code),
with the same arithmetic in the file's float dtype: ``t = 1000 * times``, shifted so the first spike is at 0;
``frames = ceil(t_last / step)``; a spike goes to frame ``t // step``, and spikes at or past the last frame boundary
(``t_last`` an exact multiple of the step) go to the last frame. Then ``n_bins`` adjacent channels are summed
(700 -> 700 // n_bins; trailing channels that do not fill a bin are dropped, as in the official binning).
Values are counts. Our one departure: a sample whose spikes all share one time (``t_last = 0``), or that has no
spikes, gets one frame instead of crashing (the official code indexes ``frames[-1]`` of an empty array).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch.utils.data import Dataset

from suite.data.cache import SplitSource
from suite.data.download import Remote, Source
from suite.data.kinds import DatasetKind, check_int_setting, check_time_step, holdout_split, register_dataset_kind
from suite.data.synthetic import SyntheticSettings, write_ssc_h5
from suite.errors import SuiteError

N_CHANNELS = 700
SPLITS = {"ssc": ("train", "valid", "test"), "shd": ("train", "test")}
OFFICIAL_SIZES = {"ssc": {"train": 75466, "valid": 9981, "test": 20382}, "shd": {"train": 8156, "test": 2264}}
OFFICIAL_CLASSES = {"ssc": 35, "shd": 20}
REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels", "extra/keys")
CHUNK = 1024
#: Latest plausible spike time in seconds. SHD and SSC samples last at most about 1.4 s (the usual ``max_time = 1.4``
#: of SHD/SSC loaders; SSC comes from 1 s Speech Commands clips); a later spike means times in milliseconds.
MAX_SPIKE_TIME_S = 10.0


@dataclass(frozen=True)
class H5Header:
    """The cheap facts of one split file: sample count, labels and class names."""

    path: Path
    n_samples: int
    labels: np.ndarray
    class_names: tuple[str, ...]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def h5_path(root: Path, kind: str, split: str) -> Path:
    """Where a split file lives under the data root."""
    return Path(root) / f"{kind}_{split}.h5"


def open_h5(path: Path, kind: str) -> h5py.File:
    """Open read-only, turning every failure into a one-line SuiteError."""
    if not path.is_file():
        raise SuiteError(f"{path}: missing, expected the {kind.upper()} file {path.name} "
                         f"({', '.join(f'{kind}_{s}.h5' for s in SPLITS[kind])} in the data root)")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise SuiteError(f"{path}: not a readable HDF5 file ({_one_line(err)})") from None


def read_header(path: Path, kind: str) -> H5Header:
    """Check the schema (keys, equal sample counts, label range) and return labels and class names."""
    with open_h5(path, kind) as f:
        for key in REQUIRED_KEYS:
            if key not in f:
                raise SuiteError(f"{path}: missing key '{key}', expected {', '.join(REQUIRED_KEYS)}")
        try:
            n_times, n_units = len(f["spikes/times"]), len(f["spikes/units"])
            raw_labels = np.asarray(f["labels"][()]).reshape(-1)
            keys = f["extra/keys"][()]
        except (TypeError, ValueError, OSError, KeyError) as err:
            raise SuiteError(f"{path}: unreadable datasets ({_one_line(err)})") from None
    labels = _integer_labels(path, raw_labels)
    if not n_times == n_units == len(labels):
        raise SuiteError(f"{path}: spikes/times has {n_times} samples, spikes/units {n_units}, labels {len(labels)}; "
                         "expected equal counts")
    names = tuple(k.decode() if isinstance(k, bytes) else str(k) for k in np.atleast_1d(keys))
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        bad = int(np.flatnonzero((labels < 0) | (labels >= len(names)))[0])
        raise SuiteError(f"{path}: sample {bad}: label {labels[bad]} outside 0..{len(names) - 1} "
                         f"(extra/keys has {len(names)} names)")
    return H5Header(path, n_times, labels, names)


def _integer_labels(path: Path, raw: np.ndarray) -> np.ndarray:
    """Labels as int64; a float label must be a whole number (3.0, not 3.5, which int64 would silently truncate)."""
    if np.issubdtype(raw.dtype, np.integer) or raw.size == 0:
        return raw.astype(np.int64)
    if not np.issubdtype(raw.dtype, np.floating):
        raise SuiteError(f"{path}: labels of type {raw.dtype}, expected integers")
    bad = np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)))
    if bad.size:
        raise SuiteError(f"{path}: sample {int(bad[0])}: label {raw[bad[0]]} is not an integer")
    return raw.astype(np.int64)


def check_sample(path: Path, index: int, times: np.ndarray, units: np.ndarray) -> None:
    """Structural checks of one sample, each naming the file and sample index."""
    if times.shape != units.shape or times.ndim != 1:
        raise SuiteError(f"{path}: sample {index}: {times.size} spike times but {units.size} units")
    if times.size == 0:
        return
    if not np.issubdtype(times.dtype, np.floating) and not np.issubdtype(times.dtype, np.integer):
        raise SuiteError(f"{path}: sample {index}: spike times of type {times.dtype}, expected numbers")
    if not np.all(np.isfinite(times)):
        raise SuiteError(f"{path}: sample {index}: non-finite spike time")
    if times.min() < 0:
        raise SuiteError(f"{path}: sample {index}: negative spike time {times.min()}, expected seconds >= 0")
    if times.max() > MAX_SPIKE_TIME_S:
        raise SuiteError(f"{path}: sample {index}: spike time {times.max()} s, past {MAX_SPIKE_TIME_S:g} s "
                         "(samples last about 1 s): are the times in milliseconds? expected seconds")
    if not np.issubdtype(units.dtype, np.integer):
        raise SuiteError(f"{path}: sample {index}: units of type {units.dtype}, expected integers")
    lo, hi = int(units.min()), int(units.max())
    if lo < 0 or hi >= N_CHANNELS:
        raise SuiteError(f"{path}: sample {index}: unit {lo if lo < 0 else hi} out of range 0..{N_CHANNELS - 1}")


def spike_frames(times: np.ndarray, units: np.ndarray, n_bins: int = 5, time_step_ms: float = 10) -> np.ndarray:
    """Counts (frames, 700 // n_bins) as float32; see the module docstring for the exact rule."""
    n_out = N_CHANNELS // n_bins
    if times.size == 0:
        return np.zeros((1, n_out), dtype=np.float32)
    t = times * 1000 if np.issubdtype(times.dtype, np.floating) else times.astype(np.float64) * 1000
    t = t - t.min()
    step = int(time_step_ms) if float(time_step_ms).is_integer() else float(time_step_ms)
    frames = max(1, math.ceil(t.max() / step))
    index = np.minimum((t // step).astype(np.int64), frames - 1)
    u = units.astype(np.int64)
    keep = u < n_out * n_bins
    flat = index[keep] * n_out + u[keep] // n_bins
    return np.bincount(flat, minlength=frames * n_out).reshape(frames, n_out).astype(np.float32)


def iter_samples(path: Path, kind: str) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, times, units) of every sample, read in chunks and checked."""
    with open_h5(path, kind) as f:
        times_ds, units_ds = f["spikes/times"], f["spikes/units"]
        n = len(times_ds)
        for start in range(0, n, CHUNK):
            try:
                times, units = times_ds[start:start + CHUNK], units_ds[start:start + CHUNK]
            except (TypeError, ValueError, OSError) as err:
                raise SuiteError(f"{path}: samples {start}..{min(n, start + CHUNK) - 1} unreadable "
                                 f"({_one_line(err)})") from None
            for offset, (t, u) in enumerate(zip(times, units, strict=True)):
                t, u = np.asarray(t), np.asarray(u)
                check_sample(path, start + offset, t, u)
                yield start + offset, t, u


def check_files(root: Path, kind: str) -> None:
    """Deep structural check of every sample (the slow part of `data check`)."""
    for split in SPLITS[kind]:
        for _ in iter_samples(h5_path(root, kind, split), kind):
            pass


def headers(root: Path, kind: str) -> dict[str, H5Header]:
    """Headers of all split files, requiring one class list for all of them."""
    root = Path(root)
    if not root.is_dir():
        raise SuiteError(f"{root}: {kind.upper()} data root not found, expected a folder with "
                         f"{', '.join(f'{kind}_{s}.h5' for s in SPLITS[kind])}")
    out = {split: read_header(h5_path(root, kind, split), kind) for split in SPLITS[kind]}
    first = out[SPLITS[kind][0]]
    for head in out.values():
        if head.class_names != first.class_names:
            raise SuiteError(f"{head.path}: extra/keys differs from {first.path.name}; expected the same classes")
    return out


def sources(root: Path, kind: str, n_bins: int, time_step_ms: float) -> dict[str, SplitSource]:
    """One cacheable source per split file; the fingerprint is the file's name, size and mtime."""
    out = {}
    for split, head in headers(root, kind).items():
        st = head.path.stat()
        out[split] = SplitSource(
            kind=kind, split=split, origin=str(head.path), fingerprint=[head.path.name, st.st_size, st.st_mtime_ns],
            settings={"n_bins": n_bins, "time_step_ms": time_step_ms, "frames": "spikingjelly fixed duration"},
            labels=head.labels, class_names=head.class_names, n_channels=N_CHANNELS // n_bins, store_dtype="uint16",
            features=_feature_iter(head.path, kind, n_bins, time_step_ms),
        )
    return out


def _feature_iter(path: Path, kind: str, n_bins: int, time_step_ms: float) -> Callable[[], Iterator[np.ndarray]]:
    """Defer reading the spikes: only called on a cache miss."""

    def run() -> Iterator[np.ndarray]:
        for _, times, units in iter_samples(path, kind):
            yield spike_frames(times, units, n_bins, time_step_ms)

    return run


class SpikeKind(DatasetKind):
    """An HDF5 spike format of the Zenke lab (SSC, SHD): ``<name>_<split>.h5`` files binned into spike-count frames.

    ``valid_holdout`` (a setting only of kinds without a valid file): that fraction of train, drawn by one fixed
    permutation, is the validation set and is not trained on; without it (``shd-dcls``) 'valid' IS the test set, as
    in DCLS-delays, which selects on test.
    """

    settings: Mapping[str, Any]
    class_source = "class names in extra/keys"

    def __init__(self, name: str, label: str, download: Source, check_note: str = "") -> None:
        self.name = name
        self.label = label
        self.splits = SPLITS[name]
        self.official_sizes = OFFICIAL_SIZES[name]
        self.official_classes = OFFICIAL_CLASSES[name]
        self.root_hint = f"a folder holding {', '.join(f'{name}_{s}.h5' for s in self.splits)}"
        self.settings = {"n_bins": 5, "time_step_ms": 10}
        if "valid" not in self.splits:
            self.settings["valid_holdout"] = None
        self.download = download
        self.check_note = check_note

    def validate(self, cfg: Mapping[str, Any], where: str) -> None:
        check_int_setting(cfg, "n_bins", 1, N_CHANNELS, where)
        check_time_step(cfg, where)
        holdout = cfg.get("valid_holdout")
        if holdout is not None and (isinstance(holdout, bool) or not isinstance(holdout, (int, float))
                                    or not 0 < holdout < 1):
            raise SuiteError(f"{where}.valid_holdout: {holdout!r}, expected a fraction of train in (0, 1) or null")

    def n_inputs(self, cfg: Mapping[str, Any]) -> int:
        return N_CHANNELS // int(cfg["n_bins"])

    def sources(self, root: Path, cfg: Mapping[str, Any]) -> dict[str, SplitSource]:
        return sources(root, self.name, cfg["n_bins"], cfg["time_step_ms"])

    def inspect(self, root: Path, deep: bool) -> tuple[dict[str, int], int]:
        heads = headers(root, self.name)
        if deep:
            check_files(root, self.name)
        return {split: head.n_samples for split, head in heads.items()}, len(heads[self.splits[0]].class_names)

    def detect(self, root: Path) -> bool:
        return h5_path(root, self.name, "train").is_file()

    def class_origin(self, root: Path) -> Path:
        return h5_path(root, self.name, self.splits[0])

    def write_synthetic(self, out_dir: Path, settings: SyntheticSettings, seed: int) -> None:
        write_ssc_h5(out_dir, settings, seed, prefix=self.name)

    def assemble(self, datasets: dict[str, Dataset], cfg: Mapping[str, Any]) -> dict[str, Dataset]:
        if "valid" in datasets:
            return datasets
        if cfg["valid_holdout"] is None:
            return {**datasets, "valid": datasets["test"]}
        train, valid = holdout_split(datasets["train"], cfg["valid_holdout"])
        return {**datasets, "train": train, "valid": valid}


# MD5 of the Zenke lab's *.h5.zip files from tonic tonic/datasets/hsd.py (neuromorphs/tonic@0aa6c86), classes SSC and
# SHD; no published hash of the unpacked .h5 exists, so suite.data.download records its own.
ZENKE = "https://zenkelab.org/datasets/"
SSC_ARCHIVES = Source(ZENKE, (Remote("ssc_train.h5.zip", "md5:d102be95e7144fcc0553d1f45ba94170", "ssc_train.h5"),
                              Remote("ssc_valid.h5.zip", "md5:b4eee3516a4a90dd0c71a6ac23a8ae43", "ssc_valid.h5"),
                              Remote("ssc_test.h5.zip", "md5:a35ff1e9cffdd02a20eb850c17c37748", "ssc_test.h5")))
SHD_ARCHIVES = Source(ZENKE, (Remote("shd_train.h5.zip", "md5:f3252aeb598ac776c1b526422d90eecb", "shd_train.h5"),
                              Remote("shd_test.h5.zip", "md5:1503a5064faa34311c398fb0a1ed0a6f", "shd_test.h5")))
register_dataset_kind(SpikeKind("ssc", "Spiking Speech Commands: HDF5 spike times of 700 channels, binned counts",
                                SSC_ARCHIVES))
register_dataset_kind(SpikeKind("shd", "Spiking Heidelberg Digits: HDF5 spike times of 700 channels, binned counts",
                                SHD_ARCHIVES, "SHD has no valid file; protocol shd holds out 20 % of train, shd-dcls "
                                "validates on test"))
