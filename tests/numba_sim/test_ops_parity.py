"""Every numba-cuda op against the PyTorch backend on tiny shapes (simulator): forward within 1e-5 absolute,
gradients within 1e-4 of the largest reference gradient, for LIF, the readout and all four delay ops."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from suite.errors import SuiteError
from suite.ops import BACKEND_FUNCTIONS
from suite.ops import pytorch as ref
from suite.ops.pytorch import delays_from_positions
from suite.ops.registry import get_ops

T, B, C_IN, C_OUT, D = 9, 2, 4, 5, 5
PAD_L, PAD_R = D - 1, (D - 1) // 2


@pytest.fixture(scope="module")
def nb():
    return get_ops("numba-cuda")


def _positions(*shape: int) -> torch.Tensor:
    half = D // 2
    return torch.empty(shape).uniform_(-half - 1, half).clamp(-half, half)


def _compare(f_ref: Callable[..., torch.Tensor], f_nb: Callable[..., torch.Tensor], inputs: list[torch.Tensor],
             grad_mask: list[bool] | None = None) -> tuple[float, list[float]]:
    """Max abs forward error and, per input with a gradient, max |diff| / max |reference| of the gradient."""
    grad_mask = grad_mask or [True] * len(inputs)
    results = []
    for f in (f_ref, f_nb):
        ins = [t.detach().clone().requires_grad_(g) for t, g in zip(inputs, grad_mask, strict=True)]
        y = f(*ins)
        gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
        grads = torch.autograd.grad(y, [t for t in ins if t.requires_grad], gy)
        results.append((y.detach(), grads))
    (y0, g0), (y1, g1) = results
    assert y1.shape == y0.shape and y1.dtype == y0.dtype
    rel = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(g1, g0, strict=True)]
    fwd = float((y1 - y0).abs().max())
    assert fwd <= 1e-5, f"forward max abs error {fwd:.3g}"
    assert all(r <= 1e-4 for r in rel), f"gradient relative errors {rel}"
    return fwd, rel


def test_backend_exposes_every_function(nb) -> None:
    assert all(callable(getattr(nb, name)) for name in BACKEND_FUNCTIONS)
    assert nb.is_simulator()


@pytest.mark.parametrize("shape", [(T, B, C_OUT), (T, 3)])
def test_lif(nb, shape: tuple[int, ...]) -> None:
    x = 0.8 * torch.randn(shape) + 0.5
    _compare(lambda x: ref.lif_spikes(x, 1.5, 1.0, 5.0), lambda x: nb.lif_spikes(x, 1.5, 1.0, 5.0), [x])
    assert 0 < float(nb.lif_spikes(x, 1.5, 1.0, 5.0).mean()) < 1  # the case really spikes and resets


def test_lif_other_constants(nb) -> None:
    x = torch.randn(T, B, C_OUT)
    _compare(lambda x: ref.lif_spikes(x, 2.0, 0.5, 2.0), lambda x: nb.lif_spikes(x, 2.0, 0.5, 2.0), [x])


def test_leaky_readout(nb) -> None:
    _compare(lambda x: ref.leaky_readout(x, 1.5), lambda x: nb.leaky_readout(x, 1.5), [torch.randn(T, B, C_OUT)])


@pytest.mark.parametrize("sig", [2.0, 0.23, 0.0])
def test_channel_delay(nb, sig: float) -> None:
    x, pos = torch.randn(T, B, C_IN), _positions(C_IN)
    pos[0] = 0.37  # off-grid positions exercise the Gaussian's slope
    _compare(lambda x, p: ref.channel_delay(x, p, sig, D, PAD_L, PAD_R),
             lambda x, p: nb.channel_delay(x, p, sig, D, PAD_L, PAD_R), [x, pos])


def test_channel_delay_non_contiguous_and_positions_only(nb) -> None:
    x = torch.randn(B, C_IN, T).permute(2, 0, 1)  # (T, B, C) view, not contiguous
    pos = _positions(C_IN)
    _compare(lambda x, p: ref.channel_delay(x, p, 1.0, D, PAD_L, PAD_R),
             lambda x, p: nb.channel_delay(x, p, 1.0, D, PAD_L, PAD_R), [x, pos], grad_mask=[False, True])


def test_channel_delay_other_padding(nb) -> None:
    x, pos = torch.randn(T, B, C_IN), _positions(C_IN)
    _compare(lambda x, p: ref.channel_delay(x, p, 1.5, D, D - 1, 0),
             lambda x, p: nb.channel_delay(x, p, 1.5, D, D - 1, 0), [x, pos])


def test_channel_delay_hard(nb) -> None:
    x, pos = torch.randn(T, B, C_IN), _positions(C_IN)
    pos[:2] = torch.tensor([-(D // 2), D // 2])  # both extreme delays
    delays = delays_from_positions(pos, D)
    _compare(lambda x: ref.channel_delay_hard(x, delays, D, PAD_L, PAD_R),
             lambda x: nb.channel_delay_hard(x, delays, D, PAD_L, PAD_R), [x])


@pytest.mark.parametrize("sig", [2.0, 0.23])
def test_synaptic_delay(nb, sig: float) -> None:
    x, w, pos = torch.randn(T, B, C_IN), 0.5 * torch.randn(C_OUT, C_IN), _positions(C_OUT, C_IN)
    _compare(lambda x, w, p: ref.synaptic_delay(x, w, p, sig, D, PAD_L, PAD_R),
             lambda x, w, p: nb.synaptic_delay(x, w, p, sig, D, PAD_L, PAD_R), [x, w, pos])


@pytest.mark.parametrize("sig", [0.23, 0.0])
def test_synaptic_delay_windowed(nb, sig: float) -> None:
    """D = 15 at the final widths: the window op (6 and 4 of 15 taps) against the torch backend's full kernel."""
    kernel_size = 15
    assert ref.synaptic_window(sig, kernel_size)[0] < kernel_size
    x, w = torch.randn(T, B, C_IN), 0.5 * torch.randn(C_OUT, C_IN)
    pos = torch.empty(C_OUT, C_IN).uniform_(-7, 7)
    pos[0, :2] = torch.tensor([-7.0, 7.0])
    left, right = kernel_size - 1, (kernel_size - 1) // 2
    _compare(lambda x, w, p: ref._SynapticDelay.apply(x, w, p, sig, kernel_size, left, right),
             lambda x, w, p: nb.synaptic_delay(x, w, p, sig, kernel_size, left, right), [x, w, pos])


