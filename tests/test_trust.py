"""Trust (issue 15): no result lost, no value accepted without meaning, no traceback on plausible bad input.

Organised by the issue's classes: 1 data loss on `run --force`, 3 value validation and strict JSON, 4 `data check`
catching what training trips on (and training giving the same one-line error), 7 broken plug-ins, 8 CLI edge cases.
Everything runs on tiny protocols and tiny synthetic data in the real file formats.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import soundfile

from suite import registry
from suite.cli import main
from suite.data import build_datasets, gsc, ssc, synthetic
from suite.errors import SuiteError
from suite.progress import RichProgress
from suite.records import CHECKPOINTS_DIR, load_record, strict_json, write_record
from suite.specs import MAX_EPOCHS, OPTIM_DEFAULTS, ModelSpec, RunSpec, run_spec_from_yaml
from suite.training import build_optimisation

REPO = Path(__file__).resolve().parent.parent


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed command, without its 'error: ' prefix."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err[len("error: "):].strip()


def _raises(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SuiteError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


# ------------------------------------------------------------------ class 1: run --force loses nothing


def _run_args(protocol: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["run", "--protocol", str(protocol), "--variant", "no-delay", "--seeds", "0,1", "--out", str(out),
            "--cache-dir", str(cache), *extra]


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, epoch: int | None) -> list[int]:
    """Ctrl-C at the first batch of ``epoch`` (None: never) in the first run that reaches it; returns the start epochs
    the runs reported."""
    starts: list[int] = []
    original = RichProgress.run_started

    def run_started(self: RichProgress, spec: RunSpec, epochs: int, batches: int, start_epoch: int) -> None:
        starts.append(start_epoch)
        original(self, spec, epochs, batches, start_epoch)

    def batch_done(self: RichProgress, at: int, batch: int, loss: float) -> None:
        if at == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(RichProgress, "run_started", run_started)
    monkeypatch.setattr(RichProgress, "batch_done", batch_done)
    return starts


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, tiny_protocol_path: Path, data_cache: Path) -> Path:
    """Two finished runs (seeds 0 and 1) of a tiny protocol; tests copy the folder."""
    out = tmp_path_factory.mktemp("recorded") / "results"
    assert main(_run_args(tiny_protocol_path, out, data_cache)) == 0
    assert len(list((out / "records").glob("*.json"))) == 2
    return out


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "records").glob("*.json"))}


def test_force_interrupted_in_first_run_keeps_every_record(
        recorded: Path, tmp_path: Path, tiny_protocol_path: Path, data_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = shutil.copytree(recorded, tmp_path / "results")
    before = _snapshot(out)
    _interrupt_at(monkeypatch, epoch=0)
    assert main(_run_args(tiny_protocol_path, out, data_cache, "--force")) == 130
    assert _snapshot(out) == before  # the run it was in and the run it never reached: both records intact
    assert sorted(p.name for p in (out / "models").glob("*.pt")) == sorted(p.name for p in (recorded / "models").glob(
        "*.pt"))


def test_force_interrupted_after_an_epoch_resumes_and_replaces(
        recorded: Path, tmp_path: Path, tiny_protocol_path: Path, data_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = shutil.copytree(recorded, tmp_path / "results")
    before = _snapshot(out)
    starts = _interrupt_at(monkeypatch, epoch=2)
    assert main(_run_args(tiny_protocol_path, out, data_cache, "--force")) == 130
    assert _snapshot(out) == before
    checkpoints = list((out / CHECKPOINTS_DIR).glob("*.pt"))
    assert len(checkpoints) == 1  # the rerun's own, saved after its first two epochs
    monkeypatch.undo()
    starts = _interrupt_at(monkeypatch, epoch=None)
    assert main(_run_args(tiny_protocol_path, out, data_cache, "--force")) == 0
    assert starts == [2, 0]  # the interrupted rerun resumed from its own checkpoint; the other started afresh
    assert not list((out / CHECKPOINTS_DIR).glob("*.pt"))
    after = _snapshot(out)
    assert sorted(after) == sorted(before)
    for name in before:  # a replaced record: same numbers (CPU runs are deterministic), written anew
        old, new = json.loads(before[name]), json.loads(after[name])
        assert new["created"] >= old["created"]
        for key in ("test_acc_at_best_valid", "test_acc_last_epoch", "best_valid_acc", "best_epoch"):
            assert new["metrics"][key] == old["metrics"][key]


def test_force_does_not_resume_a_checkpoint_older_than_the_record(
        recorded: Path, tmp_path: Path, tiny_protocol_path: Path, data_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = shutil.copytree(recorded, tmp_path / "results")
    _interrupt_at(monkeypatch, epoch=2)
    assert main(_run_args(tiny_protocol_path, out, data_cache, "--force")) == 130
    (checkpoint,) = (out / CHECKPOINTS_DIR).glob("*.pt")
    record = next((out / "records").glob(f"*__{checkpoint.stem}.json"))
    old = record.stat().st_mtime_ns - 10**9
    os.utime(checkpoint, ns=(old, old))  # as a leftover of the recorded run would be
    monkeypatch.undo()
    starts = _interrupt_at(monkeypatch, epoch=None)
    assert main(_run_args(tiny_protocol_path, out, data_cache, "--force")) == 0
    assert starts == [0, 0]


# ------------------------------------------------------------------ class 3: values with meaning; strict JSON


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"v_threshold": -1.0}, "model.v_threshold: must be a finite number > 0.0, got -1.0"),
        ({"v_threshold": float("nan")}, "model.v_threshold"),
        ({"sig_final": -0.1}, "model.sig_final"),
        ({"sig_final": float("inf")}, "model.sig_final"),
        ({"sig_start": 0}, "model.sig_start"),
        ({"tau": float("nan")}, "model.tau: must exceed 1 step"),
        ({"tau": -2}, "model.tau"),
        ({"surrogate_alpha": 0}, "model.surrogate_alpha"),
        ({"batchnorm": 2}, "model.batchnorm: must be true or false, got 2"),
        ({"batchnorm": "yes"}, "model.batchnorm: must be true or false, got 'yes'"),
        ({"n_hidden": (64.5,)}, "model.n_hidden: must be a non-empty list of positive sizes, got [64.5]"),
        ({"n_hidden": (64.0, 32)}, "model.n_hidden"),
        ({"n_hidden": (True,)}, "model.n_hidden"),
        ({"n_hidden": "64"}, "model.n_hidden"),
        ({"n_hidden": ()}, "model.n_hidden"),
        ({"kernel_size": 15.0}, "model.kernel_size"),
        ({"kernel_size": True}, "model.kernel_size"),
        ({"n_inputs": 40.5}, "model.n_inputs"),
        ({"dropout": float("nan")}, "model.dropout: must be in [0, 1), got nan"),
        ({"dropout": "0.1"}, "model.dropout"),
        ({"sig_decay_fraction": 0}, "model.sig_decay_fraction"),
        ({"delay_type": ["axonal"]}, "model.delay_type"),
        ({"variant": 3}, "model.variant"),
    ],
)
def test_model_values_are_checked_for_type_and_range(kwargs: dict[str, Any], needle: str) -> None:
    assert needle in _raises(ModelSpec, **kwargs)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("variant: axonal\nprotocol: gsc\nofficial_metric: 'no'\n", "run.official_metric: must be true or false"),
        ("variant: [axonal]\nprotocol: gsc\n", "run.variant: must be a name"),
        ("variant: axonal\nprotocol: gsc\nseed: 4294967296\n", "run.seed"),
        ("variant: axonal\nprotocol: gsc\nseed: 1.0\n", "run.seed"),
    ],
)
def test_run_spec_values_are_checked(text: str, needle: str) -> None:
    assert needle in _raises(run_spec_from_yaml, text)


def test_valid_integral_values_are_kept_exactly() -> None:
    spec = ModelSpec(n_hidden=[64, np.int64(32)], tau=2, v_threshold=1, batchnorm=False)
    assert spec.n_hidden == (64, 32) and spec.tau == 2 and spec.batchnorm is False


def _protocol_text(extra: str) -> str:
    """A small valid protocol, with ``extra`` (optim:, data:, measure:, ... lines) replacing or adding sections."""
    sections = {"version": "1", "data": "{kind: ssc, synthetic: {n_classes: 3}}", "model": "{}", "optim": "{}"}
    sections.update(dict(line.split(": ", 1) for line in extra.splitlines()))
    return "name: p\n" + "".join(f"{key}: {value}\n" for key, value in sections.items())


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("optim: {lr_w: 0.001}", "optim.lr_w: has no effect: OneCycleLR sets the weights' learning rate"),
        ("optim: {epochs: 0}", "optim.epochs: must be an integer in 1..10000, got 0"),
        ("optim: {epochs: -3}", "optim.epochs"),
        ("optim: {epochs: 1000000000}", "optim.epochs: must be an integer in 1..10000"),
        ("optim: {epochs: 2.5}", "optim.epochs"),
        ("optim: {epochs: true}", "optim.epochs"),
        ("optim: {batch_size: 0}", "optim.batch_size: must be an integer >= 1, got 0"),
        ("optim: {batch_size: 16.5}", "optim.batch_size"),
        ("optim: {weight_decay: 0.0}", "optim.weight_decay: moved: set optim.groups.weights.weight_decay"),
        ("optim: {groups: {weights: {optimizer: adam, lr: 0.1, weight_decay: -0.00001, scheduler: constant}}}",
         "optim.groups.weights.weight_decay: must be a finite number >= 0.0"),
        ("optim: {groups: {norm: {optimizer: adam, scheduler: one_cycle, max_lr: .nan}}}",
         "optim.groups.norm.max_lr"),
        ("optim: {groups: {positions: {optimizer: adam, lr: 0, scheduler: cosine}}}", "optim.groups.positions.lr"),
        ("optim: {groups: {positions: {optimizer: adam, lr: '0.1', scheduler: cosine}}}",
         "optim.groups.positions.lr"),
        ("measure: {repeats: 0}", "measure.repeats: must be an integer >= 1, got 0"),
        ("measure: {warmup: 0}", "measure.warmup"),
        ("measure: {warmup: -1}", "measure.warmup"),
        ("measure: {memory: 'yes'}", "measure.memory: must be true or false"),
        ("measure: {training_latency: 1}", "measure.training_latency"),
        ("measure: [memory]", "measure"),
        ("seeds: [4294967296]", "seeds: must be a non-empty list of integers in 0..2**32 - 1"),
        ("seeds: [1.5]", "seeds"),
        ("seeds: []", "seeds"),
        ("seeds: 3", "seeds"),
        ("embedded: 'yes'", "embedded: must be true or false"),
        ("version: 0", "version"),
        ("data: {kind: gsc, n_mels: 0}", "data.n_mels"),
        ("data: {kind: gsc, n_mels: 40.5}", "data.n_mels"),
        ("data: {kind: ssc, n_bins: 701}", "data.n_bins"),
        ("data: {kind: ssc, n_bins: 0}", "data.n_bins"),
        ("data: {kind: ssc, time_step_ms: .nan}", "data.time_step_ms"),
        ("data: {kind: ssc, time_step_ms: 0}", "data.time_step_ms"),
        ("data: {kind: gsc, time_step_ms: 30}", "data.time_step_ms"),
    ],
)
def test_protocol_values_are_checked(tmp_path: Path, extra: str, needle: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(_protocol_text(extra))
    message = _raises(registry.get_protocol, str(path))
    assert str(path) in message and needle in message


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"optim": {**OPTIM_DEFAULTS, "epochs": 0}}, "protocol 'gsc-mini': optim.epochs"),
        ({"optim": {**OPTIM_DEFAULTS, "lr_w": 1e-3}}, "protocol 'gsc-mini': optim.lr_w: has no effect"),
        ({"measure": {"repeats": -1}}, "protocol 'gsc-mini': measure.repeats"),
        ({"seeds": (2**32,)}, "protocol 'gsc-mini': seeds"),
        ({"data": {"kind": "gsc", "n_mels": 0}}, "protocol 'gsc-mini': data.n_mels"),
    ],
)
def test_a_rebuilt_protocol_is_validated(change: dict[str, Any], needle: str) -> None:
    """Code that derives a ProtocolSpec (e.g. protocol-level overrides) gets the same checks as a protocol file."""
    assert needle in _raises(dataclasses.replace, registry.get_protocol("gsc-mini"), **change)


def test_lr_w_is_gone_and_changes_no_number() -> None:
    """OneCycleLR sets the weights' starting learning rate to max_lr_w / 25, so the removed lr_w never mattered."""
    assert "lr_w" not in OPTIM_DEFAULTS
    for name in registry.protocol_names():
        assert "lr_w" not in registry.get_protocol(name).optim
    model, _ = registry.create_model("axonal", registry.get_protocol("gsc-mini"))
    optimisers = build_optimisation(model, registry.get_protocol("gsc-mini").with_overrides({"epochs": 4}).optim
                                    ).optimisers
    assert [g["lr"] for g in optimisers["weights+norm"].param_groups] == [pytest.approx(2e-4)] * 2
    assert optimisers["positions"].param_groups[0]["lr"] == 0.1


