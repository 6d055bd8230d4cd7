"""verify: PASS / FAIL / NOT COMPARABLE logic, exit codes, bad record files, and reference-file validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from suite.errors import SuiteError
from suite.identity import protocol_block
from suite.records import SCHEMA, SCHEMA_VERSION, record_path, write_record
from suite.references import REFERENCES_DIR, load_reference_file, load_references, references_for
from suite.registry import get_protocol, protocol_names
from suite.specs import RunSpec
from suite.verify import ERROR, FAIL, NOT_COMPARABLE, PASS, WARNING, print_checks, verify_results


def _registered_block(protocol: str) -> dict[str, Any]:
    """The protocol block a real run of the registered protocol writes (content included: records are compared on
    it); a name that is not registered gets only its name."""
    if protocol not in protocol_names():
        return {"name": protocol, "embedded": False}
    return protocol_block(get_protocol(protocol))


def make_record(out: Path, variant: str = "axonal", seed: int = 0, acc: float = 0.9, protocol: str = "gsc",
                kernel_size: int = 31, version: int = 1, overrides: dict[str, Any] | None = None,
                **metrics: Any) -> Path:
    """Write a minimal valid run record; extra keyword arguments become metrics."""
    spec = RunSpec(variant=variant, protocol=protocol, seed=seed, overrides=overrides or {})
    record = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "spec": spec.to_dict(),
        "protocol": {**_registered_block(protocol), "version": version},
        "model_spec": {"variant": variant, "delay_type": variant, "kernel_size": kernel_size},
        "environment": {}, "history": [],
        "metrics": {"test_acc_at_best_valid": acc, "test_acc_last_epoch": acc, "best_valid_acc": acc, **metrics},
    }
    path = record_path(out, protocol, variant, seed, spec.run_id)
    write_record(path, record)
    return path


REFS = """\
entries:
  - {protocol: gsc-mini, method: band, variant: axonal, kernel_size: 15, metric: test_acc_at_best_valid,
     value: 80.0, std: 1.0, seeds: [0, 1, 2], source: 'this suite @ abc', status: measured, tolerance: {abs: 2.0},
     protocol_version: 1}
  - {protocol: gsc-mini, method: params, variant: axonal, metric: params_trainable, value: 1000,
     source: derived, status: derived, tolerance: {abs: 0}}
  - {protocol: gsc-mini, method: latency, variant: axonal, metric: latency_ms, value: 10.0,
     source: measured, status: measured, tolerance: {rel: 0.1}}
  - {protocol: gsc-mini, method: other features, variant: axonal, metric: test_acc_at_best_valid, value: 90.0,
     source: paper, status: quoted, comparable: false, note: reference uses a different feature pipeline}
  - {protocol: gsc-mini, method: dendritic band, variant: dendritic, metric: test_acc_at_best_valid, value: 70.0,
     source: x, status: measured, tolerance: {abs: 1.0}}
  - {protocol: gsc-mini, method: literature only, variant: null, metric: test_acc_reported, value: 99.0,
     source: y, status: secondary}
  - {protocol: ssc-mini, method: unrun, variant: axonal, metric: test_acc_at_best_valid, value: 50.0,
     source: z, status: measured, tolerance: {abs: 1.0}}
