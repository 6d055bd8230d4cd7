"""Sweeps (shipped grids, loader errors), the local launcher, per-run locks, error files and `suite status`."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from suite.cli import _plan, main
from suite.errors import SuiteError
from suite.launch import Job, error_path, execute, lock_held, run_lock
from suite.launch.local import threads_per_job
from suite.records import CHECKPOINTS_DIR, load_record
from suite.status import run_state
from suite.sweeps import load_sweep


def _grid(sweep: str) -> set[tuple[object, ...]]:
    return {(r.spec.protocol, r.spec.variant, r.spec.seed, r.spec.overrides) for r in load_sweep(sweep).runs}


def test_paper_sweeps_are_the_official_grids():
    paper = _grid("paper")
    variants = ("synaptic", "axonal", "dendritic")
    assert paper == {(p, v, s, (("kernel_size", d),)) for p in ("gsc", "ssc") for v in variants for s in range(5)
                     for d in (15, 31)}
    levels = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)
    assert _grid("paper-sparsity") == {
        (p, "axonal", s, (("delay_sparsity", ds), ("kernel_size", 15), ("weight_sparsity", ws)))
        for p in ("gsc-sparsity", "ssc-sparsity") for s in range(5) for ds in levels for ws in levels}
    assert len(paper) == 60 and len(_grid("paper-sparsity")) == 360


def test_embedded_sweep_is_run_all():
    """The same RunSpecs, hence the same run ids and records, as `run --all`."""
    args = argparse.Namespace(all=True, protocol=None, variant=None, backend="auto", set=[], seeds=None,
                              official_metric=False, data_root=None, dry_run=False, device="cpu")
    assert [r.spec for r in load_sweep("embedded").runs] == [spec for spec, _ in _plan(args)]


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nversion: 1\ngrids: []\n", "grids: expected a non-empty list of grids"),
    ("name: x\nversion: 1\ngrids: [{protocols: [gsc], variants: [nope]}]\n", "unknown variant 'nope'"),
    ("name: x\nversion: 1\ngrids: [{protocols: [gsc], variants: [axonal], overrides: {kernel_size: 15}}]\n",
     "grids[0].overrides.kernel_size: 15, expected a non-empty list"),
    ("name: x\nversion: 1\ngrids: [{protocols: [gsc], variants: [axonal], overrides: {kernel: [15]}}]\n",
     "unknown keys ['kernel']"),
    ("name: x\nversion: 1\ngrids: [{protocols: [gsc], variants: [axonal], seed: [0]}]\n", "unknown keys ['seed']"),
    ("name: x\nversion: 1\ngrids: [{protocols: [gsc], variants: [axonal]}]\nresources: {gpu: 1}\n",
     "resources: expected a mapping with keys among"),
])
def test_bad_sweep_files_name_file_and_key(tmp_path, text, message, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_sweep(path)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}")
    assert main(["sweep", "no-such-sweep", "--dry-run"]) == 2
    assert "unknown sweep 'no-such-sweep'; shipped: embedded, paper, paper-sparsity" in capsys.readouterr().err


def test_paper_dry_run_lists_runs_and_compute(capsys):
    assert main(["sweep", "paper", "--dry-run", "--launcher", "slurm", "--out", "/nonexistent/results",
                 "--time-hours", "6", "--partition", "gpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    runs = [line for line in out if line.startswith("to do ")]
    assert len(runs) == 60
    assert re.fullmatch(r"to do    [0-9a-f]{10}  axonal\[gsc,torch,seed=0,kernel_size=15\]  epochs 100, ~9\.3 h",
                        next(r for r in runs if "axonal[gsc,torch,seed=0,kernel_size=15]" in r))
    assert "60 run(s): 0 done, 0 running, 0 failed, 0 interrupted, 60 not started; 60 to launch" in out
    assert ("each job asks: 1 GPU(s), 4 CPU(s), 32 GB, time limit 6 h, partition gpu (requeued from its checkpoint "
            "when the limit is reached)") in out
    # 10 runs each of gsc (100 epochs) and ssc (60 epochs) per variant, at the sweep's epoch_minutes
    hours = 10 * (100 * (109.4 + 5.6 + 5.2) + 60 * (105.9 + 5.1 + 4.9)) / 60
    assert f"expected compute of the 60 run(s) to do: {hours:,.1f} GPU-hours" in "\n".join(out)
    assert "asked for per submission: 60 job(s) x 6 h x 1 GPU = 360.0 GPU-hours" in "\n".join(out)


def _sweep_file(tmp_path: Path, tiny_protocol_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"name: t\nversion: 1\ngrids:\n  - protocols: [{tiny_protocol_path}]\n"
                    "    variants: [axonal, no-delay]\n    seeds: [0, 1]\n")
    return path


def test_local_sweep_runs_in_parallel_skips_done_and_matches_run(tmp_path, tiny_protocol_path, data_cache, capsys):
    sweep = _sweep_file(tmp_path, tiny_protocol_path)
    out = tmp_path / "out"
    assert threads_per_job(2) >= 1
    argv = ["sweep", str(sweep), "--jobs", "2", "--out", str(out), "--cache-dir", str(data_cache)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 run(s): 0 done, 0 running, 0 failed, 0 interrupted, 4 not started; 4 to launch" in printed
    assert len(re.findall(r"^\[\d/4\] .*: ran$", printed, re.M)) == 4
    assert main(argv) == 0
    assert "4 run(s): 4 done, 0 running, 0 failed, 0 interrupted, 0 not started; 0 to launch" in (
        capsys.readouterr().out)
    # the record of a sweep run (2 processes, 1 thread each) equals `run`'s for the same spec, timings aside
    spec = load_sweep(sweep).runs[0].spec
    assert main(["run", "--protocol", str(tiny_protocol_path), "--variant", "axonal", "--seeds", "0", "--out",
                 str(tmp_path / "run"), "--cache-dir", str(data_cache)]) == 0
    records = [load_record(next((d / "records").glob(f"*__{spec.run_id}.json"))) for d in (out, tmp_path / "run")]
    strip = [{k: v for k, v in r["metrics"].items() if "seconds" not in k and "latency" not in k} for r in records]
    assert strip[0] == strip[1]
    assert [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in records[0]["history"]] == [
        {k: v for k, v in row.items() if k != "epoch_seconds"} for row in records[1]["history"]]


def test_lock_error_file_and_status(tmp_path, tiny_protocol_path, data_cache, capsys):
    sweep = _sweep_file(tmp_path, tiny_protocol_path)
    runs = load_sweep(sweep).runs
    out = tmp_path / "out"
    job = Job(runs[0].spec, runs[0].protocol_ref, out, cache_dir=data_cache)
    run_id = runs[0].spec.run_id
    with run_lock(out, run_id, "test holder") as held:
        assert held
        assert lock_held(out, run_id) == "test holder"
        assert run_state(out, run_id) == ("running", "test holder")
        assert execute(job) == "skipped"  # a second process (or call) for a running run does nothing
        assert "another process holds" in capsys.readouterr().out
    assert lock_held(out, run_id) is None

    bad = Job(runs[1].spec, runs[1].protocol_ref, out, data_root=None, cache_dir=data_cache, device="nodevice")
    with pytest.raises(SuiteError):
        execute(bad)
    failed = run_state(out, runs[1].spec.run_id)
    assert failed == ("failed", "SuiteError: run --device: 'nodevice' is not a device; expected cpu, cuda or cuda:N")
    (out / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
    (out / CHECKPOINTS_DIR / f"{runs[2].spec.run_id}.pt").write_bytes(b"")
    assert main(["status", str(out), "--sweep", str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "4 run(s): 0 done, 0 running, 1 failed, 1 interrupted, 2 not started"
    assert f"failed       {runs[1].spec.run_id}  {runs[1].spec.label}  {failed[1]}" in lines
    assert f"interrupted  {runs[2].spec.run_id}  {runs[2].spec.label}  resumes from its checkpoint" in lines

    (out / CHECKPOINTS_DIR / f"{runs[2].spec.run_id}.pt").unlink()
    assert execute(job) == "ran" and execute(job) == "done"
    assert execute(Job(**{**bad.__dict__, "device": "cpu"})) == "ran"
    assert not error_path(out, runs[1].spec.run_id).exists()  # a later success clears the error
    assert main(["status", str(out)]) == 0  # without --sweep: the runs the directory knows of
    assert capsys.readouterr().out.splitlines()[-1] == "2 run(s): 2 done, 0 running, 0 failed, 0 interrupted, " \
                                                       "0 not started"
    assert main(["status", str(tmp_path / "missing")]) == 2


def test_reproduce_checks_data_then_plans_both_paper_sweeps(tmp_path, capsys):
    from suite.data import synthetic

    tiny = {"n_classes": 3, "train_per_class": 2, "valid_per_class": 1, "test_per_class": 1}
    for kind in ("gsc", "ssc"):
        synthetic.write_format(kind, tmp_path / "data" / kind, tiny, 0)
    out = tmp_path / "results"
    assert main(["reproduce", "paper", "--data-root", str(tmp_path / "data"), "--dry-run", "--launcher", "slurm",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (f"data gsc at {tmp_path / 'data' / 'gsc'}: sizes differ from the official ones: "
            "{'train': 6, 'valid': 3, 'test': 3} (numbers will not be comparable)") in printed
    assert "60 run(s): 0 done, 0 running, 0 failed, 0 interrupted, 60 not started; 60 to launch" in printed
    assert "360 run(s): 0 done, 0 running, 0 failed, 0 interrupted, 360 not started; 360 to launch" in printed
    assert not out.exists()  # a dry run writes nothing
    (tmp_path / "data" / "ssc" / "ssc_valid.h5").unlink()
    assert main(["reproduce", "paper", "--data-root", str(tmp_path / "data"), "--dry-run"]) == 2
    assert "ssc_valid.h5: missing" in capsys.readouterr().err
