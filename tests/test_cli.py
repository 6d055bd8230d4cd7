"""The command line: list, describe, run --all (skip, force), leaderboard, verify, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import write_band

from suite.cli import main
from suite.registry import variants

PAPER_COUNTS = {  # docs/protocol-facts.md, 'Parameter counts of the official models'
    ("synaptic", "gsc"): 1_128_448, ("synaptic", "ssc"): 1_230_848,
    ("axonal", "gsc"): 567_336, ("axonal", "ssc"): 618_636,
    ("dendritic", "gsc"): 567_331, ("dendritic", "ssc"): 618_531,
}


def test_list_from_a_subprocess() -> None:
    out = subprocess.run([sys.executable, "-m", "suite", "list"], capture_output=True, text=True, check=True).stdout
    for name in ("no-delay", "synaptic", "axonal", "dendritic", "axonal-sparse", "dendritic-sparse"):
        assert name in out
    assert "numba-cuda" in out and "gsc-mini" in out


@pytest.mark.parametrize(("variant", "protocol"), sorted(PAPER_COUNTS))
def test_describe_prints_the_official_counts(variant: str, protocol: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["describe", variant, "--protocol", protocol, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    total = sum(layer["parameters"]["trainable"] for layer in info["layers"])
    assert total == PAPER_COUNTS[(variant, protocol)] == info["static"]["params_trainable"]
    assert main(["describe", variant, "--protocol", protocol]) == 0
    assert f"{PAPER_COUNTS[(variant, protocol)]:,}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["describe", "somatic"], "unknown variant 'somatic'"),
        (["describe", "axonal", "--protocol", "timit"], "unknown protocol 'timit'"),
        (["describe", "axonal", "--set", "kernel_size=30"], "kernel_size: must be a positive odd number"),
        (["describe", "axonal", "--set", "delay_sparsity=1.5"], "delay_sparsity: must be in [0, 1)"),
        (["describe", "axonal", "--set", "kernel"], "expected KEY=VALUE"),
        (["describe", "axonal", "--set", "kernal_size=3"], "--set kernal_size: unknown key; protocol keys: epochs"),
        (["describe", "axonal", "--set", "kernel_size=x"], "kernel_size: 'x' has the wrong type, expected int"),
        (["run", "--variant", "axonal"], "give --protocol and --variant, or --all"),
        (["run", "--protocol", "gsc", "--variant", "axonal", "--backend", "jax"], "unknown backend 'jax'"),
        (["run", "--protocol", "gsc-mini", "--variant", "axonal", "--device", "gpu0"], "'gpu0' is not a device"),
        (["run", "--protocol", "gsc-mini", "--variant", "axonal", "--device", "meta"], "'meta' is not supported"),
        (["run", "--protocol", "gsc-mini", "--variant", "axonal", "--device", "cuda:99"],
         "does not exist" if torch.cuda.is_available() else "no CUDA device is available"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture,
                                      tmp_path: Path) -> None:
    if argv[0] == "run":
        argv = [*argv, "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_paper_protocol_without_data_root_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["run", "--protocol", "gsc", "--variant", "axonal", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--data-root" in err and err.count("\n") == 1


def test_run_all_then_noop_then_leaderboard_and_verify(tiny_protocol_path: Path, data_cache: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results"
    argv = ["run", "--all", "--protocol", str(tiny_protocol_path), "--out", str(out), "--cache-dir", str(data_cache)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    records = sorted((out / "records").glob("*.json"))
    assert len(records) == len(variants())
    assert "Leaderboard written" in first and (out / "leaderboard" / "leaderboard_tiny.md").exists()
    stamps = {p: p.stat().st_mtime_ns for p in records}

    assert main(argv) == 0  # everything recorded: a no-op
    second = capsys.readouterr().out
    assert f"{len(records)} already recorded" in second and "0 to run" in second
    assert {p: p.stat().st_mtime_ns for p in records} == stamps

    assert main([*argv, "--variant", "axonal", "--force"]) == 0
    assert "1 to run" in capsys.readouterr().out

    axonal = json.loads(next((out / "records").glob("tiny__axonal__*.json")).read_text())
    value = 100 * axonal["metrics"]["test_acc_at_best_valid"]
    references = write_band(tmp_path / "refs", value, 0.01)
    assert main(["verify", str(out), "--references", str(references)]) == 0
    assert "PASS" in capsys.readouterr().out

    path = next((out / "records").glob("tiny__axonal__*.json"))
    altered = json.loads(path.read_text())
    altered["metrics"]["test_acc_at_best_valid"] = min(1.0, altered["metrics"]["test_acc_at_best_valid"] + 0.2) \
        if value < 80 else altered["metrics"]["test_acc_at_best_valid"] - 0.2
    path.write_text(json.dumps(altered))
    assert main(["verify", str(out), "--references", str(references)]) == 1
    assert "FAIL" in capsys.readouterr().out

    (out / "records" / "garbage.json").write_text("{not json")
    assert main(["leaderboard", str(out)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert [w for w in warnings if "garbage.json: corrupt JSON at line 1" in w], warnings
    assert main(["verify", str(out), "--references", str(references)]) == 1  # the broken file is an error
    assert "garbage.json" in capsys.readouterr().out


def test_data_check_with_protocol_and_root(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "synth", "--format", "ssc", "--out", str(tmp_path), "--per-class", "1", "--classes", "5"]) == 0
    capsys.readouterr()
    assert main(["data", "check", "--protocol", "ssc", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ssc data at" in out and "structure ok" in out and "differs" in out
    assert main(["data", "check", "--protocol", "ssc", "--root", str(tmp_path), "--strict"]) == 1
    assert main(["data", "check", "--protocol", "gsc", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "GSC root not found" in err and err.count("\n") == 1
