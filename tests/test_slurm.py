"""The Slurm launcher on a real one-node Slurm (slurmctld + slurmd + munged started here, under a temporary folder).

A small sweep goes through `suite sweep --launcher slurm` (a submitit job array); one task is cancelled mid-run
(scancel) and resubmitted, another is signalled as preempted (USR2, what Slurm sends before a time limit or a
preemption) and requeues itself through submitit; every record must equal that of a local run of the same specs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from suite.cli import main
from suite.launch import Job, execute, lock_held
from suite.launch.local import run_local
from suite.records import CHECKPOINTS_DIR, iter_records
from suite.status import run_state
from suite.sweeps import load_sweep

DAEMONS = ("munged", "slurmctld", "slurmd")
TIMING_KEYS = ("epoch_seconds", "train_seconds")
PROTOCOL = """\
name: tiny-slurm
version: 1
description: "test protocol: long enough (500 short epochs) to outlast the kill window of a cancel"
embedded: true
data:
  kind: ssc
  n_bins: 20
  time_step_ms: 10
  synthetic: {n_classes: 10, train_per_class: 8, valid_per_class: 2, test_per_class: 2, seed: 0}
model:
  n_hidden: [32]
  kernel_size: 5
  dropout: 0.1
optim:
  epochs: 500
  batch_size: 16
measure: {memory: false, training_latency: false, warmup: 1, repeats: 2}
seeds: [0]
"""
SWEEP = """\
name: slurm-test
version: 1
description: "three runs: the first is cancelled and resubmitted, the second preempted and requeued"
grids:
  - protocols: [tiny-slurm.yaml]
    variants: [axonal, dendritic, no-delay]
resources: {gpus: 0, cpus: 1, mem_gb: 0.25, time_hours: 0.5}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition: Callable[[], object], timeout: float, what: str, logs: Path | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    tail = ""
    if logs is not None:
        tail = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in sorted(logs.rglob("*.err")) + sorted(
            logs.rglob("*.log")))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A one-node Slurm (this host, 2 CPUs, one partition) with its own munge key and socket; stopped at the end."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.skip(f"cannot start Slurm: {', '.join(missing)} not installed (apt-get install slurm-wlm munge)")
    root = Path(str(tmp_path_factory.mktemp("slurm")))
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "munge.sock"
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=suitetest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
InactiveLimit=0
KillWait=5
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    commands = [
        ["munged", "-F", "-f", f"--socket={sock}", f"--key-file={key}", f"--pid-file={root}/munge/munged.pid",
         f"--log-file={root}/log/munged.log", f"--seed-file={root}/munge/munged.seed"],
        ["slurmctld", "-D", "-c", "-f", str(conf)],
        ["slurmd", "-D", "-N", host, "-f", str(conf)],
    ]
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        for command in commands:
            out = open(root / "log" / f"{command[0]}.out", "wb")  # noqa: SIM115 - owned by the daemon
            daemons.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root))
            if command[0] == "munged":
                _wait(sock.exists, 20, "the munge socket")
        try:
            _wait(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True
                                         ).stdout.strip() == "idle", 60, "the node to be idle")
        except AssertionError:
            logs = "; ".join(f"{p.name}: {p.read_text()[-300:]!r}" for p in sorted((root / "log").iterdir()))
            pytest.skip(f"cannot start Slurm: the node never became idle ({logs})")
        yield env
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True)
        if len(daemons) == len(commands):  # let slurmd see its jobs end, so no job step outlives the daemons
            with contextlib.suppress(AssertionError):
                _wait(lambda: not subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True
                                                 ).stdout.strip(), 30, "the queue to drain")
        for daemon in reversed(daemons):
            daemon.terminate()
        for daemon in reversed(daemons):
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def _comparable(out: Path) -> dict[str, tuple[dict[str, object], list[dict[str, object]]]]:
    """run_id -> (metrics, history) without the wall-clock timings."""
    found = {}
    for path, record in iter_records(out):
        assert isinstance(record, dict), f"{path}: {record}"
        metrics = {k: v for k, v in record["metrics"].items() if k not in TIMING_KEYS and "latency" not in k}
        history = [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in record["history"]]
        found[record["run_id"]] = (metrics, history)
    return found


