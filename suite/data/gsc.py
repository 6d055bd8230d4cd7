"""Google Speech Commands v0.02 loader: the official splits and Kaldi fbank features of the protocol.

Layout (as released): ``root/<word>/<speaker>_nohash_<n>.wav`` (16 kHz mono PCM), ``root/_background_noise_/``
(ignored), ``root/validation_list.txt`` and ``root/testing_list.txt`` listing relative paths. Train is every other
``*/*.wav``. Labels are the word folders in alphabetical order. Features are
``torchaudio.compliance.kaldi.fbank(waveform, num_mel_bins=n_mels)`` with library defaults on the waveform as
float32 in [-1, 1), as in the official code (which read it with ``torchaudio.load``; we read with soundfile, which
gives the same scaling for 16-bit PCM).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import struct
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import soundfile
import torch
import torch.nn.functional as F
import torchaudio.compliance.kaldi as kaldi

from suite.data.cache import SplitSource
from suite.data.download import Remote, Source
from suite.data.kinds import DatasetKind, check_int_setting, check_time_step, register_dataset_kind
from suite.data.synthetic import SyntheticSettings, write_gsc_tree
from suite.errors import SuiteError

SAMPLE_RATE = 16000
WINDOW_MS = 25.0
BACKGROUND_DIR = "_background_noise_"
LIST_FILES = {"valid": "validation_list.txt", "test": "testing_list.txt"}
SPLITS = ("train", "valid", "test")
OFFICIAL_SIZES = {"train": 84843, "valid": 9981, "test": 11005}
OFFICIAL_CLASSES = 35
WAVE_FORMAT_IEEE_FLOAT = 3
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
ROOT_HINT = "the extracted speech_commands_v0.02 folder (word folders, validation_list.txt, testing_list.txt)"
#: kaldi.fbank defaults the features use: pre-emphasis, FFT size (the 400-sample window rounded up to a power of 2).
PREEMPHASIS = 0.97
FFT_SIZE = 512
#: Files per task of a feature worker process: large enough that pickling and scheduling cost little.
CHUNK_FILES = 256
#: Use worker processes from this many files on (a fork costs tens of ms); below, features run in-process.
PARALLEL_MIN_FILES = 1000


@dataclass(frozen=True)
class WavInfo:
    """What the RIFF header says about a WAV file."""

    sample_rate: int
    channels: int
    bits: int
    n_samples: int
    format_tag: int = 1  # 1 integer PCM, 3 IEEE float (the sub-format for WAVE_FORMAT_EXTENSIBLE)


@dataclass(frozen=True)
class GscLayout:
    """The split file lists of a GSC tree, relative POSIX paths, with label ids."""

    root: Path
    class_names: tuple[str, ...]
    files: dict[str, list[str]]
    labels: dict[str, list[int]]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def wav_info(path: Path) -> WavInfo:
    """Parse the RIFF header ourselves: libsndfile silently reads truncated files, we want an error instead."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise SuiteError(f"{path}: not a RIFF/WAVE file (bad or truncated header)")
            fmt: tuple[int, ...] | None = None
            pos = 12
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    raise SuiteError(f"{path}: truncated WAV, no 'data' chunk found")
                cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    body = f.read(csize)
                    if len(body) < 16:
                        raise SuiteError(f"{path}: truncated WAV, 'fmt ' chunk is {len(body)} bytes, expected >= 16")
                    fmt = struct.unpack("<HHIIHH", body[:16])
                    if fmt[0] == WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                        fmt = (struct.unpack("<H", body[24:26])[0], *fmt[1:])
                    f.seek(csize & 1, 1)
                elif cid == b"data":
                    if fmt is None:
                        raise SuiteError(f"{path}: WAV has its 'data' chunk before the 'fmt ' chunk")
                    available = size - (pos + 8)
                    if csize > available:
                        raise SuiteError(f"{path}: truncated WAV, data chunk declares {csize} bytes, "
                                         f"file holds {available}")
                    tag, channels, rate, _, block_align, bits = fmt
                    return WavInfo(rate, channels, bits, csize // max(block_align, 1), tag)
                else:
                    f.seek(csize + (csize & 1), 1)
                pos += 8 + csize + (csize & 1)
    except OSError as err:
        raise SuiteError(f"{path}: cannot read WAV ({_one_line(err)})") from None


def read_wav(path: Path) -> torch.Tensor:
    """A validated 16 kHz mono clip as a (1, N) float32 tensor in [-1, 1)."""
    info = wav_info(path)
    if info.sample_rate != SAMPLE_RATE:
        raise SuiteError(f"{path}: sample rate {info.sample_rate} Hz, expected {SAMPLE_RATE}")
    if info.channels != 1:
        raise SuiteError(f"{path}: {info.channels} channels, expected mono")
    try:
        data, _ = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, ValueError, TypeError) as err:  # LibsndfileError is a RuntimeError
        raise SuiteError(f"{path}: cannot decode WAV ({_one_line(err)})") from None
    if data.ndim != 1:
        raise SuiteError(f"{path}: decoded {data.ndim}-D audio, expected mono")
    _require_one_frame(path, data.shape[0])
    bad = np.flatnonzero(~np.isfinite(data))
    if bad.size:  # only float WAVs can hold these; fbank would turn them into NaN features and a NaN loss
        raise SuiteError(f"{path}: sample {int(bad[0])} is {data[bad[0]]} ({bad.size} non-finite samples), "
                         "expected finite audio")
    return torch.from_numpy(np.ascontiguousarray(data)).unsqueeze(0)