def test_records_are_strict_json_and_old_records_with_lr_w_load(recorded: Path, tmp_path: Path) -> None:
    source = next((recorded / "records").glob("*.json"))
    record = load_record(source)
    assert "lr_w" not in record["protocol"]["optim"]
    record["history"][0]["train_loss"] = float("nan")
    record["history"][0]["valid_loss"] = float("inf")
    record["protocol"]["optim"]["lr_w"] = 0.001  # a record written before lr_w was removed
    path = tmp_path / "records" / source.name
    write_record(path, record)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON token {token}")

    strict = json.loads(text, parse_constant=refuse)
    assert strict["history"][0]["train_loss"] is None and strict["history"][0]["valid_loss"] is None
    assert load_record(path)["protocol"]["optim"]["lr_w"] == 0.001
    assert strict_json({"a": [math.nan, 1.5, (math.inf, -math.inf)]}) == '{"a": [null, 1.5, [null, null]]}'


# ------------------------------------------------------------------ class 4: data check catches what training trips on


SMALL = {"n_classes": 4, "classes_per_group": 2, "train_per_class": 1, "valid_per_class": 1, "test_per_class": 1}


def _same_error(capsys: pytest.CaptureFixture[str], root: Path, data_cfg: dict[str, Any], cache: Path,
                needle: str) -> str:
    """`data check` exits 2 with one line; training's data path raises the same message."""
    assert main(["data", "check", str(root)]) == 2
    checked = _one_line_error(capsys)
    trained = _raises(build_datasets, data_cfg, root, cache)
    assert checked == trained and needle in checked, (checked, trained)
    return checked


