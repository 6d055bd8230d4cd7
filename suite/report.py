"""Leaderboards from run records: per-protocol tables (Markdown, CSV, rich) and plots, beside the stored references.

Records are grouped by everything that changes the model or its numbers (protocol and its version, variant, kernel
size, overrides, backend) and aggregated over seeds as mean ± sample standard deviation (ddof = 1, what papers
report). Published rows from ``suite/reference_results/`` sit in the same table with their source and status, so a
reader never mistakes a quoted number for one we measured. A broken or foreign record file costs one warning line
naming it, never the whole leaderboard.

Record metric keys are mapped to columns in exactly one place, :data:`METRIC_COLUMNS`; a key a record lacks shows
as '—'.
"""

from __future__ import annotations

import io
import math
import re
import statistics
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from suite import safetext
from suite.errors import SuiteError
from suite.references import Reference, load_references
from suite.results import atomic_write_bytes, atomic_write_text, iter_records

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Leaderboard column -> record metric key (``record["metrics"][key]``; a dotted key reaches into nested objects).
# The ONE place that names metric keys for reporting (keys as written by suite/metrics, docs/metrics.md); a record
# without a key shows '—'. COLUMN_SCALE converts the record's unit to the column's.
METRIC_COLUMNS: dict[str, str] = {
    "test_acc": "test_acc_at_best_valid",
    "official_acc": "official_best_test_acc",
    "test_acc_last": "test_acc_last_epoch",
    "valid_acc": "best_valid_acc",
    "params": "params_trainable",
    "params_nonzero": "params_effective",
    "buffer_bits": "buffer_allocated_bits",
    "buffer_bits_learned": "buffer_learned_bits",
    "synops": "Effective_ACs",
    "latency_ms": "inference_latency_median_s_per_sample",
    "memory_mb": "inference_peak_bytes",
    "train_s": "train_seconds",
}
# Accuracy columns: fractions in records, percent in the leaderboard.
PERCENT_COLUMNS = ("test_acc", "official_acc", "test_acc_last", "valid_acc")
COLUMN_SCALE: dict[str, float] = {**dict.fromkeys(PERCENT_COLUMNS, 100.0), "latency_ms": 1e3, "memory_mb": 1e-6}
COUNT_COLUMNS = ("params", "params_nonzero", "buffer_bits", "buffer_bits_learned", "synops")
# Reference metrics that are not record keys but belong in a column ("as reported by the source").
REFERENCE_ALIASES = {"test_acc_reported": "test_acc"}
COLUMN_LABELS = {
    "method": "method", "variant": "variant", "D": "D", "overrides": "overrides", "backend": "backend",
    "protocol_version": "protocol v", "seeds": "seeds",
    "test_acc": "test acc % (best valid)", "official_acc": "official best test % (leaks test)",
    "test_acc_last": "last-epoch test %", "valid_acc": "best valid %", "params": "params",
    "params_nonzero": "non-zero params", "buffer_bits": "buffer bits (allocated)",
    "buffer_bits_learned": "buffer bits (learned)", "synops": "synops (ACs/sample)",
    "latency_ms": "latency ms/sample", "memory_mb": "inference peak MB", "train_s": "train s", "source": "source",
    "status": "status", "note": "note",
}
ID_COLUMNS = ["method", "variant", "D", "overrides", "backend", "protocol_version", "seeds"]
TAIL_COLUMNS = ["source", "status", "note"]
COLUMNS = ID_COLUMNS + [c for col in METRIC_COLUMNS for c in (col, f"{col}_std")] + TAIL_COLUMNS
ALWAYS_SHOWN = ("method", "seeds", "test_acc", "source", "status")
DEFAULT_OUT = "leaderboard"
MISSING = "—"


