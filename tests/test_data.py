"""Loaders, features, cache, batching and bad-input errors of suite.data, on small generated trees."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi

from suite.data import (
    Batch,
    build_datasets,
    cache,
    gsc,
    make_loader,
    n_classes,
    n_inputs,
    pad_collate,
    ssc,
    synthetic,
    validate_data_config,
)
from suite.errors import SuiteError
from suite.registry import get_protocol

torch.set_num_threads(1)

TINY = {"n_classes": 6, "classes_per_group": 3, "train_per_class": 2, "valid_per_class": 1, "test_per_class": 1}
NAMES = [f"c{i:02d}" for i in range(6)]


def _write_wav(path: Path, seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    samples = (np.random.default_rng(seed).normal(0, 0.1, int(seconds * rate)) * 32768).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, rate, subtype="PCM_16", format="WAV")
    return samples


@pytest.fixture(scope="module")
def gsc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic GSC tree plus one 1 s clip in the train split."""
    root = synthetic.write_gsc_tree(tmp_path_factory.mktemp("gsc") / "tree", TINY, seed=3)
    _write_wav(root / "c01" / "long0000_nohash_0.wav", 1.0)
    return root


@pytest.fixture(scope="module")
def ssc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_ssc_h5(tmp_path_factory.mktemp("ssc"), TINY, seed=3, prefix="ssc")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _write_h5(path: Path, times: list[list[float]], units: list[list[int]], labels: list[int],
              keys: tuple[str, ...] = ("a", "b"), skip: str = "") -> Path:
    """A hand-made SSC-schema file; ``skip`` leaves one key out."""
    with h5py.File(path, "w") as f:
        if skip != "spikes/times":
            t = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.float64))
            for i, x in enumerate(times):
                t[i] = np.asarray(x, dtype=np.float64)
        if skip != "spikes/units":
            u = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
            for i, x in enumerate(units):
                u[i] = np.asarray(x, dtype=np.uint16)
        if skip != "labels":
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        if skip != "extra/keys":
            f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))
    return path


# ---------------------------------------------------------------- GSC


def test_gsc_splits_labels_and_shapes(gsc_root: Path, tmp_path: Path) -> None:
    ds = build_datasets({"kind": "gsc", "n_mels": 40}, gsc_root, tmp_path)
    assert {k: len(v) for k, v in ds.items()} == {"train": 6 * 2 + 1, "valid": 6, "test": 6}
    train = ds["train"]
    assert train.class_names == tuple(NAMES)  # alphabetical word folders, _background_noise_ excluded
    layout = gsc.scan_tree(gsc_root)
    assert layout.files["train"] == sorted(layout.files["train"])
    for rel, label in zip(layout.files["valid"], layout.labels["valid"], strict=True):
        assert NAMES[label] == rel.split("/")[0]
    one_second = layout.files["train"].index("c01/long0000_nohash_0.wav")
    x, y = train[one_second]
    assert x.shape == (98, 40) and x.dtype == torch.float32 and y == 1
    lengths = [train[i][0].shape[0] for i in range(len(train)) if i != one_second]
    assert min(lengths) >= 48 and max(lengths) <= 58  # 0.5-0.6 s synthetic clips
    assert n_inputs({"kind": "gsc"}) == 40 and n_classes({"kind": "gsc"}) == 35


def test_gsc_features_equal_direct_kaldi_fbank(gsc_root: Path, tmp_path: Path) -> None:
    ds = build_datasets({"kind": "gsc"}, gsc_root, tmp_path)
    layout = gsc.scan_tree(gsc_root)
    for split, index in (("train", 0), ("test", 3)):
        data, rate = soundfile.read(gsc_root / layout.files[split][index], dtype="float32")
        assert rate == 16000 and np.abs(data).max() < 1.0
        expected = kaldi.fbank(torch.from_numpy(data).unsqueeze(0), num_mel_bins=40)
        assert torch.equal(ds[split][index][0], expected)


