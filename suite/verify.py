"""``suite verify``: compare run records with stored reference results, each within its stated tolerance.

For every reference about one of our variants, the seeds of each matching configuration are averaged and the mean is
compared with the reference value: PASS, FAIL (with the signed difference and the tolerance), or NOT COMPARABLE with
the reason (no runs, a missing metric, another protocol version, a reference marked not comparable). A corrupt or
foreign file in the results directory is one ERROR line naming it; it fails the exit code but does not stop the
other checks, so one bad copy never hides a real regression.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from suite.errors import SuiteError
from suite.identity import record_content
from suite.records import Record, RunGroup, collect_runs
from suite.references import Reference, load_references
from suite.specs import content_hash
from suite.training import legacy_optim

PASS, FAIL, NOT_COMPARABLE, ERROR, WARNING = "PASS", "FAIL", "NOT COMPARABLE", "ERROR", "WARNING"
STATUS_STYLES = {PASS: "green", FAIL: "bold red", NOT_COMPARABLE: "yellow", ERROR: "bold red", WARNING: "yellow"}
EPS = 1e-9  # float slack so a difference of exactly the tolerance passes
# Exit codes of `suite verify` (README, docs/records.md): every comparison passed; a FAIL or an unusable record file;
# bad input (the CLI's SuiteError code); nothing was compared (no runs, or no reference about them).
EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_NOTHING_COMPARED = 0, 1, 2, 3


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
    apart = [Check(NOT_COMPARABLE, f"{g.protocol_label} · {g.label} · {ref.metric}",
                   f"{g.not_comparable} {_cite(ref)}", ref.protocol, ref.metric, ref, n=len(g.records),
                   files=g.paths)
             for g in of_variant if g.not_comparable]
    of_variant = [g for g in of_variant if not g.not_comparable]
    if not of_variant:
        return apart or [Check(NOT_COMPARABLE, subject, f"no runs of this variant {_cite(ref)}", ref.protocol,
                               ref.metric, ref)]
    return apart + _check_comparable(ref, of_variant, subject)


def _check_comparable(ref: Reference, of_variant: list[RunGroup], subject: str) -> list[Check]:
    """Checks of the groups whose protocol content equals the registered protocol's."""
    matching = [g for g in of_variant if not g.overrides  # a network without delays has no D: any D matches
                and (ref.kernel_size is None or g.kernel_size in (None, ref.kernel_size))]
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


class _Installed:
    """What this suite knows: registered variants and installed protocols (looked up once per name)."""

    def __init__(self) -> None:
        from suite.registry import variants

        self.variants = variants()
        self._protocols: dict[str, Any] = {}

    def protocol(self, name: str) -> Any:
        """The installed ProtocolSpec called ``name``, or None for a protocol of the user's own (a YAML path)."""
        from suite.registry import get_protocol, protocol_names

        if name not in self._protocols:
            self._protocols[name] = get_protocol(name) if name in protocol_names() else None
        return self._protocols[name]


def record_problem(record: Record, installed: _Installed) -> str | None:
    """Why a schema-valid record cannot be what it says (an edited variant, protocol version or kernel size), or None.

    Such a record is an ERROR, not NOT COMPARABLE: otherwise editing one of these fields would turn a FAIL into a pass.
    """
    protocol, model = record["protocol"], record["model_spec"]
    variant = installed.variants.get(record.variant)
    if variant is None:
        return (f"spec.variant {record.variant!r} is not a registered variant (registered: "
                f"{', '.join(installed.variants)}; a plug-in's variant needs its package installed)")
    ours = installed.protocol(record.protocol)
    version = record.protocol_version
    if ours is not None and version > ours.version:
        return f"protocol.version {version} does not exist (this suite has {ours.name} up to v{ours.version})"
    identity = record.get("identity")
    if isinstance(identity, dict):  # overridden protocols are legitimate (labelled NOT COMPARABLE); edits are not
        if content_hash(record_content(protocol)) != identity.get("protocol_hash"):
            return (f"protocol content does not match its identity.protocol_hash {identity.get('protocol_hash')!r} "
                    "(the record was edited)")
    elif ours is not None and version == ours.version:  # a record written before run identities: compare by hand
        for section in ("data", "model", "optim"):
            stated, actual = protocol.get(section), json.loads(json.dumps(dict(getattr(ours, section))))
            if section == "optim" and isinstance(stated, dict):  # written before optim.groups: the same set-up
                stated = json.loads(json.dumps(legacy_optim(stated)))
            if stated is not None and stated != actual:
                stated = stated if isinstance(stated, dict) else {}
                diff = [f"{k}: {stated.get(k)!r} vs {actual.get(k)!r}"
                        for k in sorted({*stated, *actual}) if stated.get(k) != actual.get(k)]
                return f"protocol.{section} differs from {ours.name} v{version} as installed ({', '.join(diff[:3])})"
    overrides = record.overrides
    protocol_model = protocol.get("model") if isinstance(protocol.get("model"), dict) else \
        dict(ours.model) if ours is not None and version == ours.version else {}
    sources = (overrides, variant.defaults, protocol_model)
    expected = next((src["kernel_size"] for src in sources if "kernel_size" in src), None)
    kernel = model.get("kernel_size")
    if expected is not None and kernel != expected:
        return (f"model_spec.kernel_size {kernel!r} is not what its overrides, variant and protocol give "
                f"({expected!r})")
    return None