# --------------------------------------------------------------------------------------------------------- records
@dataclass
class RunGroup:
    """The seeds of one configuration: what a leaderboard row and a verify check are computed from."""

    protocol: str
    protocol_version: int | None
    variant: str
    kernel_size: int | None
    overrides: str
    backend: str
    protocol_label: str = ""
    not_comparable: str | None = None
    protocol_hash: str = ""
    records: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.protocol, self.protocol_hash, self.protocol_version, self.variant, self.kernel_size,
                self.overrides, self.backend)

    @property
    def label(self) -> str:
        """Short human name: variant, D, overrides and a non-default backend."""
        parts = [self.variant]
        if self.kernel_size is not None:
            parts.append(f"D={self.kernel_size}")
        if self.overrides:
            parts.append(self.overrides)
        if self.backend != "torch":
            parts.append(f"[{self.backend}]")
        return " ".join(parts)

    @property
    def seeds(self) -> list[int]:
        return [int(rec["spec"]["seed"]) for _, rec in self.records]

    def values(self, metric_key: str) -> list[tuple[Path, float | None]]:
        """``(file, value or None)`` per seed for a record metric key."""
        return [(path, metric_value(rec, metric_key)) for path, rec in self.records]


def metric_value(record: dict[str, Any], key: str) -> float | None:
    """A finite number at ``record['metrics'][key]`` (dotted keys reach nested objects), else None."""
    node: Any = record.get("metrics", {})
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
        return None
    return float(node)


def _overrides_text(overrides: Any) -> str:
    """Canonical overrides string; kernel_size is left out because it has its own column."""
    if not overrides:
        return ""
    items = overrides.items() if isinstance(overrides, dict) else overrides
    return ",".join(f"{k}={v}" for k, v in sorted((str(k), v) for k, v in items) if k != "kernel_size")


def _group_key(record: dict[str, Any]) -> dict[str, Any]:
    """Everything that separates configurations; records whose protocol content differs from the registered
    protocol's get their own label and a NOT COMPARABLE reason (suite/identity.py)."""
    from suite.identity import comparability, record_content
    from suite.kinds import uses_kernel_size
    from suite.specs import content_hash

    spec, protocol, model = record["spec"], record["protocol"], record["model_spec"]
    if not isinstance(protocol, dict) or not isinstance(model, dict):
        raise SuiteError("'protocol' and 'model_spec' must be objects")
    version = protocol.get("version")
    kernel = model.get("kernel_size") if uses_kernel_size(model.get("delay_type")) else None  # no delays: no D
    name = str(protocol.get("name") or spec["protocol"])
    label, reason = comparability(name, protocol)
    return {
        "protocol": name,
        "protocol_version": int(version) if isinstance(version, int) else None,
        "variant": str(spec["variant"]),
        "kernel_size": int(kernel) if isinstance(kernel, int) else None,
        "overrides": _overrides_text(spec.get("overrides")),
        "backend": str(spec.get("backend") or "torch"),
        "protocol_label": label,
        "not_comparable": reason,
        "protocol_hash": content_hash(record_content(protocol)),
    }


