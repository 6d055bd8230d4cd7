"""pytest-benchmark micro-benchmarks of the cpu-kernels ops at the paper's sizes (hidden 512, T ~ 100, batch 16, D 31).

Deselected by default; run with ``.venv/bin/python -m pytest -m bench tests/bench`` (add ``--benchmark-save=NAME``
to keep a run and ``--benchmark-compare`` to compare with the last one). tests/conftest.py pins one intra-op thread.
"""

from __future__ import annotations

import pytest
import torch

from suite.ops import cpu_kernels as ops
from suite.ops.pytorch import delays_from_positions

pytestmark = pytest.mark.bench

T, B, C, D = 113, 16, 512, 31
LEFT, RIGHT = D - 1, (D - 1) // 2


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _positions(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    half = D // 2
    return torch.empty(shape).uniform_(-half - 1, half, generator=_gen(seed)).clamp_(-half, half)


@pytest.fixture(scope="module")
def spikes_in() -> torch.Tensor:
    return (torch.rand(T, B, C, generator=_gen(0)) < 0.15).float()


def test_lif_forward_backward(benchmark) -> None:
    x = (torch.randn(T, B, C, generator=_gen(1)) * 0.8 + 0.3).requires_grad_(True)
    grad = torch.randn(T, B, C, generator=_gen(2))
    out = benchmark(lambda: torch.autograd.grad(ops.lif_spikes(x, 1.5, 1.0, 5.0), x, grad))
    assert out[0].shape == x.shape


def test_readout_forward_backward(benchmark) -> None:
    x = torch.randn(T + 45, B, 35, generator=_gen(3)).requires_grad_(True)
    grad = torch.randn(T + 45, B, 35, generator=_gen(4))
    benchmark(lambda: torch.autograd.grad(ops.leaky_readout(x, 1.5), x, grad))


def test_channel_delay_soft_forward_backward(benchmark, spikes_in: torch.Tensor) -> None:
    x = spikes_in.clone().requires_grad_(True)
    pos = _positions((C,), 5).requires_grad_(True)
    grad = torch.randn(T + RIGHT, B, C, generator=_gen(6))
    benchmark(lambda: torch.autograd.grad(ops.channel_delay(x, pos, 15.0, D, LEFT, RIGHT), [x, pos], grad))


def test_channel_delay_hard_forward(benchmark, spikes_in: torch.Tensor) -> None:
    delays = delays_from_positions(_positions((C,), 7), D)
    with torch.no_grad():
        y = benchmark(ops.channel_delay_hard, spikes_in, delays, D, LEFT, RIGHT)
    assert y.shape == (T + RIGHT, B, C)


def test_synaptic_delay_soft_forward_backward(benchmark, spikes_in: torch.Tensor) -> None:
    x = spikes_in.clone().requires_grad_(True)
    weight = (torch.randn(C, C, generator=_gen(8)) * (2.0 / C) ** 0.5).requires_grad_(True)
    pos = _positions((C, C), 9).requires_grad_(True)
    grad = torch.randn(T + RIGHT, B, C, generator=_gen(10))

    def run() -> None:
        torch.autograd.grad(ops.synaptic_delay(x, weight, pos, 15.0, D, LEFT, RIGHT), [x, weight, pos], grad)

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)


def test_synaptic_delay_hard_forward(benchmark, spikes_in: torch.Tensor) -> None:
    weight = torch.randn(C, C, generator=_gen(11)) * (2.0 / C) ** 0.5
    delays = delays_from_positions(_positions((C, C), 12), D)
    with torch.no_grad():
        y = benchmark.pedantic(ops.synaptic_delay_hard, (spikes_in, weight, delays, D, LEFT, RIGHT), rounds=3,
                               warmup_rounds=1)
    assert y.shape == (T + RIGHT, B, C)


def test_dense_linear_forward_backward(benchmark, spikes_in: torch.Tensor) -> None:
    """The physical reference at the same size: one hidden Linear's forward and backward."""
    x = spikes_in.clone().requires_grad_(True)
    w = (torch.randn(C, C, generator=_gen(13)) / C**0.5).requires_grad_(True)
    grad = torch.randn(T, B, C, generator=_gen(14))
    benchmark(lambda: torch.autograd.grad(torch.nn.functional.linear(x, w), [x, w], grad))
