"""The terminal leaderboard (widths, TTY or pipe, verdicts beside our runs) and escaping of untrusted text in the
terminal, the progress bars and the Markdown tables.

Records are fake but schema-valid (tests/test_report.make_record); references are written to a temporary directory.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from test_report import make_record

from suite.progress import RichProgress
from suite.report import build_leaderboard, write_leaderboard
from suite.safetext import markdown, one_line, terminal
from suite.specs import RunSpec
from suite.terminal import render_terminal, verdicts
from suite.verify import print_checks, verify_results

ANSI = re.compile(r"\x1b\[[0-9;]*m")
HOSTILE = ("[bold]loud[/] [/] ![x](javascript:alert(1)) | `tick` <script>alert(1)</script>\nsecond line "
           "\x1b[31mred\x1b[0m \u202eevil")

REFS = """\
entries:
  - {protocol: gsc-mini, protocol_version: 1, method: axonal band, variant: axonal, kernel_size: 15,
     metric: test_acc_at_best_valid, value: 80.0, std: 1.0, source: 'this suite @ abc', status: measured,
     tolerance: {abs: 2.0}}
  - {protocol: gsc-mini, method: axonal params, variant: axonal, metric: params_trainable, value: 9320,
     source: derived, status: derived, tolerance: {abs: 0}}
  - {protocol: gsc-mini, protocol_version: 1, method: dendritic band, variant: dendritic, kernel_size: 15,
     metric: test_acc_at_best_valid, value: 95.0, source: 'this suite @ abc', status: measured,
     tolerance: {abs: 1.0}}
  - {protocol: gsc-mini, method: 'Other SNN with a long name', variant: null, metric: test_acc_reported,
     value: 91.25, source: 'A. Author et al., A very long conference name 2025, Table 3, row 4, arXiv:2501.00001',
     status: secondary}
