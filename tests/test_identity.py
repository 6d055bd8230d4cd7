"""Run identity: the collisions of issue 14 replayed (a protocol copy under a registered name, a one-epoch override
of a registered protocol, another --data-root, a resume after the epochs changed, another thread count), and
overrides checked before any data is read (run --dry-run, bad --set values)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny import TINY_PROTOCOL, write_band

from suite.cli import main
from suite.data import synthetic
from suite.errors import SuiteError
from suite.identity import registered_protocol, resolve_run
from suite.ops.registry import resolve as resolve_backend
from suite.registry import get_protocol
from suite.specs import RunSpec
from suite.train import Progress, run_training

GSC_TREE_PROTOCOL = """\
name: tiny-gsc
version: 1
description: "test protocol on a GSC-layout tree given by --data-root"
data: {kind: gsc, n_mels: 40, time_step_ms: 10, synthetic: null}
model: {n_hidden: [8], kernel_size: 5, dropout: 0.1}
optim: {epochs: 2, batch_size: 16}
measure: {memory: false, training_latency: false, warmup: 1, repeats: 2}
seeds: [0]
"""


class Interrupt(Progress):
    """Ctrl-C after the first batch of ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def batch_done(self, epoch: int, batch: int, loss: float) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _stable(record: dict[str, Any]) -> tuple[Any, ...]:
    history = [{k: v for k, v in row.items() if "seconds" not in k} for row in record["history"]]
    metrics = {k: v for k, v in record["metrics"].items() if k.startswith(("test_acc", "best_", "params"))}
    return metrics, history