@pytest.fixture(scope="module")
def gsc_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_gsc_tree(tmp_path_factory.mktemp("gsc") / "tree", SMALL, seed=1)


@pytest.fixture(scope="module")
def ssc_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_ssc_h5(tmp_path_factory.mktemp("ssc") / "ssc", SMALL, seed=1, prefix="ssc")


def test_gsc_tree_with_more_than_35_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic.write_gsc_tree(tmp_path / "tree", {**SMALL, "n_classes": 36, "classes_per_group": 4}, seed=0)
    message = _same_error(capsys, root, {"kind": "gsc"}, tmp_path / "cache", "36 classes (word folders)")
    assert message.startswith(str(root)) and "at most 35" in message
    assert main(["data", "check", str(root), "--protocol", "gsc-mini"]) == 2  # the protocol's 35 classes
    assert "at most 35" in _one_line_error(capsys)


def test_ssc_with_more_classes_than_the_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic.write_ssc_h5(tmp_path / "ssc", {**SMALL, "n_classes": 40, "classes_per_group": 4}, seed=0,
                                  prefix="ssc")
    message = _same_error(capsys, root, {"kind": "ssc"}, tmp_path / "cache", "40 classes (class names in extra/keys)")
    assert "ssc_train.h5" in message


def _replace(path: Path, key: str, data: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        del f[key]
        f.create_dataset(key, data=data)


def test_ssc_non_integer_labels(ssc_files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shutil.copytree(ssc_files, tmp_path / "ssc")
    with h5py.File(root / "ssc_valid.h5") as f:
        labels = f["labels"][()].astype(np.float64)
    labels[1] = 2.5
    _replace(root / "ssc_valid.h5", "labels", labels)
    message = _same_error(capsys, root, {"kind": "ssc"}, tmp_path / "cache", "sample 1: label 2.5 is not an integer")
    assert "ssc_valid.h5" in message
    labels[1] = 2.0  # a whole number stored as float is a label
    _replace(root / "ssc_valid.h5", "labels", labels)
    assert main(["data", "check", str(root)]) == 0
    labels[1] = np.nan
    _replace(root / "ssc_valid.h5", "labels", labels)
    assert main(["data", "check", str(root)]) == 2
    assert "label nan is not an integer" in _one_line_error(capsys)
    _replace(root / "ssc_valid.h5", "labels", np.array([b"a"] * len(labels)))
    assert main(["data", "check", str(root)]) == 2
    assert "expected integers" in _one_line_error(capsys)


def test_ssc_labels_outside_the_class_names(ssc_files: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = shutil.copytree(ssc_files, tmp_path / "ssc")
    with h5py.File(root / "ssc_test.h5") as f:
        labels = f["labels"][()]
    labels[0] = 4
    _replace(root / "ssc_test.h5", "labels", labels)
    message = _same_error(capsys, root, {"kind": "ssc"}, tmp_path / "cache", "sample 0: label 4 outside 0..3")
    assert "ssc_test.h5" in message


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t, u: (t * 1000, u), "are the times in milliseconds? expected seconds"),
        (lambda t, u: (t - 1.0, u), "negative spike time"),
        (lambda t, u: (t, np.where(u == u.max(), 700, u)), "unit 700 out of range 0..699"),
    ],
)
def test_ssc_spike_values(ssc_files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any,
                          needle: str) -> None:
    root = shutil.copytree(ssc_files, tmp_path / "ssc")
    with h5py.File(root / "ssc_train.h5", "a") as f:
        times, units = edit(np.asarray(f["spikes/times"][2]), np.asarray(f["spikes/units"][2]).astype(np.int64))
        f["spikes/times"][2] = times.astype(f["spikes/times"].dtype.metadata["vlen"])
        f["spikes/units"][2] = units.astype(f["spikes/units"].dtype.metadata["vlen"])
    message = _same_error(capsys, root, {"kind": "ssc"}, tmp_path / "cache", needle)
    assert "ssc_train.h5: sample 2" in message


