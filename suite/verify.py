"""``suite verify``: compare run records with stored reference results, each within its stated tolerance.

For every reference about one of our variants, the seeds of each matching configuration are averaged and the mean is
compared with the reference value: PASS, FAIL (with the signed difference and the tolerance), or NOT COMPARABLE with
the reason (no runs, a missing metric, another protocol version, a reference marked not comparable). A corrupt or
foreign file in the results directory is one ERROR line naming it; it fails the exit code but does not stop the
other checks, so one bad copy never hides a real regression.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from suite.references import Reference, load_references
from suite.report import RunGroup, collect_runs

PASS, FAIL, NOT_COMPARABLE, ERROR, WARNING = "PASS", "FAIL", "NOT COMPARABLE", "ERROR", "WARNING"
STATUS_STYLES = {PASS: "green", FAIL: "bold red", NOT_COMPARABLE: "yellow", ERROR: "bold red", WARNING: "yellow"}
EPS = 1e-9  # float slack so a difference of exactly the tolerance passes


@dataclass(frozen=True)
class Check:
    """One verdict: a reference against one configuration of runs, or a problem with one file."""

    status: str
    subject: str
    message: str
    protocol: str | None = None
    metric: str | None = None
    reference: Reference | None = None
    measured: float | None = None
    measured_std: float | None = None
    n: int = 0
    files: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def line(self) -> str:
        return f"{self.status:<14} {self.subject}: {self.message}"


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.2f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _subject(ref: Reference, group: RunGroup | None = None) -> str:
    where = ref.protocol
    if group is not None and group.protocol_version is not None:
        where += f" v{group.protocol_version}"
    who = group.label if group is not None else "/".join(ref.variant or ()) or ref.method
    return f"{where} · {who} · {ref.metric}"


def _cite(ref: Reference) -> str:
    return f"[{ref.method}; {ref.status}: {ref.source}]"


def _compare(ref: Reference, group: RunGroup, how: str = "") -> Check:
    """Mean over the group's seeds of the reference's metric against its value and tolerance."""
    values = group.values(ref.metric)
    present = [(p, v) for p, v in values if v is not None]
    lacking = [p for p, v in values if v is None]
    subject = _subject(ref, group)
    if not present:
        return Check(NOT_COMPARABLE, subject, f"record lacks metric {ref.metric!r} ({lacking[0].name}"
                     + (f" and {len(lacking) - 1} more" if len(lacking) > 1 else "") + ")",
                     ref.protocol, ref.metric, ref, files=tuple(lacking))
    scale = 100.0 if ref.percent else 1.0
    nums = [v * scale for _, v in present]
    mean = statistics.fmean(nums)
    std = statistics.stdev(nums) if len(nums) > 1 else math.nan
    diff = mean - ref.value
    tol = ref.tolerance()
    unit = "%" if ref.percent else ""
    measured = f"{_fmt(mean, ref.percent)}{unit}"
    if not math.isnan(std) and (ref.percent or std > 0):
        measured += f" ± {_fmt(std, ref.percent)}"
    measured += f" (n={len(nums)})"
    text = f"{measured} vs reference {ref.value_text()} (tolerance {ref.tolerance_text()})"
    if how:
        text += f", {how}"
    if lacking:
        text += f"; {len(lacking)} record(s) lack the metric, e.g. {lacking[0].name}"
    files = tuple(p for p, _ in present)
    if abs(diff) <= tol + EPS * max(1.0, abs(ref.value)):
        return Check(PASS, subject, f"{text} {_cite(ref)}", ref.protocol, ref.metric, ref, mean, std, len(nums), files)
    points = " points" if ref.percent else ""
    return Check(FAIL, subject, f"{text}: off by {diff:+.2f}{points}, beyond the tolerance {_cite(ref)}"
                 if ref.percent else f"{text}: off by {diff:+,.6g}, beyond the tolerance {_cite(ref)}",
                 ref.protocol, ref.metric, ref, mean, std, len(nums), files)


def _check_reference(ref: Reference, groups: list[RunGroup]) -> list[Check]:
    subject = _subject(ref)
    if not ref.comparable:
        return [Check(NOT_COMPARABLE, f"{subject} · {ref.method}", f"{ref.note} {_cite(ref)}", ref.protocol,
                      ref.metric, ref)]
    variants = ref.variant or ()
    of_variant = [g for g in groups if g.protocol == ref.protocol and g.variant in variants]
    if not of_variant:
        return [Check(NOT_COMPARABLE, subject, f"no runs of this variant {_cite(ref)}", ref.protocol, ref.metric, ref)]
    matching = [g for g in of_variant if not g.overrides
                and (ref.kernel_size is None or g.kernel_size == ref.kernel_size)]
    if not matching:
        found = sorted({f"D={g.kernel_size}" + (f" {g.overrides}" if g.overrides else "") for g in of_variant})
        wanted = f"D={ref.kernel_size} " if ref.kernel_size is not None else ""
        return [Check(NOT_COMPARABLE, subject, f"no runs of this variant with {wanted}and no overrides "
                      f"(found {', '.join(found)}) {_cite(ref)}", ref.protocol, ref.metric, ref)]
    if ref.protocol_version is not None:
        same = [g for g in matching if g.protocol_version == ref.protocol_version]
        if not same:
            found = ", ".join(sorted({f"v{g.protocol_version}" for g in matching}))
            return [Check(NOT_COMPARABLE, subject, f"protocol version differs (records {found}, reference "
                          f"v{ref.protocol_version}) {_cite(ref)}", ref.protocol, ref.metric, ref)]
        matching = same
    if ref.select == "mean":
        return [_compare(ref, g) for g in matching]
    # select: best — the reference quotes the best configuration, so compare our best configuration's mean.
    scored = []
    for g in matching:
        vals = [v for _, v in g.values(ref.metric) if v is not None]
        if vals:
            scored.append((statistics.fmean(vals), g))
    if not scored:
        return [_compare(ref, matching[0])]
    best = max(scored, key=lambda sg: sg[0])[1]
    return [_compare(ref, best, how=f"best of {len(scored)} configuration(s)")]


def verify_results(results_dir: Path, references_dir: Path | None = None) -> list[Check]:
    """Every check for the records under ``results_dir`` against the references in ``references_dir``.

    Order: file errors and warnings first, then per protocol with runs the checks in reference-file order. References
    about protocols without any run collapse into one NOT COMPARABLE line per protocol. Last, the claims of
    ``references_dir/claims.yaml`` on every protocol with runs (suite/claims.py). A malformed reference or claims file
    raises SuiteError (a broken yardstick is not a per-file problem).
    """
    refs = load_references(references_dir)
    groups, errors, warnings = collect_runs(Path(results_dir))
    checks = [Check(ERROR, str(path), message.removeprefix(f"{path}: "), files=(path,)) for path, message in errors]
    checks += [Check(WARNING, "duplicate record", message) for message in warnings]
    protocols = sorted({g.protocol for g in groups})
    for protocol in protocols:
        ours = [r for r in refs if r.protocol == protocol and r.variant is not None]
        if not ours:
            where = references_dir if references_dir is not None else "reference_results/"
            checks.append(Check(NOT_COMPARABLE, protocol, f"no reference results for this protocol in {where}",
                                protocol))
        for ref in ours:
            checks += _check_reference(ref, groups)
    for protocol in sorted({r.protocol for r in refs if r.variant is not None} - set(protocols)):
        n = sum(1 for r in refs if r.protocol == protocol and r.variant is not None)
        checks.append(Check(NOT_COMPARABLE, protocol, f"no runs of this protocol ({n} reference(s) not checked)",
                            protocol))
    from suite.claims import judge_claims, load_claims  # claims.py builds on this module's verdict names

    checks += [Check(v.status, v.subject, v.message, v.protocol, v.claim.metric)
               for v in judge_claims(groups, load_claims(references_dir))]
    return checks


def summarize(checks: list[Check]) -> dict[str, int]:
    counts = {status: 0 for status in (PASS, FAIL, NOT_COMPARABLE, ERROR, WARNING)}
    for check in checks:
        counts[check.status] += 1
    return counts


def exit_code(checks: list[Check]) -> int:
    """1 when anything FAILed or a record file was unreadable, else 0."""
    return 1 if any(c.status in (FAIL, ERROR) for c in checks) else 0


def print_checks(checks: list[Check], file: TextIO | None = None) -> int:
    """Print one line per check and a summary; return the process exit code (see :func:`exit_code`)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=file or sys.stdout, soft_wrap=True, highlight=False)
    for check in checks:
        line = Text(f"{check.status:<14}", style=STATUS_STYLES[check.status])
        line.append(f" {check.subject}: {check.message}")
        console.print(line)
    counts = summarize(checks)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status in (PASS, FAIL))
    code = exit_code(checks)
    console.print(Text(f"verify: {summary}" + (" -> failed" if code else " -> ok"),
                       style="bold red" if code else "bold green"))
    return code
