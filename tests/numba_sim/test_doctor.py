"""``python -m suite doctor`` in simulator mode: the same parity and timing code the GPU run uses, at tiny sizes."""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.doctor import BACKENDS, add_doctor_command, run_doctor
from suite.ops import BACKEND_FUNCTIONS
from suite.registry import variants


def test_doctor_simulator_report(tmp_path: Path) -> None:
    out = tmp_path / "doctor.md"
    assert run_doctor(gpu=False, out=out, small=True) == 0
    text = out.read_text()
    assert "Numba CUDA simulator" in text and "all parity checks passed" in text
    for key in ("date:", "device:", "torch:", "numba:", "numba-cuda:", "CUDA (torch build):"):
        assert f"- {key}" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.rstrip().endswith("|")]
    parity = [r for r in rows if r.split("|")[1].strip() in BACKEND_FUNCTIONS]
    assert {r.split("|")[1].strip() for r in parity} == set(BACKEND_FUNCTIONS)
    assert parity and all("| PASS |" in r for r in parity)
    assert not any("FAIL" in r for r in rows)
    for name in variants():
        assert f"variant {name} " in text
    assert all(b in text for b in BACKENDS)


def test_doctor_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_doctor_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", "--gpu", "--out", "r.md"])
    assert args.gpu and args.out == Path("r.md") and not args.small and callable(args.func)
