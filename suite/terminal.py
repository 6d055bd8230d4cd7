"""The leaderboard in a terminal or a CI log: each configuration we ran beside its reference and verify's verdict.

The Markdown/CSV tables (suite.report) carry every column; the terminal shows what a user looks for first and fits the
console width, TTY or not: one line per row, no boxes to break when the text is piped, columns dropped from the least
important end when the console is narrow (the Markdown keeps them), and published rows in a second table whose source
column wraps instead of being cut. Verdicts come from suite.verify (one comparison rule for the CLI and the table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite import safetext
from suite.records import collect_runs
from suite.report import METRIC_COLUMNS, format_cell, is_ours

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console, RenderableType
    from rich.table import Table

    from suite.verify import Check

GroupKey = tuple[Any, ...]  # protocol label, version, variant, kernel size, overrides, backend
# Our runs: columns in display order, and in order of importance (the last ones go first when the console is narrow).
RUN_COLUMNS = ("run", "D", "seeds", "test_acc", "reference", "verdict", "params", "buffer_bits", "synops",
               "official_acc")
RUN_PRIORITY = ("run", "test_acc", "reference", "verdict", "D", "seeds", "params", "buffer_bits", "synops",
                "official_acc")
REFERENCE_COLUMNS = ("method", "D", "test_acc", "params", "source")
LABELS = {"run": "run", "seeds": "n", "test_acc": "test %", "reference": "reference %", "verdict": "verify",
          "params": "params", "buffer_bits": "buffer bits", "synops": "synops", "official_acc": "official %",
          "method": "published", "source": "source", "D": "D"}
RIGHT = {"D", "seeds", "test_acc", "reference", "params", "buffer_bits", "synops", "official_acc"}
LABEL_WIDTH = 28  # a longer run or method name folds onto a second line rather than pushing numbers off the table
SHORT_METRICS = {key: col.split("_")[0] for col, key in METRIC_COLUMNS.items()}  # "params_trainable" -> "params"


def verdicts(results_dir: Path, references_dir: Path | None = None) -> dict[GroupKey, list[Check]]:
    """verify's checks of each configuration under ``results_dir``, keyed like a leaderboard row (:func:`_row_key`).

    A check belongs to the configuration whose record files it compared; checks about no run (a protocol never run,
    a reference marked not comparable) belong to none and are left to ``suite verify``.
    """
    from suite.verify import verify_results

    groups, _, _ = collect_runs(Path(results_dir))
    key_of = {path: (group.protocol_label, group.protocol_version, group.variant, group.kernel_size,
                     group.overrides, group.backend) for group in groups for path in group.paths}
    result: dict[GroupKey, list[Check]] = {}
    for check in verify_results(results_dir, references_dir):
        keys = {key_of.get(path) for path in check.files}
        if check.reference is not None and len(keys) == 1 and None not in keys:
            result.setdefault(keys.pop(), []).append(check)
    return result


def _row_key(protocol: str, row: pd.Series) -> GroupKey:
    def num(value: Any) -> int | None:
        return None if _missing(value) else int(value)

    return (protocol, num(row["protocol_version"]), row["variant"], num(row["D"]),
            "" if _missing(row["overrides"]) else row["overrides"], row["backend"])


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _verdict(checks: Sequence[Check]) -> tuple[str, str | None]:
    """(text, style): FAIL naming the failing metrics, PASS when every comparable check passed, '—' without any."""
    from suite.verify import FAIL, PASS

    failed = [SHORT_METRICS.get(c.metric or "", c.metric or "") for c in checks if c.status == FAIL]
    if failed:
        return "FAIL " + ",".join(dict.fromkeys(failed)), "bold red"
    if any(c.status == PASS for c in checks):
        return "PASS", "green"
    return "—", None


def _reference_text(checks: Sequence[Check]) -> str:
    """The test-accuracy reference of a configuration as value ± tolerance (the band verify applies)."""
    for check in checks:
        ref = check.reference
        if ref is not None and check.metric == METRIC_COLUMNS["test_acc"] and check.measured is not None:
            return f"{ref.value:.2f} ± {ref.tolerance():.2f}"
    return "—"


def _fit(console: Console, build: Any, columns: Sequence[str], keep: int, width: int) -> Table:
    """The table with as many of ``columns`` as fit ``width``, dropping the least important (:data:`RUN_PRIORITY`)
    first but never the ``keep`` most important; columns keep their display order."""
    ranked = sorted(columns, key=RUN_PRIORITY.index)
    for n in range(len(ranked), keep - 1, -1):
        table = build([c for c in columns if c in ranked[:n]])
        if console.measure(table, options=console.options.update_width(10_000)).maximum <= width or n == keep:
            return table
    raise AssertionError("unreachable: the loop returns at n == keep")


def _table(title: str | None, columns: Sequence[str], rows: list[tuple[list[str], str | None]],
           wrap: Sequence[str] = ()) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 1), collapse_padding=True)
    for col in columns:
        table.add_column(LABELS[col], justify="right" if col in RIGHT else "left", overflow="fold",
                         no_wrap=col not in wrap, max_width=LABEL_WIDTH if col in ("run", "method") else None)
    for cells, style in rows:
        table.add_row(*cells, style=style)
    return table


def render_terminal(frames: Mapping[str, pd.DataFrame], checks: Mapping[GroupKey, list[Check]] | None = None,
                    console: Console | None = None) -> list[RenderableType]:
    """Per protocol: a table of our configurations (with reference band and verdict when ``checks`` are given) and a
    table of published rows about other methods, each as wide as ``console`` allows (default: a fresh Console)."""
    from rich.console import Console
    from rich.padding import Padding

    console = console or Console()
    checks = checks or {}
    width = console.width
    tables: list[RenderableType] = []
    for protocol, frame in frames.items():
        ours = frame[is_ours(frame)].reset_index(drop=True)
        rows: list[tuple[list[str], str | None]] = []
        for i in range(len(ours)):
            group_checks = checks.get(_row_key(protocol, ours.iloc[i]), [])
            verdict, style = _verdict(group_checks)
            backend = ours["backend"].iloc[i]
            cells = {"run": safetext.terminal(ours["method"].iloc[i] + (f" [{backend}]" if backend != "torch" else "")),
                     "reference": _reference_text(group_checks),
                     "verdict": f"[{style}]{safetext.terminal(verdict)}[/]" if style else verdict}
            cells.update({c: safetext.terminal(format_cell(ours, i, c)) for c in RUN_COLUMNS if c not in cells})
            rows.append(([cells[c] for c in RUN_COLUMNS], None))
        always = ("run", "test_acc", "reference", "verdict") if checks else ("run", "test_acc")
        shown = [c for c in RUN_COLUMNS if c in always or (c in ours and ours[c].notna().any())]
        title = f"Leaderboard: {safetext.terminal(protocol)} (runs in this directory)"

        def build(cols: Sequence[str], rows: list[tuple[list[str], str | None]] = rows, title: str = title) -> Table:
            index = [RUN_COLUMNS.index(c) for c in cols]
            return _table(title, cols, [([cells[j] for j in index], style) for cells, style in rows], wrap=("run",))

        table = _fit(console, build, shown, keep=min(len(shown), 4), width=width)
        tables.append(Padding(table, (1, 0, 0, 0), expand=False) if tables else table)  # a blank line between protocols

        published = frame[~is_ours(frame) & (frame["test_acc"].notna() | frame["official_acc"].notna())]
        published = published[~published["variant"].isin(set(ours["variant"]))]
        published = published[published["status"] != "measured"].reset_index(drop=True)
        if published.empty:
            continue
        ref_rows = []
        for i in range(len(published)):
            acc_col = "test_acc" if not _missing(published["test_acc"].iloc[i]) else "official_acc"
            cells = {c: safetext.terminal(format_cell(published, i, c)) for c in REFERENCE_COLUMNS}
            cells["test_acc"] = safetext.terminal(format_cell(published, i, acc_col))
            ref_rows.append(([cells[c] for c in REFERENCE_COLUMNS], "dim"))
        ref_shown = [c for c in REFERENCE_COLUMNS if c in ("method", "test_acc", "source")
                     or published[c].notna().any()]
        index = [REFERENCE_COLUMNS.index(c) for c in ref_shown]
        title = f"Published on {safetext.terminal(protocol)} (not run here; all columns in the Markdown)"
        rows = [([cells[j] for j in index], style) for cells, style in ref_rows]
        tables.append(Padding(_table(title, ref_shown, rows, wrap=("method", "source")), (1, 0, 0, 0), expand=False))
    return tables
