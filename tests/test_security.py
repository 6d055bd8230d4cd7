"""What the suite loads from folders others can write (issue 21, docs/security.md): checkpoints are loaded as tensors
and plain data only (a checkpoint built to run code on load is refused, its code never runs), and names taken from
records never steer a read or a write out of the results directory."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from suite.cli import main
from suite.errors import SuiteError
from suite.identity import resolve_run
from suite.ops.registry import resolve as resolve_backend
from suite.records import load_trained_model
from suite.registry import get_protocol
from suite.specs import RunSpec

REPO = Path(__file__).resolve().parent.parent


class Payload:
    """Pickles to a call of exec: loading it with plain pickle writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def _hostile_checkpoint(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "model": {}, "optimisers": [], "schedulers": [], "history": [], "best": {},
                "train_seconds": 0.0, "rng": torch.get_rng_state(), "extra": Payload(marker)}, buffer)
    return buffer.getvalue()


def _run_argv(protocol: Path, out: Path, cache: Path) -> list[str]:
    return ["run", "--protocol", str(protocol), "--variant", "no-delay", "--out", str(out), "--cache-dir", str(cache)]


def _run_id(protocol_path: Path) -> str:
    """The id `run` gives the no-delay seed-0 run of the tiny protocol (resolved against its content and data)."""
    protocol = get_protocol(str(protocol_path))
    backend = resolve_backend("auto", "cpu")  # what `run` resolves its default backend to on this machine
    return resolve_run(RunSpec("no-delay", protocol.name, backend, 0), protocol, None).run_id


def test_the_payload_runs_code_when_unpickled(tmp_path: Path) -> None:
    """Proof that the crafted checkpoint is hostile: an unrestricted load (in a child process) runs its code."""
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    path.write_bytes(_hostile_checkpoint(marker))
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(path)!r}, weights_only=False)"],
                   check=True, capture_output=True)
    assert marker.read_text() == "code ran"


def test_hostile_resume_checkpoint_is_refused_and_never_run(tiny_protocol_path: Path, data_cache: Path,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, marker = tmp_path / "results", tmp_path / "marker"
    checkpoint = out / "checkpoints" / f"{_run_id(tiny_protocol_path)}.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(_hostile_checkpoint(marker))
    assert main(_run_argv(tiny_protocol_path, out, data_cache)) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {checkpoint}: checkpoint refused: it needs exec, not only tensors and plain data "
                   "(nothing in it was run); delete it to restart the run\n")
    assert not marker.exists()
    assert not list((out / "records").glob("*.json")) if (out / "records").exists() else True


@pytest.mark.parametrize(("state", "message"), [
    ({"model": torch.zeros(2)}, "not a checkpoint of this suite (expected keys"),
    ([1, 2, 3], "not a checkpoint of this suite"),
    ({"epoch": 1, "model": {"w": torch.zeros(3)}, "optimisers": [], "schedulers": [], "history": [], "best": {},
      "train_seconds": 0.0, "rng": torch.get_rng_state()}, "checkpoint has no identity"),
])
def test_foreign_checkpoints_are_one_line(tiny_protocol_path: Path, data_cache: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], state: object, message: str) -> None:
    out = tmp_path / "results"
    checkpoint = out / "checkpoints" / f"{_run_id(tiny_protocol_path)}.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save(state, checkpoint)
    assert main(_run_argv(tiny_protocol_path, out, data_cache)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {checkpoint}: ") and message in err and err.count("\n") == 1, err


BANNED = re.compile(r"(?<![\w.])(eval|exec)\(|pickle\.loads?\(|yaml\.(load|unsafe_load|full_load)\(|allow_pickle=True|"
                    r"weights_only=False|marshal\.loads?\(")


def test_no_unrestricted_loader_in_the_code() -> None:
    """Every torch.load passes weights_only=True; no pickle.load, yaml.load, eval or exec anywhere in the product."""
    for path in REPO.joinpath("suite").rglob("*.py"):  # the published-stack baselines live in suite/baselines
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            assert "torch.load(" not in code or "weights_only=True" in code, f"{path}:{number}: {line.strip()}"
            assert not BANNED.search(code), f"{path}:{number}: {line.strip()}"


@pytest.mark.parametrize("run_id", ["../../x", "/etc/passwd", "abc/def012", "0123456789.pt", "ABCDEF0123"])
def test_record_names_never_leave_the_results_directory(tmp_path: Path, run_id: str) -> None:
    from test_records import full_record

    results = tmp_path / "results"
    (results / "records").mkdir(parents=True)
    record = full_record()
    record["run_id"] = run_id
    path = results / "records" / "x.json"
    with pytest.raises(SuiteError, match=r"x.json: run_id must be a hex string of 6 to 64 characters") as err:
        load_trained_model(path, record)
    assert "\n" not in str(err.value)


def test_protocol_name_from_a_record_never_names_a_written_file(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from test_records import full_record

    results = tmp_path / "shared" / "results"
    (results / "records").mkdir(parents=True)
    for name in ("../../escaped", "/tmp/escaped", ".hidden"):
        record = full_record()
        record["spec"]["protocol"] = record["protocol"]["name"] = name
        (results / "records" / f"{abs(hash(name))}.json").write_text(json.dumps(record))
    assert main(["leaderboard", str(results)]) == 0
    err = capsys.readouterr().err
    assert err.count("spec.protocol must be a name of letters, digits") == 3
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.startswith("shared/results/records/") for p in written), written


def test_model_file_of_a_record_loads_as_weights_only(tmp_path: Path) -> None:
    """A models/<run_id>.pt that holds code is refused like a checkpoint; the code does not run."""
    from test_records import full_record

    results, marker = tmp_path / "results", tmp_path / "marker"
    record = full_record(variant="no-delay")
    (results / "models").mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save({"w": Payload(marker)}, buffer)
    (results / "models" / f"{record['run_id']}.pt").write_bytes(buffer.getvalue())
    with pytest.raises(SuiteError, match=r"cannot load into no-delay \(UnpicklingError\)"):
        load_trained_model(results / "records" / "x.json", record)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".hidden", 7])
def test_protocol_names_that_would_steer_files_are_refused(tmp_path: Path, name: object) -> None:
    """A protocol file's name becomes part of record and leaderboard file names: it is checked when the file loads."""
    from tiny import TINY_PROTOCOL

    path = tmp_path / "p.yaml"
    path.write_text(TINY_PROTOCOL.replace("name: tiny", f"name: {json.dumps(name)}"))
    with pytest.raises(SuiteError, match=r"p.yaml: name: .* cannot name files"):
        get_protocol(str(path))