def collect_runs(results_dir: Path) -> tuple[list[RunGroup], list[tuple[Path, str]], list[str]]:
    """Group the valid records under ``results_dir``; return (groups, [(bad file, reason)], warnings).

    A file ``iter_records`` cannot load, or whose spec cannot be grouped, lands in the second list and nothing else
    is affected. Two records of one seed in one group (a copied file, or a rerun with --official-metric) keep the
    newest and add a warning, so a seed is never counted twice.
    """
    groups: dict[tuple[Any, ...], RunGroup] = {}
    errors: list[tuple[Path, str]] = []
    warnings: list[str] = []
    for path, item in iter_records(Path(results_dir)):
        if isinstance(item, SuiteError):
            errors.append((path, str(item)))
            continue
        try:
            key = _group_key(item)
            int(item["spec"]["seed"])
        except (KeyError, TypeError, ValueError, SuiteError) as err:
            errors.append((path, f"{path}: run record cannot be grouped ({type(err).__name__}: {err})"))
            continue
        group = groups.setdefault(tuple(key.values()), RunGroup(**key))
        group.records.append((path, item))
    contents: dict[str, set[str]] = {}
    for group in groups.values():
        contents.setdefault(group.protocol_label, set()).add(group.protocol_hash)
    for group in groups.values():  # an unregistered protocol run with other content: told apart by its hash
        if len(contents[group.protocol_label]) > 1:
            group.protocol_label += f" [protocol {group.protocol_hash[:6]}]"
        fingerprints = {rec.get("identity", {}).get("data_fingerprint") for _, rec in group.records}
        if len(fingerprints) > 1:
            warnings.append(f"{group.protocol_label}: {group.label} pools records made on {len(fingerprints)} "
                            f"different data fingerprints (another --data-root or copy of the data)")
        by_seed: dict[int, tuple[Path, dict[str, Any]]] = {}
        for path, rec in sorted(group.records, key=lambda pr: (str(pr[1].get("created", "")), str(pr[0]))):
            seed = int(rec["spec"]["seed"])
            if seed in by_seed:
                warnings.append(f"{by_seed[seed][0]}: same run as {path.name} ({group.label}, seed {seed}); "
                                f"using the newer {path.name}")
            by_seed[seed] = (path, rec)
        group.records = [by_seed[s] for s in sorted(by_seed)]
    ordered = sorted(groups.values(), key=lambda g: tuple("" if v is None else str(v) for v in g.key))
    return ordered, errors, warnings


# ----------------------------------------------------------------------------------------------------- aggregation
def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    vals = list(values)
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else math.nan


def _group_row(group: RunGroup) -> dict[str, Any]:
    n = len(group.records)
    row: dict[str, Any] = {
        "method": group.variant + (f" ({group.overrides})" if group.overrides else ""), "variant": group.variant,
        "D": group.kernel_size, "overrides": group.overrides or None, "backend": group.backend,
        "protocol_version": group.protocol_version, "seeds": n,
        "source": f"this suite, {n} seed{'s' if n != 1 else ''}", "status": "measured",
        "note": f"NOT COMPARABLE: {group.not_comparable}" if group.not_comparable else None,
    }
    for col, key in METRIC_COLUMNS.items():
        scale = COLUMN_SCALE.get(col, 1.0)
        mean, std = _mean_std(v * scale for _, v in group.values(key) if v is not None)
        row[col], row[f"{col}_std"] = mean, std
    return row


def _reference_column(ref: Reference) -> str | None:
    if ref.metric in REFERENCE_ALIASES:
        return REFERENCE_ALIASES[ref.metric]
    return next((col for col, key in METRIC_COLUMNS.items() if key == ref.metric), None)


def _reference_rows(refs: Iterable[Reference]) -> list[dict[str, Any]]:
    """One row per (method, source, D); entries about other metrics of the same method merge into it."""
    rows: list[dict[str, Any]] = []
    for ref in refs:
        col = _reference_column(ref)
        if col is None:
            continue
        row = next((r for r in rows if r["_key"] == (ref.method, ref.source, ref.kernel_size)
                    and math.isnan(r.get(col, math.nan))), None)
        if row is None:
            row = {"_key": (ref.method, ref.source, ref.kernel_size), "method": ref.method,
                   "variant": "/".join(ref.variant) if ref.variant else None, "D": ref.kernel_size, "overrides": None,
                   "backend": None, "protocol_version": ref.protocol_version, "seeds": ref.n_seeds,
                   "source": ref.source, "status": ref.status, "note": None, "_notes": []}
            rows.append(row)
        scale = 1.0 if col in PERCENT_COLUMNS else COLUMN_SCALE.get(col, 1.0)  # references: percent or record unit
        row[col] = ref.value * scale
        row[f"{col}_std"] = ref.std * scale if ref.std is not None else math.nan
        if ref.note and ref.note not in row["_notes"]:
            row["_notes"].append(ref.note)
        if ref.status != row["status"] and ref.status not in row["status"].split("/"):
            row["status"] += f"/{ref.status}"
    for row in rows:
        row["note"] = "; ".join(row.pop("_notes")) or None
        row.pop("_key")
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("D", "seeds", "protocol_version"):
        frame[col] = pd.array([None if _missing(v) else int(v) for v in frame[col]], dtype="Int64")
    for col in METRIC_COLUMNS:
        frame[col] = frame[col].astype(float)
        frame[f"{col}_std"] = frame[f"{col}_std"].astype(float)
    rank = frame["test_acc"].fillna(frame["official_acc"])
    order = sorted(range(len(frame)), key=lambda i: (math.isnan(rank.iloc[i]), -_nan0(rank.iloc[i]),
                                                     str(frame["method"].iloc[i])))
    return frame.iloc[order].reset_index(drop=True)