def _screen(groups: list[RunGroup]) -> tuple[list[RunGroup], list[Check]]:
    """Drop records that fail :func:`record_problem` (each one ERROR line) and the groups left empty."""
    installed = _Installed()
    errors: list[Check] = []
    kept: list[RunGroup] = []
    for group in groups:
        good = []
        for record in group.records:
            try:
                problem = record_problem(record, installed)
            except SuiteError as err:  # an installed protocol file that does not load: say so, per record
                problem = str(err)
            if problem is None:
                good.append(record)
            else:
                errors.append(Check(ERROR, str(record.path), problem, files=(record.path,)))
        group.records = good
        if good:
            kept.append(group)
    return kept, errors


def verify_results(results_dir: Path, references_dir: Path | None = None) -> list[Check]:
    """Every check for the records under ``results_dir`` against the references in ``references_dir``.

    Order: file errors and warnings first, then per protocol with runs the checks in reference-file order. References
    about protocols without any run collapse into one NOT COMPARABLE line per protocol. Last, the claims of
    ``references_dir/claims.yaml`` on every protocol with runs (suite/claims.py). A malformed reference or claims file
    raises SuiteError (a broken yardstick is not a per-file problem).
    """
    refs = load_references(references_dir)
    groups, errors, warnings = collect_runs(Path(results_dir))
    groups, invalid = _screen(groups)
    checks = [Check(ERROR, str(path), message.removeprefix(f"{path}: "), files=(path,)) for path, message in errors]
    checks += invalid
    checks += [Check(WARNING, "duplicate record", message) for message in warnings]
    protocols = sorted({g.protocol for g in groups})
    for protocol in protocols:
        ours = [r for r in refs if r.protocol == protocol and r.variant is not None]
        if not ours:
            where = references_dir if references_dir is not None else "suite/reference_results/"
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
    """1 when anything FAILed or a record file was unusable; else 3 when nothing was compared; else 0."""
    if any(c.status in (FAIL, ERROR) for c in checks):
        return EXIT_FAILED
    return EXIT_OK if any(c.status == PASS for c in checks) else EXIT_NOTHING_COMPARED


def print_checks(checks: list[Check], file: TextIO | None = None, verbose: bool = False) -> int:
    """Print one line per check and a summary; return the process exit code (see :func:`exit_code`).

    NOT COMPARABLE checks (references about variants or protocols not run) are one summary line unless ``verbose``,
    so the verdicts a user asked for are not buried among them.
    """
    from rich.console import Console
    from rich.text import Text

    from suite.safetext import one_line

    console = Console(file=file or sys.stdout, soft_wrap=True, highlight=False)
    hidden = [c for c in checks if c.status == NOT_COMPARABLE and not verbose]
    for check in checks:
        if check.status == NOT_COMPARABLE and not verbose:
            continue
        line = Text(f"{check.status:<14}", style=STATUS_STYLES[check.status])
        line.append(one_line(f" {check.subject}: {check.message}"))
        console.print(line)
    if hidden:
        where = ", ".join(sorted({c.protocol or "?" for c in hidden}))
        line = Text(f"{NOT_COMPARABLE:<14}", style=STATUS_STYLES[NOT_COMPARABLE])
        line.append(f" {len(hidden)} reference(s) with nothing to compare ({one_line(where)}); --verbose lists them")
        console.print(line)
    counts = summarize(checks)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status in (PASS, FAIL))
    code = exit_code(checks)
    verdict = {EXIT_OK: " -> ok", EXIT_FAILED: " -> failed", EXIT_NOTHING_COMPARED: " -> nothing compared"}[code]
    console.print(Text(f"verify: {summary}{verdict}", style="bold green" if code == EXIT_OK else "bold red"))
    return code