def test_synaptic_delay_without_input_gradient(nb) -> None:
    x, w, pos = torch.randn(T, B, C_IN), 0.5 * torch.randn(C_OUT, C_IN), _positions(C_OUT, C_IN)
    _compare(lambda x, w, p: ref.synaptic_delay(x, w, p, 1.0, D, PAD_L, PAD_R),
             lambda x, w, p: nb.synaptic_delay(x, w, p, 1.0, D, PAD_L, PAD_R), [x, w, pos],
             grad_mask=[False, True, True])


def test_synaptic_delay_hard(nb) -> None:
    x, w, pos = torch.randn(T, B, C_IN), 0.5 * torch.randn(C_OUT, C_IN), _positions(C_OUT, C_IN)
    pos[0, :2] = torch.tensor([-(D // 2), D // 2])
    delays = delays_from_positions(pos, D)
    _compare(lambda x, w: ref.synaptic_delay_hard(x, w, delays, D, PAD_L, PAD_R),
             lambda x, w: nb.synaptic_delay_hard(x, w, delays, D, PAD_L, PAD_R), [x, w])


def test_errors_are_suite_errors(nb) -> None:
    x = torch.randn(T, B, C_IN)
    with pytest.raises(SuiteError, match="float32-only"):
        nb.lif_spikes(x.double(), 1.5, 1.0, 5.0)
    with pytest.raises(SuiteError, match="CPU tensors"):
        nb.leaky_readout(torch.empty(T, B, C_IN, device="meta"), 1.5)
    with pytest.raises(SuiteError, match=r"delays must lie in \[0, 4\]"):
        nb.channel_delay_hard(x, torch.full((C_IN,), D, dtype=torch.long), D, PAD_L, PAD_R)
    with pytest.raises(SuiteError, match="pos has shape"):
        nb.channel_delay(x, torch.zeros(C_IN + 1), 1.0, D, PAD_L, PAD_R)
    with pytest.raises(SuiteError, match="shorter than the kernel"):
        nb.channel_delay(x, torch.zeros(C_IN), 1.0, 2 * T + 1, 0, 0)
    with pytest.raises(SuiteError, match="must both be"):
        nb.synaptic_delay(x, torch.zeros(C_OUT, C_IN), torch.zeros(C_IN, C_OUT), 1.0, D, PAD_L, PAD_R)
