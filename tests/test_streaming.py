"""The streaming executor reproduces the batch hard-delay model step by step and holds exactly the documented
buffers (docs/metrics.md "Delay buffers" and "Streaming state")."""

from __future__ import annotations

import math

import pytest
import torch

from suite.metrics.buffers import buffer_bits
from suite.models.network import DelayNetwork
from suite.specs import ModelSpec
from suite.streaming import StreamingExecutor, streaming_state_bytes

N_IN, HIDDEN, N_OUT, T, BATCH = 6, (8, 7), 5, 10, 2

VARIANTS = {
    "no-delay": {"delay_type": "none"},
    "synaptic": {"delay_type": "synaptic"},
    "axonal": {"delay_type": "axonal"},
    "dendritic": {"delay_type": "dendritic"},
    "axonal-sparse-zero": {"delay_type": "axonal", "delay_sparsity": 0.6, "passthrough": "zero"},
    "axonal-sparse-official": {"delay_type": "axonal", "delay_sparsity": 0.6, "passthrough": "official"},
    "dendritic-sparse-zero": {"delay_type": "dendritic", "delay_sparsity": 0.6, "passthrough": "zero"},
    "dendritic-sparse-official": {"delay_type": "dendritic", "delay_sparsity": 0.6, "passthrough": "official"},
}


def build(variant: str, kernel_size: int, weight_sparsity: float = 0.0, seed: int = 0) -> DelayNetwork:
    """A tiny model with non-trivial BatchNorm statistics and affine, tuned so that every hidden layer spikes."""
    torch.manual_seed(seed)
    spec = ModelSpec(variant=variant, n_inputs=N_IN, n_hidden=HIDDEN, n_outputs=N_OUT, kernel_size=kernel_size,
                     weight_sparsity=weight_sparsity, **VARIANTS[variant])
    net = DelayNetwork(spec)
    with torch.no_grad():  # running statistics of a real forward pass (non-zero means, non-unit variances) ...
        net.train()
        for layer in net.layers:
            if layer.norm is not None:
                layer.norm.momentum = 1.0
        net(torch.rand(T, 4, N_IN) * 2.0)
        net.eval()
        for layer in net.layers:  # ... and a non-trivial affine
            if layer.norm is not None:
                layer.norm.weight.uniform_(0.8, 1.6)
                layer.norm.bias.uniform_(0.0, 0.6)
    return net


