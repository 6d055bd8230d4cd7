"""Synaptic delays at their active taps (cpu-kernels backend): the window rule, the windowed delay against the full
kernel, and hard delays as gathers against the one-hot kernel.

Bound tested for the windowed delay (outputs and the gradients of input, weights and positions): its float32 error
against a float64 full-kernel reference is at most twice the float32 full kernel's own error plus 2^-19 (about
1.9e-6, 16 float32 ulps) of the reference's largest value, at every width of the official schedule where it runs
(the two sum in different orders: the window kernel runs over inputs and taps in sequence, MKL's products in blocks).
"""

from __future__ import annotations

import math

import pytest
import torch

from suite.models.delays import schedule_widths
from suite.ops import cpu_kernels as kernels
from suite.ops import native
from suite.ops import pytorch as ops

needs_native = pytest.mark.skipif(native.library() is None, reason=f"compiled CPU kernels {native.status()}")
D = 31
PAD_L, PAD_R = D - 1, (D - 1) // 2
WIDTHS = schedule_widths(float(D // 2), 0.23)


def test_schedule_widths_are_the_official_ones() -> None:
    assert WIDTHS["start"] == 15.0 and WIDTHS["final"] == 0.23
    factor = (0.23 / 15.0) ** (1 / 25)  # the official per-epoch factor, 100 epochs
    assert WIDTHS["middle"] == pytest.approx(15.0 * factor ** 12.5, rel=1e-12)


@pytest.mark.parametrize("sig", [WIDTHS["final"], 0.0, 0.5, 0.74, WIDTHS["middle"], WIDTHS["start"]])
def test_every_dropped_tap_is_below_the_tolerance_of_the_peak(sig: float) -> None:
    """Float64 Gaussians over a fine grid of centres (the clamp range [0, D-1] and 0.4 beyond it): each tap outside
    the window is below WINDOW_TOLERANCE of the kernel's peak and all of them together below twice that."""
    window, _ = ops.synaptic_window(sig, D)
    pos = torch.linspace(-(D // 2) - 0.4, D // 2 + 0.4, 4001, dtype=torch.float64)
    full = ops.gaussian_kernel(pos, sig, D)
    _, start = ops.synaptic_window_taps(torch.ones_like(pos), pos, sig, D)
    offset = torch.arange(D) - start.long().unsqueeze(-1)
    inside = (offset >= 0) & (offset < window)
    assert int(inside.sum(1).min()) == window
    peak = full.max(1).values
    dropped = full.masked_fill(inside, 0.0)
    assert float((dropped.max(1).values / peak).max()) < ops.WINDOW_TOLERANCE
    assert float((dropped.sum(1) / peak).max()) < 2 * ops.WINDOW_TOLERANCE


def test_window_sizes_along_the_schedule() -> None:
    """6 of 31 taps at the final width (std 0.5), 4 at SIG 0 (std 0.27); the full kernel at the start and middle."""
    assert ops.synaptic_window(WIDTHS["final"], D)[0] == 6
    assert ops.synaptic_window(0.0, D)[0] == 4
    assert ops.synaptic_window(WIDTHS["middle"], D)[0] > ops.WINDOW_MAX_TAPS
    assert ops.synaptic_window(WIDTHS["start"], D)[0] == D
    widest = max(s / 1000 for s in range(2000) if ops.synaptic_window(s / 1000, D)[0] <= ops.WINDOW_MAX_TAPS)
    assert widest == pytest.approx(0.746, abs=0.002)


@needs_native
def test_native_window_limit_is_the_documented_one() -> None:
    x = torch.zeros(3, 2, 4)
    assert native.window_eligible(x, ops.WINDOW_MAX_TAPS) and not native.window_eligible(x, ops.WINDOW_MAX_TAPS + 1)


def _problem(seed: int, steps: int, batch: int, n_in: int, n_out: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(steps, batch, n_in, generator=gen) < 0.3).float() * torch.rand(steps, batch, n_in, generator=gen)
    weight = torch.randn(n_out, n_in, generator=gen) / math.sqrt(n_in)
    pos = torch.rand(n_out, n_in, generator=gen) * (D - 1) - D // 2
    pos[0, : min(3, n_in)] = torch.tensor([-(D // 2), D // 2, 0.5])[: min(3, n_in)]  # the clamp edges, a half step
    return x, weight, pos


def _full(x: torch.Tensor, weight: torch.Tensor, pos: torch.Tensor, sig: float, grad_y: torch.Tensor,
          dtype: torch.dtype) -> list[torch.Tensor]:
    """Output and the three gradients of the full-kernel algorithm at ``dtype``."""
    leaves = [t.to(dtype).requires_grad_(True) for t in (x, weight, pos)]
    y = ops._SynapticDelay.apply(*leaves, sig, D, PAD_L, PAD_R)
    return [y.detach(), *torch.autograd.grad(y, leaves, grad_y.to(dtype))]


@needs_native
@pytest.mark.parametrize("sig", [WIDTHS["final"], 0.0, 0.6, 0.74])
@pytest.mark.parametrize(("steps", "batch", "n_in", "n_out"), [(20, 3, 7, 5), (37, 17, 40, 33)])
def test_windowed_delay_matches_the_full_kernel(sig: float, steps: int, batch: int, n_in: int, n_out: int,
                                                monkeypatch) -> None:
    x, weight, pos = _problem(int(sig * 100) + steps, steps, batch, n_in, n_out)
    calls = []
    correlate = native.window_correlate
    monkeypatch.setattr(native, "window_correlate", lambda *a: calls.append(a[1].shape[2]) or correlate(*a))
    leaves = [t.clone().requires_grad_(True) for t in (x, weight, pos)]
    y = kernels.synaptic_delay(*leaves, sig, D, PAD_L, PAD_R)
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    windowed = [y, *torch.autograd.grad(y, leaves, grad_y)]
    assert calls == [ops.synaptic_window(sig, D)[0]] * 2  # forward and the input gradient ran windowed
    full32 = _full(x, weight, pos, sig, grad_y, torch.float32)
    exact = _full(x, weight, pos, sig, grad_y, torch.float64)
    for name, mine, full, ref in zip(["output", "grad x", "grad weight", "grad pos"], windowed, full32, exact,
                                     strict=True):
        scale = float(ref.detach().abs().max())
        err = float((mine.detach().double() - ref).abs().max())
        err_full = float((full.detach().double() - ref).abs().max())
        assert err <= 2 * err_full + 2.0**-19 * scale, f"{name} at SIG {sig}: {err:.3g} vs full {err_full:.3g}"


@needs_native
@pytest.mark.parametrize("sig", [WIDTHS["start"], WIDTHS["middle"], 0.75])
def test_wide_kernels_take_the_full_kernel_unchanged(sig: float, monkeypatch) -> None:
    """Above WINDOW_MAX_TAPS the op is the full-kernel algorithm itself: bit-identical, no window kernel called."""
    x, weight, pos = _problem(3, 12, 2, 6, 4)
    monkeypatch.setattr(native, "window_correlate", lambda *a: pytest.fail("window kernel called"))
    y = kernels.synaptic_delay(x, weight, pos, sig, D, PAD_L, PAD_R)
    assert torch.equal(y, ops._SynapticDelay.apply(x, weight, pos, sig, D, PAD_L, PAD_R))


def test_float64_takes_the_full_kernel() -> None:
    x, weight, pos = (t.double() for t in _problem(4, 10, 2, 5, 3))
    y = kernels.synaptic_delay(x, weight, pos, 0.23, D, PAD_L, PAD_R)
    assert torch.equal(y, ops._SynapticDelay.apply(x, weight, pos, 0.23, D, PAD_L, PAD_R))


def _one_hot_reference(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """The hard delay as the one-hot kernel's correlation, in float64: y[t] = sum_k x_pad[t + k] @ K[k]."""
    kernel = torch.nn.functional.one_hot(D - 1 - delays, D).double() * weight.double().unsqueeze(-1)  # (o, i, D)
    xpad = torch.nn.functional.pad(x.double(), (0, 0, 0, 0, PAD_L, PAD_R))
    t_out = xpad.shape[0] - D + 1
    return sum(xpad[k: k + t_out] @ kernel[:, :, k].t() for k in range(D))


@needs_native
@pytest.mark.parametrize(("steps", "batch", "n_in", "n_out"), [(20, 3, 7, 5), (45, 16, 40, 33)])
def test_hard_delays_are_a_gather_equal_to_the_one_hot_kernel(steps: int, batch: int, n_in: int, n_out: int,
                                                              monkeypatch) -> None:
    """Spikes and weights on a 1/64 grid make every sum exact in float32: the gather equals the one-hot kernel
    bit for bit; real-valued inputs agree to float32 rounding."""
    gen = torch.Generator().manual_seed(steps)
    spikes = (torch.rand(steps, batch, n_in, generator=gen) < 0.4).float()
    weight = torch.randint(-64, 65, (n_out, n_in), generator=gen).float() / 64
    delays = torch.randint(0, D, (n_out, n_in), generator=gen)
    calls = []
    correlate = native.window_correlate
    monkeypatch.setattr(native, "window_correlate", lambda *a: calls.append(a[1].shape[2]) or correlate(*a))
    with torch.no_grad():
        y = kernels.synaptic_delay_hard(spikes, weight, delays, D, PAD_L, PAD_R)
        assert calls == [1]
        assert torch.equal(y, _one_hot_reference(spikes, weight, delays).float())
        real = torch.randn(steps, batch, n_in, generator=gen)
        ref = _one_hot_reference(real, weight, delays)
        err = (kernels.synaptic_delay_hard(real, weight, delays, D, PAD_L, PAD_R).double() - ref).abs().max()
        assert float(err) <= 1e-6 * float(ref.abs().max())


def test_window_taps_backward_is_the_derivative() -> None:
    """The closed-form weight and position gradients of the window taps, by finite differences in float64."""
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    pos = (torch.rand(3, 4, generator=gen, dtype=torch.float64) * (D - 1) - D // 2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w, p: ops.synaptic_window_taps(w, p, 0.5, D)[0], (weight, pos))
