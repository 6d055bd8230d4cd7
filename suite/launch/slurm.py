"""The Slurm launcher: one array task per run through submitit; timeouts and preemption requeue the task.

Each task calls :func:`suite.launch.execute` in a :class:`RunTask`, a ``submitit.helpers.Checkpointable``: when Slurm
signals a time limit or a preemption, submitit requeues the same call, which finds the run's epoch checkpoint and
resumes from it, ending with the record an uninterrupted run writes. Logs go to ``RESULTS/slurm/`` (one pair of
files per task, named by the array job and task ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import submitit

from suite.errors import SuiteError
from suite.launch import Job, execute

LOGS_DIR = "slurm"


class RunTask(submitit.helpers.Checkpointable):
    """The callable each array task runs; checkpoint() (inherited) resubmits the same Job, which resumes."""

    def __call__(self, job: Job) -> str:
        return execute(job)


def submit(jobs: Sequence[Job], out_dir: Path, resources: Mapping[str, Any], name: str,
           extra: Mapping[str, Any] | None = None) -> list[Any]:
    """Submit one array task per job; returns the submitit jobs (ids in ``job.job_id``)."""
    if not jobs:
        return []
    executor = submitit.AutoExecutor(folder=Path(out_dir) / LOGS_DIR / "%j", cluster="slurm")
    params: dict[str, Any] = {
        "name": f"suite-{name}", "timeout_min": max(1, round(float(resources["time_hours"]) * 60)),
        "cpus_per_task": int(resources["cpus"]), "mem_gb": float(resources["mem_gb"]),
        "slurm_array_parallelism": len(jobs),
    }
    if int(resources["gpus"]):
        params["gpus_per_node"] = int(resources["gpus"])
    if resources.get("partition"):
        params["slurm_partition"] = resources["partition"]
    params.update(extra or {})
    executor.update_parameters(**params)
    try:
        return executor.map_array(RunTask(), list(jobs))
    except (submitit.core.utils.FailedJobError, OSError) as err:
        raise SuiteError(f"sbatch failed: {' '.join(str(err).split())[:300]}") from None
