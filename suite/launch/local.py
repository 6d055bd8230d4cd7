"""The local launcher: runs N at a time in worker processes, threads split so N jobs do not oversubscribe the cores."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from suite.launch import Job, execute


def threads_per_job(n_jobs: int) -> int:
    """The machine's cores split evenly over the parallel jobs (at least one each)."""
    return max(1, (os.cpu_count() or 1) // n_jobs)


def _init_worker(threads: int) -> None:
    # Before torch is imported in this fresh (spawned) process: OpenMP and MKL read these once.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


def _run(job: Job) -> str:
    return execute(job)


def run_local(jobs: Sequence[Job], n_jobs: int, report: Callable[[Job, str], None]) -> dict[str, str]:
    """Run every job, ``n_jobs`` at a time; ``report(job, outcome)`` after each. Returns run_id -> outcome, where a
    failed run's outcome is ``failed: <last error line>`` (the others go on)."""
    outcomes: dict[str, str] = {}

    def done(job: Job, outcome: str) -> None:
        outcomes[job.spec.run_id] = outcome
        report(job, outcome)

    if n_jobs <= 1:
        for job in jobs:
            try:
                done(job, execute(job))
            except Exception as err:
                done(job, f"failed: {type(err).__name__}: {err}")
        return outcomes
    threads = threads_per_job(n_jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(_run, Job(**{**job.__dict__, "threads": threads})): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                done(job, future.result())
            except Exception as err:
                done(job, f"failed: {type(err).__name__}: {err}")
    return outcomes
