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


def make_train_step(net: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], float]:
    """The protocol's training step on one batch: forward, summed-softmax cross-entropy, backward, the two Adam
    optimisers (weights lr 1e-3 with L2 1e-5, BatchNorm without decay; positions lr 0.1) and the after-step hooks.

    Used for timing and memory when the caller has no training step of its own; it trains ``net`` in place, so pass
    a copy of a model that must stay untouched.
    """
    from suite.models.network import summed_softmax_loss
    from suite.runtime import adam

    net.train()
    groups = net.param_groups() if hasattr(net, "param_groups") else {"weights": list(net.parameters())}
    weight_groups = [{"params": groups["weights"], "weight_decay": 1e-5}]
    if groups.get("norm"):
        weight_groups.append({"params": groups["norm"], "weight_decay": 0.0})
    optimisers = [adam(weight_groups, lr=1e-3)]
    if groups.get("positions"):
        optimisers.append(adam(groups["positions"], lr=0.1))

    def step() -> float:
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        loss = summed_softmax_loss(net(x), labels)
        loss.backward()
        for opt in optimisers:
            opt.step()
        if hasattr(net, "after_step"):
            net.after_step()
        return float(loss.detach())

    step.optimisers = optimisers  # type: ignore[attr-defined]  # memory.py counts their state as persistent
    return step


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