"""


@pytest.fixture
def board(tmp_path: Path) -> tuple[Path, Path]:
    """Twelve configurations (the size of `run --all` on one embedded protocol), two with reference bands."""
    out, refs = tmp_path / "results", tmp_path / "refs"
    refs.mkdir()
    (refs / "bands.yaml").write_text(REFS)
    for seed, acc in enumerate((0.79, 0.80, 0.81)):
        make_record(out, "axonal", seed, acc, protocol="gsc-mini", kernel_size=15, params_trainable=9320,
                    buffer_allocated_bits=19712, Effective_ACs=66725.0)
    make_record(out, "dendritic", 0, 0.90, protocol="gsc-mini", kernel_size=15, params_trainable=9315,
                buffer_allocated_bits=73024, Effective_ACs=58970.0)  # 5 points below its band: FAIL
    for i, variant in enumerate(("no-delay", "synaptic", "axonal-sparse", "dendritic-sparse", "v5", "v6", "v7",
                                 "v8", "v9", "axonal-fixed-plugin")):
        make_record(out, variant, 0, 0.5 + i / 40, protocol="gsc-mini", kernel_size=15, params_trainable=9000 + i,
                    buffer_allocated_bits=1000 * i, Effective_ACs=50000.0 + i)
    return out, refs


def _render(out: Path, refs: Path, width: int, tty: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=tty, color_system="standard" if tty else None)
    frames, _ = build_leaderboard(out, refs)
    for table in render_terminal(frames, verdicts(out, refs), console):
        console.print(table)
    return ANSI.sub("", buffer.getvalue())


@pytest.mark.parametrize("tty", [False, True])
@pytest.mark.parametrize("width", [80, 120])
def test_fits_the_width_one_line_per_row(board: tuple[Path, Path], width: int, tty: bool) -> None:
    text = _render(*board, width, tty)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    ours = lines[:next((i for i, line in enumerate(lines) if not line.strip()), len(lines))]
    assert ours[0].startswith("Leaderboard: gsc-mini")
    rows = ours[3:]  # title, header, rule
    assert len(rows) == 12, text  # 12 configurations (axonal's 3 seeds are one), one line each, no blank lines
    axonal = next(line for line in rows if line.startswith("axonal "))
    assert re.search(r"axonal\s+15\s+3\s+80\.00 ± 1\.00\s+80\.00 ± 2\.00\s+PASS\s+9,320", axonal), axonal
    dendritic = next(line for line in rows if line.startswith("dendritic "))
    assert re.search(r"90\.00\s+95\.00 ± 1\.00\s+FAIL test\b", dendritic), dendritic
    assert re.search(r"no-delay\s+15\s+1\s+50\.00\s+—\s+—", next(r for r in rows if r.startswith("no-delay")))
    # the published row of another method: its whole source survives (wrapped at 80, never cut)
    published = text[text.index("Published on gsc-mini"):]
    assert "Other SNN" in published and "91.25" in published
    assert "arXiv:2501.00001" in published.replace("\n", " ").replace("  ", " ") or "arXiv:2501.00001" in " ".join(
        published.split())
    assert "axonal band" not in text and "axonal params" not in text  # bands live in the reference column


def test_narrow_console_drops_trailing_columns_not_numbers(board: tuple[Path, Path]) -> None:
    wide, narrow = _render(*board, 120, False), _render(*board, 60, False)
    assert "synops" in wide and "buffer bits" in wide
    assert "synops" not in narrow and max(len(line) for line in narrow.splitlines()) <= 60
    assert "80.00 ± 2.00" in narrow and "PASS" in narrow and "FAIL" in narrow


def test_without_references_no_verdict_column(board: tuple[Path, Path], tmp_path: Path) -> None:
    empty = tmp_path / "no_refs"
    empty.mkdir()
    text = _render(board[0], empty, 80, False)
    assert "verify" not in text.splitlines()[1] and "reference" not in text.splitlines()[1]


def _hostile_record(out: Path) -> Path:
    """A record whose free-text fields carry markup, Markdown, HTML, newlines and terminal escapes."""
    path = make_record(out, "axonal", 0, 0.8, protocol="gsc-mini", kernel_size=15, params_trainable=9320)
    record = json.loads(path.read_text())
    record["spec"]["variant"] = record["model_spec"]["variant"] = HOSTILE
    record["spec"]["overrides"] = {"note": "[red]x[/red]|y"}
    path.write_text(json.dumps(record))
    return path


def test_hostile_record_text_shows_as_text_in_the_terminal(tmp_path: Path) -> None:
    out, refs = tmp_path / "results", tmp_path / "refs"
    refs.mkdir()
    (refs / "r.yaml").write_text(
        "entries:\n  - {protocol: gsc-mini, method: '[blink]lit[/blink] <b>', variant: null, metric: "
        "test_acc_reported, value: 90.0, source: \"\\e[2Jwiped [link=file:///etc/passwd]here[/link]\", "
        "status: quoted}\n")
    path = _hostile_record(out)
    for tty in (False, True):
        buffer = io.StringIO()
        console = Console(file=buffer, width=200, force_terminal=tty)
        frames, _ = build_leaderboard(out, refs)
        for table in render_terminal(frames, verdicts(out, refs), console):
            console.print(table)
        raw = buffer.getvalue()
        text = ANSI.sub("", raw)
        flat = " ".join(text.split())
        assert "[bold]loud[/] [/]" in flat and "![x](javascript:alert(1))" in flat and "<script>" in flat
        assert "[red]x[/red]|y" in flat and "[blink]lit[/blink] <b>" in flat
        assert "\\x1b[31mred\\x1b[0m" in flat and "\\u202eevil" in flat and "\\x1b[2Jwiped" in flat
        assert "[link=file:///etc/passwd]here[/link]" in flat
        assert "\x1b[31m" not in raw and "\x1b[2J" not in raw and "\u202e" not in raw and "\x1b]8;" not in raw
        assert "<script>alert(1)</script> second line" in flat
    copy = path.with_name("copy.json")  # a duplicate: verify warns naming the configuration, hostile label included
    copy.write_text(path.read_text())
    buffer = io.StringIO()
    print_checks(verify_results(out, refs), file=buffer, verbose=True)
    assert "\x1b" not in buffer.getvalue() and "\u202e" not in buffer.getvalue()
    assert "WARNING" in buffer.getvalue() and "[bold]loud[/] [/] ![x](javascript:alert(1))" in buffer.getvalue()


def _cells(row: str) -> list[str]:
    """Cells of a Markdown table row, split on unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_hostile_record_text_is_escaped_in_markdown(tmp_path: Path) -> None:
    out, refs = tmp_path / "results", tmp_path / "refs"
    refs.mkdir()
    _hostile_record(out)
    make_record(out, "dendritic", 0, 0.9, protocol="gsc-mini", kernel_size=15)
    written, _ = write_leaderboard(out, tmp_path / "board", refs, plots=False)
    text = next(p for p in written if p.suffix == ".md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    rows = [line for line in text.splitlines() if line.startswith("| ") and line != header]
    assert len(rows) == 2 and all(len(_cells(r)) == len(_cells(header)) for r in rows)  # no cell split by '|'
    hostile = next(r for r in rows if "loud" in r)
    assert "<script>" not in text and "\\<script\\>" in hostile
    assert "![x]" not in text and "\\!\\[x\\](javascript:alert(1))" in hostile
    assert "`" not in hostile.replace("\\`", "") and "\x1b" not in text and "\u202e" not in text
    assert "\n" not in hostile and "second line" in hostile


def test_safetext_functions() -> None:
    assert terminal("axonal[gsc-mini,torch,seed=0]") == "axonal\\[gsc-mini,torch,seed=0]"
    assert one_line("a\nb\tc\x1bd\u202e") == "a b c\\x1bd\\u202e"
    assert markdown("a|b *c* [d](e) <f> `g` ~h~ &i; \\") == (
        "a\\|b \\*c\\* \\[d\\](e) \\<f\\> \\`g\\` \\~h\\~ \\&i; \\\\")


def test_progress_keeps_run_labels(tmp_path: Path) -> None:
    """Labels with brackets survive in the progress bars and in the per-run result line."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=False)
    spec = RunSpec("axonal", "gsc-mini", "torch", 0)
    assert spec.label == "axonal[gsc-mini,torch,seed=0]"
    with RichProgress(console, 1) as progress:
        progress.run_started(spec, epochs=2, batches=3, start_epoch=0)
        for batch in range(3):
            progress.batch_done(0, batch, 1.0)
        progress.epoch_done(0, {"train_loss": 1.5, "valid_acc": 0.5})
        progress.run_done({"label": spec.label, "metrics": {"test_acc_at_best_valid": 0.875, "best_epoch": 1,
                                                            "best_valid_acc": 0.9}})
    text = buffer.getvalue()
    assert ("axonal[gsc-mini,torch,seed=0]: test 87.50% at best valid (epoch 1, 0-based as in the record), "
            "valid 90.00%") in text
    assert "axonal[gsc-mini,torch,seed=0]  1/2 epochs done, loss 1.500 valid 50.0%" in text


def test_protocol_name_from_a_record_cannot_choose_where_files_go(tmp_path: Path) -> None:
    out, refs = tmp_path / "results", tmp_path / "refs"
    refs.mkdir()
    path = make_record(out, "axonal", 0, 0.8, protocol="gsc-mini", kernel_size=15)
    record = json.loads(path.read_text())
    record["protocol"]["name"] = record["spec"]["protocol"] = "../../../escaped"
    path.write_text(json.dumps(record))
    written, warnings = write_leaderboard(out, out / "leaderboard", refs, plots=False)
    assert written == [] and any("escaped" in w and "protocol" in w for w in warnings)  # the record is refused
    assert not list(tmp_path.rglob("escaped*"))


def test_list_shows_hostile_plugin_metadata_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plug-in's name, description and origin are someone else's text: `list` shows them, markup and escapes
    included, as text."""
    from suite import cli, registry

    monkeypatch.setattr(registry, "_VARIANTS", dict(registry.variants()))
    registry.register_variant("evil[red]", description="[bold]big[/bold] \x1b]8;;http://x\x07link\x1b]8;;\x07",
                              delay_type="axonal", origin="[link=http://x]pkg[/link]")
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", lambda: Console(file=buffer, width=400, force_terminal=True))
    assert cli.main(["list"]) == 0
    text = ANSI.sub("", buffer.getvalue())
    assert "evil[red]" in text and "[bold]big[/bold] \\x1b]8;;http://x\\x07link" in text
    assert "[link=http://x]pkg[/link]" in text and "\x1b]8;" not in buffer.getvalue()
