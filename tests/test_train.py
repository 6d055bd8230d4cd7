"""The runner: determinism, resumption after an interruption, model selection, records and skip/force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from suite.identity import resolve_run
from suite.records import find_record, load_record
from suite.registry import get_protocol
from suite.specs import RunSpec
from suite.train import Progress, official_best_test, run_training

TIMING_KEYS = ("seconds", "latency", "peak_bytes", "memory_method")


def _stable(record: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and history without wall-clock measurements (the only things allowed to differ between runs)."""
    metrics = {k: v for k, v in record["metrics"].items() if not any(t in k for t in TIMING_KEYS)}
    history = [{k: v for k, v in row.items() if "seconds" not in k} for row in record["history"]]
    return metrics, history


class Interrupt(Progress):
    """Raise KeyboardInterrupt in the middle of an epoch, as Ctrl-C would."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def batch_done(self, epoch: int, batch: int, loss: float) -> None:
        if (epoch, batch) == self.at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, tiny_protocol_path: Path, data_cache: Path):
    out = tmp_path_factory.mktemp("runs")
    protocol = get_protocol(str(tiny_protocol_path))
    spec = resolve_run(RunSpec("axonal", "tiny", seed=1), protocol, None)
    record = run_training(spec, out, cache_dir=data_cache, protocol=protocol)
    return spec, protocol, out, record


def test_record_contents(reference_run: Any) -> None:
    spec, protocol, out, record = reference_run
    path = find_record(out, spec.run_id)
    assert path is not None and load_record(path) == json.loads(path.read_text())
    assert record["run_id"] == spec.run_id and record["spec"]["seed"] == 1
    assert len(record["history"]) == protocol.optim["epochs"]
    m = record["metrics"]
    best = max(range(len(record["history"])), key=lambda e: record["history"][e]["valid_acc"])
    assert m["best_epoch"] == best and m["best_valid_acc"] == record["history"][best]["valid_acc"]
    assert 0.0 <= m["test_acc_at_best_valid"] <= 1.0 and "official_best_test_acc" not in m
    # 700 channels / n_bins 20 = 35 inputs: weights 35x8 + 8x10, positions 35 + 8 (N_in per layer), BN 2x8
    assert m["params_trainable"] == 35 * 8 + 8 * 10 + 35 + 8 + 2 * 8
    env = record["environment"]
    assert env["packages"]["torch"] and "git_commit" in env and env["device"] == "cpu"
    assert not (out / "checkpoints" / f"{spec.run_id}.pt").exists(), "checkpoint is removed once the record exists"
    # The sigma schedule ran: 4 epochs -> decays during epoch 0 only (epochs // 4 = 1), to sig_final.
    assert record["history"][0]["sig"] == pytest.approx(0.23)


def test_same_spec_same_metrics(reference_run: Any, tmp_path: Path, data_cache: Path) -> None:
    spec, protocol, _, record = reference_run
    again = run_training(spec, tmp_path, cache_dir=data_cache, protocol=protocol)
    assert _stable(again) == _stable(record)


def test_interrupted_run_resumes_to_identical_metrics(reference_run: Any, tmp_path: Path, data_cache: Path) -> None:
    spec, protocol, _, record = reference_run
    with pytest.raises(KeyboardInterrupt):
        run_training(spec, tmp_path, cache_dir=data_cache, protocol=protocol, progress=Interrupt(epoch=2, batch=1))
    assert find_record(tmp_path, spec.run_id) is None, "no record for an unfinished run"
    assert (tmp_path / "checkpoints" / f"{spec.run_id}.pt").exists()
    resumed = run_training(spec, tmp_path, cache_dir=data_cache, protocol=protocol)
    assert _stable(resumed) == _stable(record)


def test_official_metric_is_labelled_and_consistent(tmp_path: Path, tiny_protocol_path: Path, data_cache: Path) -> None:
    protocol = get_protocol(str(tiny_protocol_path))
    record = run_training(RunSpec("dendritic", "tiny", official_metric=True), tmp_path, cache_dir=data_cache,
                          protocol=protocol)
    history, m = record["history"], record["metrics"]
    assert all("test_batch_mean_acc" in row for row in history)
    assert m["official_best_test_acc"] == official_best_test(history)


def test_official_metric_selects_on_per_batch_mean_validation() -> None:
    """A recorded history where per-sample and per-batch-mean validation pick different epochs: the official number
    follows the per-batch mean (official train.py @a75ae78 lines 473-483 and 534), then max with the last test."""
    history = [
        {"valid_acc": 0.50, "valid_batch_mean_acc": 0.55, "test_batch_mean_acc": 0.61},
        {"valid_acc": 0.60, "valid_batch_mean_acc": 0.52, "test_batch_mean_acc": 0.66},  # best per sample
        {"valid_acc": 0.58, "valid_batch_mean_acc": 0.57, "test_batch_mean_acc": 0.64},  # best per batch mean
        {"valid_acc": 0.40, "valid_batch_mean_acc": 0.57, "test_batch_mean_acc": 0.30},  # a tie does not reselect
    ]
    assert max(range(4), key=lambda e: history[e]["valid_acc"]) == 1
    assert official_best_test(history) == 0.64  # test at epoch 2, not 0.66 (epoch 1), not 0.30 (a tie, later)
    history[-1]["test_batch_mean_acc"] = 0.70
    assert official_best_test(history) == 0.70  # the last epoch's test wins when higher (hazard 1)
    assert official_best_test([{"valid_batch_mean_acc": 0.0, "test_batch_mean_acc": 0.2}]) == 0.2


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path, tiny_protocol_path: Path, data_cache: Path) -> None:
    from suite.errors import SuiteError

    spec = resolve_run(RunSpec("axonal", "tiny"), get_protocol(str(tiny_protocol_path)), None)
    ckpt = tmp_path / "checkpoints" / f"{spec.run_id}.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\x00torn")
    with pytest.raises(SuiteError, match=rf"{ckpt}: unreadable checkpoint .* delete it to restart the run"):
        run_training(spec, tmp_path, cache_dir=data_cache, protocol=get_protocol(str(tiny_protocol_path)))
