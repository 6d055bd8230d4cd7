"""Claims as relations: each verdict (PASS, FAIL contradicted / not shown, NOT COMPARABLE for each reason) from
constructed records with known means and standard errors, the shipped claims file, and verify's report."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from test_verify import make_record

from suite.claims import Z, judge_claims, load_claims
from suite.errors import SuiteError
from suite.records import collect_runs
from suite.references import REFERENCES_DIR, load_references
from suite.verify import FAIL, NOT_COMPARABLE, PASS, verify_results

CLAIMS = """\
claims:
  - {id: preserve, claim: "sparse keeps accuracy", source: "paper", a: axonal-sparse, relation: not_worse,
     b: axonal, metric: test_acc_at_best_valid, tolerance: 1.0, protocols: [gsc], scope_note: "gsc only"}
  - {id: beats, claim: "delays help", source: "paper", a: axonal, relation: greater, b: no-delay,
     metric: test_acc_at_best_valid}
  - {id: buffer, claim: "smaller buffer", source: "paper", a: axonal, relation: less, b: dendritic,
     metric: buffer_allocated_bits, min_seeds: 1}
  - {id: zero, claim: "sparse zero smaller", source: "paper", a: {variant: axonal-sparse,
     overrides: {passthrough: zero}}, relation: less, b: axonal, metric: buffer_allocated_bits, min_seeds: 1}
