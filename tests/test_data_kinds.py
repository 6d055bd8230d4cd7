"""Dataset kinds are registered like variants: protocols name one, unknown and duplicate names are one-line errors,
a plug-in kind (tests/frames_kind.py) arrives through an entry point and `run` trains on it, and `data synth` /
`data check` work for every registered kind through the kind's own generator and checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from suite import registry
from suite.cli import main
from suite.data import (
    build_datasets,
    dataset_kinds,
    get_dataset_kind,
    kinds,
    n_inputs,
    register_dataset_kind,
    synthetic,
)
from suite.errors import SuiteError
from suite.references import REFERENCES_DIR, load_reference_file

FRAMES_PROTOCOL = """\
name: frames-mini
version: 1
description: "test protocol on the plug-in dataset kind 'frames'"
embedded: true
data:
  kind: frames
  channels: 12
  synthetic: {n_classes: 4, train_per_class: 4, valid_per_class: 2, test_per_class: 2, seed: 0}
model:
  n_hidden: [8]
  kernel_size: 5
  dropout: 0.1
optim:
  epochs: 3
  batch_size: 8
measure: {memory: false, training_latency: false, warmup: 1, repeats: 2}
seeds: [0]
"""
SMALL = ["--per-class", "2", "--classes", "4"]


def _entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, target: str) -> None:
    """What ``pip install`` of a plug-in provides: a .dist-info whose entry_points.txt names ``target`` in the group
    ``suite.variants``, found through importlib.metadata; the registries are restored after the test."""
    dist_info = tmp_path / f"{name.replace('-', '_')}-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[suite.variants]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_VARIANTS", dict(registry._VARIANTS))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))


@pytest.fixture
def frames_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_point(tmp_path / "site", monkeypatch, "suite-frames-kind", "frames_kind:register")


def test_builtin_kinds_and_what_they_own() -> None:
    found = dataset_kinds()
    assert list(found)[:3] == ["gsc", "ssc", "shd"] and all(k.origin == "suite" for k in found.values())
    assert {name: (k.splits, k.official_classes) for name, k in found.items() if k.origin == "suite"} == {
        "gsc": (("train", "valid", "test"), 35), "ssc": (("train", "valid", "test"), 35),
        "shd": (("train", "test"), 20)}
    assert found["gsc"].official_sizes == {"train": 84843, "valid": 9981, "test": 11005}
    assert dict(found["shd"].settings) == {"n_bins": 5, "time_step_ms": 10, "valid_holdout": None}
    assert [r.name for r in found["ssc"].download.files] == ["ssc_train.h5.zip", "ssc_valid.h5.zip", "ssc_test.h5.zip"]
    assert n_inputs({"kind": "gsc", "n_mels": 64}) == 64 and n_inputs({"kind": "shd", "n_bins": 7}) == 100


def test_protocol_naming_an_unknown_kind_is_one_line_naming_file_key_and_kinds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wav.yaml"
    path.write_text(FRAMES_PROTOCOL.replace("name: frames-mini", "name: wav").replace("kind: frames", "kind: wav"))
    with pytest.raises(SuiteError) as err:
        registry.get_protocol(str(path))
    assert str(err.value) == f"{path}: data.kind: unknown kind 'wav', expected one of gsc, ssc, shd"
    assert main(["run", "--protocol", str(path), "--variant", "axonal", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {err.value}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "ssc", "n_mels": 64}, "data.n_mels: 64, only for gsc (kind ssc does not read it)"),
    ({"kind": "gsc", "valid_holdout": 0.2}, "data.valid_holdout: 0.2, only for shd (kind gsc does not read it)"),
    ({"kind": ["gsc"]}, "data.kind: unknown kind ['gsc'], expected one of gsc, ssc, shd"),
    ({"kind": "gsc", "time_step_ms": 26}, "data.time_step_ms: 26 exceeds the 25 ms fbank window, expected <= 25"),
])
def test_settings_belong_to_their_kind(data: dict[str, object], message: str) -> None:
    """A key another kind reads is accepted at its default (a shared template) and refused otherwise."""
    kinds.validate_data_config({"kind": "gsc", "n_bins": 5, "valid_holdout": None}, "data")
    with pytest.raises(SuiteError) as err:
        kinds.validate_data_config(data, "data")
    assert str(err.value).startswith(message)


def test_duplicate_and_malformed_registrations_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    twin = type(get_dataset_kind("ssc"))("ssc", "another SSC", None)
    with pytest.raises(SuiteError, match=r"^dataset kind 'ssc' from tests is already registered by suite$"):
        register_dataset_kind(twin, origin="tests")
    twin.name = "bad name"
    with pytest.raises(SuiteError, match="dataset kind 'bad name' from tests: expected a name of letters"):
        register_dataset_kind(twin, origin="tests")
    twin.name, twin.splits = "ssc2", ("valid", "test")
    with pytest.raises(SuiteError, match=r"splits \('valid', 'test'\), expected train"):
        register_dataset_kind(twin, origin="tests")
    with pytest.raises(SuiteError, match=r"is not a suite\.data\.kinds\.DatasetKind"):
        register_dataset_kind(object())  # type: ignore[arg-type]
    assert list(kinds._KINDS) == ["gsc", "ssc", "shd"]


def test_plugin_kind_with_a_taken_name_is_one_warning_and_undone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "twin_kind.py").write_text(
        "from suite.data import get_dataset_kind, register_dataset_kind\n"
        "from suite.registry import register_variant\n"
        "def register():\n"
        "    register_variant('twin-variant', description='d', delay_type='axonal')\n"
        "    register_dataset_kind(type(get_dataset_kind('gsc'))())\n")
    _entry_point(tmp_path / "site", monkeypatch, "twin-kind", "twin_kind:register")
    assert list(dataset_kinds()) == ["gsc", "ssc", "shd"] and "twin-variant" not in registry.variants()
    err = capsys.readouterr().err
    assert err == ("warning: plug-in twin-kind (entry point twin-kind = twin_kind:register in group suite.variants) "
                   "skipped: SuiteError: dataset kind 'gsc' from twin-kind is already registered by suite\n")
    sys.modules.pop("twin_kind", None)


def test_plugin_kind_is_listed_checked_and_trained_by_run(frames_plugin: None, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    frames = get_dataset_kind("frames")
    assert frames.origin == "suite-frames-kind" and list(dataset_kinds())[-1] == "frames"
    assert main(["list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│ frames")]
    assert len(listed) == 1 and "channels=12" in listed[0]
    path = tmp_path / "frames-mini.yaml"
    path.write_text(FRAMES_PROTOCOL)
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert main(["run", "--protocol", str(path), "--variant", "axonal", "--out", str(out), "--cache-dir",
                 str(cache)]) == 0
    record = json.loads(next((out / "records").glob("frames-mini__axonal__*.json")).read_text())
    settings = synthetic.resolve_settings(record["protocol"]["data"]["synthetic"], "frames")
    assert record["identity"]["data_fingerprint"] == f"synthetic-{synthetic.settings_hash('frames', settings)}"
    assert (record["model_spec"]["n_inputs"], record["model_spec"]["n_outputs"]) == (12, 4)
    # axonal, 12 -> 8 -> 4: weights 12x8 + 8x4, positions 12 + 8 (N_in per layer), BatchNorm 2x8
    assert record["metrics"]["params_trainable"] == 12 * 8 + 8 * 4 + 12 + 8 + 2 * 8
    assert len(record["history"]) == 3
    assert (8 * record["metrics"]["test_acc_at_best_valid"]).is_integer()  # per sample over the 8 test samples
    assert sorted(p.name.rsplit("-", 1)[0] for p in (cache / "features").iterdir()) == [
        "frames-test", "frames-train", "frames-valid"]
    datasets = build_datasets(record["protocol"]["data"], None, cache)
    assert {split: len(d) for split, d in datasets.items()} == {"train": 16, "valid": 8, "test": 8}
    x, label = datasets["train"][5]
    assert x.shape == (50, 12) and label == 1 and float(x.sum()) == 15.0  # three 5-tick events on one channel each


def _victim(kind: str, root: Path) -> Path:
    """One training file of a kind's synthetic tree, to corrupt."""
    return next(p for p in sorted(root.rglob("*")) if p.is_file() and "train" in p.name
                and p.suffix in (".wav", ".h5", ".npz") and not p.parent.name.startswith("_"))


