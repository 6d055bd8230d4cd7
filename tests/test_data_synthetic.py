"""The synthetic generator (determinism, class design, no-delay ceiling) and the `data synth|check` commands."""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from suite.data import build_datasets, gsc, synthetic
from suite.data.commands import add_data_commands
from suite.errors import SuiteError

torch.set_num_threads(1)

TINY = {"n_classes": 6, "classes_per_group": 3, "train_per_class": 2, "valid_per_class": 1, "test_per_class": 1}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["gsc", "ssc", "shd"])
def test_generator_is_byte_deterministic(kind: str, tmp_path: Path) -> None:
    a = _digest(synthetic.write_format(kind, tmp_path / "a", TINY, seed=5))
    b = _digest(synthetic.write_format(kind, tmp_path / "b", TINY, seed=5))
    c = _digest(synthetic.write_format(kind, tmp_path / "c", TINY, seed=6))
    assert a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a if "_noise_" not in k and not k.endswith(".txt"))
    expected = {"gsc": 6 * 4 + 3, "ssc": 3, "shd": 2}[kind]  # gsc: wavs + noise wav + 2 lists
    assert len(a) == expected


def test_default_class_table_and_ceiling() -> None:
    table = synthetic.class_table(None, "gsc")
    assert len(table) == 35 and [s.name for s in table] == sorted(s.name for s in table)
    groups: dict[int, list[synthetic.ClassSpec]] = {}
    for spec in table:
        groups.setdefault(spec.group, []).append(spec)
    assert len(groups) == 7 and all(len(g) == 5 for g in groups.values())
    contents = {g: Counter(specs[0].events) for g, specs in groups.items()}
    for g, specs in groups.items():
        assert all(Counter(s.events) == contents[g] for s in specs)  # same events inside a group
        assert len({(s.events, s.gaps) for s in specs}) == len(specs)  # only order / gaps differ
        # same number of event frames and the same event types: a frame-bag classifier cannot separate them
        assert len({len(s.events) for s in specs}) == 1
    assert len({frozenset(c) for c in contents.values()}) == 7  # groups differ in content
    # Fano plane: two groups always share exactly one event type, so no single event identifies a group
    assert all(len(set(contents[a]) & set(contents[b])) == 1 for a in groups for b in groups if a < b)
    assert {s.gaps for s in table} == {(5, 5), (10, 5), (5, 10)}  # 50 / 100 ms in 10 ms ticks
    assert synthetic.no_delay_ceiling(None, "gsc") == pytest.approx(7 / 35)
    assert synthetic.no_delay_ceiling({}, "ssc") == pytest.approx(0.2)
    assert synthetic.no_delay_ceiling({}, "shd") == pytest.approx(4 / 20)
    assert synthetic.chance_level({}, "gsc") == pytest.approx(1 / 35)
    assert synthetic.no_delay_ceiling({"classes_per_group": 7}, "ssc") == pytest.approx(5 / 35)


def test_placement_respects_class_timing() -> None:
    """Onset differences are event length + class gap +- jitter; events stay inside the clip margins."""
    s = synthetic.resolve_settings({}, "gsc")
    for spec in synthetic.class_table(s, "gsc")[:10]:
        for i in range(20):
            rng = np.random.default_rng([0, i])
            clip = synthetic._clip_ticks(rng, s)
            placed = synthetic._place(rng, spec, s, clip)
            assert [e for e, _ in placed] == list(spec.events)
            onsets = [t for _, t in placed]
            for gap, a, b in zip(spec.gaps, onsets, onsets[1:], strict=False):
                assert abs((b - a) - (5 + gap)) <= 1
            assert onsets[0] >= 4 and onsets[-1] + 5 <= clip - 4