"""


@pytest.fixture
def claims_dir(tmp_path: Path) -> Path:
    """A references directory holding only the claims above (results go to subdirectories of it)."""
    (tmp_path / "claims.yaml").write_text(CLAIMS)
    return tmp_path


def _seeds(out: Path, variant: str, accs: tuple[float, ...], protocol: str = "gsc", **metrics: float) -> None:
    for seed, acc in enumerate(accs):
        make_record(out, variant, seed, acc, protocol=protocol, **metrics)


def _verdicts(out: Path, claims_dir: Path) -> dict[tuple[str, str], list]:
    groups, _, _ = collect_runs(out)
    found: dict[tuple[str, str], list] = {}
    for v in judge_claims(groups, load_claims(claims_dir)):
        found.setdefault((v.protocol, v.claim.id), []).append(v)
    return found


def test_not_worse_pass_and_numbers(tmp_path: Path, claims_dir: Path) -> None:
    out = tmp_path / "r"
    dense, sparse = (0.905, 0.906, 0.907), (0.902, 0.903, 0.904)
    _seeds(out, "axonal", dense)
    _seeds(out, "axonal-sparse", sparse)
    (v,) = _verdicts(out, claims_dir)[("gsc", "preserve")]
    a, b = [100 * x for x in sparse], [100 * x for x in dense]
    d = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(statistics.variance(a) / 3 + statistics.variance(b) / 3)
    assert v.status == PASS and v.diff == pytest.approx(d) and v.se == pytest.approx(se)
    assert d - Z * se >= -1.0  # the rule the verdict applies
    assert v.a_stats[2] == 3 and v.b_stats[0] == pytest.approx(90.6)
    assert f"difference {d:+.2f} ± {se:.2f} (SE)" in v.message and "shown" in v.message
    assert "axonal-sparse >= axonal - 1 points (test_acc_at_best_valid)" in v.message


def test_not_worse_fails_not_shown_and_contradicted(tmp_path: Path, claims_dir: Path) -> None:
    noisy = tmp_path / "noisy"  # the mean drop is 0.5 points, but the seeds are too noisy to show it is below 1
    _seeds(noisy, "axonal", (0.90, 0.92, 0.94))
    _seeds(noisy, "axonal-sparse", (0.88, 0.915, 0.95))
    (v,) = _verdicts(noisy, claims_dir)[("gsc", "preserve")]
    assert v.status == FAIL and "not shown" in v.reason and v.diff == pytest.approx(-0.5)
    clear = tmp_path / "clear"  # a 5-point drop with tight seeds: the claim is contradicted
    _seeds(clear, "axonal", (0.900, 0.901, 0.902))
    _seeds(clear, "axonal-sparse", (0.850, 0.851, 0.852))
    (v,) = _verdicts(clear, claims_dir)[("gsc", "preserve")]
    assert v.status == FAIL and v.reason.startswith("contradicted") and v.diff == pytest.approx(-5.0)


def test_greater_pass_fail_and_too_few_seeds(tmp_path: Path, claims_dir: Path) -> None:
    out = tmp_path / "r"
    _seeds(out, "axonal", (0.90, 0.91, 0.92))
    _seeds(out, "no-delay", (0.20, 0.22, 0.21))
    (v,) = _verdicts(out, claims_dir)[("gsc", "beats")]
    assert v.status == PASS and v.diff == pytest.approx(70.0)
    tie = tmp_path / "tie"  # equal means: a 'greater' claim is not shown (and not contradicted)
    _seeds(tie, "axonal", (0.90, 0.91, 0.92))
    _seeds(tie, "no-delay", (0.91, 0.90, 0.92))
    (v,) = _verdicts(tie, claims_dir)[("gsc", "beats")]
    assert v.status == FAIL and v.reason.startswith("not shown") and v.diff == pytest.approx(0.0, abs=1e-9)
    few = tmp_path / "few"
    _seeds(few, "axonal", (0.90, 0.91))
    _seeds(few, "no-delay", (0.20, 0.22, 0.21))
    (v,) = _verdicts(few, claims_dir)[("gsc", "beats")]
    assert v.status == NOT_COMPARABLE and "at least 3 seed(s)" in v.reason
    assert v.a_stats is not None and v.a_stats[2] == 2  # the numbers are still shown
    assert "difference +69.50;" in v.message and "nan" not in v.message


def test_less_on_a_deterministic_metric_and_equal_buffers_fail(tmp_path: Path, claims_dir: Path) -> None:
    out = tmp_path / "r"
    make_record(out, "axonal", 0, 0.9, buffer_allocated_bits=19712)
    make_record(out, "dendritic", 0, 0.9, buffer_allocated_bits=73024)
    make_record(out, "axonal-sparse", 0, 0.8, buffer_allocated_bits=19712)  # official pass-through: same size
    found = _verdicts(out, claims_dir)
    (v,) = found[("gsc", "buffer")]
    assert v.status == PASS and v.diff == -53312 and v.se == 0.0
    assert "19,712 (n=1) vs dendritic 73,024 (n=1)" in v.message
    (v,) = found[("gsc", "zero")]  # only runs with passthrough=zero are the claim's side
    assert v.status == NOT_COMPARABLE and "no runs of axonal-sparse (passthrough=zero)" in v.reason
    make_record(out, "axonal-sparse", 0, 0.8, overrides={"passthrough": "zero"}, buffer_allocated_bits=19712)
    (v,) = _verdicts(out, claims_dir)[("gsc", "zero")]
    assert v.status == FAIL and v.reason.startswith("contradicted") and v.diff == 0


def test_not_comparable_reasons(tmp_path: Path, claims_dir: Path) -> None:
    out = tmp_path / "r"
    _seeds(out, "axonal", (0.90, 0.91, 0.92), protocol="gsc-mini")
    _seeds(out, "axonal-sparse", (0.80, 0.81, 0.82), protocol="gsc-mini")
    make_record(out, "dendritic", 0, 0.9, protocol="gsc-mini", kernel_size=15)  # another D than axonal's 31
    found = _verdicts(out, claims_dir)
    (scope,) = found[("gsc-mini", "preserve")]
    assert scope.status == NOT_COMPARABLE and "outside the claim's scope (gsc): gsc only" in scope.reason
    assert scope.diff == pytest.approx(-10.0)  # numbers shown although not judged
    (missing,) = found[("gsc-mini", "beats")]
    assert missing.status == NOT_COMPARABLE and missing.reason == "no runs of no-delay without other overrides"
    (nopair,) = found[("gsc-mini", "buffer")]
    assert nopair.status == NOT_COMPARABLE and "no configuration" in nopair.reason and "D=15" in nopair.reason
    make_record(out, "dendritic", 1, 0.9, protocol="gsc-mini")  # D=31 now, but the metric is missing
    lacking = _verdicts(out, claims_dir)[("gsc-mini", "buffer")]
    assert [v.status for v in lacking] == [NOT_COMPARABLE]
    assert "lack metric 'buffer_allocated_bits'" in lacking[0].reason


def test_verify_reports_claims_and_fails_on_a_failed_claim(tmp_path: Path, claims_dir: Path) -> None:
    out = tmp_path / "r"
    _seeds(out, "axonal", (0.90, 0.91, 0.92))
    _seeds(out, "no-delay", (0.95, 0.96, 0.97))
    checks = verify_results(out, claims_dir)
    beats = [c for c in checks if c.subject == "gsc D=31 · claim beats"]
    assert len(beats) == 1 and beats[0].status == FAIL and "contradicted" in beats[0].message
    assert "[paper]" in beats[0].message


@pytest.mark.parametrize(("text", "expected"), [
    ("claims: [{id: x, claim: c, source: s, a: axonal, relation: bigger, b: no-delay, metric: m}]",
     "claims[0].relation: 'bigger' is not one of greater, less, not_worse"),
    ("claims: [{id: x, claim: c, source: s, a: axonal, relation: less, b: no-delay}]", "claims[0].metric: missing"),
    ("claims: [{id: x, claim: c, source: s, a: axonal, relation: less, b: n, metric: m, tolerance: -1}]",
     "claims[0].tolerance: must be a non-negative number"),
    ("claims: [{id: x, claim: c, source: s, a: axonal, relation: less, b: n, metric: m, protocols: [gsc]}]",
     "claims[0].scope_note: a claim limited to protocols needs a scope_note"),
    ("claims: [{id: x, claim: c, source: s, a: {name: axonal}, relation: less, b: n, metric: m}]",
     "claims[0].a: must be a variant name or"),
    ("claims: [{id: x, claim: c, source: s, a: a, relation: less, b: n, metric: m, colour: red}]",
     "claims[0].colour: unknown key"),
    ("entries: []", "expected a mapping with a 'claims' list"),
])
def test_malformed_claims_name_file_index_and_key(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "claims.yaml").write_text(text)
    with pytest.raises(SuiteError, match=r"claims\.yaml") as err:
        load_claims(tmp_path)
    assert expected in str(err.value)


def test_shipped_claims_file() -> None:
    claims = load_claims(REFERENCES_DIR)
    ids = [c.id for c in claims]
    assert {"axonal-sparse-preserves-accuracy", "dendritic-sparse-preserves-accuracy", "axonal-beats-no-delay",
            "axonal-smaller-buffer-than-dendritic", "axonal-more-accurate-than-dendritic"} <= set(ids)
    assert all("2602.09746" in c.source for c in claims)
    assert all(c.protocols is None or set(c.protocols) <= {"gsc", "ssc"} for c in claims)
    assert not any(r.file.endswith("claims.yaml") for r in load_references())  # not read as reference entries


def test_reference_selection_is_validated_and_marks_leaks(tmp_path: Path) -> None:
    """The literature rows' model selection: a closed vocabulary, and the leaking ones are known as such."""
    entry = "{protocol: gsc, method: m, variant: null, metric: test_acc_reported, value: 96.9, source: s, " \
            "status: secondary, selection: %s}"
    (tmp_path / "lit.yaml").write_text("entries:\n  - " + entry % "best-test-epoch" + "\n  - " + entry % "best-valid")
    leaky, clean = load_references(tmp_path)
    assert leaky.leaks_test and leaky.selection == "best-test-epoch" and not clean.leaks_test
    (tmp_path / "lit.yaml").write_text("entries:\n  - " + entry % "best-epoch")
    with pytest.raises(SuiteError, match=r"lit\.yaml: entries\[0\]\.selection: 'best-epoch' is not one of best-valid"):
        load_references(tmp_path)
    shipped = {(r.protocol, r.method): r for r in load_references()}
    assert shipped[("gsc", "SpikCommander")].leaks_test
    assert not shipped[("gsc", "SpikCommander (best-valid epoch)")].leaks_test
    assert shipped[("shd", "DCLS-delays (synaptic), valid = test")].selection == "valid-is-test"
    assert shipped[("ssc", "DelRec")].value == 82.58 and shipped[("ssc", "DelRec")].std == 0.08