@pytest.mark.slow  # about 5 min on an idle 2-core machine (500 epochs per run, job start-ups); .ci/run runs it
def test_sweep_on_slurm_cancel_requeue_resubmit_equal_local(slurm, tmp_path, monkeypatch, capsys):
    repo = str(Path(__file__).resolve().parent.parent)
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    (tmp_path / "tiny-slurm.yaml").write_text(PROTOCOL)
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(SWEEP)
    out = tmp_path / "results"
    cache = tmp_path / "cache"  # one synthetic-data cache for Slurm and local runs
    runs = load_sweep(sweep_file).runs
    cancelled, preempted, untouched = (r.spec.run_id for r in runs)
    argv = ["sweep", str(sweep_file), "--launcher", "slurm", "--out", str(out), "--cache-dir", str(cache)]

    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 run(s): 0 done, 0 running, 0 failed, 0 interrupted, 3 not started; 3 to launch" in printed
    assert "each job asks: 0 GPU(s), 1 CPU(s), 0.25 GB, time limit 0.5 h" in printed
    array = re.search(r"submitted 3 Slurm job\(s\) \((\d+)_\[0-2\]\)", printed).group(1)
    logs = out / "slurm"
    ckpt = out / CHECKPOINTS_DIR

    # each of the first two tasks (2 CPUs) is interrupted as soon as it has an epoch checkpoint, i.e. mid-run
    signals = {cancelled: ["scancel", f"{array}_0"], preempted: ["scancel", "--signal=USR2", f"{array}_1"]}

    def interrupt_when_checkpointed() -> bool:
        for run_id in [r for r in signals if (ckpt / f"{r}.pt").exists()]:
            if run_id == cancelled:
                assert run_state(out, cancelled)[0] == "running"
                assert lock_held(out, cancelled).startswith(f"slurm job {array}_0 pid ")
                # a second process for a running run skips it: two jobs never write one record
                assert execute(Job(runs[0].spec, runs[0].protocol_ref, out, cache_dir=cache)) == "skipped"
            subprocess.run(signals.pop(run_id), check=True)
        return not signals

    _wait(interrupt_when_checkpointed, 300, "the first two runs' epoch checkpoints", logs)
    _wait(lambda: run_state(out, cancelled)[0] == "interrupted", 60, "the cancelled run to stop", logs)
    _wait(lambda: run_state(out, preempted)[0] == "done" and run_state(out, untouched)[0] == "done", 300,
          "the requeued and the untouched runs", logs)
    preempted_log = "\n".join(p.read_text() for p in logs.rglob(f"{array}_1_*_log.err"))
    assert "this job is preempted" in preempted_log and "DUE TO JOB REQUEUE" in preempted_log, preempted_log[-2000:]
    assert run_state(out, cancelled) == ("interrupted", "resumes from its checkpoint")
    assert main(["status", str(out), "--sweep", str(sweep_file)]) == 0
    assert "3 run(s): 2 done, 0 running, 0 failed, 1 interrupted, 0 not started" in capsys.readouterr().out

    # resubmission launches only the interrupted run, which resumes from its checkpoint
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 run(s): 2 done, 0 running, 0 failed, 1 interrupted, 0 not started; 1 to launch" in printed
    _wait(lambda: run_state(out, cancelled)[0] == "done", 240, "the resubmitted run", logs)
    assert main(["status", str(out), "--sweep", str(sweep_file)]) == 0
    assert capsys.readouterr().out.strip().endswith("3 run(s): 3 done, 0 running, 0 failed, 0 interrupted, "
                                                    "0 not started")

    local = tmp_path / "local"
    outcomes = run_local([Job(r.spec, r.protocol_ref, local, cache_dir=cache, threads=1) for r in runs], 1,
                         lambda job, outcome: None)
    assert set(outcomes.values()) == {"ran"}
    on_slurm, here = _comparable(out), _comparable(local)
    assert sorted(on_slurm) == sorted(here) == sorted(r.spec.run_id for r in runs)
    for run_id in here:
        assert on_slurm[run_id] == here[run_id], run_id
    assert [row["epoch"] for row in here[cancelled][1]] == list(range(500))
