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
    records: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.protocol, self.protocol_version, self.variant, self.kernel_size, self.overrides, self.backend)

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
    spec, protocol, model = record["spec"], record["protocol"], record["model_spec"]
    if not isinstance(protocol, dict) or not isinstance(model, dict):
        raise SuiteError("'protocol' and 'model_spec' must be objects")
    version = protocol.get("version")
    kernel = model.get("kernel_size")
    return {
        "protocol": str(protocol.get("name") or spec["protocol"]),
        "protocol_version": int(version) if isinstance(version, int) else None,
        "variant": str(spec["variant"]),
        "kernel_size": int(kernel) if isinstance(kernel, int) else None,
        "overrides": _overrides_text(spec.get("overrides")),
        "backend": str(spec.get("backend") or "torch"),
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
    for group in groups.values():
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
        "source": f"this suite, {n} seed{'s' if n != 1 else ''}", "status": "measured", "note": None,
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
    for group in groups:
        by_protocol.setdefault(group.protocol, []).append(group)
    frames, runs, references = {}, {}, {}
    for protocol, protocol_groups in sorted(by_protocol.items()):
        references[protocol] = [r for r in refs if r.protocol == protocol]
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
    if versions or backends:
        lines += [f"Protocol version: {', '.join(map(str, versions)) or MISSING}; backend: "
                  f"{safetext.markdown(', '.join(backends)) or MISSING}.", ""]
    right = set(METRIC_COLUMNS) | {"D", "seeds", "protocol_version"}
    lines.append("| " + " | ".join(COLUMN_LABELS[c] for c in cols) + " |")
    lines.append("|" + "|".join("---:" if c in right else "---" for c in cols) + "|")
    for i in range(len(frame)):
        lines.append("| " + " | ".join(safetext.markdown(format_cell(frame, i, c)) for c in cols) + " |")
    for plot in plots:
        alt = safetext.markdown(plot.stem.removeprefix(f"leaderboard_{protocol}_").replace("_", " "))
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


def _ours(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["source"].astype(str).str.startswith("this suite")]


def _plot_acc_vs_buffer(protocol: str, frame: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy against delay-buffer size (log x), the trade-off the paper is about; 0-bit runs as lines."""
    import seaborn as sns

    ours = _ours(frame).dropna(subset=["test_acc", "buffer_bits"])
    if ours.empty:
        return None
    colors = _palette(frame)
    fig, ax = _new_axes(f"{protocol}: test accuracy vs delay buffer")
    positive = ours[ours["buffer_bits"] > 0].assign(D=lambda f: f["D"].astype(str))
    if not positive.empty:
        sns.scatterplot(data=positive, x="buffer_bits", y="test_acc", hue="variant", style="D", palette=colors, s=70,
                        ax=ax, zorder=3)
        ax.errorbar(positive["buffer_bits"], positive["test_acc"], yerr=positive["test_acc_std"].fillna(0.0),
                    fmt="none", ecolor="grey", elinewidth=1, capsize=3, zorder=2)
        learned = positive.dropna(subset=["buffer_bits_learned"])
        learned = learned[learned["buffer_bits_learned"] > 0]
        for _, row in learned.iterrows():
            color = colors[row["variant"]]
            ax.plot([row["buffer_bits_learned"], row["buffer_bits"]], [row["test_acc"]] * 2, color=color, lw=0.8)
            ax.scatter([row["buffer_bits_learned"]], [row["test_acc"]], facecolors="none", edgecolors=[color], s=50)
        if not learned.empty:
            ax.plot([], [], marker="o", mfc="none", mec="grey", ls="-", color="grey", lw=0.8,
                    label="open: learned size")
        ax.set_xscale("log")
    for _, row in ours[ours["buffer_bits"] <= 0].iterrows():
        ax.axhline(row["test_acc"], color=colors[row["variant"]], ls="--", lw=1,
                   label=f"{row['method']} (0 bits)")
    ax.set_xlabel("delay buffer, allocated bits (log)")
    ax.set_ylabel("test accuracy % (best valid)")
    ax.legend(fontsize="small", loc="best")
    return _save(fig, path)


def _plot_acc_vs_params(protocol: str, frame: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy against trainable parameters (log x); reference rows appear when they give both numbers."""
    import seaborn as sns

    data = frame.dropna(subset=["test_acc", "params"])
    if data.empty:
        return None
    data = data.assign(kind=["this suite" if s.startswith("this suite") else "reference"
                             for s in data["source"].astype(str)],
                       variant=data["variant"].fillna(data["method"]))
    fig, ax = _new_axes(f"{protocol}: test accuracy vs trainable parameters")
    sns.scatterplot(data=data, x="params", y="test_acc", hue="variant", style="kind", palette=_palette(frame),
                    s=70, ax=ax, zorder=3)
    ax.errorbar(data["params"], data["test_acc"], yerr=data["test_acc_std"].fillna(0.0), fmt="none", ecolor="grey",
                elinewidth=1, capsize=3, zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log)")
    ax.set_ylabel("test accuracy %")
    ax.legend(fontsize="small", loc="best")
    return _save(fig, path)


def _plot_seeds(protocol: str, frame: pd.DataFrame, runs: pd.DataFrame, path: Path) -> Path | None:
    """Per-configuration accuracy: every seed as a dot, mean ± sd, published accuracies as dashed lines."""
    import seaborn as sns

    if runs.empty:
        return None
    order = runs.groupby("label")["test_acc"].mean().sort_values(ascending=False).index.tolist()
    fig, ax = _new_axes(f"{protocol}: test accuracy per configuration (dots: seeds)",
                        width=max(6.0, 1.1 * len(order) + 3))
    colors = _palette(frame)
    sns.stripplot(data=runs, x="label", y="test_acc", hue="variant", order=order, palette=colors, size=6, alpha=0.7,
                  jitter=0.15, ax=ax, legend=False, zorder=2)
    sns.pointplot(data=runs, x="label", y="test_acc", order=order, errorbar="sd", color="black", markers="_",
                  markersize=14, linestyles="none", capsize=0.15, linewidth=1.2, ax=ax, zorder=3)
    refs = frame[~frame["source"].astype(str).str.startswith("this suite")].dropna(subset=["test_acc"])
    for (_, row), color in zip(refs.iterrows(), sns.color_palette("Set2", max(len(refs), 1)), strict=False):
        ax.axhline(row["test_acc"], color=color, ls="--", lw=1, label=f"{row['method']}: {row['test_acc']:.2f}")
    if not refs.empty:
        ax.legend(title="published (see table)", fontsize="x-small", title_fontsize="small",
                  loc="upper left", bbox_to_anchor=(1.01, 1.0))
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
        stem = f"leaderboard_{protocol}"
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
