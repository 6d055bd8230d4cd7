"""The static HTML leaderboard: ``python -m suite leaderboard RESULTS --html DIR``.

A self-contained site (inline CSS and JavaScript, no server, no CDN; it opens from ``file://`` with no network):
``index.html`` links one page per protocol (a sortable, filterable table of our runs and the literature, the claims
of ``suite/reference_results/claims.yaml`` judged on those runs, the plots) and one page per method (its spec,
environment, seeds with their run ids, and per-epoch curves drawn as inline SVG from the records' history).

The numbers come from :mod:`suite.report` (``build_leaderboard``, ``collect_runs``) and :mod:`suite.claims`; the PNG
plots are the ones ``write_leaderboard`` already wrote, copied in. Everything read from records and reference files is
HTML-escaped (a record or reference is data from someone else: a description containing ``<script>`` shows as text),
file names are derived from names by :func:`slug` (never a path from a record), and external links are made only from
recognised identifiers (arXiv ids, DOIs, GitHub ``owner/repo@commit``), so a record cannot inject a link either.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from suite.claims import Verdict, judge_claims, load_claims, stats_text
from suite.errors import SuiteError
from suite.records import Record, RunGroup, atomic_write_text, collect_runs
from suite.references import MODEL_SELECTIONS, Reference, load_references
from suite.report import DEFAULT_OUT, build_leaderboard, format_cell

OUR_SELECTION = "checkpoint of the best validation epoch; test scored once"
STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "NOT COMPARABLE": "nc"}
# Leaderboard columns of a protocol page: (frame column, header, numeric?)
TABLE_COLUMNS = (
    ("method", "method", False), ("D", "D", True), ("backend", "backend", False), ("seeds", "seeds", True),
    ("test_acc", "test acc %", True), ("official_acc", "official best test % (leaks test)", True),
    ("params", "params", True), ("buffer_bits", "buffer bits", True), ("synops", "synops / sample", True),
    ("latency_ms", "latency ms / sample", True),
)
CURVES = (("valid_acc", "valid", "solid"), ("train_acc", "train", "dashed"))


def e(value: Any) -> str:
    """Escape any value for HTML text and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)