def test_real_ssc_durations_pass() -> None:
    """A 1.4 s sample (the longest SHD/SSC durations) is fine; the bound is documented in suite/data/ssc.py."""
    ssc.check_sample(Path("x.h5"), 0, np.array([0.0, 1.4]), np.array([0, 699]))
    assert ssc.MAX_SPIKE_TIME_S == 10.0


def _write_float_wav(path: Path, samples: np.ndarray) -> None:
    soundfile.write(path, samples.astype(np.float32), gsc.SAMPLE_RATE, subtype="FLOAT", format="WAV")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_gsc_float_wav_with_non_finite_samples(gsc_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               bad: float) -> None:
    root = shutil.copytree(gsc_tree, tmp_path / "tree")
    rel = gsc.scan_tree(root).files["valid"][0]
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 8000)
    samples[1234] = bad
    _write_float_wav(root / rel, samples)
    message = _same_error(capsys, root, {"kind": "gsc"}, tmp_path / "cache", "sample 1234 is")
    assert str(root / rel) in message and "expected finite audio" in message


def test_gsc_finite_float_wav_is_accepted(gsc_tree: Path, tmp_path: Path) -> None:
    root = shutil.copytree(gsc_tree, tmp_path / "tree")
    rel = gsc.scan_tree(root).files["train"][0]
    _write_float_wav(root / rel, np.random.default_rng(0).uniform(-0.5, 0.5, 8000))
    assert gsc.wav_info(root / rel).format_tag == gsc.WAVE_FORMAT_IEEE_FLOAT
    assert main(["data", "check", str(root)]) == 0


