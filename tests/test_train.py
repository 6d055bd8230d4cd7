"""The runner: determinism, resumption after an interruption, model selection, records and skip/force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from suite.registry import get_protocol
from suite.results import find_record, load_record
from suite.specs import RunSpec
from suite.train import Progress, run_training

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
    spec = RunSpec("axonal", "tiny", seed=1)
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
    expected = max(history[-1]["test_batch_mean_acc"], history[m["best_epoch"]]["test_batch_mean_acc"])
    assert m["official_best_test_acc"] == expected


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path, tiny_protocol_path: Path, data_cache: Path) -> None:
    from suite.errors import SuiteError

    spec = RunSpec("axonal", "tiny")
    ckpt = tmp_path / "checkpoints" / f"{spec.run_id}.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\x00torn")
    with pytest.raises(SuiteError, match=rf"{ckpt}: unreadable checkpoint .* delete it to restart the run"):
        run_training(spec, tmp_path, cache_dir=data_cache, protocol=get_protocol(str(tiny_protocol_path)))
