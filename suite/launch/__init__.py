"""Where runs execute: here (suite.launch.local, N processes) or on Slurm (suite.launch.slurm, through submitit).

Both hand the same plain :class:`Job` to :func:`execute`, which calls the runner (suite.train.run_training); the
runner never knows where it runs. Per run, under the results directory:
- ``locks/<run_id>.lock``: an exclusive ``fcntl.flock`` held for the whole run, so two processes (two Slurm jobs,
  a resubmission and a straggler, a local and a cluster launch) never train and write the same record; the second one
  skips with a message. The kernel drops the lock when its process dies, so a killed job leaves no stale lock.
- ``errors/<run_id>.txt``: written when a run raises (last error line first, then the traceback), removed when the
  run later succeeds; ``suite status`` reports it.
- ``checkpoints/<run_id>.pt``: the runner's per-epoch checkpoint; a run started again resumes from it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suite.records import atomic_write_text, find_record
from suite.specs import RunSpec

LOCKS_DIR = "locks"
ERRORS_DIR = "errors"


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to train one run; plain data, so it pickles to a Slurm job or a process."""

    spec: RunSpec
    protocol_ref: str
    out_dir: Path
    data_root: Path | None = None
    cache_dir: Path | None = None
    device: str = "cpu"
    threads: int | None = None


def lock_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / LOCKS_DIR / f"{run_id}.lock"


def error_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / ERRORS_DIR / f"{run_id}.txt"


@contextmanager
def run_lock(out_dir: Path, run_id: str, owner: str) -> Iterator[bool]:
    """Hold the run's lock for the block; yields False (and holds nothing) when another process has it."""
    path = lock_path(out_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a+")  # noqa: SIM115 - held open for the block, closed below
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{owner}\n")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def lock_held(out_dir: Path, run_id: str) -> str | None:
    """The owner line of a held lock (a run in progress), or None when nobody holds it."""
    path = lock_path(out_dir, run_id)
    if not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown owner"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def last_error(out_dir: Path, run_id: str) -> str | None:
    """The last error line of a failed run, or None."""
    path = error_path(out_dir, run_id)
    try:
        return path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def _owner() -> str:
    job = os.environ.get("SLURM_JOB_ID")
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    where = f"slurm job {array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else (
        f"slurm job {job}" if job else "local")
    return f"{where} pid {os.getpid()} on {socket.gethostname()}"


def execute(job: Job) -> str:
    """Train one run unless it is done or running elsewhere; returns 'done', 'ran' or 'skipped'.

    A failure writes the run's error file and re-raises; an interruption (signal, requeue) leaves the checkpoint for
    the next start to resume from.
    """
    from suite.registry import get_protocol
    from suite.train import run_training

    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    run_id = job.spec.run_id
    with run_lock(job.out_dir, run_id, _owner()) as held:
        if not held:
            print(f"{job.spec.label} ({run_id}): another process holds {lock_path(job.out_dir, run_id)}; skipping",
                  flush=True)
            return "skipped"
        if find_record(job.out_dir, run_id) is not None:
            return "done"
        try:
            run_training(job.spec, job.out_dir, data_root=job.data_root, cache_dir=job.cache_dir, device=job.device,
                         protocol=get_protocol(job.protocol_ref))
        except Exception as err:
            last = " ".join(f"{type(err).__name__}: {err}".split())
            atomic_write_text(error_path(job.out_dir, run_id), f"{last}\n{traceback.format_exc()}")
            raise
        error_path(job.out_dir, run_id).unlink(missing_ok=True)
    return "ran"