def slug(name: str) -> str:
    """A file-name-safe, collision-free stand-in for a protocol or variant name taken from a record."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60]
    if clean == name:
        return clean
    return f"{clean or 'x'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------------------- links
_LINKS = (
    (re.compile(r"arXiv:\s*(\d{4}\.\d{4,5})(?:v\d+)?"), "https://arxiv.org/abs/{}"),
    (re.compile(r"doi:\s*(10\.\d{4,9}/[A-Za-z0-9._;()/:-]+[A-Za-z0-9])"), "https://doi.org/{}"),
    (re.compile(r"\b([A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100})@([0-9a-f]{7,40})\b"),
     "https://github.com/{}/tree/{}"),
)


def source_html(source: str) -> str:
    """The citation, escaped, with arXiv ids, DOIs and ``owner/repo@commit`` turned into links."""
    spans: list[tuple[int, int, str]] = []
    for pattern, url in _LINKS:
        for match in pattern.finditer(source):
            if not any(s < match.end() and match.start() < t for s, t, _ in spans):
                spans.append((match.start(), match.end(), url.format(*match.groups())))
    out, pos = [], 0
    for start, end, url in sorted(spans):
        out.append(e(source[pos:start]))
        out.append(f'<a href="{e(url)}" rel="noopener">{e(source[start:end])}</a>')
        pos = end
    out.append(e(source[pos:]))
    return "".join(out)


# ----------------------------------------------------------------------------------------------------------- pages
CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #ffffff; --head: #f3f5f9; --accent: #2456a6;
        --pass: #1f7a3a; --fail: #b3261e; --nc: #8a6d00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
header { background: #18233a; color: #fff; padding: 10px 24px; }
header a { color: #fff; text-decoration: none; margin-right: 18px; font-weight: 600; }
header a.here { border-bottom: 2px solid #8fb4ff; }
main { padding: 16px 24px 32px; max-width: 1500px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 17px; margin: 26px 0 8px; } h3 { font-size: 15px; }
p.lead, p.note { color: var(--muted); max-width: 110ch; }
a { color: var(--accent); }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: var(--head); position: sticky; top: 0; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #a0a8b8; font-size: 11px; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; color: var(--accent); }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; color: var(--accent); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.ours td:first-child { font-weight: 600; }
tr.ref { color: #394152; background: #fafbfd; }
td.small, span.small { font-size: 12px; color: var(--muted); }
td.wide { min-width: 17em; max-width: 34em; } td.method { min-width: 12em; }
.scroll { overflow-x: auto; max-width: 100%; }
details { margin: 8px 0 14px; } summary { cursor: pointer; color: var(--accent); }
td.status-pass, span.status-pass { color: var(--pass); font-weight: 700; }
td.status-fail, span.status-fail { color: var(--fail); font-weight: 700; }
td.status-nc, span.status-nc { color: var(--nc); font-weight: 700; }
.tools { display: flex; gap: 12px; align-items: center; margin-top: 6px; }
.tools input { padding: 5px 8px; width: 280px; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
.tools .count { color: var(--muted); font-size: 12px; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; }
.plots figure { margin: 0; border: 1px solid var(--line); padding: 6px; background: #fff; }
.plots img { max-width: 640px; width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; }
code { background: #eef1f6; padding: 0 4px; border-radius: 3px; }
ul.warnings li { color: var(--fail); }
svg.curves { border: 1px solid var(--line); background: #fff; }
footer { color: var(--muted); font-size: 12px; padding: 12px 24px; border-top: 1px solid var(--line); }
"""

JS = """
(function () {
  function value(row, col) { var c = row.cells[col]; return c ? c.getAttribute('data-value') : null; }
  function sortBy(table, th) {
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute('data-kind') === 'num';
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, col), y = value(b, col);
      var mx = x === null || x === '', my = y === null || y === '';
      if (mx || my) { return mx === my ? 0 : (mx ? 1 : -1); }  // missing values last, either direction
      if (numeric) { return dir * (parseFloat(x) - parseFloat(y)); }
      return dir * x.localeCompare(y);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortBy(table, th); });
      th.addEventListener('keydown', function (ev) {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sortBy(table, th); }
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('input.filter'), function (input) {
    var table = document.getElementById(input.getAttribute('data-table'));
    var count = document.getElementById(input.getAttribute('data-table') + '-count');
    function apply() {
      var q = input.value.toLowerCase().trim(), shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var hit = !q || r.textContent.toLowerCase().indexOf(q) >= 0;
        r.hidden = !hit;
        if (hit) { shown += 1; }
      });
      count.textContent = shown + ' of ' + table.tBodies[0].rows.length + ' rows';
    }
    input.addEventListener('input', apply);
    apply();
  });
})();
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: trusted HTML (already escaped by the caller), its sort key, and a CSS class."""

    html: str
    sort: str = ""
    cls: str = ""


def text_cell(value: Any, cls: str = "") -> Cell:
    text = "" if value is None else str(value)
    return Cell(e(text), text, cls)


def num_cell(text: str, value: Any) -> Cell:
    return Cell(e(text), "" if _present(value) is None else repr(float(value)), "num")