def inputs(seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(T, BATCH, N_IN) * 2.0


CASES = [(v, k, ws) for v in VARIANTS for k in (5, 7) for ws in (0.0, 0.5)]


@pytest.mark.parametrize("sizing", ["allocated", "learned"])
@pytest.mark.parametrize(("variant", "kernel_size", "weight_sparsity"), CASES)
def test_streaming_equals_batch_hard_model(variant: str, kernel_size: int, weight_sparsity: float,
                                           sizing: str) -> None:
    net = build(variant, kernel_size, weight_sparsity)
    hard = net.hard_copy()
    x = inputs()
    batch_spikes: list[torch.Tensor] = []
    with torch.no_grad():
        expected = hard(x, spikes=batch_spikes)
    for spikes in batch_spikes:  # the comparison means something only if neurons spike and stay silent
        assert 0.0 < float(spikes.mean()) < 1.0
    executor = StreamingExecutor.from_model(hard, sizing)  # type: ignore[arg-type]
    stream_spikes: list[torch.Tensor] = []
    out = executor.run(x, spikes=stream_spikes)
    assert out.shape == expected.shape == (hard.output_length(T), BATCH, N_OUT)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert len(stream_spikes) == len(batch_spikes)
    for got, want in zip(stream_spikes, batch_spikes, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("variant", ["synaptic", "axonal-sparse-official", "dendritic"])
def test_step_by_step_without_flush_is_a_prefix(variant: str) -> None:
    net = build(variant, 5)
    hard = net.hard_copy()
    x = inputs()
    with torch.no_grad():
        expected = hard(x)
    executor = StreamingExecutor.from_model(net)  # the soft model: the executor always uses the hard delays
    executor.reset(BATCH)
    steps = torch.stack([executor.step(frame) for frame in x])
    torch.testing.assert_close(steps, expected[:T], atol=1e-5, rtol=0)
    tail = executor.flush()
    torch.testing.assert_close(torch.cat([steps, tail]), expected, atol=1e-5, rtol=0)
    again = executor.run(x, flush=False)  # run() resets
    torch.testing.assert_close(again, steps, atol=0, rtol=0)


def _formula_bits(net: DelayNetwork, sizing: str) -> list[int]:
    """docs/architecture.md 'Delay buffers', written out independently of suite.metrics.buffers."""
    bits = []
    for i, layer in enumerate(net.layers):
        delay = layer.delay
        if delay is None:
            bits.append(0)
            continue
        k = delay.kernel_size
        d = delay.delays()
        if net.spec.delay_type == "synaptic":
            if sizing == "allocated":
                bits.append(layer.n_out * (k - 1) * 32)
            else:
                live = torch.where(layer.weight != 0, d, 0)
                bits.append(int(live.max(dim=1).values.sum()) * 32)
            continue
        entry = (32 if i == 0 else 1) if net.spec.delay_type == "axonal" else 32
        lines = d.numel()
        if delay.delay_mask is not None:
            active = delay.delay_mask.bool()
            if delay.passthrough == "zero":
                depth = (k - 1) * int(active.sum()) if sizing == "allocated" else int(d[active].sum())
            else:  # official: pass-through lines are delayed by D - 1 and need a full line each
                depth = (k - 1) * lines if sizing == "allocated" else int(d[active].sum()) + (k - 1) * int(
                    (~active).sum())
        else:
            depth = (k - 1) * lines if sizing == "allocated" else int(d.sum())
        bits.append(depth * entry)
    return bits


@pytest.mark.parametrize("sizing", ["allocated", "learned"])
@pytest.mark.parametrize(("variant", "kernel_size", "weight_sparsity"), CASES)
def test_executor_buffers_equal_formula(variant: str, kernel_size: int, weight_sparsity: float, sizing: str) -> None:
    net = build(variant, kernel_size, weight_sparsity)
    executor = StreamingExecutor.from_model(net, sizing)  # type: ignore[arg-type]
    executor.reset(3)
    want = _formula_bits(net, sizing)
    assert executor.buffer_bits_per_layer() == want
    metric = buffer_bits(net)
    assert metric[f"{sizing}_bits_per_layer"] == want
    assert executor.buffer_bits() == metric[f"{sizing}_bits"] == sum(want)
    membranes = 4 * (sum(HIDDEN) + N_OUT)
    state = sum(math.ceil(b / 8) for b in want) + membranes
    assert executor.state_bytes() == state == streaming_state_bytes(net, sizing)  # type: ignore[arg-type]
    real = sum(layer.ring.buffer[0].numel() * layer.ring.buffer.element_size() for layer in executor.layers
               if layer.ring is not None)
    assert real + membranes == state  # the bytes really allocated per stream


def test_buffers_hand_computed() -> None:
    """Axonal 2-3-2 net, D = 5, delays set by hand: allocated 2*4*32 + 3*4*1 + ... bits, learned from the delays."""
    spec = ModelSpec(variant="axonal", delay_type="axonal", n_inputs=2, n_hidden=(3,), n_outputs=2, kernel_size=5)
    net = DelayNetwork(spec)
    with torch.no_grad():  # delay = D // 2 - round(P) = 2 - P
        net.layers[0].delay.P.copy_(torch.tensor([1.0, -1.0]))  # delays 1, 3
        net.layers[1].delay.P.copy_(torch.tensor([2.0, 0.0, -2.0]))  # delays 0, 2, 4
    bits = buffer_bits(net)
    assert bits["allocated_bits_per_layer"] == [2 * 4 * 32, 3 * 4 * 1] == [256, 12]
    assert bits["learned_bits_per_layer"] == [(1 + 3) * 32, 0 + 2 + 4] == [128, 6]
    assert bits["stored_delay_values"] == 5
    assert bits["stored_delay_value_bits"] == 5 * 3  # ceil(log2 5) = 3 bits per delay
    executor = StreamingExecutor.from_model(net, "allocated")
    assert executor.state_bytes() == 32 + 2 + 4 * (3 + 2) == 54
    learned = StreamingExecutor.from_model(net, "learned")
    assert learned.state_bytes() == 16 + 1 + 4 * (3 + 2) == 37


def test_synaptic_buffer_extras_hand_computed() -> None:
    spec = ModelSpec(variant="synaptic", delay_type="synaptic", n_inputs=2, n_hidden=(2,), n_outputs=1,
                     kernel_size=3, batchnorm=False)
    net = DelayNetwork(spec)
    with torch.no_grad():  # delay = 1 - P
        net.layers[0].delay.P.copy_(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))  # delays [[0, 1], [2, 0]]
        net.layers[0].delay.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        net.layers[1].delay.P.copy_(torch.tensor([[0.0, 0.0]]))  # delays [[1, 1]]
    bits = buffer_bits(net)
    assert bits["allocated_bits_per_layer"] == [2 * 2 * 32, 1 * 2 * 32]
    assert bits["learned_bits_per_layer"] == [(1 + 2) * 32, 1 * 32]  # neuron maxima: 1 and 2; the 0-weight synapse
    assert bits["synaptic_spike_line_bits"] == 2 * 2 * 2 * 32 + 2 * 1 * 2 * 1  # layer 1 holds 32-bit inputs
    assert bits["synaptic_spike_line_learned_bits"] == (0 + 1 + 2) * 32 + (1 + 1) * 1
    assert bits["stored_delay_values"] == 4 + 2
