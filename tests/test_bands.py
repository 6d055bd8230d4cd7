"""suite.bands: a multi-seed sweep becomes reference entries whose numbers are exact, which the reference loader
accepts and which verify then passes on the same records; bad sweeps are refused with one line."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from test_verify import make_record

from suite import bands
from suite.errors import SuiteError
from suite.records import write_record
from suite.references import load_reference_file
from suite.verify import PASS, verify_results

ACCS = (0.90, 0.92, 0.95, 0.93, 0.91)


def _sweep(out: Path, accs: tuple[float, ...] = ACCS, commit: str = "abcdef0123", dirty: bool = False,
           params: tuple[int, ...] | None = None, device: str = "cpu") -> list[Path]:
    paths = []
    for seed, acc in enumerate(accs):
        path = make_record(out, protocol="gsc-mini", kernel_size=15, seed=seed, acc=acc,
                           params_trainable=(params or (9320,) * len(accs))[seed])
        record = json.loads(path.read_text())
        record["environment"] = {"git_commit": commit, "git_dirty": dirty, "device": device}
        write_record(path, record)
        paths.append(path)
    return paths


def test_band_numbers(tmp_path: Path) -> None:
    _sweep(tmp_path)
    entries, seeds = bands.measure_bands(tmp_path)
    acc, params = entries
    percents = [100 * a for a in ACCS]
    mean, std = statistics.fmean(percents), statistics.stdev(percents)
    n_test = bands.test_split_size("gsc-mini")
    assert n_test == 210
    sigma_test = 100 * math.sqrt(mean / 100 * (1 - mean / 100) / n_test)
    assert acc["value"] == round(mean, 2) and acc["std"] == round(std, 2)
    assert acc["tolerance"] == {"abs": round(max(3 * std, 3 * sigma_test, 1.0), 2)}
    assert acc["source"] == "this suite @ abcdef0, torch backend, CPU, seeds 0-4"
    assert seeds == [0, 1, 2, 3, 4]
    assert params["value"] == 9320 and params["tolerance"] == {"abs": 0} and params["status"] == "derived"


def test_generated_file_loads_and_verifies(tmp_path: Path) -> None:
    results, refs = tmp_path / "results", tmp_path / "refs"
    _sweep(results)
    assert bands.main([str(results), "--out", str(refs / "embedded.yaml")]) == 0
    loaded = load_reference_file(refs / "embedded.yaml")
    assert [r.metric for r in loaded] == ["test_acc_at_best_valid", "params_trainable"]
    checks = verify_results(results, refs)
    assert [c.status for c in checks if c.reference is not None] == [PASS, PASS]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dirty": True}, "modified checkout"),
    ({"accs": (0.9, 0.91, 0.92, 0.93)}, "at least 5"),
    ({"params": (9320, 9320, 9321, 9320, 9320)}, "parameter counts differ"),
    ({"device": "cuda"}, "measured on CPU"),
])
def test_bad_sweeps_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    _sweep(tmp_path, **kwargs)
    with pytest.raises(SuiteError, match=message):
        bands.measure_bands(tmp_path)


def test_mixed_commits_and_one_line_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _sweep(tmp_path)
    record = json.loads(paths[0].read_text())
    record["environment"]["git_commit"] = "1234567890"
    write_record(paths[0], record)
    assert bands.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bands: axonal D=15 on gsc-mini: records from commits") and err.count("\n") == 1
