"""Model-level benchmarks on the paper's GSC architecture (40-512-512-512-35, D = 31, T = 98, batch 16 on CPU):
a full training step, hard-delay batch inference and a streaming step, per delay type and backend.

``track_*`` report ratios: published stack (dcls + spikingjelly, same weights) time / ours, and our training step /
the network's dense matrix products alone (the physical reference of ``python -m suite bench``).
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch

from .common import (
    BATCH,
    DELAY_TYPES,
    GSC_INPUTS,
    GSC_STEPS,
    HIDDEN,
    OUTPUTS,
    backends,
    features,
    median_time,
    prepare,
    sync,
)

KERNEL_SIZE = 31


def _spec(delay_type: str):
    from suite.specs import ModelSpec

    return ModelSpec(variant=delay_type, delay_type=delay_type, n_inputs=GSC_INPUTS, n_hidden=(HIDDEN,) * 3,
                     n_outputs=OUTPUTS, kernel_size=KERNEL_SIZE)


def _network(backend: str, delay_type: str):
    from suite.models.network import DelayNetwork

    from .common import resolve

    ops_backend, device = resolve(backend)
    torch.manual_seed(0)
    return DelayNetwork(_spec(delay_type), ops_backend).to(device), device


def _published(net, delay_type: str):
    try:
        from suite.baselines.convert import suite_to_official
        from suite.baselines.official import OfficialDelaySNN
    except ImportError as err:
        raise NotImplementedError(f"published stack unavailable: {err}") from None
    model = OfficialDelaySNN(GSC_INPUTS, (HIDDEN,) * 3, OUTPUTS, delay_type=delay_type, kernel_size=KERNEL_SIZE)
    model.load_state_dict(suite_to_official(net.state_dict(), delay_type))
    return model.to(next(net.parameters()).device)


def _train_step(model, x: torch.Tensor, labels: torch.Tensor):
    """The suite's training step (forward, summed-softmax loss, backward, the paper's optimisers, after-step hooks),
    at commits that have one; earlier commits are skipped (asv: NotImplementedError in setup)."""
    try:
        from suite.training import make_train_step
    except ImportError:  # commits before suite/training.py held the step in suite.metrics.latency
        try:
            from suite.metrics.latency import make_train_step
        except ImportError:
            raise NotImplementedError("this commit has no suite training step") from None
    return make_train_step(model, x, labels)


class _PaperNetwork:
    """Shared set-up of TrainStep and HardInference: the paper network for one backend and delay type, and a batch.
    (No time_/peakmem_/track_ methods, so asv collects nothing from this class itself.)"""

    params: ClassVar[list] = [backends(), DELAY_TYPES]
    param_names: ClassVar[list] = ["backend", "delay_type"]
    version = 1
    number = 1

    def _build(self, backend: str, delay_type: str) -> None:
        prepare()
        self.net, self.device = _network(backend, delay_type)
        self.x = features(GSC_STEPS, BATCH, GSC_INPUTS).to(self.device)


class TrainStep(_PaperNetwork):
    """One training step on one batch (forward, backward, Adam, clamp)."""

    repeat = (2, 5, 30.0)
    timeout = 900

    def setup(self, backend: str, delay_type: str) -> None:
        self._build(backend, delay_type)
        self._make_step()

    def _make_step(self) -> None:
        gen = torch.Generator().manual_seed(1)
        self.labels = torch.randint(0, OUTPUTS, (BATCH,), generator=gen).to(self.device)
        self.step = _train_step(self.net, self.x, self.labels)
        self.step()  # optimiser state exists before timing

    def time_train_step(self, backend: str, delay_type: str) -> None:
        self.step()
        sync(self.device)

    def peakmem_train_step(self, backend: str, delay_type: str) -> None:
        self.step()

    def track_speedup_vs_published(self, backend: str, delay_type: str) -> float:
        published = _train_step(_published(self.net, delay_type), self.x, self.labels)
        return median_time(published, self.device, 2) / median_time(self.step, self.device, 2)

    track_speedup_vs_published.unit = "ratio"

    def track_train_over_dense(self, backend: str, delay_type: str) -> float:
        """Our training step / the same network's Linear forward+backward alone (no delays, no LIF)."""
        try:
            from suite.bench import BenchConfig, make_dense_reference
        except ImportError:
            raise NotImplementedError("suite.bench is not in this commit") from None
        cfg = BenchConfig(n_inputs=GSC_INPUTS, n_hidden=(HIDDEN,) * 3, n_outputs=OUTPUTS, kernel_size=KERNEL_SIZE,
                          time_steps=GSC_STEPS, batch=BATCH)
        try:
            from suite.bench import input_needs_grad
        except ImportError:  # up to daaaecf the reference left the axonal input gradient out
            dense = make_dense_reference(cfg, self.device)  # type: ignore[call-arg]
        else:
            dense = make_dense_reference(cfg, self.device, input_needs_grad(delay_type))
        return median_time(self.step, self.device, 3) / median_time(dense, self.device, 3)

    track_train_over_dense.unit = "ratio"