def _require_one_frame(path: Path, n_samples: int) -> None:
    window = int(SAMPLE_RATE * WINDOW_MS / 1000)
    if n_samples < window:
        raise SuiteError(f"{path}: {n_samples} samples, expected at least {window} (one 25 ms window)")


def fbank_features(waveform: torch.Tensor, n_mels: int = 40, time_step_ms: float = 10.0) -> torch.Tensor:
    """Kaldi log mel filterbank, library defaults (frame_shift 10 ms is the default, passed for other steps)."""
    return kaldi.fbank(waveform, num_mel_bins=n_mels, frame_shift=float(time_step_ms))


@functools.lru_cache(maxsize=8)
def _fbank_constants(n_mels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """kaldi.fbank's povey window (1, 400), zero-padded mel banks (n_mels, 257) and log floor, as it builds them."""
    window = torch.hann_window(int(SAMPLE_RATE * WINDOW_MS * 0.001), periodic=False).pow(0.85).unsqueeze(0)
    banks, _ = kaldi.get_mel_banks(n_mels, FFT_SIZE, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
    banks = F.pad(banks.to(torch.float32), (0, 1), mode="constant", value=0)
    return window, banks, kaldi._get_epsilon(torch.device("cpu"), torch.float32)


def fbank_fast(waveform: torch.Tensor, n_mels: int = 40, time_step_ms: float = 10.0) -> torch.Tensor:
    """:func:`fbank_features` with its constants built once: kaldi.fbank's op sequence for our settings, op for op.

    kaldi.fbank rebuilds the mel banks on every call and computes a log energy that fbank without ``use_energy``
    drops; this skips both and is otherwise the same torch calls in the same order, so on one intra-op thread the
    result is bit-identical (tests/test_feature_build.py checks clips of many lengths). Expects a (1, N) float32 clip
    with N >= 400.
    """
    window, banks, epsilon = _fbank_constants(n_mels)
    wave = waveform[0, :]
    size = window.shape[1]
    shift = int(SAMPLE_RATE * time_step_ms * 0.001)
    frames = wave.as_strided((1 + (wave.shape[0] - size) // shift, size), (shift * wave.stride(0), wave.stride(0)))
    frames = frames - torch.mean(frames, dim=1).unsqueeze(1)
    previous = F.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = (frames - PREEMPHASIS * previous[:, :-1]) * window
    frames = F.pad(frames.unsqueeze(0), (0, FFT_SIZE - size), mode="constant", value=0).squeeze(0)
    power = torch.fft.rfft(frames).abs().pow(2.0)
    return torch.max(torch.mm(power, banks.T), epsilon).log()


def n_frames(n_samples: int, time_step_ms: float = 10.0) -> int:
    """Frames of kaldi fbank with snip_edges: 1 + (N - window) // shift (98 for 1 s)."""
    window = int(SAMPLE_RATE * WINDOW_MS / 1000)
    shift = int(SAMPLE_RATE * time_step_ms / 1000)
    return 0 if n_samples < window else 1 + (n_samples - window) // shift


def _word_dirs(root: Path) -> list[str]:
    names = []
    for d in root.iterdir():
        if d.is_dir() and not d.name.startswith(("_", ".")) and any(d.glob("*.wav")):
            names.append(d.name)
    return sorted(names)


def _read_list(path: Path, known: set[str]) -> list[str]:
    if not path.is_file():
        raise SuiteError(f"{path}: split list missing, expected lines like 'yes/0a7c2a8d_nohash_0.wav'")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SuiteError(f"{path}: cannot read split list ({_one_line(err)})") from None
    out = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        if entry not in known:
            raise SuiteError(f"{path}:{number}: lists {entry!r}, which is not a .wav in a word folder of {path.parent}")
        if entry in seen:  # a duplicate would weigh that clip twice in the split's accuracy
            raise SuiteError(f"{path}:{number}: lists {entry!r} again (first on line {seen[entry]})")
        seen[entry] = number
        out.append(entry)
    return out


def scan_tree(root: Path) -> GscLayout:
    """Class names and split file lists, following the official rules (lists order kept, train sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise SuiteError(f"{root}: GSC root not found, expected {ROOT_HINT}")
    classes = _word_dirs(root)
    if not classes:
        raise SuiteError(f"{root}: no word folders with .wav files, expected {ROOT_HINT}")
    all_wavs = sorted(f"{c}/{p.name}" for c in classes for p in (root / c).glob("*.wav"))
    known = set(all_wavs)
    valid = _read_list(root / LIST_FILES["valid"], known)
    test = _read_list(root / LIST_FILES["test"], known)
    both = set(valid) & set(test)
    if both:
        raise SuiteError(f"{root / LIST_FILES['test']}: {sorted(both)[0]!r} is also in {LIST_FILES['valid']}")
    held_out = set(valid) | set(test)
    files = {"train": [w for w in all_wavs if w not in held_out], "valid": valid, "test": test}
    index = {c: i for i, c in enumerate(classes)}
    labels = {split: [index[rel.split("/", 1)[0]] for rel in rels] for split, rels in files.items()}
    return GscLayout(root, tuple(classes), files, labels)


def check_files(layout: GscLayout) -> None:
    """Validate every WAV header (rate, channels, truncation, at least one frame) without decoding integer PCM; float
    WAVs are decoded, since only they can hold NaN or infinite samples: the deep part of `data check`."""
    for rels in layout.files.values():
        for rel in rels:
            path = layout.root / rel
            info = wav_info(path)
            if info.sample_rate != SAMPLE_RATE:
                raise SuiteError(f"{path}: sample rate {info.sample_rate} Hz, expected {SAMPLE_RATE}")
            if info.channels != 1:
                raise SuiteError(f"{path}: {info.channels} channels, expected mono")
            _require_one_frame(path, info.n_samples)
            if info.format_tag == WAVE_FORMAT_IEEE_FLOAT:
                read_wav(path)


def sources(root: Path, n_mels: int, time_step_ms: float) -> dict[str, SplitSource]:
    """One cacheable source per split; the fingerprint is (path, size, mtime) of every file and both lists."""
    layout = scan_tree(root)
    lists = [(name, *_stat(layout.root / name)) for name in LIST_FILES.values()]
    settings = {"n_mels": n_mels, "time_step_ms": time_step_ms, "features": "kaldi.fbank defaults"}
    out = {}
    for split in SPLITS:
        rels = layout.files[split]
        fingerprint = lists + [(rel, *_stat(layout.root / rel)) for rel in rels]
        out[split] = SplitSource(
            kind="gsc", split=split, origin=str(layout.root), fingerprint=fingerprint, settings=settings,
            labels=np.asarray(layout.labels[split], dtype=np.int64), class_names=layout.class_names,
            n_channels=n_mels, store_dtype="float32",
            features=feature_iter(layout.root, rels, n_mels, time_step_ms),
        )
    return out


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as err:
        raise SuiteError(f"{path}: cannot stat ({_one_line(err)})") from None
    return st.st_size, st.st_mtime_ns


def feature_iter(root: Path, rels: Sequence[str], n_mels: int, time_step_ms: float,
                 reference: bool = False) -> Callable[[], Iterator[np.ndarray]]:
    """Deferred features of ``rels`` in order (only called on a cache miss).

    The default is the fast path (:func:`feature_chunks`). ``reference`` is the faithful one: kaldi.fbank per file, in
    this process at its intra-op thread count, as the official code computes them; the parity tests and the
    benchmark's baseline use it.
    """
    paths = [Path(root) / rel for rel in rels]

    def fast() -> Iterator[np.ndarray]:
        for chunk in feature_chunks(paths, n_mels, time_step_ms, default_workers(len(paths))):
            yield from chunk

    def faithful() -> Iterator[np.ndarray]:
        for path in paths:
            yield fbank_features(read_wav(path), n_mels, time_step_ms).numpy()
    return faithful if reference else fast


def default_workers(n_files: int) -> int:
    """One worker process per usable core for a large build; none (in-process) for a small one, one core, or where
    processes cannot be forked (Linux only: fork needs no re-import of the caller's main module)."""
    if not sys.platform.startswith("linux") or n_files < PARALLEL_MIN_FILES:
        return 0
    cores = len(os.sched_getaffinity(0))
    return cores if cores > 1 else 0


def features_of(paths: Sequence[Path], n_mels: int, time_step_ms: float) -> list[np.ndarray]:
    """Features of each file, in order, on one intra-op thread (many small ops: threads only add overhead)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [fbank_fast(read_wav(path), n_mels, time_step_ms).numpy() for path in paths]
    finally:
        torch.set_num_threads(threads)


def feature_chunks(paths: Sequence[Path], n_mels: int, time_step_ms: float,
                   workers: int) -> Iterator[list[np.ndarray]]:
    """Features of ``paths`` in order, ``CHUNK_FILES`` at a time, from ``workers`` forked processes (0: this one).

    Forked workers set one intra-op thread before any torch op (the DataLoader-worker rule: OpenMP is not fork-safe
    otherwise). At most two chunks per worker are in flight, so memory stays bounded when the consumer is slower. A
    worker's SuiteError (bad WAV) is re-raised here with its message; the pool is shut down on any exit.
    """
    chunks = [paths[i:i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    if workers < 1:
        for chunk in chunks:
            yield features_of(chunk, n_mels, time_step_ms)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=torch.set_num_threads, initargs=(1,))
    pending: deque[Future[list[np.ndarray]]] = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(features_of, chunk, n_mels, time_step_ms))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class GscKind(DatasetKind):
    """Google Speech Commands v0.02: word-folder WAV tree, Kaldi fbank features (real values feed layer 1)."""

    name = "gsc"
    label = "Google Speech Commands v0.02: 16 kHz WAV word folders, Kaldi log mel fbank"
    splits = SPLITS
    official_sizes = OFFICIAL_SIZES
    official_classes = OFFICIAL_CLASSES
    root_hint = ROOT_HINT
    settings = MappingProxyType({"n_mels": 40, "time_step_ms": 10})
    class_source = "word folders"
    # SHA-256 from torchaudio 2.11 torchaudio/datasets/speechcommands.py _CHECKSUMS (itself from tensorflow_datasets'
    # url_checksums/speech_commands.txt).
    download = Source("http://download.tensorflow.org/data/", (
        Remote("speech_commands_v0.02.tar.gz",
               "sha256:af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),))

    def validate(self, cfg: Mapping[str, Any], where: str) -> None:
        check_int_setting(cfg, "n_mels", 1, 512, where)
        check_time_step(cfg, where, WINDOW_MS, f"exceeds the {WINDOW_MS:g} ms fbank window, expected <= "
                                               f"{WINDOW_MS:g} for gsc")

    def n_inputs(self, cfg: Mapping[str, Any]) -> int:
        return int(cfg["n_mels"])

    def sources(self, root: Path, cfg: Mapping[str, Any]) -> dict[str, SplitSource]:
        return sources(root, cfg["n_mels"], cfg["time_step_ms"])

    def inspect(self, root: Path, deep: bool) -> tuple[dict[str, int], int]:
        layout = scan_tree(root)
        if deep:
            check_files(layout)
        return {split: len(files) for split, files in layout.files.items()}, len(layout.class_names)

    def detect(self, root: Path) -> bool:
        return any((root / name).is_file() for name in LIST_FILES.values())

    def class_origin(self, root: Path) -> Path:
        return root

    def write_synthetic(self, out_dir: Path, settings: SyntheticSettings, seed: int) -> None:
        write_gsc_tree(out_dir, settings, seed)


register_dataset_kind(GscKind())
