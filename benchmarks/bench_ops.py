"""Kernel-level benchmarks: LIF, readout, the fused neuron stage, per-channel and per-synapse delays (soft and hard),
per backend.

Sizes are the paper's: hidden width 512, inputs 40 (GSC) and 140 (SSC), 98 input frames, batch 16 on CPU, D in
{15, 31}. ``track_*`` benchmarks report published-stack time / our time (> 1: ours is faster).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from .common import (
    BATCH,
    GSC_INPUTS,
    GSC_STEPS,
    HIDDEN,
    KERNEL_SIZES,
    OUTPUTS,
    SSC_INPUTS,
    backends,
    features,
    generator,
    ops_for,
    positions,
    prepare,
    spikes,
    sync,
)


def _pads(kernel_size: int) -> tuple[int, int]:
    return kernel_size - 1, (kernel_size - 1) // 2


class LIF:
    """Whole-sequence LIF (hidden layers) and the non-spiking readout (output layer)."""

    params: ClassVar[list] = [backends()]
    param_names: ClassVar[list] = ["backend"]
    version = 1

    def setup(self, backend: str) -> None:
        prepare()
        self.ops, self.device = ops_for(backend)
        steps = GSC_STEPS + 15  # the first hidden layer's length with D = 31
        gen = generator(3)
        self.x = (torch.randn(steps, BATCH, HIDDEN, generator=gen) * 0.8 + 0.3).to(self.device).requires_grad_(True)
        self.grad = torch.randn(steps, BATCH, HIDDEN, generator=gen).to(self.device)
        self.v = torch.randn(steps + 45, BATCH, OUTPUTS, generator=gen).to(self.device).requires_grad_(True)
        self.grad_v = torch.randn(steps + 45, BATCH, OUTPUTS, generator=gen).to(self.device)
        self.time_forward_backward(backend)  # first-call costs (allocator, thread pool) out of the timings
        self.time_readout_forward_backward(backend)

    def time_forward(self, backend: str) -> None:
        with torch.no_grad():
            self.ops.lif_spikes(self.x, 1.5, 1.0, 5.0)
        sync(self.device)

    def time_forward_backward(self, backend: str) -> None:
        torch.autograd.grad(self.ops.lif_spikes(self.x, 1.5, 1.0, 5.0), self.x, self.grad)
        sync(self.device)

    def time_readout_forward_backward(self, backend: str) -> None:
        torch.autograd.grad(self.ops.leaky_readout(self.v, 1.5), self.v, self.grad_v)
        sync(self.device)

    def peakmem_forward_backward(self, backend: str) -> None:
        torch.autograd.grad(self.ops.lif_spikes(self.x, 1.5, 1.0, 5.0), self.x, self.grad)

    def track_speedup_vs_spikingjelly(self, backend: str) -> float:
        """spikingjelly LIFNode (multi-step, torch backend) forward+backward time / ours."""
        from spikingjelly.activation_based import functional, neuron, surrogate

        from .common import median_time

        node = neuron.LIFNode(tau=1.5, v_threshold=1.0, surrogate_function=surrogate.ATan(alpha=5.0),
                              detach_reset=True, step_mode="m", decay_input=False).to(self.device)

        def published() -> None:
            functional.reset_net(node)
            torch.autograd.grad(node(self.x), self.x, self.grad)

        return median_time(published, self.device) / median_time(lambda: self.time_forward_backward(backend),
                                                                  self.device)

    track_speedup_vs_spikingjelly.unit = "ratio"


class NeuronStage:
    """A hidden layer's training-mode BatchNorm -> LIF -> dropout: the backend's fused op (where it has one and can
    run the tensors) and the three steps composed, forward + backward."""

    params: ClassVar[list] = [backends()]
    param_names: ClassVar[list] = ["backend"]
    version = 1

    def setup(self, backend: str) -> None:
        prepare()
        self.ops, self.device = ops_for(backend)
        if not (hasattr(self.ops, "batchnorm_lif") and self.ops.batchnorm_lif_supported(
                torch.zeros(2, 1, 1, device=self.device), torch.ones(1, device=self.device))):
            raise NotImplementedError(f"backend {backend} has no fused BatchNorm -> LIF for these tensors")
        steps = GSC_STEPS + 30  # the second hidden layer's length with D = 31
        gen = generator(4)
        self.x = (torch.randn(steps, BATCH, HIDDEN, generator=gen) * 0.8 + 0.3).to(self.device).requires_grad_(True)
        self.grad = torch.randn(steps, BATCH, HIDDEN, generator=gen).to(self.device)
        self.keep = ((torch.rand(BATCH, HIDDEN, generator=gen) > 0.25).float() / 0.75).to(self.device)
        self.norm = torch.nn.BatchNorm1d(HIDDEN).to(self.device)
        self.time_fused_forward_backward(backend)
        self.time_composed_forward_backward(backend)

    def time_fused_forward_backward(self, backend: str) -> None:
        norm = self.norm
        y = self.ops.batchnorm_lif(self.x, norm.weight, norm.bias, (norm.running_mean, norm.running_var, 0.1),
                                   norm.eps, 1.5, 1.0, 5.0, self.keep)
        torch.autograd.grad(y, self.x, self.grad)
        sync(self.device)

    def time_composed_forward_backward(self, backend: str) -> None:
        steps, batch, channels = self.x.shape
        y = self.norm(self.x.reshape(steps * batch, channels)).reshape(steps, batch, channels)
        torch.autograd.grad(self.ops.lif_spikes(y, 1.5, 1.0, 5.0) * self.keep, self.x, self.grad)
        sync(self.device)


class DelayNeuronStage:
    """A soft per-channel delay fused with a hidden layer's training-mode BatchNorm -> LIF -> dropout (dendritic:
    the layer's delay before it; axonal: the next layer's delay after it), forward + backward: the backend's fused
    op, and the two ops one after the other. Each call takes the next of 8 inputs (37 MB in all), so that it reads
    them from memory as a training step does: with one input in cache the fused dendritic op is slower than the two
    ops (its backward does more arithmetic per element), in a step it is faster (fewer passes over memory)."""

    params: ClassVar[list] = [backends(), ["dendritic", "axonal"]]
    param_names: ClassVar[list] = ["backend", "fusion"]
    version = 1

    def setup(self, backend: str, fusion: str) -> None:
        prepare()
        self.ops, self.device = ops_for(backend)
        name = "delay_batchnorm_lif" if fusion == "dendritic" else "batchnorm_lif_delay"
        gen = generator(5)
        steps, kernel_size = GSC_STEPS + 30, 31
        self.inputs = [(torch.randn(steps, BATCH, HIDDEN, generator=gen) * 0.8 + 0.3).to(self.device).requires_grad_()
                       for _ in range(8)]
        self.calls = 0
        self.grad = torch.randn(steps + _pads(kernel_size)[1], BATCH, HIDDEN, generator=gen).to(self.device)
        self.keep = ((torch.rand(BATCH, HIDDEN, generator=gen) > 0.25).float() / 0.75).to(self.device)
        self.pos = positions((HIDDEN,), kernel_size).to(self.device).requires_grad_(True)
        self.norm = torch.nn.BatchNorm1d(HIDDEN).to(self.device)
        self.delay = (self.pos, float(kernel_size) / 2, kernel_size, *_pads(kernel_size))
        supported = getattr(self.ops, f"{name}_supported", None)
        x = self.inputs[0]
        if supported is None or not (supported(x, self.pos, *self.delay[2:], self.norm.weight)
                                     if fusion == "dendritic" else
                                     supported(x, self.norm.weight, self.pos, *self.delay[2:])):
            raise NotImplementedError(f"backend {backend} has no fused {fusion} delay stage for these tensors")
        self.time_fused_forward_backward(backend, fusion)
        self.time_separate_forward_backward(backend, fusion)

    def _next_input(self) -> torch.Tensor:
        self.calls += 1
        return self.inputs[self.calls % len(self.inputs)]

    def _stage(self) -> tuple:
        norm = self.norm
        return (norm.weight, norm.bias, (norm.running_mean, norm.running_var, 0.1), norm.eps, 1.5, 1.0, 5.0, self.keep)

    def time_fused_forward_backward(self, backend: str, fusion: str) -> None:
        x = self._next_input()
        if fusion == "dendritic":
            y = self.ops.delay_batchnorm_lif(x, *self.delay, *self._stage())
        else:
            y = self.ops.batchnorm_lif_delay(x, *self._stage(), *self.delay)
        torch.autograd.grad(y, (x, self.pos), self.grad)
        sync(self.device)

    def time_separate_forward_backward(self, backend: str, fusion: str) -> None:
        x = self._next_input()
        if fusion == "dendritic":
            y = self.ops.batchnorm_lif(self.ops.channel_delay(x, *self.delay), *self._stage())
        else:
            y = self.ops.channel_delay(self.ops.batchnorm_lif(x, *self._stage()), *self.delay)
        torch.autograd.grad(y, (x, self.pos), self.grad)
        sync(self.device)


class ChannelDelay:
    """One learnable delay per channel (axonal: on the layer inputs, dendritic: on the outputs)."""

    params: ClassVar[list] = [backends(), KERNEL_SIZES, [GSC_INPUTS, SSC_INPUTS, HIDDEN]]
    param_names: ClassVar[list] = ["backend", "kernel_size", "channels"]
    version = 1

    def setup(self, backend: str, kernel_size: int, channels: int) -> None:
        prepare()
        self.ops, self.device = ops_for(backend)
        self.left, self.right = _pads(kernel_size)
        x = features(GSC_STEPS, BATCH, channels) if channels != HIDDEN else spikes(GSC_STEPS, BATCH, channels)
        self.x = x.to(self.device).requires_grad_(True)
        self.pos = positions((channels,), kernel_size).to(self.device).requires_grad_(True)
        self.sig = float(kernel_size // 2)
        out_steps = GSC_STEPS + self.right
        self.grad = torch.randn(out_steps, BATCH, channels, generator=generator(5)).to(self.device)
        self.time_soft_forward_backward(backend, kernel_size, channels)  # first-call costs out of the timings
        self.time_hard_forward(backend, kernel_size, channels)

    def _soft(self, kernel_size: int) -> torch.Tensor:
        return self.ops.channel_delay(self.x, self.pos, self.sig, kernel_size, self.left, self.right)

    def time_soft_forward(self, backend: str, kernel_size: int, channels: int) -> None:
        with torch.no_grad():
            self._soft(kernel_size)
        sync(self.device)

    def time_soft_forward_backward(self, backend: str, kernel_size: int, channels: int) -> None:
        torch.autograd.grad(self._soft(kernel_size), [self.x, self.pos], self.grad)
        sync(self.device)

    def time_hard_forward(self, backend: str, kernel_size: int, channels: int) -> None:
        from suite.ops.pytorch import delays_from_positions

        with torch.no_grad():
            self.ops.channel_delay_hard(self.x, delays_from_positions(self.pos.detach(), kernel_size), kernel_size,
                                        self.left, self.right)
        sync(self.device)

    def track_speedup_vs_dcls(self, backend: str, kernel_size: int, channels: int) -> float:
        """dcls Dcls1d (groups = C, 'gauss', the official call pattern) forward+backward time / ours."""
        from DCLS.construct.modules import Dcls1d

        from .common import median_time

        layer = Dcls1d(channels, channels, kernel_count=1, groups=channels, dilated_kernel_size=kernel_size,
                       bias=False, version="gauss").to(self.device)
        with torch.no_grad():
            layer.weight.fill_(1.0)
            layer.P.copy_(self.pos.detach().view(1, channels, 1, 1))
            layer.SIG.fill_(self.sig)
        layer.weight.requires_grad = layer.SIG.requires_grad = False

        def published() -> None:
            xp = torch.nn.functional.pad(self.x.permute(1, 2, 0), (self.left, self.right))
            y = layer(xp).permute(2, 0, 1)
            torch.autograd.grad(y, [self.x, layer.P], self.grad)

        ours = median_time(lambda: self.time_soft_forward_backward(backend, kernel_size, channels), self.device)
        return median_time(published, self.device) / ours

    track_speedup_vs_dcls.unit = "ratio"


class SynapticDelay:
    """One learnable delay and weight per synapse (DCLS-delays), fused with the weight matrix."""

    params: ClassVar[list] = [backends(), KERNEL_SIZES,
                              [f"{GSC_INPUTS}x{HIDDEN}", f"{HIDDEN}x{HIDDEN}"]]
    param_names: ClassVar[list] = ["backend", "kernel_size", "n_in x n_out"]
    version = 1
    number = 1
    repeat = (1, 5, 20.0)
    timeout = 600

    def setup(self, backend: str, kernel_size: int, shape: str) -> None:
        prepare()
        self.ops, self.device = ops_for(backend)
        n_in, n_out = (int(v) for v in shape.split("x"))
        self.left, self.right = _pads(kernel_size)
        x = features(GSC_STEPS, BATCH, n_in) if n_in != HIDDEN else spikes(GSC_STEPS, BATCH, n_in)
        self.x = x.to(self.device).requires_grad_(True)
        gen = generator(7)
        self.weight = (torch.randn(n_out, n_in, generator=gen) * (2.0 / n_in) ** 0.5).to(self.device)
        self.weight.requires_grad_(True)
        self.pos = positions((n_out, n_in), kernel_size).to(self.device).requires_grad_(True)
        self.sig = float(kernel_size // 2)
        self.grad = torch.randn(GSC_STEPS + self.right, BATCH, n_out, generator=gen).to(self.device)
        from suite.ops.pytorch import delays_from_positions

        self.delays = delays_from_positions(self.pos.detach(), kernel_size).to(self.device)
        self.time_hard_forward(backend, kernel_size, shape)  # first-call costs out of the timings

    def _soft(self, kernel_size: int) -> torch.Tensor:
        return self.ops.synaptic_delay(self.x, self.weight, self.pos, self.sig, kernel_size, self.left, self.right)

    def time_soft_forward(self, backend: str, kernel_size: int, shape: str) -> None:
        with torch.no_grad():
            self._soft(kernel_size)
        sync(self.device)

    def time_soft_forward_backward(self, backend: str, kernel_size: int, shape: str) -> None:
        torch.autograd.grad(self._soft(kernel_size), [self.x, self.weight, self.pos], self.grad)
        sync(self.device)

    def peakmem_soft_forward_backward(self, backend: str, kernel_size: int, shape: str) -> None:
        torch.autograd.grad(self._soft(kernel_size), [self.x, self.weight, self.pos], self.grad)

    def time_hard_forward(self, backend: str, kernel_size: int, shape: str) -> None:
        with torch.no_grad():
            self.ops.synaptic_delay_hard(self.x, self.weight, self.delays, kernel_size, self.left, self.right)
        sync(self.device)


class SynapticDelayVsDcls:
    """The published Dcls1d against ours on the hidden-layer shape only (512 x 512; keeps ``asv run --quick`` short)."""

    params: ClassVar[list] = [backends(), KERNEL_SIZES, [f"{HIDDEN}x{HIDDEN}"]]
    param_names: ClassVar[list] = ["backend", "kernel_size", "n_in x n_out"]
    version = 1
    timeout = 900

    def setup(self, backend: str, kernel_size: int, shape: str) -> None:
        self.op = SynapticDelay()
        self.op.setup(backend, kernel_size, shape)

    def track_speedup_vs_dcls(self, backend: str, kernel_size: int, shape: str) -> float:
        """dcls Dcls1d ('gauss', groups = 1) forward+backward time / ours."""
        from DCLS.construct.modules import Dcls1d

        from .common import median_time

        op = self.op
        n_out, n_in = op.weight.shape
        layer = Dcls1d(n_in, n_out, kernel_count=1, groups=1, dilated_kernel_size=kernel_size, bias=False,
                       version="gauss").to(op.device)
        with torch.no_grad():
            layer.weight.copy_(op.weight.detach().unsqueeze(-1))
            layer.P.copy_(op.pos.detach().view(1, n_out, n_in, 1))
            layer.SIG.fill_(op.sig)
        layer.SIG.requires_grad = False

        def published() -> None:
            xp = torch.nn.functional.pad(op.x.permute(1, 2, 0), (op.left, op.right))
            y = layer(xp).permute(2, 0, 1)
            torch.autograd.grad(y, [op.x, layer.weight, layer.P], op.grad)

        ours = median_time(lambda: op.time_soft_forward_backward(backend, kernel_size, shape), op.device, 1)
        return median_time(published, op.device, 1) / ours

    track_speedup_vs_dcls.unit = "ratio"