@pytest.fixture
def registered_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A protocol directory in which ``tiny`` (4 epochs) is a registered protocol, as gsc is in suite/protocols."""
    directory = tmp_path / "protocols"
    directory.mkdir()
    (directory / "tiny.yaml").write_text(TINY_PROTOCOL)
    monkeypatch.setattr("suite.registry.PROTOCOL_DIR", directory)
    registered_protocol.cache_clear()
    yield directory
    registered_protocol.cache_clear()


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]


def test_protocol_copy_under_a_registered_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = (Path(__file__).parent.parent / "suite" / "protocols" / "gsc.yaml").read_text()
    same = tmp_path / "same.yaml"
    same.write_text(text)
    assert get_protocol(str(same)).protocol_hash == get_protocol("gsc").protocol_hash  # an exact copy is fine
    copy = tmp_path / "gsc.yaml"
    copy.write_text(text.replace("epochs: 100", "epochs: 1"))
    assert main(["run", "--protocol", str(copy), "--variant", "axonal", "--dry-run", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{copy}: name 'gsc' is a registered protocol with other content (epochs=1)" \
        in err and "--set KEY=VALUE" in err


def test_override_of_a_registered_protocol_is_kept_apart(registered_tiny: Path, tmp_path: Path, data_cache: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """The issue's first collision: a one-epoch run of a registered protocol must not stand for the real one."""
    out = tmp_path / "results"
    common = ["run", "--protocol", "tiny", "--variant", "axonal", "--out", str(out), "--cache-dir", str(data_cache)]
    assert main([*common, "--set", "epochs=1"]) == 0
    capsys.readouterr()
    assert main(common) == 0
    assert "0 already recorded" in capsys.readouterr().out  # the one-epoch record does not count as the real run
    short, full = sorted(_records(out), key=lambda r: len(r["history"]))
    assert (len(short["history"]), len(full["history"])) == (1, 4)
    assert short["identity"]["protocol_hash"] != full["identity"]["protocol_hash"]
    assert full["identity"]["protocol_hash"] == get_protocol("tiny").protocol_hash
    assert short["run_id"] != full["run_id"] and short["protocol"]["optim"]["epochs"] == 1

    board = out / "leaderboard"
    real, smoke = (board / "leaderboard_tiny.md").read_text(), (board / "leaderboard_tiny_epochs-1.md").read_text()
    assert "# Leaderboard: tiny, epochs=1" in smoke and "NOT COMPARABLE: protocol content differs from the " \
        "registered tiny (epochs=1)" in smoke and "NOT COMPARABLE" not in real

    refs = write_band(tmp_path / "refs", 100 * full["metrics"]["test_acc_at_best_valid"], 0.001)
    assert main(["verify", str(out), "--references", str(refs), "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("PASS") and "(n=1)" in line]
    assert [line for line in lines if line.startswith("NOT COMPARABLE") and "tiny, epochs=1 · axonal D=5" in line
            and "protocol content differs from the registered tiny (epochs=1)" in line]


def test_another_data_root_is_another_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The issue's second collision: a rerun on other data is not 'already recorded'."""
    protocol = tmp_path / "tiny-gsc.yaml"
    protocol.write_text(GSC_TREE_PROTOCOL)
    roots = [synthetic.ensure_generated("gsc", synthetic.resolve_settings(
        {"n_classes": 5, "train_per_class": 2, "valid_per_class": 1, "test_per_class": 1, "seed": seed}, "gsc"),
        tmp_path / "trees") for seed in (1, 2)]
    out, cache = tmp_path / "results", tmp_path / "cache"
    common = ["run", "--protocol", str(protocol), "--variant", "axonal", "--out", str(out), "--cache-dir", str(cache)]
    assert main([*common, "--data-root", str(roots[0])]) == 0
    capsys.readouterr()
    assert main([*common, "--data-root", str(roots[1])]) == 0
    assert "0 already recorded" in capsys.readouterr().out
    assert main([*common, "--data-root", str(roots[0])]) == 0
    assert "1 already recorded" in capsys.readouterr().out and len(_records(out)) == 2
    first, second = _records(out)
    assert {first["identity"]["data_root"], second["identity"]["data_root"]} == {str(r) for r in roots}
    assert first["identity"]["data_fingerprint"] != second["identity"]["data_fingerprint"]


def test_resume_never_crosses_identities(tiny_protocol_path: Path, tmp_path: Path, data_cache: Path) -> None:
    """The issue's third collision: after the epochs changed, the old checkpoint is not resumed (and a checkpoint
    file of another run put in its place is refused)."""
    four = get_protocol(str(tiny_protocol_path))
    two = four.with_overrides({"epochs": 2})
    with pytest.raises(KeyboardInterrupt):
        run_training(RunSpec("axonal", "tiny"), tmp_path, cache_dir=data_cache, protocol=four, progress=Interrupt(3))
    stale = tmp_path / "checkpoints" / f"{resolve_run(RunSpec('axonal', 'tiny'), four, None).run_id}.pt"
    assert stale.exists()
    record = run_training(RunSpec("axonal", "tiny"), tmp_path, cache_dir=data_cache, protocol=two)
    assert len(record["history"]) == 2 and record["metrics"]["epochs"] == 2 and stale.exists()
    clean = run_training(RunSpec("axonal", "tiny"), tmp_path / "clean", cache_dir=data_cache, protocol=two)
    assert _stable(record) == _stable(clean)  # trained from scratch, not continued from the 4-epoch checkpoint

    target = tmp_path / "checkpoints" / f"{record['run_id']}.pt"
    shutil.copy(stale, target)
    (tmp_path / "records" / f"tiny__axonal__seed0__{record['run_id']}.json").unlink()
    with pytest.raises(SuiteError, match=rf"{target}: checkpoint was written for run_id \w+, this run has "
                                         rf"{record['run_id']}; not resuming it"):
        run_training(RunSpec("axonal", "tiny"), tmp_path, cache_dir=data_cache, protocol=two)


def test_resume_on_another_thread_count_says_so(tiny_protocol_path: Path, tmp_path: Path, data_cache: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    protocol = get_protocol(str(tiny_protocol_path))
    with pytest.raises(KeyboardInterrupt):
        run_training(RunSpec("axonal", "tiny"), tmp_path, cache_dir=data_cache, protocol=protocol,
                     progress=Interrupt(2))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        record = run_training(RunSpec("axonal", "tiny"), tmp_path, cache_dir=data_cache, protocol=protocol)
    finally:
        torch.set_num_threads(threads)
    assert f"resuming with {threads + 1} torch threads a checkpoint written with {threads}" in capsys.readouterr().err
    assert record["identity"]["torch_threads"] == threads + 1
    assert record["identity"]["resumed_from_torch_threads"] == threads


@pytest.fixture(scope="module")
def gsc_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GSC-layout tree of synthetic WAVs: building its feature cache is the slow step a bad --set must precede."""
    return synthetic.ensure_generated("gsc", synthetic.resolve_settings(
        {"n_classes": 10, "train_per_class": 10, "valid_per_class": 2, "test_per_class": 2, "seed": 3}, "gsc"),
        tmp_path_factory.mktemp("tree"))


def test_dry_run_reads_no_data(gsc_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache = tmp_path / "cache"
    argv = ["run", "--protocol", "gsc", "--variant", "axonal", "--variant", "dendritic", "--seeds", "0",
            "--data-root", str(gsc_tree), "--cache-dir", str(cache), "--out", str(tmp_path / "out"),
            "--set", "epochs=1", "--set", "kernel_size=15", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "protocol gsc, epochs=1: hash" in out and "NOT COMPARABLE with published gsc numbers" in out
    backend = resolve_backend("auto", "cpu")  # `run`'s default backend as resolved on this machine
    planned = [RunSpec(v, "gsc", backend, seed=0, overrides={"kernel_size": 15}) for v in ("axonal", "dendritic")]
    protocol = get_protocol("gsc").with_overrides({"epochs": 1})
    for spec in planned:
        assert resolve_run(spec, protocol, gsc_tree).run_id in out
    assert out.count("│ no ") + out.count(" no │") >= 2
    assert not cache.exists() and not (tmp_path / "out").exists()  # nothing read, built or written


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=one", "--set epochs: 'one' has the wrong type, expected int"),
        ("optim.max_lr_w=[1]", "--set optim.max_lr_w: optim.groups.weights.max_lr: must be a finite number > 0.0"),
        ("n_mels=0", "data.n_mels: 0, expected an integer in 1..512"),
        ("kernel_size=30", "kernel_size: must be a positive odd number of steps, got 30"),
        ("epoch=1", "--set epoch: unknown key; protocol keys: epochs, batch_size"),
        ("memory=maybe", "--set memory: 'maybe' has the wrong type, expected bool"),
    ],
)
def test_bad_override_fails_before_any_data(gsc_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                            override: str, message: str) -> None:
    cache = tmp_path / "cache"
    assert main(["run", "--protocol", "gsc", "--variant", "axonal", "--data-root", str(gsc_tree), "--cache-dir",
                 str(cache), "--out", str(tmp_path / "out"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not cache.exists()


def test_overrides_reach_every_protocol_section() -> None:
    base = get_protocol("gsc")
    changed = base.with_overrides({"epochs": 2, "batch_size": 64, "max_lr_w": 0.01, "lr_pos": 0.2,
                                   "weight_decay": 0.0, "optim.groups.norm.eps": 1e-6, "data.n_mels": 80,
                                   "time_step_ms": 5, "measure.repeats": 3})
    groups = changed.optim["groups"]
    assert (changed.optim["epochs"], changed.optim["batch_size"]) == (2, 64)
    assert (groups["weights"]["max_lr"], groups["norm"]["max_lr"], groups["positions"]["lr"]) == (0.01, 0.01, 0.2)
    assert (groups["weights"]["weight_decay"], groups["norm"]["eps"]) == (0.0, 1e-6)
    assert changed.data["n_mels"] == 80 and changed.data["time_step_ms"] == 5 and changed.measure["repeats"] == 3
    assert base.optim["epochs"] == 100 and changed.protocol_hash != base.protocol_hash
    assert base.with_overrides({"epochs": 100}).protocol_hash == base.protocol_hash  # same content, same identity


def test_unregistered_protocol_with_other_content_is_not_pooled(tiny_protocol_path: Path, tmp_path: Path,
                                                               data_cache: Path) -> None:
    """A user's own protocol has no registered content to compare with: records of two contents stay apart."""
    from suite.records import collect_runs

    four = get_protocol(str(tiny_protocol_path))
    for protocol in (four, four.with_overrides({"epochs": 1})):
        run_training(RunSpec("axonal", "tiny"), tmp_path, cache_dir=data_cache, protocol=protocol)
    groups, errors, _ = collect_runs(tmp_path)
    assert not errors and sorted((g.protocol_label, len(g.records)) for g in groups) == sorted(
        (f"tiny [protocol {p.protocol_hash[:6]}]", 1) for p in (four, four.with_overrides({"epochs": 1})))
    assert all(g.not_comparable is None for g in groups)
