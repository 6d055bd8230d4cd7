"""Embedded synthetic data that needs delays, written in the exact GSC and SSC/SHD file formats.

The generator writes real file formats (a GSC word-folder tree of 16 kHz PCM_16 WAVs with split lists; SSC/SHD
HDF5 spike files) so that the embedded protocols exercise the same loader code as the real datasets.

The task is delay dependent by construction. There is a pool of event types (GSC: tone bursts in distinct frequency
bands; SSC/SHD: Poisson spike bursts on distinct channel bands). Each class is an ordered sequence of three events
with specific gaps. Classes come in groups: every class of a group uses exactly the same three events and differs
from the others only in the order of the events or in one gap. All other randomness (global time shift, timing
jitter, amplitudes, background noise, clip length) is drawn independently of the class. A classifier that only sees
which frames occur, not when (a memoryless frame classifier summed over time), therefore cannot tell the classes of
a group apart: its best accuracy is (number of groups) / (number of classes), see :func:`no_delay_ceiling`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import soundfile

from suite.errors import SuiteError

if TYPE_CHECKING:
    from suite.data.kinds import DatasetKind

#: Bump when the generator's output for the same settings changes (invalidates generated caches).
GENERATOR_VERSION = 1
#: The generator's time grid: 10 ms ticks (one GSC feature frame shift, one SSC frame).
TICK_MS = 10
SAMPLE_RATE = 16000
N_CHANNELS = 700
#: Minimum size of the event pool; with 7 types the default groups form the Fano plane (any two groups share one
#: event type, so no single event type identifies a group).
MIN_EVENT_TYPES = 7
#: Lowest and highest tone frequency of the GSC event pool (log-spaced in between).
TONE_RANGE_HZ = (250.0, 5000.0)
SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class SyntheticSettings:
    """Generator settings; all times in ms and multiples of the 10 ms tick.

    ``n_classes=None`` means the format's official class count (35 for gsc/ssc, 20 for shd) once resolved.
    """

    n_classes: int | None = None
    classes_per_group: int = 5
    train_per_class: int = 24
    valid_per_class: int = 6
    test_per_class: int = 6
    seed: int = 0
    event_ms: int = 50
    gap_short_ms: int = 50
    gap_long_ms: int = 100
    jitter_ms: int = 10
    clip_min_ms: int = 500
    clip_max_ms: int = 600
    margin_ms: int = 40
    amp_min: float = 0.1
    amp_max: float = 0.5
    noise_std: float = 0.01
    event_rate_hz: float = 200.0
    rate_jitter: float = 0.3
    band_channels: int = 40
    background_hz: float = 2.0


_INT_FIELDS = {
    "n_classes", "classes_per_group", "train_per_class", "valid_per_class", "test_per_class", "seed", "event_ms",
    "gap_short_ms", "gap_long_ms", "jitter_ms", "clip_min_ms", "clip_max_ms", "margin_ms", "band_channels",
}
_MS_FIELDS = {"event_ms", "gap_short_ms", "gap_long_ms", "jitter_ms", "clip_min_ms", "clip_max_ms", "margin_ms"}

# Arrangements of a group's three events (a, b, c): (order as indices into (a, b, c), (gap1, gap2)) with
# "s" = short gap, "l" = long gap. Rows 0-2 and 5, 7 differ by order only; rows 3, 4 differ from row 0 by one gap.
ARRANGEMENTS: tuple[tuple[tuple[int, int, int], tuple[str, str]], ...] = (
    ((0, 1, 2), ("s", "s")),
    ((2, 1, 0), ("s", "s")),
    ((1, 0, 2), ("s", "s")),
    ((0, 1, 2), ("l", "s")),
    ((0, 1, 2), ("s", "l")),
    ((2, 0, 1), ("s", "s")),
    ((1, 2, 0), ("l", "s")),
    ((0, 2, 1), ("s", "s")),
)


@dataclass(frozen=True)
class ClassSpec:
    """One class: an ordered event sequence with gaps in 10 ms ticks."""

    name: str
    group: int
    events: tuple[int, ...]
    gaps: tuple[int, ...]


def resolve_settings(settings: SyntheticSettings | Mapping[str, Any] | None, kind: str,
                     where: str = "synthetic") -> SyntheticSettings:
    """Validate a settings mapping (from a protocol YAML) and fill the defaults, so the hash is canonical."""
    if isinstance(settings, SyntheticSettings):
        values = dataclasses.asdict(settings)
    elif settings is None:
        values = {}
    elif isinstance(settings, Mapping):
        values = dict(settings)
    else:
        raise SuiteError(f"{where}: expected a mapping of generator settings or null, got {type(settings).__name__}")
    known = {f.name: f for f in dataclasses.fields(SyntheticSettings)}
    for key, value in values.items():
        if key not in known:
            raise SuiteError(f"{where}.{key}: unknown synthetic setting, expected one of {', '.join(sorted(known))}")
        if key == "n_classes" and value is None:
            continue
        if key in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SuiteError(f"{where}.{key}: expected an integer, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SuiteError(f"{where}.{key}: expected a number, got {value!r}")
        else:
            values[key] = float(value)
    if values.get("n_classes") is None:
        values["n_classes"] = _kind(kind).official_classes
    out = SyntheticSettings(**values)
    _check_ranges(out, where)
    return out


def _check_ranges(s: SyntheticSettings, where: str) -> None:
    """Reject settings that cannot produce the task (so generation itself never fails half-way)."""
    def bad(key: str, why: str) -> SuiteError:
        return SuiteError(f"{where}.{key}: {getattr(s, key)!r} {why}")

    for key in sorted(_MS_FIELDS):
        if getattr(s, key) < 0 or getattr(s, key) % TICK_MS:
            raise bad(key, f"must be a non-negative multiple of {TICK_MS} ms")
    if s.event_ms <= 0:
        raise bad("event_ms", "must be positive")
    if not 2 <= s.n_classes <= 1000:  # type: ignore[operator]
        raise bad("n_classes", "must be in 2..1000")
    if not 1 <= s.classes_per_group <= len(ARRANGEMENTS):
        raise bad("classes_per_group", f"must be in 1..{len(ARRANGEMENTS)}")
    for key in ("train_per_class", "valid_per_class", "test_per_class"):
        if getattr(s, key) < 1:
            raise bad(key, "must be at least 1")
    if s.seed < 0:
        raise bad("seed", "must be non-negative")
    if s.gap_long_ms - s.gap_short_ms <= 2 * s.jitter_ms:
        raise bad("gap_long_ms", f"must exceed gap_short_ms + 2 * jitter_ms = {s.gap_short_ms + 2 * s.jitter_ms}"
                  " so that short and long gaps never overlap")
    if s.gap_short_ms - s.jitter_ms < 30:
        raise bad("gap_short_ms", "minus jitter_ms must be >= 30 ms (longer than the 25 ms analysis window)")
    if s.margin_ms < 30:
        raise bad("margin_ms", "must be >= 30 ms so no event touches a clip edge")
    if s.clip_max_ms < s.clip_min_ms:
        raise bad("clip_max_ms", f"must be >= clip_min_ms = {s.clip_min_ms}")
    longest = 3 * s.event_ms + s.gap_long_ms + s.gap_short_ms + 2 * s.jitter_ms + 2 * s.margin_ms
    if s.clip_min_ms < longest:
        raise bad("clip_min_ms", f"must be >= {longest} ms (3 events, one long and one short gap, jitter, margins)")
    if not 0.0 < s.amp_min <= s.amp_max < 0.9:
        raise bad("amp_max", f"with amp_min {s.amp_min!r} must satisfy 0 < amp_min <= amp_max < 0.9")
    if not 0.0 <= s.noise_std < 0.1:
        raise bad("noise_std", "must be in [0, 0.1)")
    if s.event_rate_hz <= 0 or not 0.0 <= s.rate_jitter < 1.0 or s.background_hz < 0:
        raise bad("event_rate_hz", "needs event_rate_hz > 0, rate_jitter in [0, 1), background_hz >= 0")
    if not 1 <= s.band_channels <= N_CHANNELS // n_event_types(s):
        raise bad("band_channels", f"must be in 1..{N_CHANNELS // n_event_types(s)} (700 channels / event types)")


def n_groups(s: SyntheticSettings) -> int:
    """Number of event-content groups: classes are packed ``classes_per_group`` to a group."""
    return math.ceil(s.n_classes / s.classes_per_group)  # type: ignore[operator]


def n_event_types(s: SyntheticSettings) -> int:
    """Size of the event pool: enough for distinct triples {i, i+1, i+3} mod P, at least 7."""
    return max(MIN_EVENT_TYPES, n_groups(s))


def class_table(settings: SyntheticSettings | Mapping[str, Any] | None = None, kind: str = "gsc") -> list[ClassSpec]:
    """The class definitions: group g uses event types {g, g+1, g+3} mod P in the group's arrangements."""
    s = resolve_settings(settings, kind)
    pool = n_event_types(s)
    ticks = {"s": s.gap_short_ms // TICK_MS, "l": s.gap_long_ms // TICK_MS}
    table = []
    for c in range(s.n_classes):  # type: ignore[arg-type]
        group, row = divmod(c, s.classes_per_group)
        base = (group % pool, (group + 1) % pool, (group + 3) % pool)
        order, gaps = ARRANGEMENTS[row]
        table.append(ClassSpec(class_name(c, s.n_classes), group, tuple(base[i] for i in order),  # type: ignore[arg-type]
                               tuple(ticks[g] for g in gaps)))
    return table


def class_name(index: int, n_classes: int) -> str:
    """Folder/key name of a class: c00, c01, ... (zero padded, so alphabetical order is label order)."""
    return f"c{index:0{max(2, len(str(n_classes - 1)))}d}"


def no_delay_ceiling(settings: SyntheticSettings | Mapping[str, Any] | None = None, kind: str = "gsc") -> float:
    """Best expected accuracy of a classifier that sees which frames occur but not their order.

    Within a group all classes have the same distribution of the multiset of frames, so such a classifier can at best
    identify the group and guess inside it; with equal class priors that is (distinct event multisets) / classes.
    """
    table = class_table(settings, kind)
    contents = {tuple(sorted(spec.events)) for spec in table}
    return len(contents) / len(table)


def chance_level(settings: SyntheticSettings | Mapping[str, Any] | None = None, kind: str = "gsc") -> float:
    """Accuracy of guessing: 1 / classes (balanced splits)."""
    return 1.0 / len(class_table(settings, kind))


def settings_hash(kind: str, settings: SyntheticSettings) -> str:
    """Stable id of (format, resolved settings, generator version): names the generated-data folder."""
    payload = {"kind": kind, "generator_version": GENERATOR_VERSION, "settings": dataclasses.asdict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def split_counts(s: SyntheticSettings, kind: str) -> dict[str, int]:
    """Samples per class for each split file the kind's format has (SHD has no valid file)."""
    return {split: getattr(s, f"{split}_per_class") for split in _kind(kind).splits}


def _kind(name: str) -> DatasetKind:
    from suite.data.kinds import get_dataset_kind

    return get_dataset_kind(name, "synthetic format")


def counts_for_total(total: int, n_classes: int, official: Mapping[str, int]) -> dict[str, int]:
    """Per-class split counts for about ``total`` files in the official split proportions (for GSC-size trees).

    Each split gets ``max(1, round(total * share / n_classes))`` per class, so the sum is within ``1.5 * n_classes``
    of ``total`` (105,829 with 35 classes gives 84,840 / 9,975 / 10,990 = 105,805 files).
    """
    if total < 1:
        raise SuiteError(f"total files {total}: expected a positive integer")
    whole = sum(official.values())
    return {split: max(1, round(total * n / whole / n_classes)) for split, n in official.items()}


def _sample_rng(seed: int, split: str, label: int, index: int) -> np.random.Generator:
    """One independent stream per sample, so changing split sizes never changes the other samples."""
    return np.random.default_rng([seed, SPLIT_NAMES.index(split), label, index])


def _place(rng: np.random.Generator, spec: ClassSpec, s: SyntheticSettings, clip_ticks: int) -> list[tuple[int, int]]:
    """(event type, onset tick) pairs: class gaps plus jitter, then a uniform global shift inside the margins."""
    event = s.event_ms // TICK_MS
    jitter = s.jitter_ms // TICK_MS
    margin = s.margin_ms // TICK_MS
    gaps = [g + int(rng.integers(-jitter, jitter + 1)) for g in spec.gaps]
    span = len(spec.events) * event + sum(gaps)
    start = int(rng.integers(margin, clip_ticks - margin - span + 1))
    onsets = [start]
    for gap in gaps:
        onsets.append(onsets[-1] + event + gap)
    return list(zip(spec.events, onsets, strict=True))


def _clip_ticks(rng: np.random.Generator, s: SyntheticSettings) -> int:
    return int(rng.integers(s.clip_min_ms // TICK_MS, s.clip_max_ms // TICK_MS + 1))


def tone_frequencies(s: SyntheticSettings) -> np.ndarray:
    """GSC event pool: log-spaced tone frequencies, well apart on the mel scale."""
    return np.geomspace(*TONE_RANGE_HZ, n_event_types(s))


def gsc_waveform(rng: np.random.Generator, spec: ClassSpec, s: SyntheticSettings) -> np.ndarray:
    """One clip as int16 samples: white noise plus tone bursts with 5 ms raised-cosine ramps."""
    tick = SAMPLE_RATE * TICK_MS // 1000
    clip_ticks = _clip_ticks(rng, s)
    placed = _place(rng, spec, s, clip_ticks)
    x = rng.normal(0.0, s.noise_std, clip_ticks * tick) if s.noise_std > 0 else np.zeros(clip_ticks * tick)
    n = SAMPLE_RATE * s.event_ms // 1000
    ramp = min(n // 2, SAMPLE_RATE * 5 // 1000)
    env = np.ones(n)
    env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[n - ramp:] = env[:ramp][::-1]
    freqs = tone_frequencies(s)
    t = np.arange(n) / SAMPLE_RATE
    for event, onset in placed:
        f = freqs[event] * (1.0 + rng.uniform(-0.02, 0.02))
        amp = rng.uniform(s.amp_min, s.amp_max)
        phase = rng.uniform(0.0, 2 * np.pi)
        x[onset * tick: onset * tick + n] += amp * env * np.sin(2 * np.pi * f * t + phase)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def ssc_spikes(rng: np.random.Generator, spec: ClassSpec, s: SyntheticSettings) -> tuple[np.ndarray, np.ndarray]:
    """One sample as (times in s float32, units uint16), sorted by time: background spikes plus band bursts."""
    clip_ticks = _clip_ticks(rng, s)
    placed = _place(rng, spec, s, clip_ticks)
    clip_s = clip_ticks * TICK_MS / 1000.0
    n_bg = int(rng.poisson(s.background_hz * N_CHANNELS * clip_s))
    times = [rng.uniform(0.0, clip_s, n_bg)]
    units = [rng.integers(0, N_CHANNELS, n_bg)]
    slot = N_CHANNELS // n_event_types(s)
    dur = s.event_ms / 1000.0
    for event, onset in placed:
        first = event * slot + (slot - s.band_channels) // 2
        rate = s.event_rate_hz * rng.uniform(1.0 - s.rate_jitter, 1.0 + s.rate_jitter)
        counts = rng.poisson(rate * dur, s.band_channels)
        units.append(np.repeat(np.arange(first, first + s.band_channels), counts))
        t0 = onset * TICK_MS / 1000.0
        times.append(rng.uniform(t0, t0 + dur, int(counts.sum())))
    t = np.concatenate(times).astype(np.float32)
    u = np.concatenate(units).astype(np.uint16)
    order = np.lexsort((u, t))
    return t[order], u[order]


def _sample_plan(s: SyntheticSettings, split: str, per_class: int) -> list[tuple[int, int]]:
    """(label, index) in file order: classes interleaved, like a shuffled real file."""
    return [(label, i) for i in range(per_class) for label in range(s.n_classes)]  # type: ignore[arg-type]


def write_gsc_tree(out_dir: Path, settings: SyntheticSettings | Mapping[str, Any] | None, seed: int) -> Path:
    """Write a GSC-format tree into ``out_dir``: word folders of WAVs, split lists, a background-noise folder."""
    s = resolve_settings(settings, "gsc")
    out = Path(out_dir)
    table = class_table(s, "gsc")
    for spec in table:
        (out / spec.name).mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"valid": [], "test": []}
    for split, per_class in split_counts(s, "gsc").items():
        for label, i in _sample_plan(s, split, per_class):
            rel = f"{table[label].name}/{split}{i:04d}_nohash_0.wav"
            wav = gsc_waveform(_sample_rng(seed, split, label, i), table[label], s)
            soundfile.write(out / rel, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            if split in lists:
                lists[split].append(rel)
    (out / "validation_list.txt").write_text("".join(f"{r}\n" for r in sorted(lists["valid"])))
    (out / "testing_list.txt").write_text("".join(f"{r}\n" for r in sorted(lists["test"])))
    noise_dir = out / "_background_noise_"
    noise_dir.mkdir(exist_ok=True)
    noise = np.random.default_rng([seed, 99]).normal(0.0, 0.05, SAMPLE_RATE)
    soundfile.write(noise_dir / "white_noise.wav", np.round(noise * 32768).astype(np.int16), SAMPLE_RATE,
                    subtype="PCM_16", format="WAV")
    return out


def write_ssc_h5(out_dir: Path, settings: SyntheticSettings | Mapping[str, Any] | None, seed: int,
                 prefix: str = "ssc") -> Path:
    """Write ``{prefix}_{split}.h5`` spike files for the splits of dataset kind ``prefix`` (SSC: train/valid/test, SHD:
    train/test) into ``out_dir``."""
    s = resolve_settings(settings, prefix)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = class_table(s, prefix)
    keys = np.array([spec.name.encode() for spec in table])
    for split, per_class in split_counts(s, prefix).items():
        plan = _sample_plan(s, split, per_class)
        times = np.empty(len(plan), dtype=object)
        units = np.empty(len(plan), dtype=object)
        for k, (label, i) in enumerate(plan):
            times[k], units[k] = ssc_spikes(_sample_rng(seed, split, label, i), table[label], s)
        labels = np.array([label for label, _ in plan], dtype=np.uint16)
        with h5py.File(out / f"{prefix}_{split}.h5", "w", libver="latest", track_order=False) as f:
            spikes = f.create_group("spikes")
            spikes.create_dataset("times", shape=(len(plan),), dtype=h5py.vlen_dtype(np.float32),
                                  track_times=False)[...] = times
            spikes.create_dataset("units", shape=(len(plan),), dtype=h5py.vlen_dtype(np.uint16),
                                  track_times=False)[...] = units
            f.create_dataset("labels", data=labels, track_times=False)
            f.create_group("extra").create_dataset("keys", data=keys, track_times=False)
    return out


def write_format(kind: str, out_dir: Path, settings: SyntheticSettings | Mapping[str, Any] | None,
                 seed: int) -> Path:
    """Write the task in the file format of dataset kind ``kind`` (its own generator) into ``out_dir``."""
    resolved = resolve_settings(settings, kind)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    _kind(kind).write_synthetic(Path(out_dir), resolved, seed)
    return Path(out_dir)


def ensure_generated(kind: str, settings: SyntheticSettings, base_dir: Path) -> Path:
    """Generate once into ``base_dir/<kind>-<hash>``; a temp folder renamed at the end, so never half-written."""
    target = Path(base_dir) / f"{kind}-{settings_hash(kind, settings)}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write_format(kind, tmp, settings, settings.seed)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # lost a race only if someone else finished; anything else is a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
