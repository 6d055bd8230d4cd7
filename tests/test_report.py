"""Leaderboard: aggregation over seeds, reference rows, Markdown/CSV/PNG output, and robustness to bad files.

Records are fake but schema-valid (written with suite.records.write_record), so these tests need no training.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from suite.identity import protocol_block
from suite.records import SCHEMA, SCHEMA_VERSION, collect_runs, record_path, write_record
from suite.registry import get_protocol, protocol_names
from suite.report import METRIC_COLUMNS, build_leaderboard, format_cell, write_leaderboard
from suite.specs import RunSpec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _registered_block(protocol: str) -> dict[str, Any]:
    """The protocol block a real run of the registered protocol writes (content included: records are compared on
    it); a name that is not registered gets only its name."""
    if protocol not in protocol_names():
        return {"name": protocol, "embedded": False}
    return protocol_block(get_protocol(protocol))


def make_record(out: Path, variant: str = "axonal", seed: int = 0, acc: float = 0.9, protocol: str = "gsc",
                kernel_size: int = 31, version: int = 1, overrides: dict[str, Any] | None = None,
                backend: str = "torch", created: str = "2026-01-01T00:00:00", **metrics: Any) -> Path:
    """Write a minimal valid run record; extra keyword arguments become metrics."""
    spec = RunSpec(variant=variant, protocol=protocol, backend=backend, seed=seed, overrides=overrides or {})
    record = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "spec": spec.to_dict(),
        "label": spec.label, "protocol": {**_registered_block(protocol), "version": version},
        "model_spec": {"variant": variant, "delay_type": variant, "kernel_size": kernel_size},
        "environment": {}, "history": [], "created": created,
        "metrics": {"test_acc_at_best_valid": acc, "test_acc_last_epoch": acc - 0.01, "best_valid_acc": acc + 0.01,
                    "best_epoch": 3, "train_seconds": 1.0, **metrics},
    }
    path = record_path(out, protocol, variant, seed, spec.run_id)
    write_record(path, record)
    return path


@pytest.fixture
def refs_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "refs"
    directory.mkdir()
    (directory / "lit.yaml").write_text(
        "entries:\n"
        "  - {protocol: gsc, method: 'Other SNN', variant: null, metric: test_acc_reported, value: 96.5,"
        " source: 'arXiv:0000.00000', status: secondary, note: 'not ours'}\n"
        "  - {protocol: gsc, method: 'axonal (paper)', variant: axonal, metric: params_trainable, value: 567336,"
        " source: 'derived', status: derived, tolerance: {abs: 0}}\n"
        "  - {protocol: ssc, method: 'Elsewhere', variant: null, metric: test_acc_reported, value: 80.0,"
        " source: 'x', status: quoted}\n")
    return directory


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    for seed, acc in enumerate((0.90, 0.92, 0.95)):
        make_record(out, "axonal", seed, acc, params_trainable=567336, buffer_allocated_bits=1000 + seed,
                    buffer_learned_bits=500, Effective_ACs=2.5e6,
                    inference_latency_median_s_per_sample=0.0015 + 0.001 * seed)
    for seed, acc in enumerate((0.80, 0.84)):
        make_record(out, "synaptic", seed, acc, params_trainable=1128448, buffer_allocated_bits=90000)
    make_record(out, "no-delay", 0, 0.70, params_trainable=300000, buffer_allocated_bits=0)
    make_record(out, "axonal", 0, 0.85, kernel_size=15, overrides={"kernel_size": 15},
                params_trainable=567336, buffer_allocated_bits=400)
    make_record(out, "axonal", 0, 0.88, overrides={"delay_sparsity": 0.8}, params_trainable=567336)
    return out


def _row(frame: Any, method: str, d: int | None = None) -> Any:
    rows = frame[(frame["method"] == method) & ((frame["D"] == d) if d is not None else True)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_aggregation_mean_std_over_seeds(results: Path, refs_dir: Path) -> None:
    frames, warnings = build_leaderboard(results, refs_dir)
    assert set(frames) == {"gsc"}  # ssc has references but no runs: no table
    assert warnings == []
    gsc = frames["gsc"]
    row = _row(gsc, "axonal", 31)
    accs = [90.0, 92.0, 95.0]
    assert row["seeds"] == 3
    assert row["test_acc"] == pytest.approx(statistics.fmean(accs), abs=1e-12)
    assert row["test_acc_std"] == pytest.approx(statistics.stdev(accs), abs=1e-12)
    assert row["test_acc_last"] == pytest.approx(statistics.fmean(a - 1 for a in accs), abs=1e-9)
    assert row["buffer_bits"] == 1001 and row["buffer_bits_std"] == 1.0
    assert row["params"] == 567336 and row["params_std"] == 0.0
    assert row["latency_ms"] == pytest.approx(2.5) and row["latency_ms_std"] == pytest.approx(1.0)  # s -> ms
    assert row["source"] == "this suite, 3 seeds" and row["status"] == "measured"
    syn = _row(gsc, "synaptic")
    assert syn["test_acc"] == pytest.approx(82.0) and syn["test_acc_std"] == pytest.approx(statistics.stdev([80, 84]))
    single = _row(gsc, "no-delay")
    assert single["seeds"] == 1 and math.isnan(single["test_acc_std"]) and single["source"] == "this suite, 1 seed"
    # D and overrides are separate rows; kernel_size is not repeated in the overrides text
    assert _row(gsc, "axonal", 15)["test_acc"] == pytest.approx(85.0)
    assert _row(gsc, "axonal (delay_sparsity=0.8)")["overrides"] == "delay_sparsity=0.8"
    # reference rows carry their source and status; sorted best first
    lit = _row(gsc, "Other SNN")
    assert lit["source"] == "arXiv:0000.00000" and lit["status"] == "secondary" and lit["test_acc"] == 96.5
    assert _row(gsc, "axonal (paper)")["params"] == 567336
    assert list(gsc["method"][:2]) == ["Other SNN", "axonal"]


def test_markdown_and_csv(results: Path, refs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "board"
    written, _ = write_leaderboard(results, out, refs_dir, plots=False)
    md, csv = out / "leaderboard_gsc.md", out / "leaderboard_gsc.csv"
    assert md in written and csv in written
    text = md.read_text()
    assert text.startswith("# Leaderboard: gsc")
    axonal = next(line for line in text.splitlines() if line.startswith("| axonal | axonal | 31 |"))
    assert f"92.33 ± {statistics.stdev([90, 92, 95]):.2f}" in axonal
    assert "567,336" in axonal and "this suite, 3 seeds" in axonal and "measured" in axonal
    no_delay = next(line for line in text.splitlines() if line.startswith("| no-delay | no-delay |"))
    assert "70.00 | " in no_delay and "—" in no_delay  # one seed: no ± ; missing metrics: —
    assert "| Other SNN |" in text and "arXiv:0000.00000" in text and "secondary" in text
    assert "![" not in text  # no plots written, none linked
    header = csv.read_text().splitlines()[0].split(",")
    assert header[:3] == ["method", "variant", "D"] and "test_acc_std" in header and "source" in header
    assert any(line.startswith("axonal,axonal,31,") for line in csv.read_text().splitlines())


def test_plots_written_as_png(results: Path, refs_dir: Path, tmp_path: Path) -> None:
    written, warnings = write_leaderboard(results, tmp_path / "board", refs_dir)
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == ["leaderboard_gsc_acc_vs_buffer.png", "leaderboard_gsc_acc_vs_params.png",
                    "leaderboard_gsc_seeds.png"]
    for path in written:
        assert path.exists() and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
    assert warnings == []
    text = (tmp_path / "board" / "leaderboard_gsc.md").read_text()
    assert "![acc vs buffer](leaderboard_gsc_acc_vs_buffer.png)" in text and "](leaderboard_gsc_seeds.png)" in text


def test_missing_metrics_skip_plot_with_warning(tmp_path: Path, refs_dir: Path) -> None:
    out = tmp_path / "results"
    make_record(out, "axonal", 0, 0.9)  # no params, no buffers
    written, warnings = write_leaderboard(out, None, refs_dir)
    assert (out / "leaderboard" / "leaderboard_gsc.md").exists()  # default out dir
    assert [p.name for p in written if p.suffix == ".png"] == ["leaderboard_gsc_seeds.png"]
    assert any("acc_vs_buffer skipped" in w and METRIC_COLUMNS["buffer_bits"] in w for w in warnings)


def test_broken_files_are_skipped_with_one_warning_each(results: Path, refs_dir: Path, tmp_path: Path) -> None:
    records = results / "records"
    corrupt, foreign = records / "corrupt.json", records / "foreign.json"
    corrupt.write_text('{"schema": "delay-snn-suite/run-record", ')
    foreign.write_text('{"name": "package.json of something else"}')
    frames, warnings = build_leaderboard(results, refs_dir)
    assert _row(frames["gsc"], "axonal", 31)["seeds"] == 3
    assert len(warnings) == 2
    assert any(str(corrupt) in w and "corrupt JSON" in w for w in warnings)
    assert any(str(foreign) in w and "not a run record" in w for w in warnings)
    written, warnings = write_leaderboard(results, tmp_path / "board", refs_dir, plots=False)
    assert len(warnings) == 2 and [p.suffix for p in written] == [".md", ".csv"]


def test_duplicate_seed_counted_once(tmp_path: Path, refs_dir: Path) -> None:
    out = tmp_path / "results"
    first = make_record(out, "axonal", 0, 0.90, created="2026-01-01T00:00:00")
    copy = first.with_name("copy_" + first.name)
    copy.write_text(first.read_text().replace('"test_acc_at_best_valid": 0.9', '"test_acc_at_best_valid": 0.8')
                    .replace("2026-01-01", "2026-02-01"))
    groups, errors, warnings = collect_runs(out)
    assert errors == [] and len(groups) == 1 and groups[0].seeds == [0]
    assert len(warnings) == 1 and copy.name in warnings[0]
    frames, _ = build_leaderboard(out, refs_dir)
    assert _row(frames["gsc"], "axonal")["test_acc"] == pytest.approx(80.0)  # the newer record wins


def test_bad_references_cost_one_warning(results: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad_refs"
    bad.mkdir()
    (bad / "x.yaml").write_text("entries: [ {protocol: gsc\n")
    frames, warnings = build_leaderboard(results, bad)
    assert len(warnings) == 1 and "x.yaml" in warnings[0] and "malformed YAML" in warnings[0]
    assert list(frames["gsc"]["source"].str.startswith("this suite")) == [True] * len(frames["gsc"])


def test_empty_results_dir(tmp_path: Path, refs_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    frames, warnings = build_leaderboard(tmp_path / "empty", refs_dir)
    assert frames == {} and any("no run records" in w for w in warnings)


def test_no_delay_rows_have_no_kernel_size(tmp_path: Path, refs_dir: Path) -> None:
    """A network without delays shows D as '—' (not the protocol's 31), in the table and in the group label."""
    path = make_record(tmp_path / "results", "no-delay", 0, 0.7)
    record = json.loads(path.read_text())
    record["model_spec"]["delay_type"] = "none"
    write_record(path, record)
    groups, _, _ = collect_runs(tmp_path / "results")
    assert [(g.variant, g.kernel_size, g.label) for g in groups] == [("no-delay", None, "no-delay")]
    frame = build_leaderboard(tmp_path / "results", refs_dir)[0]["gsc"]
    ours = frame.index[frame["method"] == "no-delay"][0]
    assert format_cell(frame, ours, "D") == "—"


def test_plot_helpers_dodge_ticks_bands_legend(results: Path, refs_dir: Path) -> None:
    """Coincident points are spread, distinct ones kept; a 2x log range gets several labelled ticks; the legend has
    no single-value entries; a stored reference of a variant is found for its band."""
    from matplotlib.figure import Figure

    from suite.report import _dodge, _log_x, _plot_configs, _reference_band

    xs = _dodge([1000.0, 1000.0, 1000.0, 5000.0], [90.0, 90.5, 50.0, 90.0])
    assert xs[0] != xs[1] and xs[0] * xs[1] == pytest.approx(1000.0**2)  # symmetric about the true x
    assert xs[2] == 1000.0 and xs[3] == 5000.0  # far in y, or alone at its x: not moved
    ax = Figure().subplots()
    _log_x(ax, [9152.0, 18048.0])
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()
              and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    assert len(labels) >= 4 and "10k" in labels and "9k" in labels, labels
    frames, _ = build_leaderboard(results, refs_dir)
    gsc = frames["gsc"]
    ours = gsc[gsc["backend"].notna()].dropna(subset=["test_acc", "params"])
    handles = _plot_configs(Figure().subplots(), gsc, ours[ours["D"] == 31], "params")
    assert sorted(h.get_label() for h in handles) == ["axonal", "no-delay", "synaptic"]  # one D: no "D = 31" entry
    assert {h.get_label() for h in _plot_configs(Figure().subplots(), gsc, ours, "params")} >= {"D = 15", "D = 31"}
    assert _reference_band(gsc, "axonal", 31) is None  # the reference there is a parameter count, not an accuracy
    band_refs = refs_dir / "band.yaml"
    band_refs.write_text("entries:\n  - {protocol: gsc, method: band, variant: axonal, kernel_size: 31, metric: "
                         "test_acc_at_best_valid, value: 91.0, std: 1.5, source: s, status: measured, "
                         "tolerance: {abs: 4.5}}\n")
    frames, _ = build_leaderboard(results, refs_dir)
    assert _reference_band(frames["gsc"], "axonal", 31) == (91.0, 1.5)
    assert _reference_band(frames["gsc"], "axonal", 15) is None
    assert _reference_band(frames["gsc"], "axonal", pd.NA) == (91.0, 1.5)  # no D (a no-delay row): any D's band