"""


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    directory = tmp_path / "refs"
    directory.mkdir()
    (directory / "bands.yaml").write_text(REFS)
    return directory


def _runs(out: Path, accs: tuple[float, ...] = (0.79, 0.80, 0.81), **metrics: Any) -> list[Path]:
    metrics = {"params_trainable": 1000, "latency_ms": 10.5, **metrics}
    return [make_record(out, "axonal", seed, acc, protocol="gsc-mini", kernel_size=15, **metrics)
            for seed, acc in enumerate(accs)]


def _by_method(checks: list[Any]) -> dict[str, Any]:
    return {c.reference.method: c for c in checks if c.reference is not None}


def test_pass_fail_not_comparable(tmp_path: Path, refs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    _runs(out)
    checks = verify_results(out, refs)
    by = _by_method(checks)
    assert by["band"].status == PASS and by["band"].measured == pytest.approx(80.0) and by["band"].n == 3
    assert by["params"].status == PASS
    assert by["latency"].status == PASS  # 10.5 within 10 % of 10.0
    assert by["other features"].status == NOT_COMPARABLE
    assert "reference uses a different feature pipeline" in by["other features"].message
    assert by["dendritic band"].status == NOT_COMPARABLE and "no runs of this variant" in by["dendritic band"].message
    assert "literature only" not in by  # not ours: context for the leaderboard, never checked
    unrun = [c for c in checks if c.protocol == "ssc-mini"]
    assert len(unrun) == 1 and unrun[0].status == NOT_COMPARABLE and "no runs of this protocol" in unrun[0].message
    assert print_checks(checks) == 0
    text = capsys.readouterr().out
    assert "PASS" in text and "NOT COMPARABLE" in text and "-> ok" in text


def test_altered_record_fails_with_clear_message(tmp_path: Path, refs: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    paths = _runs(out)
    assert _by_method(verify_results(out, refs))["band"].status == PASS
    record = json.loads(paths[0].read_text())
    record["metrics"]["test_acc_at_best_valid"] = 0.60  # mean drops to 73.67 %, 6.33 points below the band
    paths[0].write_text(json.dumps(record))
    checks = verify_results(out, refs)
    band = _by_method(checks)["band"]
    assert band.status == FAIL
    assert "73.67%" in band.message and "80.00%" in band.message and "off by -6.33 points" in band.message
    assert "±2.00 points" in band.message and "this suite @ abc" in band.message
    assert print_checks(checks) == 1
    assert "FAIL" in capsys.readouterr().out


def test_exact_tolerance_and_rel_tolerance_fail(tmp_path: Path, refs: Path) -> None:
    out = tmp_path / "results"
    _runs(out, accs=(0.82, 0.82, 0.82), params_trainable=1001, latency_ms=11.5)
    by = _by_method(verify_results(out, refs))
    assert by["band"].status == PASS  # exactly at the tolerance edge (82 - 80 = 2)
    assert by["params"].status == FAIL and "off by +1" in by["params"].message
    assert by["latency"].status == FAIL


def test_missing_metric_version_and_kernel_size(tmp_path: Path, refs: Path) -> None:
    out = tmp_path / "results"
    for seed in range(2):
        make_record(out, "axonal", seed, 0.8, protocol="gsc-mini", kernel_size=15)
    by = _by_method(verify_results(out, refs))
    assert by["params"].status == NOT_COMPARABLE and "record lacks metric 'params_trainable'" in by["params"].message
    (refs / "bands.yaml").write_text(REFS.replace("protocol_version: 1", "protocol_version: 2"))
    by = _by_method(verify_results(out, refs))
    assert by["band"].status == NOT_COMPARABLE and "protocol version differs (records v1, reference v2)" in \
        by["band"].message
    (refs / "bands.yaml").write_text(REFS)

    other = tmp_path / "other"
    make_record(other, "axonal", 0, 0.8, protocol="gsc-mini", kernel_size=31, overrides={"kernel_size": 31},
                params_trainable=1000)
    make_record(other, "axonal", 1, 0.8, protocol="gsc-mini", kernel_size=15, overrides={"delay_sparsity": 0.5})
    by = _by_method(verify_results(other, refs))
    assert by["band"].status == NOT_COMPARABLE and "D=15" in by["band"].message and "D=31" in by["band"].message
    assert by["params"].status == PASS  # no kernel_size on the reference: the D=31 run counts


def test_corrupt_and_foreign_files_are_errors_but_checks_go_on(tmp_path: Path, refs: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    _runs(out)
    corrupt, foreign = out / "records" / "torn.json", out / "records" / "foreign.json"
    corrupt.write_text('{"schema": ')
    foreign.write_text(json.dumps({"schema": "someone-else/v3", "data": []}))
    checks = verify_results(out, refs)
    errors = [c for c in checks if c.status == ERROR]
    assert sorted(c.subject for c in errors) == sorted([str(corrupt), str(foreign)])
    assert any("corrupt JSON" in c.message for c in errors) and any("not a run record" in c.message for c in errors)
    assert _by_method(checks)["band"].status == PASS  # the good records were still checked
    assert print_checks(checks) == 1
    text = capsys.readouterr().out
    assert str(corrupt) in text and str(foreign) in text and "2 ERROR" in text


def test_duplicate_seed_is_a_warning(tmp_path: Path, refs: Path) -> None:
    out = tmp_path / "results"
    first = _runs(out)[0]
    first.with_name("copy.json").write_text(first.read_text())
    checks = verify_results(out, refs)
    assert [c.status for c in checks].count(WARNING) == 1
    assert _by_method(checks)["band"].n == 3


def test_repository_references_paper_checks(tmp_path: Path) -> None:
    """The shipped files load; param counts are exact; the paper's best is compared with the official metric."""
    out = tmp_path / "results"
    for seed in range(2):
        make_record(out, "synaptic", seed, 0.95, params_trainable=1128448)
        make_record(out, "axonal", seed, 0.95, params_trainable=567336, official_best_test_acc=0.9560)
        make_record(out, "dendritic", seed, 0.94, params_trainable=567331 + 1, official_best_test_acc=0.9400)
    checks = verify_results(out, REFERENCES_DIR)
    gsc = {(c.reference.method, c.metric): c for c in checks if c.reference is not None and c.protocol == "gsc"}
    assert gsc[("synaptic delays (official model)", "params_trainable")].status == PASS
    assert gsc[("axonal delays (official model)", "params_trainable")].status == PASS
    assert gsc[("dendritic delays (official model)", "params_trainable")].status == FAIL
    best = gsc[("axonal / dendritic delays, best (paper)", "official_best_test_acc")]
    assert best.status == PASS and "axonal" in best.subject and "best of 2" in best.message
    dcls = gsc[("DCLS-delays (synaptic)", "test_acc_at_best_valid")]
    assert dcls.status == NOT_COMPARABLE and "different feature pipeline" in dcls.message
    assert any(c.protocol == "ssc" and "no runs of this protocol" in c.message for c in checks)