@pytest.mark.parametrize("n_samples", [0, 399])
def test_gsc_clip_too_short_for_one_frame(gsc_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          n_samples: int) -> None:
    root = shutil.copytree(gsc_tree, tmp_path / "tree")
    rel = gsc.scan_tree(root).files["test"][0]
    soundfile.write(root / rel, np.zeros(n_samples, dtype=np.int16), gsc.SAMPLE_RATE, subtype="PCM_16", format="WAV")
    message = _same_error(capsys, root, {"kind": "gsc"}, tmp_path / "cache",
                          f"{n_samples} samples, expected at least 400")
    assert str(root / rel) in message


def test_gsc_duplicate_split_entry(gsc_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shutil.copytree(gsc_tree, tmp_path / "tree")
    lines = (root / "validation_list.txt").read_text().splitlines()
    (root / "validation_list.txt").write_text("\n".join([*lines, lines[0]]) + "\n")
    message = _same_error(capsys, root, {"kind": "gsc"}, tmp_path / "cache",
                          f"validation_list.txt:{len(lines) + 1}: lists {lines[0]!r} again (first on line 1)")
    assert message.startswith(str(root / "validation_list.txt"))


# ------------------------------------------------------------------ class 7: plug-ins


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install tiny distributions (a module plus a .dist-info with entry_points.txt) as pip would, on sys.path."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_VARIANTS", dict(registry._VARIANTS))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    modules: list[str] = []

    def install(dist: str, module: str, source: str, target: str = "register") -> None:
        (tmp_path / f"{module}.py").write_text(source)
        info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[suite.variants]\n{module}-ep = {module}:{target}\n")
        modules.append(module)

    yield install
    for module in modules:
        sys.modules.pop(module, None)