def table(table_id: str, headers: Sequence[tuple[str, bool]], rows: Iterable[tuple[str, Sequence[Cell]]],
          filterable: bool = True) -> str:
    """A sortable table (click a header) with an optional filter box; ``rows`` are (row class, cells)."""
    out = []
    if filterable:
        out.append(f'<div class="tools"><input type="search" class="filter" data-table="{e(table_id)}" '
                   f'placeholder="filter rows" aria-label="filter rows"><span class="count" '
                   f'id="{e(table_id)}-count"></span></div>')
    out.append(f'<div class="scroll"><table class="sortable" id="{e(table_id)}"><thead><tr>')
    out += [f'<th data-kind="{"num" if numeric else "text"}">{e(label)}</th>' for label, numeric in headers]
    out.append("</tr></thead><tbody>")
    for cls, cells in rows:
        out.append(f'<tr class="{e(cls)}">' + "".join(
            f'<td data-value="{e(c.sort)}"' + (f' class="{e(c.cls)}"' if c.cls else "") + f">{c.html}</td>"
            for c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def page(title: str, body: str, nav: Sequence[tuple[str, str]], here: str, generated: str) -> str:
    links = "".join(f'<a href="{e(href)}"' + (' class="here"' if href == here else "") + f">{e(label)}</a>"
                    for href, label in nav)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title>'
            f'<link rel="icon" href="data:,"><style>{CSS}</style></head><body><header><nav>{links}</nav></header>'
            f"<main>{body}</main><footer>Generated by <code>python -m suite leaderboard RESULTS --html DIR</code> "
            f"on {e(generated)}. Static files: no server, no network.</footer><script>{JS}</script></body></html>\n")


# -------------------------------------------------------------------------------------------------------- content
def _present(value: Any) -> Any:
    """A frame cell as a plain value, None when missing."""
    if value is None or value is pd.NA or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _group_of(row: pd.Series, groups: list[RunGroup]) -> RunGroup | None:
    """The run group behind one of our leaderboard rows (same variant, D, overrides, backend, version)."""
    wanted = tuple(_present(row[c]) for c in ("variant", "D", "overrides", "backend", "protocol_version"))
    return next((g for g in groups if (g.variant, g.kernel_size, g.overrides or None, g.backend, g.protocol_version)
                 == wanted), None)


def _selection(row: pd.Series, refs: dict[tuple[str, str], Reference]) -> tuple[str, bool]:
    """(model-selection text, leaks the test set) of a leaderboard row."""
    if str(row["source"]).startswith("this suite,"):
        return OUR_SELECTION, False
    ref = refs.get((str(row["method"]), str(row["source"])))
    if ref is None or ref.selection is None:
        return "", False
    return MODEL_SELECTIONS[ref.selection], ref.leaks_test


def is_band(frame: pd.DataFrame) -> pd.Series:
    """Rows of this suite's stored reference bands (``this suite @ commit``: earlier sweeps, not these runs)."""
    source = frame["source"].astype(str)
    return source.str.startswith("this suite") & ~source.str.startswith("this suite,")


def leaderboard_table(table_id: str, frame: pd.DataFrame, groups: list[RunGroup],
                      refs: dict[tuple[str, str], Reference]) -> str:
    """Our rows and the reference rows; a test accuracy selected with the test set is marked † and says so."""
    headers = [(label, numeric) for _, label, numeric in TABLE_COLUMNS] + [
        ("runs", False), ("source", False), ("status", False), ("model selection", False), ("note", False)]
    rows = []
    for i in range(len(frame)):
        row = frame.iloc[i]
        ours = str(row["source"]).startswith("this suite,")
        selection, leaks = _selection(row, refs)
        cells = []
        for col, _, numeric in TABLE_COLUMNS:
            text = format_cell(frame, i, col)
            if col == "test_acc" and leaks and text != "—":
                text += " †"
            if col == "method" and ours:
                cells.append(Cell(f'<a href="method-{e(slug(str(row["variant"])))}.html">{e(text)}</a>', text,
                                  "method"))
            elif col == "method":
                cells.append(text_cell(text, "method"))
            else:
                cells.append(num_cell(text, row[col]) if numeric else text_cell(text))
        group = _group_of(row, groups) if ours else None
        if group is not None:
            target = f"method-{slug(group.variant)}.html"
            links = ", ".join(f'<a href="{e(target)}#run-{e(slug(rec.run_id))}">{e(rec.run_id)}</a>'
                              for rec in group.records)
            cells.append(Cell(links, " ".join(rec.run_id for rec in group.records), "small"))
        else:
            cells.append(text_cell(""))
        cells.append(Cell(source_html(str(row["source"])), str(row["source"]), "small wide"))
        cells += [text_cell(row["status"]), text_cell(("† " if leaks else "") + selection, "small wide"),
                  text_cell(_present(row["note"]), "small wide")]
        rows.append(("ours" if ours else "ref", cells))
    return table(table_id, headers, rows)


def claims_table(table_id: str, verdicts: list[Verdict]) -> str:
    headers = [("claim", False), ("relation", False), ("D", True), ("A: mean ± sd (n)", False),
               ("B: mean ± sd (n)", False), ("difference ± SE", True), ("verdict", False), ("why", False),
               ("quote and source", False)]
    rows = []
    for v in verdicts:
        c = v.claim
        a = f"{c.a.label}: {stats_text(v.a_stats, c.percent)}" if v.a_stats is not None else c.a.label
        b = f"{c.b.label}: {stats_text(v.b_stats, c.percent)}" if v.b_stats is not None else c.b.label
        rows.append(("", [
            text_cell(c.id), text_cell(c.statement, "small"), num_cell(str(v.kernel_size or ""), v.kernel_size),
            text_cell(a), text_cell(b), num_cell(v.difference, v.diff),
            text_cell(v.status, f"status-{STATUS_CLASS[v.status]}"),
            text_cell(v.reason + (f" ({c.note})" if c.note else ""), "small wide"),
            Cell(f"“{e(c.claim)}” — {source_html(c.source)}", c.claim, "small wide")]))
    return table(table_id, headers, rows)


def _plot_svg(records: list[Record]) -> str:
    """Per-epoch accuracy of each seed (valid solid, train dashed) as an inline SVG; '' without history."""
    series = []
    for rec in records:
        history = rec.get("history") if isinstance(rec.get("history"), list) else []
        for key, name, dash in CURVES:
            points = [(i + 1, 100.0 * h[key]) for i, h in enumerate(history) if isinstance(h, dict)
                      and isinstance(h.get(key), int | float) and not isinstance(h.get(key), bool)
                      and math.isfinite(h[key])]
            if points:
                series.append((f"seed {rec.seed} {name}", dash, points))
    if not series:
        return ""
    width, height, left, right, top, bottom = 640, 260, 46, 150, 12, 34
    n_epochs = max(p[0] for _, _, pts in series for p in pts)
    x = lambda epoch: left + (width - left - right) * (epoch - 1) / max(n_epochs - 1, 1)  # noqa: E731
    y = lambda acc: top + (height - top - bottom) * (1 - acc / 100.0)  # noqa: E731
    palette = ("#2456a6", "#d1495b", "#2e933c", "#edae49", "#7b2cbf", "#00798c", "#6c757d", "#a44a3f")
    out = [f'<svg class="curves" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="accuracy per epoch">']
    for acc in (0, 25, 50, 75, 100):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(acc):.1f}" y2="{y(acc):.1f}" stroke="#e4e7ee"/>'
                   f'<text x="{left - 6}" y="{y(acc) + 4:.1f}" font-size="11" text-anchor="end">{acc}</text>')
    for epoch in sorted({1, n_epochs, *range(5, n_epochs, 5)}):
        out.append(f'<text x="{x(epoch):.1f}" y="{height - bottom + 16}" font-size="11" '
                   f'text-anchor="middle">{epoch}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" font-size="11" '
               f'text-anchor="middle">epoch</text><text x="12" y="{height / 2:.0f}" font-size="11" '
               f'transform="rotate(-90 12 {height / 2:.0f})" text-anchor="middle">accuracy %</text>')
    seeds = sorted({label.rsplit(" ", 1)[0] for label, _, _ in series})
    for label, dash, points in series:
        color = palette[seeds.index(label.rsplit(" ", 1)[0]) % len(palette)]
        path = " ".join(f"{x(ep):.1f},{y(acc):.1f}" for ep, acc in points)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path}"'
                   + (' stroke-dasharray="5 3"' if dash == "dashed" else "") + f"><title>{e(label)}</title>"
                   "</polyline>")
    for k, seed in enumerate(seeds):
        yy = top + 14 * k + 6
        out.append(f'<line x1="{width - right + 12}" x2="{width - right + 30}" y1="{yy}" y2="{yy}" '
                   f'stroke="{palette[k % len(palette)]}" stroke-width="2"/><text x="{width - right + 35}" '
                   f'y="{yy + 4}" font-size="11">{e(seed)}</text>')
    yy = top + 14 * len(seeds) + 10
    out.append(f'<text x="{width - right + 12}" y="{yy + 4}" font-size="11" fill="#5b6475">solid: valid</text>'
               f'<text x="{width - right + 12}" y="{yy + 18}" font-size="11" fill="#5b6475">dashed: train</text>')
    out.append("</svg>")
    return "".join(out)


