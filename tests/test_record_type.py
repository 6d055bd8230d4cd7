"""The one record module and the support code written once: the Record type round-trips, validation names the file
and the field, an old schema version is one line, and verify, the leaderboard and the metrics table group through
:func:`suite.records.collect_runs`; the timer's statistics; environment capture; the memory worker's errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from test_records import BAND, full_record

from suite.environment import PACKAGES, package_version, record_environment
from suite.errors import SuiteError
from suite.identity import protocol_block
from suite.metrics.memory import measure_in_subprocess
from suite.metrics.table import trained_models
from suite.models.network import DelayNetwork
from suite.records import (
    MODELS_DIR,
    Record,
    collect_runs,
    load_record,
    record_name_parts,
    record_path,
    write_record,
)
from suite.registry import get_protocol
from suite.report import build_leaderboard
from suite.specs import ModelSpec
from suite.timing import Samples, time_interleaved
from suite.verify import NOT_COMPARABLE, PASS, verify_results


def _write(out: Path, record: dict[str, Any]) -> Path:
    path = record_path(out, record["spec"]["protocol"], record["spec"]["variant"], record["spec"]["seed"],
                       record["run_id"])
    write_record(path, record)
    return path


def test_record_round_trips_with_typed_accessors(tmp_path: Path) -> None:
    record = full_record(seed=3, acc=0.75)
    path = tmp_path / "records" / "r.json"
    written = write_record(path, record)
    loaded = load_record(path)
    assert isinstance(loaded, Record) and loaded == record == written and loaded.path == path == written.path
    assert json.loads(json.dumps(loaded)) == record  # still the JSON object
    assert (loaded.run_id, loaded.variant, loaded.protocol, loaded.protocol_version, loaded.seed, loaded.backend) == \
        (record["run_id"], "axonal", "gsc-mini", 1, 3, "torch")
    assert loaded.kernel_size == record["model_spec"]["kernel_size"] and loaded.overrides == {}
    assert loaded.metric("test_acc_at_best_valid") == 0.75 and loaded.metric("params_trainable") == 9320.0
    assert loaded.metric("synops_kind_per_layer") is None and loaded.metric("no_such_metric") is None
    assert loaded.metric("inference_peak_bytes") is None  # null in the record
    assert loaded.environment["device"] == "cpu" and loaded.identity == {} and loaded.created.startswith("2026")


def test_record_file_name_round_trips(tmp_path: Path) -> None:
    path = record_path(tmp_path, "gsc-mini", "axonal-sparse", 12, "0123abcd")
    assert record_name_parts(path) == ("gsc-mini", "axonal-sparse", "seed12", "0123abcd")
    assert record_name_parts(tmp_path / "notes.json") is None


def test_non_finite_metric_round_trips_as_null(tmp_path: Path) -> None:
    record = full_record()
    record["metrics"]["test_loss_at_best_valid"] = math.inf
    loaded = load_record(write_record(tmp_path / "r.json", record).path)
    assert loaded.metrics["test_loss_at_best_valid"] is None and loaded.metric("test_loss_at_best_valid") is None


def test_no_delay_record_has_no_kernel_size(tmp_path: Path) -> None:
    loaded = load_record(write_record(tmp_path / "r.json", full_record("no-delay")).path)
    assert loaded.kernel_size is None and loaded.variant == "no-delay"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("metrics.best_valid_acc", 1.5, "metrics.best_valid_acc must be a fraction in [0, 1], got 1.5"),
    ("spec.seed", "0", "spec.seed must be a non-negative integer, got '0'"),
    ("run_id", "../../x", "run_id must be a hex string of 6 to 64 characters, got '../../x'"),
    ("model_spec.kernel_size", 4, "model_spec.kernel_size must be a positive odd integer, got 4"),
])
def test_validation_error_names_file_and_field(tmp_path: Path, field: str, value: Any, message: str) -> None:
    record = full_record()
    *parents, leaf = field.split(".")
    node = record
    for key in parents:
        node = node[key]
    node[leaf] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record))
    with pytest.raises(SuiteError) as err:
        load_record(path)
    assert str(err.value) == f"{path}: {message}"
    with pytest.raises(SuiteError, match=message.replace("[", r"\[").replace("]", r"\]")):
        write_record(tmp_path / "out.json", record)
    assert not (tmp_path / "out.json").exists()  # nothing half-written


@pytest.mark.parametrize("version", [0, 2])
def test_other_schema_version_is_one_line_everywhere(tmp_path: Path, version: int) -> None:
    out = tmp_path / "results"
    good = _write(out, full_record())
    old = full_record(seed=1)
    old["schema_version"] = version
    path = record_path(out, "gsc-mini", "axonal", 1, old["run_id"])
    path.write_text(json.dumps(old))
    line = f"{path}: record schema version {version} is not supported (this suite reads version 1)"
    with pytest.raises(SuiteError) as err:
        load_record(path)
    assert str(err.value) == line
    groups, errors, _ = collect_runs(out)
    assert errors == [(path, line)] and [g.paths for g in groups] == [(good,)]
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "band.yaml").write_text(BAND)
    checks = verify_results(out, refs)
    assert [(c.status, c.subject, c.message) for c in checks if c.files == (path,)] == [
        ("ERROR", str(path), line.removeprefix(f"{path}: "))]


def _edited_protocol_record(seed: int = 0) -> dict[str, Any]:
    """A legitimate run of gsc-mini with ``--set epochs=1``: its protocol content (and identity) differ."""
    record = full_record(seed=seed)
    edited = get_protocol("gsc-mini").with_overrides({"epochs": 1})
    record["protocol"] = json.loads(json.dumps(protocol_block(edited)))
    record["identity"] = {"run_id": "ab" * 8, "protocol_hash": edited.protocol_hash, "data_fingerprint": None}
    record["run_id"] = "ab" * 8
    return record


def test_edited_protocol_lands_in_one_not_comparable_group_for_verify_and_leaderboard(tmp_path: Path) -> None:
    out = tmp_path / "results"
    clean = [_write(out, full_record(seed=s, acc=0.8)) for s in (0, 1)]
    edited = _write(out, _edited_protocol_record())
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "band.yaml").write_text(BAND)

    groups, errors, _ = collect_runs(out)
    assert not errors
    (apart,) = [g for g in groups if g.not_comparable]
    assert apart.protocol_label == "gsc-mini, epochs=1" and apart.paths == (edited,)
    assert apart.not_comparable == "protocol content differs from the registered gsc-mini (epochs=1)"
    assert [g.paths for g in groups if not g.not_comparable] == [tuple(clean)]

    checks = verify_results(out, refs)
    assert [c.status for c in checks] == [NOT_COMPARABLE, PASS]
    assert checks[0].files == (edited,) and checks[0].subject.startswith(f"{apart.protocol_label} · {apart.label} · ")
    assert checks[0].message.startswith(apart.not_comparable) and checks[1].files == tuple(clean)

    frames, _ = build_leaderboard(out, refs)
    (row,) = frames[apart.protocol_label].query("source.str.startswith('this suite,')", engine="python").itertuples()
    assert row.note == f"NOT COMPARABLE: {apart.not_comparable}" and row.seeds == 1
    assert frames["gsc-mini"].query("source.str.startswith('this suite,')", engine="python")["seeds"].tolist() == [2]


def test_metrics_table_takes_one_model_per_group(tmp_path: Path) -> None:
    """trained_models groups like the leaderboard: a copied record of one run is one model, an edited protocol is
    its own configuration, seeds other than 0 are left out."""
    out = tmp_path / "results"
    records = [full_record(seed=0), full_record(seed=1), _edited_protocol_record()]
    for record in records:
        _write(out, record)
        net = DelayNetwork(ModelSpec(**record["model_spec"]))
        (out / MODELS_DIR).mkdir(exist_ok=True)
        torch.save(net.state_dict(), out / MODELS_DIR / f"{record['run_id']}.pt")
    seed0 = record_path(out, "gsc-mini", "axonal", 0, records[0]["run_id"])
    shutil.copy(seed0, seed0.with_name(f"copy__{records[0]['run_id']}.json"))
    models = trained_models(out)
    assert len(models) == 2 and all(isinstance(m, DelayNetwork) and m.spec.variant == "axonal" for m in models)


def test_timer_statistics_are_exact() -> None:
    samples = Samples(wall=[1.0, 2.0, 3.0, 4.0, 10.0])
    assert samples.summary() == {"median_s": 3.0, "iqr_s": 2.0, "mean_s": 4.0, "std_s": pytest.approx(12.5 ** 0.5),
                                 "min_s": 1.0, "repeats": 5}
    assert Samples(wall=[0.5]).summary() == {"median_s": 0.5, "iqr_s": 0.0, "mean_s": 0.5, "std_s": 0.0,
                                             "min_s": 0.5, "repeats": 1}


def test_interleaved_timer_calls_in_rounds() -> None:
    calls: list[str] = []
    stats = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, "cpu", warmup=2,
                             repeats=3)
    assert calls == ["a", "a", "b", "b", "a", "b", "a", "b", "a", "b"]
    assert set(stats) == {"a", "b"} and all(len(s["wall_each_s"]) == 3 and s["repeats"] == 3 for s in stats.values())
    assert {"median_s", "iqr_s", "mean_s", "std_s", "min_s", "cpu_median_s", "minor_faults_median"} <= set(stats["a"])
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        time_interleaved({"a": lambda: None}, "cpu", 0, 0)


def test_record_environment_has_the_documented_keys() -> None:
    env = record_environment("cpu")
    assert set(env) == {"python", "platform", "processor", "cpu_count", "torch_threads", "device", "device_name",
                        "git_commit", "git_dirty", "git_note", "packages", "cpu_kernels"}
    assert tuple(env["packages"]) == PACKAGES and env["packages"]["torch"] == package_version("torch")
    assert env["device"] == "cpu" and env["torch_threads"] == torch.get_num_threads()
    assert package_version("no-such-distribution-for-the-suite") is None


def test_memory_worker_failure_is_one_line() -> None:
    with pytest.raises(SuiteError) as err:
        measure_in_subprocess({"mode": "bench", "config": {}, "delay_type": "axonal", "stack": "torch", "run": False},
                              timeout=120)
    assert str(err.value).startswith("memory measurement (bench) failed: KeyError") and "\n" not in str(err.value)
