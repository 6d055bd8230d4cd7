"""The fast GSC feature path: bit-identical to kaldi.fbank, the same cache as the faithful builder (in-process and with
worker processes), worker errors, and `data synth --files/--clip-ms` for GSC-size trees."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi

from suite.cli import main
from suite.data import cache, gsc, synthetic
from suite.errors import SuiteError

LENGTHS = (400, 401, 559, 560, 561, 719, 720, 721, 880, 1000, 4000, 8000, 12345, 15999, 16000, 16001, 20000)
SMALL = {"n_classes": 4, "classes_per_group": 2, "train_per_class": 5, "valid_per_class": 2, "test_per_class": 2}
needs_fork = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked (Linux)")


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clips() -> Iterator[torch.Tensor]:
    """16-bit-valued clips of every length in LENGTHS at full scale, quiet (1e-3), and silent."""
    rng = np.random.default_rng(7)
    for n in LENGTHS:
        loud = torch.from_numpy((rng.integers(-32768, 32768, (1, n)) / 32768).astype(np.float32))
        for scale in (1.0, 1e-3, 0.0):
            yield loud * scale


@pytest.mark.parametrize(("n_mels", "step"), [(40, 10.0), (40, 10), (64, 20.0), (23, 5.0)])
def test_fbank_fast_is_bit_identical_to_kaldi_fbank(one_thread: None, n_mels: int, step: float) -> None:
    for clip in _clips():
        fast = gsc.fbank_fast(clip, n_mels, step)
        ref = kaldi.fbank(clip, num_mel_bins=n_mels, frame_shift=float(step))
        assert fast.shape == ref.shape == (gsc.n_frames(clip.shape[1], step), n_mels)
        assert torch.equal(fast, ref), f"{clip.shape[1]} samples: max |diff| {float((fast - ref).abs().max())}"


def test_features_do_not_depend_on_the_callers_thread_count(tmp_path: Path) -> None:
    """features_of runs on one thread whatever the caller set, and restores the caller's count."""
    threads = torch.get_num_threads()
    clip = next(_clips())
    try:
        torch.set_num_threads(1)
        one = gsc.fbank_fast(clip)
        torch.set_num_threads(2)
        path = _write(tmp_path / "a.wav", clip)
        got = gsc.features_of([path], 40, 10.0)[0]
        assert torch.get_num_threads() == 2
        assert np.array_equal(got, one.numpy())
    finally:
        torch.set_num_threads(threads)


def _write(path: Path, clip: torch.Tensor) -> Path:
    soundfile.write(path, np.round(clip[0].numpy() * 32768).astype(np.int16), 16000, subtype="PCM_16", format="WAV")
    return path


def _build(source: cache.SplitSource, cache_dir: Path) -> tuple[bytes, np.ndarray, np.ndarray]:
    ds = cache.load_or_build(source, cache_dir)
    return (ds.path / "features.bin").read_bytes(), ds.lengths, ds.labels


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small tree with 1 s clips and 0.5-0.6 s clips (two lengths in one split)."""
    root = synthetic.write_gsc_tree(tmp_path_factory.mktemp("g") / "tree", {**SMALL, "clip_max_ms": 1000}, seed=1)
    return root


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=needs_fork)])
def test_fast_cache_equals_faithful_cache(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          one_thread: None, workers: int) -> None:
    """Same bytes, lengths, labels and order as kaldi.fbank per file on one thread, with or without worker processes."""
    monkeypatch.setattr(gsc, "CHUNK_FILES", 3)  # several chunks per split, so chunk order matters
    monkeypatch.setattr(gsc, "default_workers", lambda n: workers)
    layout = gsc.scan_tree(tree)
    for split, source in gsc.sources(tree, 40, 10.0).items():
        faithful = dataclasses.replace(source, features=gsc.feature_iter(tree, layout.files[split], 40, 10.0,
                                                                         reference=True))
        got = _build(source, tmp_path / "fast")
        want = _build(faithful, tmp_path / f"faithful-{split}")
        assert got[0] == want[0] and len(got[0]) == 4 * 40 * int(want[1].sum())
        assert np.array_equal(got[1], want[1]) and np.array_equal(got[2], want[2])
        assert np.array_equal(got[2], layout.labels[split])
        assert len(set(got[1].tolist())) > 1  # clips of different lengths were in one split


@needs_fork
def test_a_bad_wav_in_a_worker_fails_with_its_path(tree: Path, tmp_path: Path) -> None:
    paths = sorted(tree.glob("c0*/*.wav"))[:7]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(paths[0].read_bytes()[:60])
    with pytest.raises(SuiteError, match=rf"{bad}: truncated WAV"):
        for _ in gsc.feature_chunks([*paths, bad, *paths], 40, 10.0, workers=2):
            pass


def test_default_workers() -> None:
    assert gsc.default_workers(gsc.PARALLEL_MIN_FILES - 1) == 0
    if sys.platform.startswith("linux"):
        cores = len(os.sched_getaffinity(0))
        assert gsc.default_workers(gsc.PARALLEL_MIN_FILES) == (cores if cores > 1 else 0)


def test_counts_for_total_gsc_size() -> None:
    counts = synthetic.counts_for_total(105829, 35, gsc.OFFICIAL_SIZES)
    assert counts == {"train": 2424, "valid": 285, "test": 314}
    assert sum(counts.values()) * 35 == 105805
    assert synthetic.counts_for_total(10, 35, gsc.OFFICIAL_SIZES) == {"train": 1, "valid": 1, "test": 1}
    with pytest.raises(SuiteError, match="total files 0: expected a positive integer"):
        synthetic.counts_for_total(0, 35, gsc.OFFICIAL_SIZES)


def test_data_synth_files_and_clip_ms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tree"
    assert main(["data", "synth", "--format", "gsc", "--out", str(out), "--files", "200", "--classes", "4",
                 "--clip-ms", "1000"]) == 0
    assert "train 160, valid 20, test 20" in capsys.readouterr().out
    layout = gsc.scan_tree(out)
    assert [len(layout.files[s]) for s in gsc.SPLITS] == [160, 20, 20]
    assert {soundfile.info(str(out / rel)).frames for rel in layout.files["valid"]} == {16000}


@pytest.mark.parametrize(("args", "message"), [
    (["--files", "100", "--per-class", "3"], "--files and --per-class both set: give one of them"),
    (["--files", "0"], "total files 0: expected a positive integer"),
    (["--clip-ms", "1005"], "data synth.clip_max_ms: 1005 must be a non-negative multiple of 10 ms"),
])
def test_data_synth_size_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                message: str) -> None:
    assert main(["data", "synth", "--format", "gsc", "--out", str(tmp_path / "t"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_progress_bar_on_a_terminal_only(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A bar with count and rate on a terminal (FORCE_COLOR makes rich treat stderr as one); nothing in a log."""
    monkeypatch.setattr(cache, "PROGRESS_MIN_SAMPLES", 3)
    source = gsc.sources(tree, 40, 10.0)["train"]
    cache.load_or_build(source, tmp_path / "log")
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FORCE_COLOR", "1")
    cache.load_or_build(source, tmp_path / "terminal")
    err = capsys.readouterr().err
    assert "features gsc/train" in err and f"{len(source.labels)}/{len(source.labels)}" in err