def test_feature_cache_hit_and_invalidation(gsc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy(gsc_root, tmp_path / "tree")
    first = build_datasets({"kind": "gsc"}, root, tmp_path / "cache")
    assert not first["train"].from_cache

    def no_fbank(*args: object, **kwargs: object) -> None:
        raise AssertionError("fbank called on a cache hit")

    monkeypatch.setattr(gsc, "fbank_features", no_fbank)
    hits = cache.STATS["hits"]
    second = build_datasets({"kind": "gsc"}, root, tmp_path / "cache")
    assert cache.STATS["hits"] == hits + 3 and all(d.from_cache for d in second.values())
    assert torch.equal(first["train"][4][0], second["train"][4][0])
    monkeypatch.undo()
    # touching a train file changes its mtime: train is rebuilt, valid/test still hit
    wav = root / gsc.scan_tree(root).files["train"][0]
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    third = build_datasets({"kind": "gsc"}, root, tmp_path / "cache")
    assert not third["train"].from_cache and third["valid"].from_cache and third["test"].from_cache
    # other feature settings use another cache entry
    assert build_datasets({"kind": "gsc", "n_mels": 20}, root, tmp_path / "cache")["test"][0][0].shape[1] == 20


def test_large_cache_is_memory_mapped(ssc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_memory = build_datasets({"kind": "ssc"}, ssc_root, tmp_path)["train"]
    monkeypatch.setattr(cache, "IN_MEMORY_BYTES", 0)
    mapped = build_datasets({"kind": "ssc"}, ssc_root, tmp_path)["train"]
    assert isinstance(mapped._features, np.memmap) and mapped.from_cache
    for i in (0, 5, len(mapped) - 1):
        x, y = mapped[i]
        assert x.dtype == torch.float32 and torch.equal(x, in_memory[i][0]) and y == in_memory[i][1]


# ---------------------------------------------------------------- SSC / SHD


def test_ssc_binned_and_raw_channels(ssc_root: Path, tmp_path: Path) -> None:
    ds = build_datasets({"kind": "ssc", "n_bins": 5}, ssc_root, tmp_path)
    assert {k: len(v) for k, v in ds.items()} == {"train": 12, "valid": 6, "test": 6}
    assert ds["train"].class_names == tuple(NAMES)
    x, y = ds["train"][7]
    assert x.shape[1] == 140 and 50 <= x.shape[0] <= 60 and y == 7 % 6
    assert torch.equal(x, x.round()) and x.min() >= 0  # counts, not bits
    assert x.max() > 1
    raw = build_datasets({"kind": "ssc", "n_bins": 1}, ssc_root, tmp_path)["train"][7][0]
    assert raw.shape == (x.shape[0], 700)
    assert torch.equal(raw.reshape(raw.shape[0], 140, 5).sum(-1), x)
    with h5py.File(ssc_root / "ssc_train.h5") as f:
        assert int(raw.sum()) == len(f["spikes/times"][7])
    assert n_inputs({"kind": "ssc"}) == 140 and n_inputs({"kind": "shd", "n_bins": 1}) == 700
    assert n_classes({"kind": "ssc"}) == 35 and n_classes({"kind": "shd"}) == 20


def test_spike_frame_rule(tmp_path: Path) -> None:
    """First spike at 0, ceil(t_last / 10 ms) frames, last-boundary spikes in the last frame, >= 1 frame."""
    times = [[0.005, 0.012, 0.030], [0.010, 0.020, 0.030], [0.25, 0.25], []]
    units = [[0, 4, 699], [5, 6, 9], [3, 3], []]
    root = tmp_path / "shd"
    root.mkdir()
    _write_h5(root / "shd_train.h5", times, units, [0, 1, 1, 0])
    _write_h5(root / "shd_test.h5", times[:1], units[:1], [1])
    ds = build_datasets({"kind": "shd", "n_bins": 5}, root, tmp_path / "cache")
    a = ds["train"][0][0]  # t = 0, 7, 25 ms -> 3 frames
    assert a.shape == (3, 140) and a[0, 0] == 2 and a[2, 139] == 1 and a.sum() == 3
    b = ds["train"][1][0]  # t = 0, 10, 20 ms -> 2 frames; the spike at exactly 20 ms joins frame 1
    assert b.shape == (2, 140) and b[0, 1] == 1 and b[1, 1] == 2
    c = ds["train"][2][0]  # all spikes at one time: one frame
    assert c.shape == (1, 140) and c[0, 0] == 2
    assert ds["train"][3][0].shape == (1, 140) and ds["train"][3][0].sum() == 0
    assert ds["valid"] is ds["test"]  # no valid_holdout (shd-dcls): SHD validates on test
    assert ssc.spike_frames(np.array([0.0, 0.0123], np.float32), np.array([0, 1]), n_bins=1).shape == (2, 700)


def test_shd_holdout_is_a_fixed_disjoint_part_of_train(tmp_path: Path) -> None:
    """valid_holdout: round(f n) training samples by the fixed permutation, never trained on; test untouched."""
    root = tmp_path / "shd"
    root.mkdir()
    keys = tuple(str(i) for i in range(10))
    _write_h5(root / "shd_train.h5", [[0.01 * (i + 1)] for i in range(10)], [[i] for i in range(10)], list(range(10)),
              keys)
    _write_h5(root / "shd_test.h5", [[0.1]], [[1]], [1], keys)
    ds = build_datasets({"kind": "shd", "valid_holdout": 0.2}, root, tmp_path / "cache")
    valid = sorted(ds["valid"].indices)
    assert len(ds["train"]) == 8 and len(valid) == 2 and len(ds["test"]) == 1
    assert valid == sorted(np.random.default_rng(0).permutation(10)[:2].tolist())
    assert sorted(ds["train"].indices + valid) == list(range(10))
    assert [ds["valid"][i][1] for i in range(2)] == valid  # labels 0..9 = indices: the subsets address the file
    again = build_datasets({"kind": "shd", "valid_holdout": 0.2}, root, tmp_path / "cache")
    assert again["valid"].indices == ds["valid"].indices
    for cfg, message in (({"kind": "ssc", "valid_holdout": 0.2}, "only for shd"),
                         ({"kind": "shd", "valid_holdout": 1.5}, "expected a fraction of train in (0, 1)")):
        with pytest.raises(SuiteError, match=re.escape(f"data.valid_holdout: {cfg['valid_holdout']!r}, {message}")):
            build_datasets(cfg, root, tmp_path / "cache")
    protocols = {name: get_protocol(name) for name in ("shd", "shd-dcls")}
    assert protocols["shd"].data["valid_holdout"] == 0.2 and "valid_holdout" not in protocols["shd-dcls"].data
    assert dict(protocols["shd"].model) == dict(protocols["shd-dcls"].model)
    assert dict(protocols["shd"].optim) == dict(protocols["shd-dcls"].optim)


# ---------------------------------------------------------------- batching


def test_pad_collate_and_deterministic_loader(ssc_root: Path, tmp_path: Path) -> None:
    train = build_datasets({"kind": "ssc"}, ssc_root, tmp_path)["train"]
    items = [train[i] for i in range(4)]
    batch = pad_collate(items)
    assert isinstance(batch, Batch)
    t_max = max(x.shape[0] for x, _ in items)
    assert batch.x.shape == (t_max, 4, 140) and batch.x.dtype == torch.float32
    assert batch.lengths.dtype == torch.int64 and batch.labels.dtype == torch.int64
    assert batch.lengths.tolist() == [x.shape[0] for x, _ in items]
    assert batch.labels.tolist() == [y for _, y in items]
    for b, (x, _) in enumerate(items):
        assert torch.equal(batch.x[: x.shape[0], b], x) and not batch.x[x.shape[0]:, b].any()

    def order(seed: int) -> list[int]:
        return [y for batch in make_loader(train, 5, shuffle=True, seed=seed) for y in batch.labels.tolist()]

    assert order(1) == order(1) and order(1) != order(2)
    loader = make_loader(train, 5, shuffle=False, seed=0, drop_last=True)
    assert [b.x.shape[1] for b in loader] == [5, 5]


# ---------------------------------------------------------------- bad input


def _error(fn: Callable[..., object], *args: object) -> str:
    with pytest.raises(SuiteError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and msg
    return msg


def test_gsc_bad_input(gsc_root: Path, tmp_path: Path) -> None:
    assert "needs --data-root" in _error(build_datasets, {"kind": "gsc"}, None, tmp_path)
    missing = tmp_path / "nowhere"
    assert str(missing) in _error(build_datasets, {"kind": "gsc"}, missing, tmp_path)
    root = _copy(gsc_root, tmp_path / "tree")
    (root / "testing_list.txt").unlink()
    assert "testing_list.txt" in _error(build_datasets, {"kind": "gsc"}, root, tmp_path)
    root = _copy(gsc_root, tmp_path / "rate")
    _write_wav(root / "c02" / "train0000_nohash_0.wav", 0.5, rate=8000)
    msg = _error(build_datasets, {"kind": "gsc"}, root, tmp_path)
    assert "c02/train0000_nohash_0.wav" in msg and "8000 Hz, expected 16000" in msg
    root = _copy(gsc_root, tmp_path / "trunc")
    wav = root / "c03" / "test0000_nohash_0.wav"
    wav.write_bytes(wav.read_bytes()[:5000])
    msg = _error(build_datasets, {"kind": "gsc"}, root, tmp_path)
    assert "c03/test0000_nohash_0.wav" in msg and "truncated" in msg
    wav.write_bytes(b"RIFF")
    assert "test0000_nohash_0.wav" in _error(gsc.read_wav, wav)


def test_ssc_bad_input(ssc_root: Path, tmp_path: Path) -> None:
    root = _copy(ssc_root, tmp_path / "missing")
    (root / "ssc_valid.h5").unlink()
    assert "ssc_valid.h5" in _error(build_datasets, {"kind": "ssc"}, root, tmp_path)
    for key in ("spikes/times", "spikes/units", "labels", "extra/keys"):
        path = _write_h5(tmp_path / "shd_train.h5", [[0.1]], [[1]], [0], skip=key)
        msg = _error(ssc.read_header, path, "shd")
        assert "shd_train.h5" in msg and key in msg
    path = _write_h5(tmp_path / "shd_train.h5", [[0.1, 0.2], [0.1, 0.2, 0.3]], [[1, 2], [1, 2]], [0, 1])
    msg = _error(lambda: list(ssc.iter_samples(path, "shd")))
    assert "shd_train.h5: sample 1: 3 spike times but 2 units" in msg
    path = _write_h5(tmp_path / "shd_train.h5", [[0.1], [0.1, 0.2]], [[1], [3, 700]], [0, 1])
    msg = _error(lambda: list(ssc.iter_samples(path, "shd")))
    assert "sample 1" in msg and "700" in msg
    root = tmp_path / "shd"
    root.mkdir()
    _write_h5(root / "shd_train.h5", [[0.1], [0.1, 0.2]], [[1], [3, 4]], [0, 5])
    _write_h5(root / "shd_test.h5", [[0.1]], [[1]], [0])
    assert "sample 1: label 5" in _error(build_datasets, {"kind": "shd"}, root, tmp_path)
    (root / "shd_train.h5").write_bytes(b"not hdf5")
    assert "shd_train.h5" in _error(build_datasets, {"kind": "shd"}, root, tmp_path)


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"kind": "gsc", "n_mel": 40}, "x.yaml: data.n_mel: unknown data key"),
        ({"kind": "wav"}, "x.yaml: data.kind: unknown kind 'wav'"),
        ({"n_mels": 40}, "x.yaml: data.kind: missing"),
        ({"kind": "gsc", "n_mels": "40"}, "x.yaml: data.n_mels: '40'"),
        ({"kind": "ssc", "n_bins": True}, "x.yaml: data.n_bins: True"),
        ({"kind": "ssc", "time_step_ms": -1}, "x.yaml: data.time_step_ms: -1"),
        ({"kind": "ssc", "synthetic": {"n_class": 3}}, "x.yaml: data.synthetic.n_class: unknown synthetic setting"),
        ({"kind": "ssc", "synthetic": {"seed": 1.5}}, "x.yaml: data.synthetic.seed: expected an integer"),
        ({"kind": "ssc", "synthetic": 3}, "x.yaml: data.synthetic: expected a mapping"),
        (["gsc"], "x.yaml: data: expected a mapping"),
    ],
)
def test_data_config_errors(cfg: object, needle: str) -> None:
    assert needle in _error(validate_data_config, cfg, "x.yaml: data")


def test_data_config_accepts_protocol_mappings() -> None:
    validate_data_config({"kind": "gsc", "n_mels": 40, "n_bins": 5, "time_step_ms": 10, "synthetic": None}, "w")
    validate_data_config({"kind": "ssc", "n_bins": 5, "synthetic": {"train_per_class": 4, "seed": 2}}, "w")
    assert n_classes({"kind": "shd", "synthetic": {}}) == 20 and n_classes({"kind": "gsc", "synthetic": TINY}) == 6