def test_shipped_reference_files() -> None:
    refs = load_references()
    embedded = load_reference_file(REFERENCES_DIR / "embedded.yaml")
    variants = ("no-delay", "synaptic", "axonal", "dendritic", "axonal-sparse", "dendritic-sparse")
    bands = {(r.protocol, r.variant[0]) for r in embedded if r.metric == "test_acc_at_best_valid"}
    assert bands == {(p, v) for p in ("gsc-mini", "ssc-mini") for v in variants}
    assert all(r.status in ("measured", "derived") and r.protocol_version == 1 for r in embedded)
    params = {(r.protocol, r.variant): r.value for r in refs
              if r.metric == "params_trainable" and r.protocol in ("gsc", "ssc")}
    assert params == {("gsc", ("synaptic",)): 1128448, ("ssc", ("synaptic",)): 1230848,
                      ("gsc", ("axonal",)): 567336, ("ssc", ("axonal",)): 618636,
                      ("gsc", ("dendritic",)): 567331, ("ssc", ("dendritic",)): 618531}
    assert all(r.tolerance_abs == 0 for r in refs if r.metric == "params_trainable")
    assert all(r.source and r.status in ("quoted", "derived", "secondary", "measured") for r in refs)
    spik = [r for r in refs if r.method == "SpikCommander"]
    assert {r.value for r in spik} == {96.92, 83.49} and {r.status for r in spik} == {"secondary"}
    assert {r.method for r in references_for("ssc")} >= {"DCLS-delays (synaptic)", "DelRec", "RadLIF"}


