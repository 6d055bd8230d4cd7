"""Latency (docs/metrics.md "Latency"): wall-clock medians after warm-up, with their spread.

What is timed lives here (a training step, a batch inference, a streaming step); how it is timed lives in
:mod:`suite.timing` (median, interquartile range, mean, standard deviation, min and the number of repeats).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from suite.streaming import StreamingExecutor
from suite.timing import time_callable
from suite.training import make_train_step

__all__ = ["batch_inference_latency", "make_train_step", "streaming_step_latency", "time_callable",
           "training_step_latency"]  # make_train_step lives in suite.training; importers here keep working


def training_step_latency(step_fn: Callable[[], Any], device: torch.device | str = "cpu", warmup: int = 2,
                          repeats: int = 10) -> dict[str, float]:
    """Median time of one training step (forward, backward, optimiser steps) on one batch."""
    return time_callable(step_fn, device, warmup, repeats)


def batch_inference_latency(net: nn.Module, x: torch.Tensor, warmup: int = 2, repeats: int = 10) -> dict[str, float]:
    """Hard-delay eval forward of the batch ``x`` (T, B, C); every statistic also divided by B (``*_per_sample``)."""
    model = net.hard_copy() if hasattr(net, "hard_copy") else net.eval()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    stats = time_callable(forward, x.device, warmup, repeats)
    batch = x.shape[1]
    stats.update({f"{k}_per_sample": v / batch for k, v in list(stats.items()) if k.endswith("_s")})
    stats["batch"] = batch
    return stats


def streaming_step_latency(executor: StreamingExecutor, frames: torch.Tensor, warmup: int = 5,
                           repeats: int = 50) -> dict[str, float]:
    """Time single :meth:`StreamingExecutor.step` calls on frames (T, B, C) cycled in order, after a reset."""
    executor.reset(frames.shape[1])
    counter = {"t": 0}

    def step() -> None:
        with torch.no_grad():
            executor.step(frames[counter["t"] % frames.shape[0]])
        counter["t"] += 1

    stats = time_callable(step, executor.device, warmup, repeats)
    stats["batch"] = frames.shape[1]
    executor.reset(frames.shape[1])
    return stats