@pytest.mark.parametrize("kind", ["gsc", "ssc", "shd", "frames"])
def test_data_synth_and_check_on_each_kinds_synthetic_files(frames_plugin: None, tmp_path: Path, kind: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / kind
    assert main(["data", "synth", "--format", kind, "--out", str(root), *SMALL]) == 0
    found = get_dataset_kind(kind)
    capsys.readouterr()
    assert main(["data", "check", str(root)]) == 0  # format detected by the kind
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{kind} data at {root}: structure ok"
    expected = {"train": 8, "valid": 4, "test": 4}  # --per-class 2: valid and test get max(1, 2 // 4) per class
    rows = {line.split()[0]: line.split()[1:3] for line in out[2:2 + len(found.splits) + 1]}
    assert rows == {**{split: [str(expected[split]), f"{found.official_sizes[split]:,}"] for split in found.splits},
                    "classes": ["4", str(found.official_classes)]}
    assert main(["data", "check", str(root), "--strict"]) == 1
    victim = _victim(kind, root)
    victim.write_bytes(b"not a data file")
    capsys.readouterr()
    assert main(["data", "check", str(root), "--format", kind]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {victim}: ") and err.count("\n") == 1


def test_frames_kind_corrupt_and_foreign_files_are_one_line(frames_plugin: None, tmp_path: Path) -> None:
    root = tmp_path / "frames"
    synthetic.write_format("frames", root, {"n_classes": 4, "train_per_class": 2}, seed=1)
    np.savez(root / "frames_valid.npz", features=np.zeros((3, 12), np.float32))
    with pytest.raises(SuiteError, match=r"frames_valid\.npz: missing array 'lengths'"):
        build_datasets({"kind": "frames", "channels": 12}, root, tmp_path / "cache")
    with pytest.raises(SuiteError, match=r"^protocol frames needs --data-root pointing at a folder holding "):
        build_datasets({"kind": "frames"}, None, tmp_path / "cache")


def test_reference_files_name_their_protocols(tmp_path: Path) -> None:
    """Reference lookup is data-driven: each shipped file names the protocols it covers, entries must be among them."""
    shipped = sorted(REFERENCES_DIR.glob("*.yaml"))
    covered = {p.name: set(yaml.safe_load(p.read_text())["protocols"]) for p in shipped if p.name != "claims.yaml"}
    assert covered == {"embedded.yaml": {"gsc-mini", "ssc-mini"}, "literature.yaml": {"gsc", "ssc", "shd"},
                       "paper.yaml": {"gsc", "ssc"}}
    path = tmp_path / "mine.yaml"
    path.write_text("protocols: [mine]\nentries:\n  - {protocol: mien, method: m, metric: params_trainable, value: 1,"
                    " source: s, status: quoted}\n")
    with pytest.raises(SuiteError) as err:
        load_reference_file(path)
    assert str(err.value) == f"{path}: entries[0].protocol: unknown protocol 'mien'; known: mine"
    path.write_text("protocols: mine\nentries: []\n")
    with pytest.raises(SuiteError, match=r"mine\.yaml: protocols: must be a non-empty list of protocol names"):
        load_reference_file(path)
