"""Adding a method without editing the suite: the example package's entry point is discovered, the variant trains
and appears on the leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from suite import registry
from suite.report import build_leaderboard
from suite.specs import RunSpec
from suite.train import run_training, seed_everything

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "suite-fixed-delays"


@pytest.fixture
def installed_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``pip install examples/suite-fixed-delays`` provides: the package on sys.path and its entry-point metadata
    (a .dist-info with entry_points.txt), discovered through importlib.metadata exactly as an installed package."""
    dist_info = tmp_path / "suite_fixed_delays-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: suite-fixed-delays\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text("[suite.variants]\nfixed-delays = suite_fixed_delays:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.setattr(registry, "_VARIANTS", dict(registry._VARIANTS))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    yield
    sys.modules.pop("suite_fixed_delays", None)


def test_plugin_variant_is_listed_trains_and_reaches_the_leaderboard(
        installed_example: None, tmp_path: Path, tiny_protocol_path: Path, data_cache: Path) -> None:
    found = registry.variants()
    assert "axonal-fixed" in found and found["axonal-fixed"].origin == "suite-fixed-delays"
    protocol = registry.get_protocol(str(tiny_protocol_path))
    seed_everything(0)  # as the runner does, so `model` has the run's initial positions
    model, spec = registry.create_model("axonal-fixed", protocol)
    assert spec.delay_type == "axonal"
    assert all(not d.P.requires_grad for d in model.delay_modules())
    initial = [d.P.detach().clone() for d in model.delay_modules()]

    record = run_training(RunSpec("axonal-fixed", "tiny"), tmp_path, cache_dir=data_cache, protocol=protocol)
    # Frozen positions are not trainable parameters: only weights and BatchNorm count.
    assert record["metrics"]["params_trainable"] == 35 * 8 + 8 * 10 + 2 * 8
    saved = torch.load(tmp_path / "models" / f"{record['run_id']}.pt")
    for i, start in enumerate(initial):
        assert torch.equal(saved[f"layers.{i}.delay.P"], start)
    frames, warnings = build_leaderboard(tmp_path)
    assert not warnings
    assert "axonal-fixed" in set(frames["tiny"]["variant"])


def test_broken_plugin_is_one_warning_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dist_info = tmp_path / "broken_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[suite.variants]\nbroken = no_such_module:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_VARIANTS", dict(registry._VARIANTS))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    assert "axonal" in registry.variants()  # built-in variants keep working
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "plug-in broken-plugin (entry point broken = no_such_module:register" in err
    assert "skipped: ModuleNotFoundError" in err