GOOD = """
from suite.registry import register_variant

def register():
    register_variant("good-delays", description="fine", delay_type="axonal")
"""


def test_registration_that_raises_is_one_warning_and_undone(plugins: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plugins("half-plugin", "half_plugin", """
from suite.registry import register_variant

def register():
    register_variant("half-a", description="registered before the failure", delay_type="axonal")
    raise RuntimeError("boom\\nsecond line")
""")
    plugins("good-plugin", "good_plugin", GOOD)
    found = registry.variants()
    assert "half-a" not in found  # partial registrations are undone
    assert "good-delays" in found and found["good-delays"].origin == "good-plugin"
    assert {"no-delay", "axonal", "synaptic", "dendritic"} <= set(found)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "warning: plug-in half-plugin (entry point half_plugin-ep = half_plugin:register" in err
    assert "skipped: RuntimeError: boom second line" in err


@pytest.mark.parametrize(
    ("source", "target", "needle"),
    [
        ("import no_such_dependency\n", "register", "ModuleNotFoundError: No module named 'no_such_dependency'"),
        ("def register(:\n", "register", "SyntaxError"),
        ("raise ImportError('needs CUDA')\n", "register", "ImportError: needs CUDA"),
        (GOOD, "no_such_function", "AttributeError"),
    ],
)
def test_entry_point_that_fails_to_import(plugins: Any, capsys: pytest.CaptureFixture[str], source: str, target: str,
                                          needle: str) -> None:
    plugins("bad-import", "bad_import", source, target)
    assert main(["list"]) == 0  # every command keeps working
    out, err = capsys.readouterr()
    assert "axonal" in out
    assert err.count("\n") == 1 and "plug-in bad-import (entry point bad_import-ep" in err and needle in err


def test_duplicate_variant_names_both_owners(plugins: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plugins("dup-builtin", "dup_builtin", """
from suite.registry import register_variant

def register():
    register_variant("axonal", description="clash", delay_type="axonal")
""")
    plugins("good-plugin", "good_plugin", GOOD)
    plugins("good-twin", "good_twin", GOOD)
    found = registry.variants()
    assert found["axonal"].origin == "suite" and found["good-delays"].origin in ("good-plugin", "good-twin")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert any("variant 'axonal' from dup-builtin is already registered by suite" in line for line in lines)
    (twin,) = {"good-plugin", "good-twin"} - {found["good-delays"].origin}
    clash = f"variant 'good-delays' from {twin} is already registered by {found['good-delays'].origin}"
    assert any(clash in line for line in lines)


BUILDERS = """
from torch import nn
from suite.registry import register_variant

def returns_int():
    register_variant("returns-int", description="", delay_type="axonal", builder=lambda spec, backend: 3)

def returns_linear():
    register_variant("returns-linear", description="", delay_type="axonal",
                     builder=lambda spec, backend: nn.Linear(2, 2))

def raises():
    register_variant("raises", description="", delay_type="axonal", builder=lambda spec, backend: 1 / 0)
"""


@pytest.mark.parametrize(
    ("variant", "needle"),
    [
        ("returns-int", "its builder returned int, expected a torch.nn.Module"),
        ("returns-linear", "its builder returned Linear lacking param_groups, after_step, end_epoch, hard_copy"),
        ("raises", "its builder failed: ZeroDivisionError: division by zero"),
    ],
)
def test_builder_of_the_wrong_type_is_a_one_line_error(plugins: Any, capsys: pytest.CaptureFixture[str],
                                                       variant: str, needle: str) -> None:
    """Refused when its entry point registers it (the model contract is checked on a tiny build): one warning."""
    plugins("bad-builders", "bad_builders", BUILDERS, target=variant.replace("-", "_"))
    assert variant not in registry.variants()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"variant {variant!r} (from bad-builders)" in err and needle in err
    message = _raises(registry.create_model, variant, registry.get_protocol("ssc-mini"))
    assert message.startswith(f"unknown variant {variant!r}")
    assert main(["describe", variant, "--protocol", "ssc-mini"]) == 2
    assert f"unknown variant {variant!r}" in _one_line_error(capsys)
    assert main(["describe", "axonal", "--protocol", "ssc-mini"]) == 0  # the built-ins are unaffected


# ------------------------------------------------------------------ class 8: CLI edge cases


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("x=!!python/object:os.system", "--set 'x=!!python/object:os.system': line 1 malformed YAML"),
        ("kernel_size=!!python/name:os.system", "malformed YAML"),
        ("kernel_size=[1,", "--set 'kernel_size=[1,': line 1 malformed YAML"),
        ("kernel_size={a: 1", "malformed YAML"),
        ("kernel_size=abc", "--set kernel_size: 'abc' has the wrong type, expected int"),
        ("kernel_size=15.0", "--set kernel_size: 15.0 has the wrong type, expected int"),
        ("batchnorm=2", "--set batchnorm: 2 has the wrong type, expected bool"),
        ("batchnorm='yes'", "--set batchnorm: 'yes' has the wrong type, expected bool"),
        ("n_hidden=[64.5]", "--set n_hidden: [64.5] has the wrong type, expected list of integers"),
        ("n_hidden=64", "--set n_hidden: 64 has the wrong type, expected list of integers"),
        ("tau=.nan", "model.tau"),
        ("v_threshold=-1", "model.v_threshold"),
        ("dropout=[0.1]", "--set dropout: [0.1] has the wrong type, expected float"),
        ("n_inputs=3", "--set n_inputs: cannot be set: input and output sizes come from the protocol's data"),
        ("n_outputs=10", "--set n_outputs: cannot be set"),
        ("kernel=15", "--set kernel: unknown key; protocol keys:"),
        ("=3", "expected KEY=VALUE"),
    ],
)
@pytest.mark.parametrize("command", ["describe", "run"])
def test_set_values_are_one_line_errors_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        command: str, value: str, needle: str) -> None:
    argv = (["describe", "axonal", "--protocol", "ssc-mini"] if command == "describe" else
            ["run", "--protocol", "ssc-mini", "--variant", "axonal", "--out", str(tmp_path / "out")])
    assert main([*argv, "--set", value]) == 2
    assert needle in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()  # nothing built, nothing written