def test_synthetic_protocol_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"kind": "ssc", "synthetic": TINY}
    first = build_datasets(cfg, None, tmp_path)
    folders = list((tmp_path / "synthetic").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("ssc-")
    assert {k: len(v) for k, v in first.items()} == {"train": 12, "valid": 6, "test": 6}

    def no_write(*args: object) -> None:
        raise AssertionError("regenerated")

    monkeypatch.setattr(synthetic, "write_format", no_write)
    second = build_datasets(cfg, tmp_path / "ignored", tmp_path)
    assert all(d.from_cache for d in second.values())
    with pytest.raises(AssertionError):  # other settings -> other folder
        build_datasets({"kind": "ssc", "synthetic": {**TINY, "seed": 1}}, None, tmp_path)


def test_synthetic_settings_are_checked() -> None:
    with pytest.raises(SuiteError, match="gap_long_ms"):
        synthetic.resolve_settings({"gap_long_ms": 60}, "gsc")
    with pytest.raises(SuiteError, match="event_ms: 55 must be a non-negative multiple of 10"):
        synthetic.resolve_settings({"event_ms": 55}, "gsc", "synthetic")
    with pytest.raises(SuiteError, match="clip_min_ms"):
        synthetic.resolve_settings({"clip_min_ms": 300, "clip_max_ms": 300}, "gsc")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="suite")
    add_data_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_synth_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gsc"
    args = _parse(["data", "synth", "--format", "gsc", "--out", str(out), "--seed", "2", "--per-class", "4",
                   "--classes", "5"])
    assert args.func(args) == 0
    said = capsys.readouterr().out
    assert "5 classes, train 20, valid 5, test 5" in said and "no-delay ceiling 0.2000" in said
    assert len(gsc.scan_tree(out).files["train"]) == 20
    with pytest.raises(SuiteError, match="already exists"):
        args.func(args)

    check = _parse(["data", "check", str(out)])
    assert check.func(check) == 0
    table = capsys.readouterr().out
    assert "gsc data at" in table and "structure ok" in table
    assert "train          20    84,843  differs" in table and "classes         5        35  differs" in table
    strict = _parse(["data", "check", str(out), "--strict"])
    assert strict.func(strict) == 1

    wav = out / gsc.scan_tree(out).files["valid"][0]
    wav.write_bytes(wav.read_bytes()[:300])
    assert check.func(check) == 2
    assert "truncated" in capsys.readouterr().err
    quick = _parse(["data", "check", str(out), "--quick"])
    assert quick.func(quick) == 0  # headers are not opened in quick mode


def test_cli_check_h5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["data", "synth", "--format", "shd", "--out", str(tmp_path / "shd"), "--per-class", "1",
                   "--classes", "4"])
    assert args.func(args) == 0
    check = _parse(["data", "check", str(tmp_path / "shd")])
    assert check.func(check) == 0
    table = capsys.readouterr().out
    assert "shd data at" in table and "test            4     2,264  differs" in table
    with h5py.File(tmp_path / "shd" / "shd_test.h5", "a") as f:
        del f["labels"]
    assert check.func(check) == 2
    assert "shd_test.h5: missing key 'labels'" in capsys.readouterr().err


def test_default_ssc_task_needs_timing(tmp_path: Path) -> None:
    """On the default SSC-mini data, order-free features find the group but not the class; timing finds the class."""
    ds = build_datasets({"kind": "ssc", "synthetic": {}}, None, tmp_path)
    assert {k: len(v) for k, v in ds.items()} == {"train": 840, "valid": 210, "test": 210}

    def features(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bags, timings, labels = [], [], []
        for x, label in ds[split]:
            bands = x.numpy().reshape(x.shape[0], 7, 20).sum(-1)  # counts per event-type slot of 100 channels
            assert 50 <= x.shape[0] <= 60
            bags.append(bands.sum(0) / bands.sum())  # which events occur: no timing at all
            active = np.clip(bands - 3, 0, None)  # activity above the background
            centre = (active * np.arange(x.shape[0])[:, None]).sum(0) / (active.sum(0) + 1e-9)
            present = active.sum(0) > 0.1 * active.sum()
            timings.append(np.where(present, centre - centre[present].min(), -20.0))  # when each event occurs
            labels.append(label)
        return np.array(bags), np.array(timings), np.array(labels)

    def nearest_centroid(train: np.ndarray, y_train: np.ndarray, test: np.ndarray) -> np.ndarray:
        centres = np.stack([train[y_train == c].mean(0) for c in range(35)])
        return ((test[:, None] - centres[None]) ** 2).sum(-1).argmin(1)

    bag_tr, time_tr, y_tr = features("train")
    bag_te, time_te, y_te = features("test")
    bag_pred = nearest_centroid(bag_tr, y_tr, bag_te)
    assert (bag_pred // 5 == y_te // 5).mean() > 0.95  # the event content identifies the group...
    assert (bag_pred == y_te).mean() <= synthetic.no_delay_ceiling({}, "ssc") + 0.05  # ...but not the class
    assert (nearest_centroid(time_tr, y_tr, time_te) == y_te).mean() > 0.9  # timing does
