"""Timers, written once: repeated wall-clock calls and their statistics (docs/metrics.md "Latency").

Every measurement makes ``warmup`` untimed calls, then times ``repeats`` calls one by one with ``time.perf_counter``;
on CUDA the device is synchronised before the clock starts and before it stops, so a time covers the queued kernels.
The statistic is the median, with the interquartile range (inclusive quartiles), mean, standard deviation and min.
Latency metrics (suite/metrics/latency.py), ``suite doctor``, ``suite bench`` and the asv benchmarks all time here.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartile (inclusive method; both the value itself for a single one)."""
    if len(values) == 1:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


@dataclass
class Samples:
    """Per-call wall times, process CPU times and minor page faults of one timed callable."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    minor_faults: list[int] = field(default_factory=list)

    def call(self, fn: Callable[[], Any], device: torch.device) -> None:
        """Time one call of ``fn`` and keep its samples (the clock window holds ``fn`` and the device sync only)."""
        sync(device)
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        fn()
        sync(device)
        wall1 = time.perf_counter()
        self.cpu.append(time.process_time() - cpu0)
        self.minor_faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0)
        self.wall.append(wall1 - wall0)

    def summary(self) -> dict[str, float]:
        """``median_s``, ``iqr_s``, ``mean_s``, ``std_s`` (0 for one call), ``min_s`` and ``repeats``."""
        q1, q3 = quartiles(self.wall)
        return {"median_s": statistics.median(self.wall), "iqr_s": q3 - q1, "mean_s": statistics.fmean(self.wall),
                "std_s": statistics.stdev(self.wall) if len(self.wall) > 1 else 0.0, "min_s": min(self.wall),
                "repeats": len(self.wall)}

    def detail(self) -> dict[str, Any]:
        """:meth:`summary` plus the median CPU time and page faults and every call's wall time (``wall_each_s``)."""
        return {**self.summary(), "cpu_median_s": statistics.median(self.cpu),
                "minor_faults_median": statistics.median(self.minor_faults), "wall_each_s": list(self.wall)}


def time_callable(fn: Callable[[], Any], device: torch.device | str = "cpu", warmup: int = 3,
                  repeats: int = 20) -> dict[str, float]:
    """Time ``fn()``: keys ``median_s``, ``iqr_s``, ``mean_s``, ``std_s``, ``min_s``, ``repeats``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    samples = Samples()
    for _ in range(repeats):
        samples.call(fn, dev)
    return samples.summary()


def time_interleaved(fns: Mapping[str, Callable[[], Any]], device: torch.device | str, warmup: int,
                     repeats: int) -> dict[str, dict[str, Any]]:
    """Time every callable ``repeats`` times, one call of each in turn (a round), after ``warmup`` calls of each, so
    that a load change between rounds hits all of them alike; :meth:`Samples.detail` per callable."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    samples = {name: Samples() for name in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].call(fn, dev)
    return {name: s.detail() for name, s in samples.items()}
