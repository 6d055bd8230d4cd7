"""Run records as evidence: strict types, edited fields that would dodge a FAIL, verify's exit codes, foreign files in
records/, a corrupt record of a planned run, and the published JSON Schema (issue 15 classes 2 and 5, issue 18 item 7).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from records_schema import validate_against_schema

from suite.cli import main
from suite.data import n_classes, n_inputs
from suite.errors import SuiteError
from suite.records import SCHEMA, SCHEMA_VERSION, load_record, record_path, write_record
from suite.registry import get_protocol, get_variant
from suite.specs import RunSpec
from suite.verify import ERROR, FAIL, PASS, verify_results

REPO = Path(__file__).resolve().parent.parent
BAND = """\
entries:
  - {protocol: gsc-mini, method: band, variant: axonal, kernel_size: 15, metric: test_acc_at_best_valid,
     value: 80.0, std: 1.0, seeds: [0, 1], source: 'tests', status: measured, tolerance: {abs: 2.0},
     protocol_version: 1}
"""


def full_record(variant: str = "axonal", seed: int = 0, acc: float = 0.8) -> dict[str, Any]:
    """A complete gsc-mini record as train.py writes it (installed protocol, resolved ModelSpec), without training."""
    protocol = get_protocol("gsc-mini")
    spec = RunSpec(variant, protocol.name, "torch", seed)
    model = protocol.model_spec(get_variant(variant).defaults, variant, n_inputs(protocol.data),
                                n_classes(protocol.data))
    return json.loads(json.dumps({
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "spec": spec.to_dict(),
        "label": spec.label,
        "protocol": {"name": protocol.name, "version": protocol.version, "data": dict(protocol.data),
                     "model": dict(protocol.model), "optim": dict(protocol.optim), "embedded": protocol.embedded,
                     "measure": dict(protocol.measure)},
        "model_spec": model.__dict__,
        "environment": {"python": "3.11.7", "platform": "Linux", "processor": "x86_64", "cpu_count": 2,
                        "torch_threads": 1, "device": "cpu", "device_name": "x86_64", "git_commit": None,
                        "git_dirty": None, "packages": {"torch": "2.14.1"}, "cpu_kernels": None},
        "history": [{"epoch": 0, "train_loss": 2.0, "train_acc": 0.5, "valid_loss": 2.0, "valid_acc": acc,
                     "valid_batch_mean_acc": acc, "lr_w": 0.001, "lr_pos": 0.1, "sig": 0.23, "epoch_seconds": 1.0}],
        "metrics": {"test_acc_at_best_valid": acc, "test_acc_last_epoch": acc, "best_valid_acc": acc,
                    "best_epoch": 0, "test_loss_at_best_valid": 2.0, "train_seconds": 1.0, "epochs": 12,
                    "params_trainable": 9320, "synops_kind_per_layer": ["MAC", "AC"], "inference_peak_bytes": None},
        "created": "2026-01-01T00:00:00+0000",
    }))


def write_runs(out: Path, accs: tuple[float, ...] = (0.8, 0.8)) -> list[Path]:
    paths = []
    for seed, acc in enumerate(accs):
        record = full_record(seed=seed, acc=acc)
        path = record_path(out, "gsc-mini", "axonal", seed, record["run_id"])
        write_record(path, record)
        paths.append(path)
    return paths


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    """A references folder with one band: gsc-mini axonal D=15 v1 at 80 % ± 2 points."""
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "band.yaml").write_text(BAND)
    return tmp_path / "refs"


def _edit(path: Path, *changes: tuple[str, Any]) -> None:
    """Set dotted fields of the record at ``path`` (written as raw text: no validation on the way)."""
    record = json.loads(path.read_text())
    for dotted, value in changes:
        *parents, last = dotted.split(".")
        node = record
        for part in parents:
            node = node[part]
        node[last] = value
    path.write_text(json.dumps(record))


# Each case cuts seed 0's accuracy to 10 % (a FAIL) and edits one more field. Before: NOT COMPARABLE (exit 0) or a
# pass of a wrong type; now an ERROR naming the file and the field, exit 1.
DODGES = [
    ("protocol.version 99", [("protocol.version", 99)], "protocol.version 99 does not exist (this suite has gsc-mini "
                                                        "up to v1)"),
    ("protocol.version 0", [("protocol.version", 0)], "protocol.version must be a positive integer, got 0"),
    ("protocol.version '1'", [("protocol.version", "1")], "protocol.version must be a positive integer, got '1'"),
    ("kernel size 17", [("model_spec.kernel_size", 17)], "model_spec.kernel_size 17 is not what its overrides, "
                                                         "variant and protocol give (15)"),
    ("kernel size 16", [("model_spec.kernel_size", 16)], "model_spec.kernel_size must be a positive odd integer"),
    ("kernel size true", [("model_spec.kernel_size", True)], "model_spec.kernel_size must be a positive odd integer, "
                                                             "got True"),
    ("kernel size in model and protocol", [("model_spec.kernel_size", 17), ("protocol.model.kernel_size", 17)],
     "protocol.model differs from gsc-mini v1 as installed (kernel_size: 17 vs 15)"),
    ("epochs in protocol", [("protocol.optim.epochs", 1)], "protocol.optim differs from gsc-mini v1 as installed "
                                                           "(epochs: 1 vs 12)"),
    ("unknown variant", [("spec.variant", "axonall"), ("model_spec.variant", "axonall")],
     "spec.variant 'axonall' is not a registered variant"),
    ("variant only in spec", [("spec.variant", "dendritic")], "model_spec.variant must be the spec's variant "
                                                              "'dendritic', got 'axonal'"),
    ("accuracy true", [("metrics.test_acc_at_best_valid", True)], "metrics.test_acc_at_best_valid must be a fraction "
                                                                  "in [0, 1], got True"),
    ("accuracy in percent", [("metrics.test_acc_at_best_valid", 10.0)], "must be a fraction in [0, 1], got 10.0"),
    ("seed as a string", [("spec.seed", "0")], "spec.seed must be a non-negative integer, got '0'"),
    ("seed true", [("spec.seed", True)], "spec.seed must be a non-negative integer, got True"),
    ("params true", [("metrics.params_trainable", True)], "metrics.params_trainable must be a number, string, null"),
    ("epochs float", [("metrics.epochs", 12.5)], "metrics.epochs must be an integer, got 12.5"),
    ("run id with a slash", [("run_id", "../../x")], "run_id must be a hex string of 6 to 64 characters"),
    ("protocol name with a slash", [("spec.protocol", "../x"), ("protocol.name", "../x")],
     "spec.protocol must be a name of letters, digits"),
]


@pytest.mark.parametrize(("case", "changes", "expected"), DODGES, ids=[d[0] for d in DODGES])
def test_edited_record_is_an_error_not_not_comparable(tmp_path: Path, refs: Path, case: str,
                                                      changes: list[tuple[str, Any]], expected: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    first, _ = write_runs(out)
    _edit(first, ("metrics.test_acc_at_best_valid", 0.10))
    assert [c.status for c in verify_results(out, refs)] == [FAIL]  # the cut alone is caught
    _edit(first, ("metrics.test_acc_at_best_valid", 0.10), *changes)
    checks = verify_results(out, refs)
    errors = [c for c in checks if c.status == ERROR]
    assert len(errors) == 1 and errors[0].subject == str(first), checks
    assert expected in errors[0].message, errors[0].message
    assert main(["verify", str(out), "--references", str(refs)]) == 1
    text = capsys.readouterr().out
    assert f"ERROR          {first}: " in text and "-> failed" in text


def test_unedited_full_record_passes_and_matches_the_schema(tmp_path: Path, refs: Path) -> None:
    out = tmp_path / "results"
    for path in write_runs(out, (0.79, 0.81)):
        validate_against_schema(load_record(path))
    checks = verify_results(out, refs)
    assert [c.status for c in checks] == [PASS] and checks[0].measured == pytest.approx(80.0)
    assert main(["verify", str(out), "--references", str(refs)]) == 0


def test_old_protocol_version_stays_not_comparable(tmp_path: Path, refs: Path) -> None:
    """A version below the installed one existed: comparing it with a v1 band is NOT COMPARABLE, not an error."""
    (refs / "band.yaml").write_text(BAND.replace("protocol_version: 1", "protocol_version: 2"))
    out = tmp_path / "results"
    write_runs(out)
    checks = verify_results(out, refs)
    assert [c.status for c in checks] == ["NOT COMPARABLE"] and "records v1, reference v2" in checks[0].message
    assert main(["verify", str(out), "--references", str(refs)]) == 3


def test_verify_exit_codes(tmp_path: Path, refs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["verify", str(empty), "--references", str(refs)]) == 3  # nothing compared is not success
    assert "-> nothing compared" in capsys.readouterr().out
    (empty / "records").mkdir()
    assert main(["verify", str(empty)]) == 3  # the shipped references, still no run
    capsys.readouterr()
    out = tmp_path / "results"
    write_runs(out)
    no_refs = tmp_path / "no-refs"
    no_refs.mkdir()
    assert main(["verify", str(out), "--references", str(no_refs), "--verbose"]) == 3  # runs, no reference about them
    assert "no reference results for this protocol" in capsys.readouterr().out
    assert main(["verify", str(out), "--references", str(refs)]) == 0
    assert main(["verify", str(tmp_path / "missing"), "--references", str(refs)]) == 2
    assert "results directory does not exist" in capsys.readouterr().err
    (refs / "bad.yaml").write_text("entries: [ {")
    assert main(["verify", str(out), "--references", str(refs)]) == 2


def test_readme_and_docs_document_the_exit_codes() -> None:
    readme = (REPO / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `verify "))
    assert all(f"{code} " in row for code in ("0", "1", "2", "3")), row
    records = (REPO / "docs" / "records.md").read_text()
    assert "exit code" in records and "nothing was compared" in records


# ------------------------------------------------------------------------------------------------- foreign files
def _foreign_files(records: Path, elsewhere: Path) -> dict[str, str]:
    """One of each kind of foreign *.json; returns file name -> the words its warning must contain."""
    (records / "latin1.json").write_bytes(b'{"note": "caf\xe9"}')
    (records / "utf16.json").write_bytes('{"a": 1}'.encode("utf-16"))
    os.mkfifo(records / "pipe.json")
    (records / "folder.json").mkdir()
    target = elsewhere / "outside.json"
    target.write_text(json.dumps(full_record(seed=7)))
    (records / "link.json").symlink_to(target)
    (records / "dangling.json").symlink_to(elsewhere / "nothing.json")
    (records / "list.json").write_text("[1, 2]")
    (records / "other.json").write_text(json.dumps({"schema": "someone-else/v3"}))
    (records / "nan.json").write_text(json.dumps(full_record(seed=8)).replace('"test_loss_at_best_valid": 2.0',
                                                                               '"test_loss_at_best_valid": NaN'))
    return {"latin1.json": "not UTF-8 text (byte 13)", "utf16.json": "not UTF-8 text (byte 0)",
            "pipe.json": "is a FIFO, not a file", "folder.json": "is a folder, not a file",
            "link.json": "is a symbolic link; not followed", "dangling.json": "is a symbolic link; not followed",
            "list.json": "not a run record (top level is list", "other.json": "not a run record (schema is",
            "nan.json": "NaN is not JSON"}


def test_foreign_files_cost_one_warning_each(tmp_path: Path, refs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    write_runs(out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    expected = _foreign_files(out / "records", elsewhere)

    # leaderboard in a child process with a timeout: a FIFO that blocks would hang it, not fail it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "suite", "leaderboard", str(out)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == len(expected), proc.stderr
    for name, words in expected.items():
        assert [w for w in warnings if f"{name}: " in w and words in w], (name, words, warnings)
    assert "Traceback" not in proc.stderr
    table = (out / "leaderboard" / "leaderboard_gsc-mini.md").read_text()
    assert "this suite, 2 seeds" in table  # the link's record (seed 7) was not followed in

    checks = verify_results(out, refs)
    assert sorted(Path(c.subject).name for c in checks if c.status == ERROR) == sorted(expected)
    assert [c.status for c in checks if c.status != ERROR] == [PASS]
    assert main(["verify", str(out), "--references", str(refs)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.startswith("ERROR ")]) == len(expected) and len(lines) == 11


def test_load_record_messages_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.truncate(33 * 1024 * 1024)  # sparse: larger than any record, never read
    with pytest.raises(SuiteError, match=r"big.json: 34603008 bytes, over the limit of 33554432 for this kind of file"):
        load_record(path)
    (tmp_path / "x.json").write_text('{"schema": ')
    with pytest.raises(SuiteError) as err:
        load_record(tmp_path / "x.json")
    assert "\n" not in str(err.value) and "corrupt JSON at line 1" in str(err.value)


# ------------------------------------------------------------------------------------ a corrupt record of a run
def _run(out: Path, protocol: Path, cache: Path, *extra: str) -> int:
    return main(["run", "--protocol", str(protocol), "--variant", "no-delay", "--out", str(out), "--cache-dir",
                 str(cache), *extra])


def test_corrupt_record_of_a_planned_run_is_rerun(tiny_protocol_path: Path, data_cache: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import suite.train

    out = tmp_path / "results"
    assert _run(out, tiny_protocol_path, data_cache) == 0
    (path,) = (out / "records").glob("*.json")
    good = json.loads(path.read_text())
    capsys.readouterr()

    path.write_bytes(b"\xff\xfe torn")
    real = suite.train.run_training

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(suite.train, "run_training", interrupted)
    assert _run(out, tiny_protocol_path, data_cache) == 130
    assert path.read_bytes() == b"\xff\xfe torn"  # replaced only when its successor is written
    capsys.readouterr()
    monkeypatch.setattr(suite.train, "run_training", real)

    assert _run(out, tiny_protocol_path, data_cache) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if "rerunning" in line]
    assert len(lines) == 1 and f"{path}: not UTF-8 text (byte 0); not a run record; rerunning" in lines[0], text
    assert "1 to run" in text
    again = load_record(path)["metrics"]
    assert {k: again[k] for k in ("test_acc_at_best_valid", "best_valid_acc", "params_trainable")} == \
        {k: good["metrics"][k] for k in ("test_acc_at_best_valid", "best_valid_acc", "params_trainable")}

    # --force gets past a corrupt record too; a torn copy under another name is removed once the new one is written
    stray = path.with_name(f"copy__{good['run_id']}.json")
    stray.write_text('{"schema": ')
    path.unlink()
    assert _run(out, tiny_protocol_path, data_cache, "--force") == 0
    assert "rerunning" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "records").glob("*.json")) == [path.name]


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: os.mkfifo(p), "is a FIFO, not a file"),
    (lambda p: p.write_bytes(b"entries: []\n# caf\xe9\n"), "not UTF-8 text (byte 17)"),
    (lambda p: p.mkdir(), "is a folder, not a file"),
])
def test_foreign_reference_file_is_one_line_never_a_hang(tmp_path: Path, refs: Path, make: Any, words: str) -> None:
    out = tmp_path / "results"
    write_runs(out)
    make(refs / "x.yaml")
    proc = subprocess.run([sys.executable, "-m", "suite", "verify", str(out), "--references", str(refs)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and proc.stderr == f"error: {refs / 'x.yaml'}: {words}\n", proc.stderr


def test_non_finite_numbers_are_written_as_null(tmp_path: Path) -> None:
    """A diverged run (NaN/inf loss) writes strict JSON that every reader, this suite included, loads."""
    record = full_record()
    record["metrics"]["test_loss_at_best_valid"] = float("nan")
    record["history"][0]["train_loss"] = float("inf")
    record["metrics"]["spikes_per_layer"] = [1.0, float("-inf")]
    path = tmp_path / "records" / "x.json"
    write_record(path, record)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = load_record(path)
    assert loaded["metrics"]["test_loss_at_best_valid"] is None and loaded["history"][0]["train_loss"] is None
    assert loaded["metrics"]["spikes_per_layer"] == [1.0, None]
    validate_against_schema(loaded)
