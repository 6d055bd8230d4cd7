"""The paper's claims as checkable relations between methods (``suite/reference_results/claims.yaml``).

A paper is remembered for its claims ("20 % active delays preserve accuracy", "axonal beats dendritic"), not for one
number, and a claim is a relation between two methods on one protocol. Each claim names two sides (a variant, with
optional overrides), a metric, a relation (``greater``, ``less``, ``not_worse``) and a tolerance, and is judged on the
difference of the two seed means with its standard error (docs/metrics.md, "Claims"). The burden of proof is on the
claim: PASS only when the runs show it at two standard errors, FAIL otherwise (the message says whether the runs
contradict the claim or merely do not show it), NOT COMPARABLE when a side has no runs, too few seeds, no common
configuration, lacks the metric, or the protocol is outside the claim's scope (the numbers are still printed).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.errors import SuiteError
from suite.records import RunGroup, overrides_text
from suite.references import CLAIMS_FILE, REFERENCES_DIR, is_accuracy
from suite.specs import load_yaml
from suite.verify import FAIL, NOT_COMPARABLE, PASS

Z = 2.0  # standard errors a claimed difference must clear (about a two-sided 95 % interval for normal means)
RELATIONS = {"greater": ">", "less": "<", "not_worse": ">= -tol"}
CLAIM_KEYS = ("id", "claim", "source", "a", "relation", "b", "metric", "tolerance", "min_seeds", "protocols",
              "scope_note", "note")
REQUIRED = ("id", "claim", "source", "a", "relation", "b", "metric")
SIDE_KEYS = ("variant", "overrides")


@dataclass(frozen=True)
class Side:
    """One side of a relation: the runs of a variant with exactly these overrides (kernel_size aside)."""

    variant: str
    overrides: str = ""

    @property
    def label(self) -> str:
        return self.variant + (f" ({self.overrides})" if self.overrides else "")

    def matches(self, group: RunGroup) -> bool:
        return group.variant == self.variant and group.overrides == self.overrides


@dataclass(frozen=True)
class Claim:
    """One relation ``a RELATION b`` on ``metric``, quoted from ``source``."""

    id: str
    claim: str
    source: str
    a: Side
    relation: str
    b: Side
    metric: str
    tolerance: float = 0.0
    min_seeds: int = 3
    protocols: tuple[str, ...] | None = None
    scope_note: str = ""
    note: str = ""

    @property
    def percent(self) -> bool:
        return is_accuracy(self.metric)

    @property
    def statement(self) -> str:
        unit = " points" if self.percent else ""
        if self.relation == "not_worse":
            return f"{self.a.label} >= {self.b.label} - {self.tolerance:g}{unit} ({self.metric})"
        margin = f" by more than {self.tolerance:g}{unit}" if self.tolerance else ""
        return f"{self.a.label} {RELATIONS[self.relation]} {self.b.label}{margin} ({self.metric})"


@dataclass(frozen=True)
class Verdict:
    """A claim judged on one protocol and one configuration pair (D, backend, protocol version)."""

    claim: Claim
    protocol: str
    status: str
    reason: str
    kernel_size: int | None = None
    a_stats: tuple[float, float, int] | None = None  # mean, sample std (nan for one seed), n
    b_stats: tuple[float, float, int] | None = None
    diff: float | None = None
    se: float | None = None

    @property
    def subject(self) -> str:
        where = self.protocol + (f" D={self.kernel_size}" if self.kernel_size is not None else "")
        return f"{where} · claim {self.claim.id}"

    @property
    def numbers(self) -> str:
        """The numbers behind the verdict, or '' when there are none."""
        if self.a_stats is None or self.b_stats is None:
            return ""
        text = f"{self.claim.a.label} {stats_text(self.a_stats, self.claim.percent)} vs " \
               f"{self.claim.b.label} {stats_text(self.b_stats, self.claim.percent)}"
        if self.difference:
            text += f"; difference {self.difference}"
        return text

    @property
    def difference(self) -> str:
        """'d ± SE (SE)', or just d when there is no standard error (too few seeds), or ''."""
        if self.diff is None:
            return ""
        text = _num(self.diff, self.claim.percent, signed=True)
        if self.se is not None and not math.isnan(self.se):
            text += f" ± {_num(self.se, self.claim.percent)} (SE)"
        return text

    @property
    def message(self) -> str:
        parts = [self.claim.statement, self.numbers, self.reason]
        return "; ".join(p for p in parts if p) + f" [{self.claim.source}]"


def _num(value: float, percent: bool, signed: bool = False) -> str:
    if percent:
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return f"{value:+,.6g}" if signed else f"{value:,.6g}"


def stats_text(stats: tuple[float, float, int], percent: bool) -> str:
    mean, std, n = stats
    text = _num(mean, percent) + ("%" if percent else "")
    if not math.isnan(std) and (percent or std > 0):
        text += f" ± {_num(std, percent)}"
    return f"{text} (n={n})"


# --------------------------------------------------------------------------------------------------------- loading
def _side(raw: Any, where: str) -> Side:
    if isinstance(raw, str) and raw:
        return Side(raw)
    if isinstance(raw, Mapping) and not set(raw) - set(SIDE_KEYS) and isinstance(raw.get("variant"), str) \
            and raw["variant"]:
        overrides = raw.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise SuiteError(f"{where}.overrides: must be a mapping of model overrides, got {overrides!r}")
        return Side(raw["variant"], overrides_text(dict(overrides)))
    raise SuiteError(f"{where}: must be a variant name or {{variant: NAME, overrides: {{KEY: VALUE}}}}, got {raw!r}")


def _claim(raw: Any, where: str) -> Claim:
    if not isinstance(raw, Mapping):
        raise SuiteError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(CLAIM_KEYS))
    if unknown:
        raise SuiteError(f"{where}.{unknown[0]}: unknown key; known keys: {', '.join(CLAIM_KEYS)}")
    for key in REQUIRED:
        if raw.get(key) in (None, ""):
            raise SuiteError(f"{where}.{key}: missing (every claim needs {', '.join(REQUIRED)})")
    for key in ("id", "claim", "source", "metric", "scope_note", "note"):
        if key in raw and not isinstance(raw[key], str):
            raise SuiteError(f"{where}.{key}: must be a string, got {raw[key]!r}")
    if raw["relation"] not in RELATIONS:
        raise SuiteError(f"{where}.relation: {raw['relation']!r} is not one of {', '.join(RELATIONS)}")
    tolerance = raw.get("tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < math.inf:
        raise SuiteError(f"{where}.tolerance: must be a non-negative number (points for accuracies), got {tolerance!r}")
    min_seeds = raw.get("min_seeds", 3)
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 1:
        raise SuiteError(f"{where}.min_seeds: must be a positive integer, got {min_seeds!r}")
    protocols = raw.get("protocols")
    if protocols is not None and (not isinstance(protocols, list) or not protocols
                                  or not all(isinstance(p, str) and p for p in protocols)):
        raise SuiteError(f"{where}.protocols: must be a non-empty list of protocol names, got {protocols!r}")
    if protocols is not None and not (raw.get("scope_note") or "").strip():
        raise SuiteError(f"{where}.scope_note: a claim limited to protocols needs a scope_note saying why "
                         "(verify prints it for the other protocols)")
    return Claim(id=raw["id"], claim=" ".join(raw["claim"].split()), source=raw["source"],
                 a=_side(raw["a"], f"{where}.a"), relation=raw["relation"], b=_side(raw["b"], f"{where}.b"),
                 metric=raw["metric"], tolerance=float(tolerance), min_seeds=min_seeds,
                 protocols=tuple(protocols) if protocols is not None else None,
                 scope_note=" ".join((raw.get("scope_note") or "").split()),
                 note=" ".join((raw.get("note") or "").split()))


def load_claims(references_dir: Path | None = None) -> list[Claim]:
    """The claims in ``references_dir/claims.yaml``; [] when the directory has no claims file."""
    path = Path(references_dir if references_dir is not None else REFERENCES_DIR) / CLAIMS_FILE
    if not path.is_file():
        return []
    data = load_yaml(path.read_text(), str(path))
    if not isinstance(data, Mapping) or not isinstance(data.get("claims"), list):
        raise SuiteError(f"{path}: expected a mapping with a 'claims' list at the top level")
    unknown = sorted(set(data) - {"claims", "description"})
    if unknown:
        raise SuiteError(f"{path}: unknown top-level key {unknown[0]!r}; known: claims, description")
    claims = [_claim(raw, f"{path}: claims[{i}]") for i, raw in enumerate(data["claims"])]
    ids = [c.id for c in claims]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise SuiteError(f"{path}: claim id {duplicate!r} is used twice")
    return claims


# -------------------------------------------------------------------------------------------------------- judging
def _stats(group: RunGroup, claim: Claim) -> tuple[float, float, int] | None:
    scale = 100.0 if claim.percent else 1.0
    values = [v * scale for _, v in group.values(claim.metric) if v is not None]
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan, len(values)


def judge(claim: Claim, a: tuple[float, float, int], b: tuple[float, float, int]) -> tuple[str, str, float, float]:
    """(status, reason, difference, standard error) for seed statistics ``a`` and ``b`` (mean, std, n).

    d = mean_a - mean_b, SE = sqrt(s_a^2 / n_a + s_b^2 / n_b) (a single seed contributes 0). greater: PASS when
    d - Z SE > tol; less: PASS when d + Z SE < -tol; not_worse: PASS when d - Z SE >= -tol.
    """
    (ma, sa, na), (mb, sb, nb) = a, b
    if min(na, nb) < claim.min_seeds:
        return NOT_COMPARABLE, f"needs at least {claim.min_seeds} seed(s) per side", ma - mb, math.nan
    var = (0.0 if math.isnan(sa) else sa * sa / na) + (0.0 if math.isnan(sb) else sb * sb / nb)
    d, se, tol = ma - mb, math.sqrt(var), claim.tolerance
    eps = 1e-9 * max(1.0, abs(ma), abs(mb))
    if claim.relation == "greater":
        low, high, shown = d - Z * se, d + Z * se, d - Z * se > tol + eps
        contradicted = high <= 0
    elif claim.relation == "less":
        low, high, shown = d - Z * se, d + Z * se, d + Z * se < -tol - eps
        contradicted = low >= 0
    else:
        low, high = d - Z * se, d + Z * se
        shown, contradicted = low >= -tol - eps, high < -tol - eps
    interval = f"d ± {Z:g} SE = [{_num(low, claim.percent, True)}, {_num(high, claim.percent, True)}]"
    if shown:
        return PASS, f"shown: {interval}", d, se
    return FAIL, f"{'contradicted' if contradicted else 'not shown'}: {interval}", d, se


def judge_protocol(claim: Claim, protocol: str, groups: list[RunGroup]) -> list[Verdict]:
    """The verdicts of one claim on one protocol: one per configuration (version, D, backend) both sides ran."""
    mine = [g for g in groups if g.protocol == protocol]
    sides = {side: [g for g in mine if side.matches(g)] for side in (claim.a, claim.b)}
    missing = [side.label for side, found in sides.items() if not found]
    if missing:
        return [Verdict(claim, protocol, NOT_COMPARABLE, f"no runs of {' and '.join(missing)} without other overrides")]
    scope = claim.protocols is None or protocol in claim.protocols
    verdicts = []
    for ga in sides[claim.a]:
        gb = next((g for g in sides[claim.b] if (g.protocol_version, g.kernel_size, g.backend)
                   == (ga.protocol_version, ga.kernel_size, ga.backend)), None)
        if gb is None:
            continue
        a, b = _stats(ga, claim), _stats(gb, claim)
        if a is None or b is None:
            lacking = claim.a.label if a is None else claim.b.label
            verdicts.append(Verdict(claim, protocol, NOT_COMPARABLE, f"records of {lacking} lack metric "
                                    f"{claim.metric!r}", ga.kernel_size, a, b))
            continue
        status, reason, d, se = judge(claim, a, b)
        if not scope:
            status, reason = NOT_COMPARABLE, f"outside the claim's scope ({', '.join(claim.protocols or ())}): " \
                                             f"{claim.scope_note}"
        verdicts.append(Verdict(claim, protocol, status, reason, ga.kernel_size, a, b, d, se))
    if not verdicts:
        found = {s.label: sorted({f"D={g.kernel_size} {g.backend} v{g.protocol_version}" for g in gs})
                 for s, gs in sides.items()}
        return [Verdict(claim, protocol, NOT_COMPARABLE, "no configuration (D, backend, protocol version) run by "
                        "both sides: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in found.items()))]
    return verdicts


def judge_claims(groups: list[RunGroup], claims: list[Claim]) -> list[Verdict]:
    """Every claim on every protocol that has runs, protocols in name order, claims in file order."""
    return [v for protocol in sorted({g.protocol for g in groups}) for claim in claims
            for v in judge_protocol(claim, protocol, groups)]