def _nan0(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


@dataclass
class _Collected:
    frames: dict[str, pd.DataFrame]
    runs: dict[str, pd.DataFrame]
    references: dict[str, list[Reference]]
    warnings: list[str]


def _collect(results_dir: Path, references_dir: Path | None) -> _Collected:
    groups, errors, warnings = collect_runs(Path(results_dir))
    warnings = [f"skipped {message}" for _, message in errors] + warnings
    try:
        refs = load_references(references_dir)
    except SuiteError as err:
        refs = []
        warnings.append(f"reference rows not shown: {err}")
    if not groups and not errors:
        warnings.append(f"{results_dir}: no run records found")
    by_protocol: dict[str, list[RunGroup]] = {}
    for group in groups:  # a protocol whose content differs from the registered one gets its own table
        by_protocol.setdefault(group.protocol_label, []).append(group)
    frames, runs, references = {}, {}, {}
    for protocol, protocol_groups in sorted(by_protocol.items()):
        comparable = protocol_groups[0].not_comparable is None
        references[protocol] = [r for r in refs if r.protocol == protocol_groups[0].protocol and comparable]
        rows = [_group_row(g) for g in protocol_groups] + _reference_rows(references[protocol])
        frames[protocol] = _frame(rows)
        runs[protocol] = pd.DataFrame(
            [{"label": g.label, "variant": g.variant, "D": g.kernel_size, "seed": int(rec["spec"]["seed"]),
              "test_acc": 100.0 * v, "file": str(path)}
             for g in protocol_groups for (path, rec), (_, v) in zip(g.records, g.values(METRIC_COLUMNS["test_acc"]),
                                                                     strict=True) if v is not None],
            columns=["label", "variant", "D", "seed", "test_acc", "file"])
    return _Collected(frames, runs, references, warnings)


def build_leaderboard(results_dir: Path, references_dir: Path | None = None
                      ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Per-protocol leaderboards (our groups + reference rows, best first) and the warnings met on the way.

    Accuracy columns are percent; every metric column ``c`` has ``c_std`` (sample std over seeds, NaN for one seed or
    a reference without std). Only protocols with at least one run record get a table.
    """
    collected = _collect(results_dir, references_dir)
    return collected.frames, collected.warnings


# ------------------------------------------------------------------------------------------------------ formatting
def format_cell(frame: pd.DataFrame, index: int, col: str) -> str:
    """Display text of one cell: accuracies with 2 decimals, counts with thousands separators, '—' when missing."""
    value = frame[col].iloc[index]
    if _missing(value):
        return MISSING
    if col not in METRIC_COLUMNS:
        return str(int(value)) if col in ("D", "seeds", "protocol_version") else str(value)
    std = frame[f"{col}_std"].iloc[index]
    if col in PERCENT_COLUMNS:
        text, fmt = f"{value:.2f}", "{:.2f}"
    elif col in COUNT_COLUMNS:
        text, fmt = f"{value:,.0f}", "{:,.0f}"
    else:
        text, fmt = f"{value:,.2f}", "{:,.2f}"
    if not _missing(std) and (std > 0 or col in PERCENT_COLUMNS):
        text += " ± " + fmt.format(std)
    return text


def _shown_columns(frame: pd.DataFrame, candidates: Iterable[str]) -> list[str]:
    """Candidates with at least one value (backend / protocol version only when they differ between rows)."""
    shown = []
    for col in candidates:
        values = frame[col].dropna()
        if col in ("backend", "protocol_version") and values.nunique() <= 1:
            continue
        if col in ALWAYS_SHOWN or len(values):
            shown.append(col)
    return shown


def file_stem(protocol_label: str) -> str:
    """``leaderboard_gsc`` or, for a protocol with other content, ``leaderboard_gsc_epochs-1``; only letters, digits,
    dots, dashes and underscores, so a record's protocol name never picks the directory."""
    return "leaderboard_" + re.sub(r"[^A-Za-z0-9.-]+", "_", protocol_label.replace("=", "-"))


def to_markdown(protocol: str, frame: pd.DataFrame, plots: Iterable[Path] = ()) -> str:
    """The Markdown page of one protocol: what the numbers mean, the table, the plots."""
    cols = _shown_columns(frame, [c for c in ID_COLUMNS + list(METRIC_COLUMNS) + TAIL_COLUMNS])
    versions = sorted({int(v) for v in frame["protocol_version"].dropna()})
    backends = sorted(set(frame["backend"].dropna()))
    lines = [
        f"# Leaderboard: {safetext.markdown(protocol)}", "",
        "Test accuracy is per-sample accuracy on the test split of the checkpoint with the best validation accuracy, "
        "in percent, mean ± sample standard deviation (ddof = 1) over seeds. 'Official best test' is the official "
        "code's metric, max(test now, test at best valid) with per-batch means: it leaks the test set and is shown "
        "only to compare with numbers reported that way. Rows not measured here carry their source and status "
        "(quoted, derived, secondary, measured); see suite/reference_results/README.md.", "",
    ]
    apart = sorted({str(n) for n in frame["note"].dropna() if str(n).startswith("NOT COMPARABLE")})
    if apart:
        lines += [f"**{apart[0]}**: these runs are not compared with published or reference numbers.", ""]
    if versions or backends:
        lines += [f"Protocol version: {', '.join(map(str, versions)) or MISSING}; backend: "
                  f"{safetext.markdown(', '.join(backends)) or MISSING}.", ""]
    right = set(METRIC_COLUMNS) | {"D", "seeds", "protocol_version"}
    lines.append("| " + " | ".join(COLUMN_LABELS[c] for c in cols) + " |")
    lines.append("|" + "|".join("---:" if c in right else "---" for c in cols) + "|")
    for i in range(len(frame)):
        lines.append("| " + " | ".join(safetext.markdown(format_cell(frame, i, c)) for c in cols) + " |")
    for plot in plots:
        alt = safetext.markdown(plot.stem.removeprefix(f"{file_stem(protocol)}_").replace("_", " "))
        lines += ["", f"![{alt}]({urllib.parse.quote(plot.name)})"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------- plots
def _palette(frame: pd.DataFrame) -> dict[str, Any]:
    """One colour per variant (or reference method) for all plots of a protocol, so colours agree between them."""
    import seaborn as sns

    ours = sorted(set(_ours(frame)["variant"].astype(str)))
    others = sorted(set(frame["variant"].fillna(frame["method"]).astype(str)) - set(ours))
    colors = dict(zip(ours, sns.color_palette("tab10" if len(ours) <= 10 else "husl", max(len(ours), 1)),
                      strict=False))
    colors.update(zip(others, sns.color_palette("Set2", max(len(others), 1)), strict=False))
    return colors


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _new_axes(title: str, width: float = 7.0) -> tuple[Any, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 4.5))
    ax = fig.subplots()
    ax.set_title(title, loc="left")
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def is_ours(frame: pd.DataFrame) -> pd.Series:
    """Rows measured from the records of this results directory: only they have a backend (reference rows have none,
    even the suite's own measured bands)."""
    return frame["backend"].notna()


def _ours(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[is_ours(frame)]


def _count_label(value: float, _pos: Any = None) -> str:
    """Tick labels for counts: 900, 9k, 20k, 1.5M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _log_x(ax: Axes, values: Iterable[float]) -> None:
    """Log x with a margin and labelled ticks dense enough for the range (1-9 x 10^k within half a decade, 1, 2, 3,
    5, 7 within one and a half, else 1, 2, 5), so a 2x range still shows several labelled ticks."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    vals = [v for v in values if v > 0]
    lo, hi = min(vals) / 1.3, max(vals) * 1.3
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    decades = math.log10(hi / lo)
    subs = range(1, 10) if decades < 0.6 else (1, 2, 3, 5, 7) if decades < 1.5 else (1, 2, 5)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=tuple(float(s) for s in subs)))
    ax.xaxis.set_major_formatter(FuncFormatter(_count_label))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _dodge(xs: Iterable[float], ys: Iterable[float]) -> list[float]:
    """x positions on a log axis with points that would cover each other (same x within 1 %, y within 6 % of the y
    range) spread symmetrically by about half a marker, so none hides another (synaptic and dendritic share a buffer
    size, the delay variants a parameter count). The shift is a fraction of the x range, small against the spread
    between configurations."""
    import math

    xs, ys = [float(v) for v in xs], [float(v) for v in ys]
    logs = [math.log10(x) for x in xs]
    step = 0.04 * max(max(logs) - min(logs) + 2 * math.log10(1.3), 0.1)
    y_tol = 0.06 * max(max(ys) - min(ys), 10.0)
    out, placed = list(xs), set()
    for i in sorted(range(len(xs)), key=lambda i: (logs[i], ys[i])):
        if i in placed:
            continue
        group = [i]
        for j in sorted(range(len(xs)), key=lambda j: ys[j]):
            if j not in placed and j != i and abs(logs[j] - logs[i]) < 0.005 and abs(ys[j] - ys[group[-1]]) < y_tol:
                group.append(j)
        placed.update(group)
        for rank, k in enumerate(group):
            out[k] = xs[k] * 10 ** (step * (rank - (len(group) - 1) / 2))
    return out


def _reference_band(frame: pd.DataFrame, variant: str, kernel_size: Any) -> tuple[float, float] | None:
    """(mean, sd) of the stored reference about ``variant`` at this D (e.g. the 10-seed bands of the embedded
    protocols), sd 0 when the reference has none; None without one. A network without delays has no D (missing):
    any reference about its variant applies."""
    refs = frame[~is_ours(frame) & frame["variant"].notna()].dropna(subset=["test_acc"])
    for _, row in refs.iterrows():
        same_d = _missing(row["D"]) or _missing(kernel_size) or row["D"] == kernel_size
        if variant in str(row["variant"]).split("/") and same_d:
            return float(row["test_acc"]), _nan0(float(row["test_acc_std"]))
    return None


BAND_STYLE = {"color": "grey", "alpha": 0.35, "elinewidth": 9, "capsize": 0, "fmt": "none", "zorder": 1}
BAND_LABEL = "grey bar: stored reference, mean ± sd"


def _plot_configs(ax: Axes, frame: pd.DataFrame, data: pd.DataFrame, x: str) -> list[Any]:
    """Our configurations at (x, mean test accuracy) with ± sd over seeds, markers by D only when D varies, the
    reference band of each behind it, points sharing an x dodged; returns the legend handles."""
    from matplotlib.lines import Line2D

    colors = _palette(frame)
    kernel_sizes = sorted({int(d) for d in data["D"].dropna()})
    markers = dict(zip(kernel_sizes, "osD^v", strict=False)) if len(kernel_sizes) > 1 else {}
    xs = _dodge(data[x], data["test_acc"])
    banded = False
    for xv, (_, row) in zip(xs, data.iterrows(), strict=True):
        color = colors[row["variant"]]
        band = _reference_band(frame, row["variant"], row["D"])
        if band is not None:
            ax.errorbar([xv], [band[0]], yerr=[band[1]], **BAND_STYLE)
            ax.plot([xv], [band[0]], marker="_", color="dimgrey", ms=12, zorder=1)
            banded = True
        ax.errorbar([xv], [row["test_acc"]], yerr=[_nan0(row["test_acc_std"])], fmt=markers.get(row["D"], "o"),
                    color=color, mec="black", mew=0.7, ms=8, alpha=0.9, ecolor=color, elinewidth=1.2, capsize=3,
                    zorder=3)
    handles = [Line2D([], [], marker="o", ls="none", color=colors[v], mec="black", mew=0.7, label=v)
               for v in dict.fromkeys(data["variant"])]
    handles += [Line2D([], [], marker=m, ls="none", color="grey", mec="black", label=f"D = {d}")
                for d, m in markers.items()]
    if banded:
        handles.append(Line2D([], [], color="grey", alpha=0.35, lw=9, label=BAND_LABEL))
    return handles


def _plot_acc_vs_buffer(protocol: str, frame: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy against delay-buffer size (log x), the trade-off the paper is about; 0-bit runs as lines."""
    from matplotlib.lines import Line2D

    ours = _ours(frame).dropna(subset=["test_acc", "buffer_bits"])
    if ours.empty:
        return None
    colors = _palette(frame)
    fig, ax = _new_axes(f"{protocol}: test accuracy (mean ± sd over seeds) vs delay buffer")
    positive = ours[ours["buffer_bits"] > 0]
    handles: list[Any] = []
    if not positive.empty:
        handles = _plot_configs(ax, frame, positive, "buffer_bits")
        learned = positive.dropna(subset=["buffer_bits_learned"])
        learned = learned[learned["buffer_bits_learned"] > 0]
        for _, row in learned.iterrows():
            color = colors[row["variant"]]
            ax.plot([row["buffer_bits_learned"], row["buffer_bits"]], [row["test_acc"]] * 2, color=color, lw=0.8)
            ax.scatter([row["buffer_bits_learned"]], [row["test_acc"]], facecolors="none", edgecolors=[color], s=50)
        if not learned.empty:
            handles.append(Line2D([], [], marker="o", mfc="none", mec="grey", color="grey", lw=0.8,
                                  label="open: learned size"))
        _log_x(ax, list(positive["buffer_bits"]) + list(learned["buffer_bits_learned"]))
    for _, row in ours[ours["buffer_bits"] <= 0].iterrows():
        handles.append(ax.axhline(row["test_acc"], color=colors[row["variant"]], ls="--", lw=1,
                                  label=f"{row['method']} (0 bits)"))
    ax.set_xlabel("delay buffer, allocated bits (log)")
    ax.set_ylabel("test accuracy % (best valid)")
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _plot_acc_vs_params(protocol: str, frame: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy against trainable parameters (log x); reference rows appear when they give both numbers."""
    from matplotlib.lines import Line2D

    ours = _ours(frame).dropna(subset=["test_acc", "params"])
    if ours.empty:
        return None
    fig, ax = _new_axes(f"{protocol}: test accuracy (mean ± sd over seeds) vs trainable parameters")
    handles = _plot_configs(ax, frame, ours, "params")
    published = frame[~is_ours(frame)].dropna(subset=["test_acc", "params"])
    colors = _palette(frame)
    for _, row in published.iterrows():
        key = row["variant"] if isinstance(row["variant"], str) else row["method"]
        ax.scatter([row["params"]], [row["test_acc"]], marker="D", facecolors="none", edgecolors=[colors[key]], s=60,
                   zorder=2)
        handles.append(Line2D([], [], marker="D", ls="none", mfc="none", mec=colors[key],
                              label=f"{row['method']} (reference)"))
    _log_x(ax, list(ours["params"]) + list(published["params"]))
    ax.set_xlabel("trainable parameters (log)")
    ax.set_ylabel("test accuracy % (best valid)")
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _plot_seeds(protocol: str, frame: pd.DataFrame, runs: pd.DataFrame, path: Path) -> Path | None:
    """Per-configuration accuracy: every seed as a dot, mean ± sd, the reference band of each configuration behind it,
    published accuracies of other methods as dashed lines."""
    import seaborn as sns
    from matplotlib.lines import Line2D

    if runs.empty:
        return None
    order = runs.groupby("label")["test_acc"].mean().sort_values(ascending=False).index.tolist()
    fig, ax = _new_axes(f"{protocol}: test accuracy per configuration (dots: seeds; black: mean ± sd)",
                        width=max(6.0, 1.1 * len(order) + 3))
    colors = _palette(frame)
    handles: list[Any] = []
    for i, label in enumerate(order):
        first = runs[runs["label"] == label].iloc[0]
        band = _reference_band(frame, first["variant"], first["D"])
        if band is not None:
            ax.fill_between([i - 0.38, i + 0.38], band[0] - band[1], band[0] + band[1], color="grey", alpha=0.25,
                            lw=0, zorder=1)
            ax.plot([i - 0.38, i + 0.38], [band[0]] * 2, color="dimgrey", lw=1, ls=":", zorder=1)
            if not handles:
                handles.append(Line2D([], [], color="grey", alpha=0.4, lw=8, label="stored reference, mean ± sd"))
    sns.stripplot(data=runs, x="label", y="test_acc", hue="variant", order=order, palette=colors, size=6, alpha=0.75,
                  jitter=0.15, ax=ax, legend=False, zorder=2, edgecolor="black", linewidth=0.4)
    sns.pointplot(data=runs, x="label", y="test_acc", order=order, errorbar="sd", color="black", markers="_",
                  markersize=14, linestyles="none", capsize=0.15, linewidth=1.2, ax=ax, zorder=3)
    refs = frame[~is_ours(frame) & frame["variant"].isna()].dropna(subset=["test_acc"])
    for (_, row), color in zip(refs.iterrows(), sns.color_palette("Set2", max(len(refs), 1)), strict=False):
        handles.append(ax.axhline(row["test_acc"], color=color, ls="--", lw=1,
                                  label=f"{row['method']}: {row['test_acc']:.2f}"))
    if handles:
        ax.legend(handles=handles, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("")
    ax.set_ylabel("test accuracy % (best valid)")
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return _save(fig, path)


PLOTS = {
    "acc_vs_buffer": ("buffer_bits", _plot_acc_vs_buffer),
    "acc_vs_params": ("params", _plot_acc_vs_params),
}


def write_leaderboard(results_dir: Path, out_dir: Path | None = None, references_dir: Path | None = None,
                      plots: bool = True) -> tuple[list[Path], list[str]]:
    """Write ``leaderboard_<protocol>.md/.csv`` and PNG plots (default ``results_dir/leaderboard``).

    Returns (written paths, warnings). Files are written atomically; a plot with no data (e.g. no record reports
    buffer sizes) is skipped with a warning naming the metric key it looked for. ``plots=False`` writes the tables
    only (seaborn and matplotlib are then never imported).
    """
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / DEFAULT_OUT
    collected = _collect(results_dir, references_dir)
    warnings = list(collected.warnings)
    written: list[Path] = []
    for protocol, frame in collected.frames.items():
        stem = file_stem(protocol)
        pngs: list[Path] = []
        for name, (column, plot) in PLOTS.items() if plots else ():
            done = plot(protocol, frame, out / f"{stem}_{name}.png")
            if done is None:
                warnings.append(f"{protocol}: plot {name} skipped: no run reports metric "
                                f"{METRIC_COLUMNS[column]!r} (column {column!r})")
            else:
                pngs.append(done)
        if plots and (done := _plot_seeds(protocol, frame, collected.runs[protocol], out / f"{stem}_seeds.png")):
            pngs.append(done)
        csv = out / f"{stem}.csv"
        atomic_write_text(csv, frame.to_csv(index=False))
        md = out / f"{stem}.md"
        atomic_write_text(md, to_markdown(protocol, frame, pngs))
        written += [md, csv, *pngs]
    return written, warnings