@pytest.mark.parametrize(("text", "expected"), [
    ("entries: [ {protocol: gsc\n", "malformed YAML"),
    ("entries:\n  - {protocol: gsc, method: m, metric: params_trainable, value: 1, source: s, status: rumour}\n",
     "entries[0].status: 'rumour' is not one of"),
    ("entries:\n  - {protocol: gsc, method: m, metric: params_trainable, value: 1, source: s, status: quoted}\n"
     "  - {protocol: gsc, method: m, metric: params_trainable, value: 1, status: quoted}\n",
     "entries[1].source: missing"),
    ("entries:\n  - {protocol: gsc, method: m, metric: test_acc_reported, value: 0.95, source: s, status: quoted}\n",
     "entries[0].value: test_acc_reported is stored in percent"),
    ("entries:\n  - {protocol: gsc, method: m, metric: x, value: 1, source: s, status: quoted, colour: red}\n",
     "entries[0].colour: unknown key"),
    ("entries:\n  - {protocol: gsc, method: m, variant: axonal, metric: x, value: 1, source: s, status: quoted}\n",
     "entries[0].tolerance: missing"),
    ("entries:\n  - {protocol: gsc, method: m, variant: axonal, metric: x, value: 1, source: s, status: quoted,"
     " tolerance: {abs: 1, rel: 2}}\n", "entries[0].tolerance: must be {abs: x} or {rel: x}"),
    ("entries:\n  - {protocol: gsc, method: m, variant: axonal, metric: x, value: 1, source: s, status: quoted,"
     " comparable: false}\n", "entries[0].note: comparable: false needs a note"),
    ("entries: {}\n", "'entries' must be a list"),
    ("- 1\n", "expected a mapping"),
])
def test_malformed_reference_yaml_names_file_entry_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as err:
        load_reference_file(path)
    message = str(err.value)
    assert message.startswith(str(path)) and expected in message, message
    with pytest.raises(SuiteError, match=r"broken\.yaml"):
        verify_results(tmp_path, tmp_path)


def test_empty_entries_and_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# bands not measured yet\nentries: []\n")
    assert load_references(tmp_path) == []
    with pytest.raises(SuiteError, match="does not exist"):
        load_references(tmp_path / "nope")


def test_builtin_reference_files_may_only_name_builtin_protocols(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in the suite's own reference files is an error; a user's directory may describe its own protocols."""
    path = tmp_path / "refs.yaml"
    path.write_text("entries:\n  - {protocol: gsx, method: m, metric: params_trainable, value: 1, source: s,"
                    " status: quoted}\n")
    assert load_reference_file(path)[0].protocol == "gsx"
    monkeypatch.setattr("suite.references.REFERENCES_DIR", tmp_path)
    with pytest.raises(SuiteError, match=r"entries\[0\]\.protocol: unknown protocol 'gsx'"):
        load_reference_file(path)


def test_no_delay_runs_match_a_reference_of_any_kernel_size(tmp_path: Path) -> None:
    """A no-delay network has no D (the leaderboard shows '—'), so a band stored with the protocol's D still applies."""
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "bands.yaml").write_text(
        "entries:\n  - {protocol: gsc-mini, method: no-delay band, variant: no-delay, kernel_size: 15,"
        " metric: test_acc_at_best_valid, value: 20.0, source: x, status: measured, tolerance: {abs: 1.0}}\n")
    path = make_record(tmp_path / "results", "no-delay", 0, 0.2, protocol="gsc-mini", kernel_size=15)
    record = json.loads(path.read_text())
    record["model_spec"]["delay_type"] = "none"
    write_record(path, record)
    check = _by_method(verify_results(tmp_path / "results", refs))["no-delay band"]
    assert check.status == PASS and check.subject == "gsc-mini v1 · no-delay · test_acc_at_best_valid"