def _kv_table(data: Any) -> str:
    """A two-column table of a (nested) mapping, flattened with dotted keys, every key and value escaped."""
    flat: list[tuple[str, str]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key in sorted(node, key=str):
                walk(f"{prefix}.{key}" if prefix else str(key), node[key])
        else:
            flat.append((prefix, "" if node is None else str(node)))

    walk("", data if isinstance(data, dict) else {"value": data})
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in flat) + "</table>"


def _registered(variant: str) -> str:
    """The registry's one-line description of a variant (plug-ins included), or why there is none."""
    from suite.registry import variants

    try:
        found = variants().get(variant)
    except SuiteError as err:
        return f"registry unavailable: {err}"
    if found is None:
        return "not registered in this installation (the records are all there is)"
    return f"{found.description} (delay type {found.delay_type}, from {found.origin})"


def method_body(variant: str, groups: list[RunGroup]) -> str:
    parts = [f"<h1>Method: {e(variant)}</h1>", f"<p>{e(_registered(variant))}</p>",
             '<p class="lead">Every configuration of this variant in the results '
             "directory: its model spec and environment (from the first seed's record), each seed with its run id, "
             "and accuracy per epoch (hard-delay evaluation on valid, soft delays and dropout on train).</p>"]
    for g in groups:
        anchor = f"cfg-{slug(g.protocol)}-{slug(g.label)}"
        first = g.records[0]
        parts.append(f'<h2 id="{e(anchor)}">{e(g.protocol)} · {e(g.label)}</h2>')
        rows = []
        for rec in g.records:
            acc = rec.metric("test_acc_at_best_valid")
            best = rec.metric("best_epoch")
            run_id = rec.run_id
            rows.append(("", [
                Cell(f'<span id="run-{e(slug(run_id))}">{e(run_id)}</span>', run_id),
                num_cell(str(rec.seed), float(rec.seed)),
                num_cell("—" if acc is None else f"{100 * acc:.2f}", None if acc is None else 100 * acc),
                num_cell("—" if best is None else f"{best:.0f}", best),
                text_cell(rec.created), text_cell(rec.path.name, "small")]))
        parts.append(table(f"seeds-{slug(g.protocol)}-{slug(g.label)}", [
            ("run id", False), ("seed", True), ("test acc % (best valid)", True), ("best epoch", True),
            ("created", False), ("record file", False)], rows, filterable=False))
        svg = _plot_svg(g.records)
        parts.append(f"<h3>Accuracy per epoch</h3>{svg}" if svg else '<p class="note">No per-epoch history.</p>')
        parts.append(f'<details><summary>Model spec</summary>{_kv_table(first.get("model_spec"))}</details>')
        parts.append(f'<details><summary>Run spec</summary>{_kv_table(first.get("spec"))}</details>')
        parts.append(f'<details><summary>Environment</summary>{_kv_table(first.get("environment"))}</details>')
    return "".join(parts)