@pytest.mark.parametrize("seeds", ["4294967296", "-1", "1,x", ","])
def test_out_of_range_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str], seeds: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--protocol", "ssc-mini", "--variant", "axonal", "--seeds", seeds, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "--seeds" in capsys.readouterr().err
    assert "run.seed: must be a non-negative int up to 2**32 - 1" in _raises(RunSpec, "axonal", "ssc-mini",
                                                                             seed=2**32)
    assert RunSpec("axonal", "ssc-mini", seed=2**32 - 1).seed == 2**32 - 1


def test_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--protocol", "ssc-mini", "--variant", "axonal", "--backend", "tensorflow",
                 "--out", str(tmp_path)]) == 2
    assert "unknown backend 'tensorflow'" in _one_line_error(capsys)
    assert main(["run", "--protocol", "ssc-mini", "--variant", "axonl", "--out", str(tmp_path)]) == 2
    assert "unknown variant 'axonl'" in _one_line_error(capsys)
    assert main(["run", "--protocol", "ssc-min", "--variant", "axonal", "--out", str(tmp_path)]) == 2
    assert "unknown protocol 'ssc-min'" in _one_line_error(capsys)
    assert main(["bench", "--backend", "tensorflow", "--no-memory"]) == 2
    assert "unknown backend 'tensorflow'" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--batch", "0"], "bench --batch: must be >= 1, got 0"),
        (["--batch", "-4"], "bench --batch"),
        (["--repeats", "0"], "bench --repeats"),
        (["--warmup", "-1"], "bench --warmup: must be >= 0"),
        (["--threads", "0"], "bench --threads"),
        (["--time-steps", "0"], "bench --time-steps: must be >= 1, got 0"),
        (["--hidden", "0"], "bench --hidden"),
        (["--layers", "0"], "bench --layers"),
        (["--kernel-size", "0"], "bench --kernel-size"),
        (["--seed", "-1"], "bench --seed: must be in 0..4294967295"),
        (["--seed", "4294967296"], "bench --seed"),
        (["--variant", "somatic"], "bench --variant: 'somatic' has no published counterpart"),
    ],
)
def test_bench_sizes(capsys: pytest.CaptureFixture[str], flags: list[str], needle: str) -> None:
    assert main(["bench", "--no-memory", *flags]) == 2
    assert needle in _one_line_error(capsys)


def test_data_synth_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`data synth ... | head` where head has already gone: no traceback, exit 141 (128 + SIGPIPE) as `seq | head`."""
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run([sys.executable, "-m", "suite", "data", "synth", "--format", "shd", "--out",
                           str(tmp_path / "shd"), "--classes", "2", "--per-class", "1"],
                          stdout=write, stderr=subprocess.PIPE, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""
    assert (tmp_path / "shd" / "shd_train.h5").is_file()  # the data were written before the output


def test_protocol_epochs_bound_is_documented() -> None:
    assert MAX_EPOCHS == 10_000
    assert "10000" in (REPO / "docs" / "protocols.md").read_text()