class SynapticTrainStepAtWidth(TrainStep):
    """The synaptic network's training step at three points of the official SIG schedule: start (D // 2), the
    decay's geometric middle, final (0.23, held for the last three quarters of training). The torch backend runs the
    full kernel at the first two and each synapse's window of active taps at the last; the published stack's cost
    does not depend on the width. asv records the machine's CPU model with every result."""

    params: ClassVar[list] = [backends(), ["start", "middle", "final"]]
    param_names: ClassVar[list] = ["backend", "width"]

    def setup(self, backend: str, width: str) -> None:
        try:
            from suite.models.delays import schedule_widths
        except ImportError:
            raise NotImplementedError("suite.models.delays.schedule_widths is not in this commit") from None
        self.sig = schedule_widths(float(KERNEL_SIZE // 2), 0.23)[width]
        self._build(backend, "synaptic")
        for delay in self.net.delay_modules():
            delay.sig.fill_(self.sig)
        self._make_step()

    def track_speedup_vs_published(self, backend: str, width: str) -> float:
        model = _published(self.net, "synaptic")
        model.set_sig(self.sig)
        published = _train_step(model, self.x, self.labels)
        return median_time(published, self.device, 2) / median_time(self.step, self.device, 2)

    track_speedup_vs_published.unit = "ratio"

    def track_train_over_dense(self, backend: str, width: str) -> float:
        return super().track_train_over_dense(backend, "synaptic")

    track_train_over_dense.unit = "ratio"


class HardInference(_PaperNetwork):
    """Batch inference of the evaluation copy (integer delays, eval mode, no autograd)."""

    repeat = (2, 10, 20.0)
    timeout = 600

    def setup(self, backend: str, delay_type: str) -> None:
        self._build(backend, delay_type)
        self.model = self.net.hard_copy()
        self._infer(self.model)  # first-call costs out of the timings

    def _infer(self, model) -> None:
        with torch.no_grad():
            model(self.x)
        sync(self.device)

    def time_hard_inference(self, backend: str, delay_type: str) -> None:
        self._infer(self.model)

    def peakmem_hard_inference(self, backend: str, delay_type: str) -> None:
        self._infer(self.model)

    def track_speedup_vs_published(self, backend: str, delay_type: str) -> float:
        published = copy.deepcopy(_published(self.net, delay_type)).eval()
        published.set_hard(True)
        return (median_time(lambda: self._infer(published), self.device, 3)
                / median_time(lambda: self._infer(self.model), self.device, 3))

    track_speedup_vs_published.unit = "ratio"


class StreamingStep:
    """One frame through suite.streaming.StreamingExecutor (real ring buffers, hard delays), batch 1 and batch 16."""

    params: ClassVar[list] = [[b for b in backends() if b != "numba-cuda"], DELAY_TYPES, [1, BATCH]]
    param_names: ClassVar[list] = ["backend", "delay_type", "batch"]
    version = 1

    def setup(self, backend: str, delay_type: str, batch: int) -> None:
        prepare()
        try:
            from suite.streaming import StreamingExecutor
        except ImportError:
            raise NotImplementedError("suite.streaming.StreamingExecutor is not in this commit") from None
        net, self.device = _network(backend, delay_type)
        self.executor = StreamingExecutor.from_model(net.hard_copy())
        self.frames = features(GSC_STEPS, batch, GSC_INPUTS).to(self.device)
        self.executor.reset(batch)
        self.t = 0
        self.time_streaming_step(backend, delay_type, batch)  # first-call costs out of the timings

    def time_streaming_step(self, backend: str, delay_type: str, batch: int) -> None:
        with torch.no_grad():
            self.executor.step(self.frames[self.t % GSC_STEPS])
        self.t += 1
        sync(self.device)