def plot_names(board: Path, protocol: str, protocols: list[str]) -> list[str]:
    """The plots ``write_leaderboard`` wrote for ``protocol`` (``leaderboard_<protocol>_<plot>.png``), whatever plots
    report.py draws, never those of another protocol whose name extends this one (``gsc`` vs ``gsc-mini``)."""
    prefix = f"leaderboard_{protocol}_"
    longer = [f"leaderboard_{p}_" for p in protocols if p != protocol and f"leaderboard_{p}_".startswith(prefix)]
    if not board.is_dir():
        return []
    names = [p.name for p in board.iterdir() if p.suffix == ".png" and p.name.startswith(prefix)
             and not any(p.name.startswith(other) for other in longer)]
    return sorted(name.removeprefix(prefix).removesuffix(".png") for name in names)


def _copy_inside(source_dir: Path, name: str, dest: Path) -> bool:
    """Copy ``source_dir/name`` to ``dest`` only if it is a regular file that resolves inside ``source_dir``."""
    path = source_dir / name
    try:
        inside = path.resolve().is_relative_to(source_dir.resolve())
    except OSError:
        return False
    if not inside or not path.is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return True


def write_site(results_dir: Path, site_dir: Path, references_dir: Path | None = None,
               leaderboard_dir: Path | None = None) -> tuple[list[Path], list[str]]:
    """Write the site into ``site_dir``; return (pages written, warnings).

    Plots and CSVs are copied from ``leaderboard_dir`` (default ``results_dir/leaderboard``, where
    ``write_leaderboard`` puts them); a protocol whose plots are not there gets a page without plots and a warning.
    """
    results_dir, site_dir = Path(results_dir), Path(site_dir)
    if site_dir.exists() and not site_dir.is_dir():
        raise SuiteError(f"--html {site_dir}: exists and is not a directory")
    board = Path(leaderboard_dir) if leaderboard_dir is not None else results_dir / DEFAULT_OUT
    frames, warnings = build_leaderboard(results_dir, references_dir)
    groups, _, _ = collect_runs(results_dir)
    verdicts = judge_claims(groups, load_claims(references_dir))
    try:
        refs = {(r.method, r.source): r for r in load_references(references_dir) if r.selection}
    except SuiteError:  # build_leaderboard has already warned about the broken reference file
        refs = {}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    variants = sorted({g.variant for g in groups})
    nav = [("index.html", "Leaderboard")] + [(f"protocol-{slug(p)}.html", p) for p in frames]
    written: list[Path] = []

    def emit(name: str, title: str, body: str) -> None:
        path = site_dir / name
        atomic_write_text(path, page(title, body, nav, name, generated))
        written.append(path)

    protocol_rows = []
    for protocol, frame in frames.items():
        name = f"protocol-{slug(protocol)}.html"
        mine = [g for g in groups if g.protocol == protocol]
        verdicts_here = [v for v in verdicts if v.protocol == protocol]
        plots = []
        for plot in plot_names(board, protocol, list(frames)):
            file = f"leaderboard_{protocol}_{plot}.png"
            target = f"plots/{slug(protocol)}_{plot}.png"
            if _copy_inside(board, file, site_dir / target):
                plots.append(f'<figure><img src="{e(target)}" alt="{e(protocol)}: {e(plot.replace("_", " "))}">'
                             f"<figcaption>{e(plot.replace('_', ' '))}</figcaption></figure>")
        csv = f"files/{slug(protocol)}.csv"
        has_csv = _copy_inside(board, f"leaderboard_{protocol}.csv", site_dir / csv)
        if not plots:
            warnings.append(f"{protocol}: no plots in {board} (run `python -m suite leaderboard {results_dir}` first)")
        body = [f"<h1>Leaderboard: {e(protocol)}</h1>",
                '<p class="lead">Our rows: test accuracy of the checkpoint with the best validation accuracy, per '
                "sample, mean ± sample std over seeds, with each seed's run id. Literature rows: as reported, with "
                "their source, status (quoted, derived, secondary, measured) and model selection; a number selected "
                "on the test set (best test epoch, or SHD's valid = test) is not comparable with ours and says so. "
                "'Official best test' is the released code's test-leaking metric, shown only beside numbers "
                "reported that way. Click a header to sort, type to filter.</p>",
                leaderboard_table(f"board-{slug(protocol)}", frame[~is_band(frame)].reset_index(drop=True), mine,
                                  refs)]
        bands = frame[is_band(frame)].reset_index(drop=True)
        if len(bands):
            body.append("<details><summary>This suite's stored reference bands for this protocol "
                        f"({len(bands)} rows: earlier multi-seed sweeps that <code>verify</code> checks runs against)"
                        "</summary>" + leaderboard_table(f"bands-{slug(protocol)}", bands, mine, refs) + "</details>")
        if has_csv:
            body.append(f'<p class="note">Every column: <a href="{e(csv)}">CSV</a>.</p>')
        body.append("<h2>Claims of arXiv:2602.09746</h2>")
        if verdicts_here:
            body.append('<p class="note">Each claim is a relation between two variants, judged on the difference of '
                        "seed means d with its standard error SE (PASS only when shown at 2 SE; rule in "
                        "docs/metrics.md, Claims). NOT COMPARABLE rows still show the numbers.</p>")
            body.append(claims_table(f"claims-{slug(protocol)}", verdicts_here))
        else:
            body.append('<p class="note">No claims file, or no claim applies.</p>')
        body.append("<h2>Plots</h2>" + (f'<div class="plots">{"".join(plots)}</div>' if plots
                                        else '<p class="note">No plots found.</p>'))
        emit(name, f"Leaderboard: {protocol}", "".join(body))
        ours = frame[frame["source"].astype(str).str.startswith("this suite,")]
        best = ours.dropna(subset=["test_acc"]).head(1)
        counts = {s: sum(1 for v in verdicts_here if v.status == s) for s in STATUS_CLASS}
        protocol_rows.append(("", [
            Cell(f'<a href="{e(name)}">{e(protocol)}</a>', protocol),
            num_cell(str(len(mine)), len(mine)), num_cell(str(sum(len(g.records) for g in mine)),
                                                          sum(len(g.records) for g in mine)),
            text_cell(f"{best['method'].iloc[0]}: {format_cell(best, 0, 'test_acc')}" if len(best) else "—"),
            text_cell(", ".join(f"{n} {s}" for s, n in counts.items()))]))

    for variant in variants:
        emit(f"method-{slug(variant)}.html", f"Method: {variant}",
             method_body(variant, [g for g in groups if g.variant == variant]))

    index = ["<h1>Delay-SNN benchmark leaderboard</h1>",
             f'<p class="lead">Results directory <code>{e(results_dir)}</code>: one page per protocol with our runs '
             "beside the literature and the paper's claims judged on our runs, and one page per method.</p>",
             "<h2>Protocols</h2>",
             table("protocols", [("protocol", False), ("configurations", True), ("runs", True),
                                 ("best of ours (test acc %)", False), ("claims", False)], protocol_rows),
             "<h2>Methods</h2><ul>" + "".join(f'<li><a href="method-{e(slug(v))}.html">{e(v)}</a></li>'
                                              for v in variants) + "</ul>"]
    if warnings:
        index.append('<h2>Warnings</h2><ul class="warnings">' + "".join(f"<li>{e(w)}</li>" for w in warnings)
                     + "</ul>")
    emit("index.html", "Delay-SNN benchmark leaderboard", "".join(index))
    return written, warnings
