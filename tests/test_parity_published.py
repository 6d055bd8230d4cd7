"""Parity with the published stack (dcls 0.1.1 ``Dcls1d`` + spikingjelly ``LIFNode``), the oracle in
``suite/baselines/official.py``.

Tolerances (float32):
- delay outputs: max absolute difference <= 1e-5;
- gradients (inputs, weights, delay positions): relative difference <= 1e-4, where
  ``rel(ours, ref) = max|ours - ref| / max|ref|`` (one scale for the whole tensor, so entries near zero do not blow
  up the measure; when ``ref`` is all zero the absolute difference is used);
- LIF spikes, readout and their input gradients: max absolute difference <= 1e-6 in float64, and <= 1e-6 x
  max(1, max|ref|) in float32 (surrogate gradients reach ~5, where one float32 ulp is 4.8e-7);
- whole network output sequence: max absolute difference <= 1e-4.
The largest errors seen are kept in ``OBSERVED`` and printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("DCLS")
pytest.importorskip("spikingjelly")

from DCLS.construct.modules import Dcls1d
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import neuron, surrogate

from suite.baselines.convert import (
    load_official_checkpoint,
    official_to_suite,
    suite_delay_masks,
    suite_to_official,
)
from suite.baselines.official import OfficialDelaySNN
from suite.errors import SuiteError
from suite.models.delays import ChannelDelay, SynapticDelay
from suite.models.lif import LIF, LeakyReadout
from suite.models.network import DelayNetwork
from suite.ops.pytorch import delays_from_positions
from suite.ops.registry import get_ops
from suite.specs import ModelSpec

OUT_TOL = 1e-5
GRAD_REL_TOL = 1e-4
LIF_TOL = 1e-6
NET_TOL = 1e-4
KERNEL_SIZES = (7, 15, 31)
BACKENDS = ("torch", "cpu-kernels")
"""Both CPU backends: the PyTorch reference and the compiled kernels (their fused stages run in the train-mode
network tests)."""
OBSERVED: dict[str, float] = defaultdict(float)


def official_sig_schedule(kernel_size: int, epochs: int = 100) -> list[float]:
    """SIG after each epoch under the official rule (``SnnDelays.decrease_sig``, 'gauss', final_epoch = epochs // 4)."""
    sig_init, final_epoch = float(kernel_size // 2), epochs // 4
    alpha = (0.23 / sig_init) ** (1 / final_epoch)
    sig, values = sig_init, [sig_init]
    for epoch in range(epochs):
        if epoch < final_epoch and sig > 0.23:
            sig *= alpha
        values.append(sig)
    return values


def sig_cases(kernel_size: int) -> list[float]:
    """Start, two intermediate points and the end of the official schedule, plus SIG = 0 (std 0.27)."""
    values = official_sig_schedule(kernel_size)
    return [values[0], values[5], values[15], values[-1], 0.0]


def rel(ours: torch.Tensor | None, ref: torch.Tensor | None) -> float:
    """max|ours - ref| / max|ref| (absolute difference if ref is zero); ``None`` gradients count as zeros."""
    if ours is None and ref is None:
        return 0.0
    ours = torch.zeros_like(ref) if ours is None else ours
    ref = torch.zeros_like(ours) if ref is None else ref
    diff = (ours.detach() - ref.detach()).abs().max().item()
    scale = ref.detach().abs().max().item()
    return diff / scale if scale > 0 else diff


def check_abs(label: str, ours: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    assert ours.shape == ref.shape, f"{label}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    err = (ours.detach() - ref.detach()).abs().max().item() if ours.numel() else 0.0
    OBSERVED[f"abs {label.split('[')[0]}"] = max(OBSERVED[f"abs {label.split('[')[0]}"], err)
    assert err <= tol, f"{label}: max abs error {err:.3g} > {tol}"


def check_rel(label: str, ours: torch.Tensor | None, ref: torch.Tensor | None, tol: float = GRAD_REL_TOL) -> None:
    err = rel(ours, ref)
    OBSERVED[f"rel {label.split('[')[0]}"] = max(OBSERVED[f"rel {label.split('[')[0]}"], err)
    assert err <= tol, f"{label}: relative error {err:.3g} > {tol}"


@pytest.fixture(scope="module", autouse=True)
def _report_observed():
    yield
    if OBSERVED:
        print("\nlargest errors vs the published stack:")
        for key in sorted(OBSERVED):
            print(f"  {key:40s} {OBSERVED[key]:.3g}")


def special_positions(shape: tuple[int, ...], kernel_size: int, generator: torch.Generator) -> torch.Tensor:
    """Official init U[-(D//2) - 1, D//2] clamped, with boundaries, zero and rounding ties planted at the front."""
    half = kernel_size // 2
    pos = torch.empty(shape).uniform_(-half - 1, half, generator=generator).clamp_(-half, half)
    flat = pos.view(-1)
    planted = torch.tensor([-half, half, 0.0, 1.5, -2.5, 0.5])
    flat[: min(len(planted), flat.numel())] = planted[: flat.numel()]
    return pos


def dcls_channel(channels: int, kernel_size: int, pos: torch.Tensor, sig: float, hard: bool) -> Dcls1d:
    """A per-channel official delay layer (weight fixed to 1); hard = official evaluation (SIG 0, 'max', round)."""
    layer = Dcls1d(channels, channels, kernel_count=1, groups=channels, dilated_kernel_size=kernel_size, bias=False,
                   version="gauss")
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.P.copy_(pos.view(1, channels, 1, 1))
        layer.SIG.fill_(sig)
    layer.weight.requires_grad = False
    layer.SIG.requires_grad = False
    if hard:
        _make_hard(layer)
    return layer


def dcls_synaptic(weight: torch.Tensor, kernel_size: int, pos: torch.Tensor, sig: float, hard: bool) -> Dcls1d:
    n_out, n_in = weight.shape
    layer = Dcls1d(n_in, n_out, kernel_count=1, groups=1, dilated_kernel_size=kernel_size, bias=False,
                   version="gauss")
    with torch.no_grad():
        layer.weight.copy_(weight.unsqueeze(-1))
        layer.P.copy_(pos.view(1, n_out, n_in, 1))
        layer.SIG.fill_(sig)
    layer.SIG.requires_grad = False
    if hard:
        _make_hard(layer)
    return layer


def _make_hard(layer: Dcls1d) -> None:
    with torch.no_grad():
        layer.SIG *= 0
        layer.version = layer.DCK.version = "max"
        layer.P.round_()
        layer.clamp_parameters()


def run_dcls(layer: Dcls1d, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Official call pattern: (T, B, C) -> pad time (D - 1 front, (D - 1) // 2 back) -> Dcls1d -> (T', B, C')."""
    xp = F.pad(x.permute(1, 2, 0), (kernel_size - 1, (kernel_size - 1) // 2))
    return layer(xp).permute(2, 0, 1)


# ----------------------------------------------------------------------------------------------- op level


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel_size", KERNEL_SIZES)
def test_channel_delay_op_matches_dcls(kernel_size: int, backend: str) -> None:
    """Both CPU forms of the per-channel delay: the compiled kernels (cpu-kernels) and oneDNN (torch)."""
    ops = get_ops(backend)
    gen = torch.Generator().manual_seed(kernel_size)
    t, b, c = 20, 2, 23  # 23 channels: one full vector of 16 and a partial one
    left, right = kernel_size - 1, (kernel_size - 1) // 2
    pos0 = special_positions((c,), kernel_size, gen)
    x0 = torch.randn(t, b, c, generator=gen)
    for sig in sig_cases(kernel_size):
        for hard in (False, True):
            label = f"channel op {backend} D={kernel_size} sig={sig:.3g} hard={hard}"
            ref_layer = dcls_channel(c, kernel_size, pos0, sig, hard)
            x_ref = x0.clone().requires_grad_(True)
            y_ref = run_dcls(ref_layer, x_ref, kernel_size)
            grad_out = torch.randn(y_ref.shape, generator=gen)
            (y_ref * grad_out).sum().backward()

            x = x0.clone().requires_grad_(True)
            pos = pos0.clone().requires_grad_(True)
            if hard:
                y = ops.channel_delay_hard(x, delays_from_positions(pos, kernel_size), kernel_size, left, right)
            else:
                y = ops.channel_delay(x, pos, sig, kernel_size, left, right)
            (y * grad_out).sum().backward()

            check_abs(f"channel op output[{label}]", y, y_ref, OUT_TOL)
            check_rel(f"channel op grad input[{label}]", x.grad, x_ref.grad)
            # Hard delays carry no position gradient in either stack ('max' kernel at integer P: all zero).
            check_rel(f"channel op grad P[{label}]", pos.grad, ref_layer.P.grad.view(c))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel_size", KERNEL_SIZES)
def test_synaptic_delay_op_matches_dcls(kernel_size: int, backend: str) -> None:
    ops = get_ops(backend)
    gen = torch.Generator().manual_seed(100 + kernel_size)
    t, b, n_in, n_out = 20, 2, 4, 3
    left, right = kernel_size - 1, (kernel_size - 1) // 2
    pos0 = special_positions((n_out, n_in), kernel_size, gen)
    w0 = torch.randn(n_out, n_in, generator=gen)
    x0 = torch.randn(t, b, n_in, generator=gen)
    for sig in sig_cases(kernel_size):
        for hard in (False, True):
            label = f"synaptic op {backend} D={kernel_size} sig={sig:.3g} hard={hard}"
            ref_layer = dcls_synaptic(w0, kernel_size, pos0, sig, hard)
            x_ref = x0.clone().requires_grad_(True)
            y_ref = run_dcls(ref_layer, x_ref, kernel_size)
            grad_out = torch.randn(y_ref.shape, generator=gen)
            (y_ref * grad_out).sum().backward()

            x = x0.clone().requires_grad_(True)
            w = w0.clone().requires_grad_(True)
            pos = pos0.clone().requires_grad_(True)
            if hard:
                delays = delays_from_positions(pos, kernel_size)
                y = ops.synaptic_delay_hard(x, w, delays, kernel_size, left, right)
            else:
                y = ops.synaptic_delay(x, w, pos, sig, kernel_size, left, right)
            (y * grad_out).sum().backward()

            check_abs(f"synaptic op output[{label}]", y, y_ref, OUT_TOL)
            check_rel(f"synaptic op grad input[{label}]", x.grad, x_ref.grad)
            check_rel(f"synaptic op grad weight[{label}]", w.grad, ref_layer.weight.grad[:, :, 0])
            check_rel(f"synaptic op grad P[{label}]", pos.grad, ref_layer.P.grad[0, :, :, 0])


# ------------------------------------------------------------------------------------------- module level


@pytest.mark.parametrize("kernel_size", KERNEL_SIZES)
def test_delay_modules_match_dcls(kernel_size: int) -> None:
    """``ChannelDelay`` and ``SynapticDelay`` (soft and ``hard = True``) against ``Dcls1d`` with the paper's padding."""
    gen = torch.Generator().manual_seed(200 + kernel_size)
    t, b, n_in, n_out = 16, 2, 5, 3
    x0 = torch.randn(t, b, n_in, generator=gen)
    for sig in (sig_cases(kernel_size)[1], 0.0):
        for hard in (False, True):
            label = f"module D={kernel_size} sig={sig:.3g} hard={hard}"
            channel = ChannelDelay(n_in, kernel_size, "torch", sig)
            synaptic = SynapticDelay(n_in, n_out, kernel_size, "torch", sig)
            channel.hard = synaptic.hard = hard
            refs = (dcls_channel(n_in, kernel_size, channel.P.detach(), sig, hard),
                    dcls_synaptic(synaptic.weight.detach(), kernel_size, synaptic.P.detach(), sig, hard))
            for name, ours, ref in (("ChannelDelay", channel, refs[0]), ("SynapticDelay", synaptic, refs[1])):
                x_ref = x0.clone().requires_grad_(True)
                y_ref = run_dcls(ref, x_ref, kernel_size)
                grad_out = torch.randn(y_ref.shape, generator=gen)
                (y_ref * grad_out).sum().backward()
                x = x0.clone().requires_grad_(True)
                y = ours(x)
                (y * grad_out).sum().backward()
                assert y.shape[0] == ours.output_length(t)
                check_abs(f"{name} output[{label}]", y, y_ref, OUT_TOL)
                check_rel(f"{name} grad input[{label}]", x.grad, x_ref.grad)
                check_rel(f"{name} grad P[{label}]", ours.P.grad, ref.P.grad.view(ours.P.shape))
                if name == "SynapticDelay":
                    check_rel(f"{name} grad weight[{label}]", ours.weight.grad, ref.weight.grad[:, :, 0])


def _small_pair(delay_type: str, sparsity: float, kernel_size: int = 7, dropout: float = 0.25,
                seed: int = 0, backend: str = "torch") -> tuple[OfficialDelaySNN, DelayNetwork]:
    """A small official model with non-trivial BatchNorm state, and the suite model loaded from it."""
    torch.manual_seed(seed)
    official = OfficialDelaySNN(6, (8, 8), 5, delay_type=delay_type, kernel_size=kernel_size,
                                sparsity_p_delay=sparsity, dropout=dropout)
    with torch.no_grad():
        for lay in official.snn[:-1]:
            lay.norm.running_mean.uniform_(-0.5, 0.5)
            lay.norm.running_var.uniform_(0.5, 2.0)
            lay.norm.weight.uniform_(0.5, 1.5)
            lay.norm.bias.uniform_(-0.3, 0.3)
            lay.norm.num_batches_tracked.fill_(17)
        if sparsity > 0:  # a guaranteed mix of delayed and pass-through lines in every layer
            for lay in official.snn:
                n = lay.delay_layer.m.numel()
                lay.delay_layer.m = (torch.arange(n) % 3 == 0).float()
    official.set_sig(official_sig_schedule(kernel_size)[10])
    spec = ModelSpec(variant=delay_type, delay_type=delay_type, n_inputs=6, n_hidden=(8, 8), n_outputs=5,
                     kernel_size=kernel_size, delay_sparsity=sparsity, dropout=dropout)
    ours = DelayNetwork(spec, backend)
    ours.load_state_dict(official_to_suite(official.state_dict(), delay_type, official.delay_masks()))
    return official, ours


PAIRS = [("synaptic", 0.0), ("axonal", 0.0), ("dendritic", 0.0), ("axonal", 0.5)]


@pytest.mark.parametrize(("delay_type", "sparsity"), PAIRS)
@pytest.mark.parametrize("hard", [False, True])
def test_layer_synaptic_current_matches_official(delay_type: str, sparsity: float, hard: bool) -> None:
    """Each layer's ``synaptic_current`` (delays + weights) against the official layer's, with gradients."""
    official, ours = _small_pair(delay_type, sparsity)
    if hard:
        official.set_hard(True)
        for delay in ours.delay_modules():
            delay.hard = True
    gen = torch.Generator().manual_seed(7)
    for i, (off_layer, our_layer) in enumerate(zip(official.snn, ours.layers, strict=True)):
        label = f"layer {delay_type} s={sparsity} hard={hard} i={i}"
        x0 = torch.randn(12, 3, our_layer.n_in, generator=gen)
        x_ref = x0.clone().requires_grad_(True)
        y_ref = off_layer.synaptic_current(x_ref)
        grad_out = torch.randn(y_ref.shape, generator=gen)
        (y_ref * grad_out).sum().backward()
        x = x0.clone().requires_grad_(True)
        y = our_layer.synaptic_current(x)
        (y * grad_out).sum().backward()
        check_abs(f"block output[{label}]", y, y_ref, OUT_TOL)
        check_rel(f"block grad input[{label}]", x.grad, x_ref.grad)
        ref_weight = off_layer.delay_layer.weight.grad[:, :, 0] if delay_type == "synaptic" else off_layer.W.weight.grad
        check_rel(f"block grad weight[{label}]", our_layer.weight.grad, ref_weight)
        check_rel(f"block grad P[{label}]", our_layer.delay.P.grad,
                  off_layer.delay_layer.P.grad.view(our_layer.delay.P.shape))


# ---------------------------------------------------------------------------------------------------- LIF


def _lif_node(v_threshold: float) -> neuron.LIFNode:
    return neuron.LIFNode(tau=1.5, v_threshold=v_threshold, surrogate_function=surrogate.ATan(alpha=5.0),
                          detach_reset=True, step_mode="m", decay_input=False, store_v_seq=True)


def check_lif(label: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    """LIF tolerance: float64 absolute 1e-6; float32 1e-6 of max(1, max|ref|) (the surrogate gradients reach ~5,
    where one float32 ulp is 4.8e-7, and both stacks are equally far from a float64 run)."""
    scale = 1.0 if ref.dtype == torch.float64 else max(1.0, ref.detach().abs().max().item())
    check_abs(f"{label} {str(ref.dtype)[6:]}", ours / scale, ref / scale, LIF_TOL)


@pytest.fixture(params=BACKENDS)
def recurrence(request) -> str:
    """Both implementations of the time recurrences: the PyTorch per-step ops (torch, what every other device runs)
    and the compiled CPU kernels (cpu-kernels)."""
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lif_matches_spikingjelly(dtype: torch.dtype, recurrence: str) -> None:
    gen = torch.Generator().manual_seed(3)
    x0 = (torch.randn(40, 4, 16, generator=gen) * 0.8 + 0.3).to(dtype)
    grad_out = torch.randn(x0.shape, generator=gen).to(dtype)
    node = _lif_node(1.0)
    sj_functional.reset_net(node)
    x_ref = x0.clone().requires_grad_(True)
    s_ref = node(x_ref)
    (s_ref * grad_out).sum().backward()
    assert 0.05 < s_ref.mean().item() < 0.6  # the test exercises spikes and resets
    for name, fn in (("op", lambda x: get_ops(recurrence).lif_spikes(x, 1.5, 1.0, 5.0)),
                     ("module", LIF(1.5, 1.0, 5.0, recurrence))):
        x = x0.clone().requires_grad_(True)
        s = fn(x)
        (s * grad_out).sum().backward()
        check_lif(f"LIF {name} {recurrence} spikes", s, s_ref)
        check_lif(f"LIF {name} {recurrence} grad input", x.grad, x_ref.grad)
        with torch.no_grad():  # the evaluation path saves nothing and must fire the same spikes
            assert torch.equal(fn(x0), s_ref.detach()), f"LIF {name} {recurrence}: no-grad spikes differ"


def test_recurrences_accept_empty_sequences(recurrence: str) -> None:
    """T = 0 gives empty outputs and gradients on both paths (the compiled loops have no bounds checks)."""
    ops = get_ops(recurrence)
    for name, fn in (("LIF", lambda x: ops.lif_spikes(x, 1.5, 1.0, 5.0)),
                     ("readout", lambda x: ops.leaky_readout(x, 1.5))):
        x = torch.zeros(0, 3, 5, requires_grad=True)
        y = fn(x)
        y.sum().backward()
        assert y.shape == (0, 3, 5) and x.grad is not None and x.grad.shape == (0, 3, 5), f"{name} {recurrence}"
        with torch.no_grad():
            assert fn(x.detach()).shape == (0, 3, 5), f"{name} {recurrence} no-grad"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_readout_matches_spikingjelly_v_seq(dtype: torch.dtype, recurrence: str) -> None:
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(40, 4, 5, generator=gen).to(dtype)
    grad_out = torch.randn(x0.shape, generator=gen).to(dtype)
    node = _lif_node(1e9)
    sj_functional.reset_net(node)
    x_ref = x0.clone().requires_grad_(True)
    node(x_ref)
    v_ref = node.v_seq
    (v_ref * grad_out).sum().backward()
    for name, fn in (("op", lambda x: get_ops(recurrence).leaky_readout(x, 1.5)),
                     ("module", LeakyReadout(1.5, recurrence))):
        x = x0.clone().requires_grad_(True)
        v = fn(x)
        (v * grad_out).sum().backward()
        check_lif(f"readout {name} {recurrence} v_seq", v, v_ref)
        check_lif(f"readout {name} {recurrence} grad input", x.grad, x_ref.grad)


# ------------------------------------------------------------------------------------------ whole network


def _net_input(seed: int = 11) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(12, 3, 6, generator=gen) * 3.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel_size", [7, 15])
@pytest.mark.parametrize(("delay_type", "sparsity"), PAIRS)
@pytest.mark.parametrize("mode", ["soft-eval", "hard-eval"])
def test_network_matches_official_eval(delay_type: str, sparsity: float, mode: str, kernel_size: int,
                                       backend: str) -> None:
    official, ours = _small_pair(delay_type, sparsity, kernel_size=kernel_size, backend=backend)
    x = _net_input()
    if mode == "hard-eval":
        ref_model = copy.deepcopy(official).eval()
        ref_model.set_hard(True)
        our_model = ours.hard_copy()
    else:
        ref_model, our_model = official.eval(), ours.eval()
    with torch.no_grad():
        ref = ref_model(x)
        spikes: list[torch.Tensor] = []
        out = our_model(x, spikes)
    assert out.shape == (ours.output_length(12), 3, 5)
    assert all(0.0 < s.mean().item() < 1.0 for s in spikes)  # hidden layers really spike
    check_abs(f"network output[{delay_type} s={sparsity} {mode} D={kernel_size} {backend}]", out, ref, NET_TOL)
    if mode == "hard-eval":  # the training models were not touched
        assert not official.hard and not any(d.hard for d in ours.delay_modules())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout", [0.0, 0.25])
@pytest.mark.parametrize(("delay_type", "sparsity"), PAIRS)
def test_network_matches_official_train_mode(delay_type: str, sparsity: float, dropout: float, backend: str) -> None:
    """Train mode: BatchNorm uses batch statistics; outputs, loss gradients and updated stats agree.

    With dropout 0.25 both stacks draw one mask per sample and neuron for all steps from the same generator
    (spikingjelly: ``F.dropout(ones)``; suite: ``bernoulli_``), so the same seed gives the same masks on CPU.
    """
    official, ours = _small_pair(delay_type, sparsity, dropout=dropout, backend=backend)
    official.train()
    ours.train()
    x = _net_input()
    labels = torch.tensor([0, 3, 4])
    torch.manual_seed(5)
    ref = official(x)
    torch.manual_seed(5)
    out = ours(x)
    label = f"{delay_type} s={sparsity} train p={dropout} {backend}"
    check_abs(f"network output[{label}]", out, ref, NET_TOL)
    F.cross_entropy(torch.softmax(ref, 2).sum(0), labels).backward()
    F.cross_entropy(torch.softmax(out, 2).sum(0), labels).backward()
    ref_params = dict(official.named_parameters())
    converted_grads = official_to_suite({k: p.grad for k, p in ref_params.items() if p.grad is not None}, delay_type)
    for key, param in ours.named_parameters():
        check_rel(f"network grad {key.split('.', 2)[-1]}[{label}]", param.grad, converted_grads[key])
    ours_state = ours.state_dict()
    for key, value in official_to_suite(official.state_dict(), delay_type).items():
        if ".norm." in key:
            check_abs(f"batchnorm state[{label}]", ours_state[key].float(), value.float(), 1e-6)


# ------------------------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(("delay_type", "sparsity"), PAIRS)
def test_round_trips_are_identity(delay_type: str, sparsity: float) -> None:
    official, ours = _small_pair(delay_type, sparsity)
    suite_state = ours.state_dict()
    official_state = suite_to_official(suite_state, delay_type)
    assert list(official_state) == list(official.state_dict())  # same keys, same order
    back = official_to_suite(official_state, delay_type, suite_delay_masks(suite_state))
    assert set(back) == set(suite_state)
    for key, value in suite_state.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    reloaded = OfficialDelaySNN(6, (8, 8), 5, delay_type=delay_type, kernel_size=7, sparsity_p_delay=sparsity)
    reloaded.load_state_dict(official_state, strict=True)
    for key, value in official.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def test_official_set_hard_round_trip() -> None:
    """``set_hard(True)`` does the official evaluation edits; ``set_hard(False)`` restores the soft state."""
    official, _ = _small_pair("synaptic", 0.0)
    before = {k: v.clone() for k, v in official.state_dict().items()}
    official.set_hard(True)
    for d in official.delay_layers():
        assert d.version == d.DCK.version == "max"
        assert torch.all(d.SIG == 0) and torch.equal(d.P, d.P.round())
    official.set_hard(False)
    for d in official.delay_layers():
        assert d.version == d.DCK.version == "gauss"
    for key, value in official.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_unequal_sig_is_rejected() -> None:
    official, _ = _small_pair("axonal", 0.0)
    state = official.state_dict()
    state["snn.1.delay_layer.SIG"] = state["snn.1.delay_layer.SIG"].clone()
    state["snn.1.delay_layer.SIG"].view(-1)[0] += 1.0
    with pytest.raises(SuiteError, match=r"snn\.1\.delay_layer\.SIG.*not all equal"):
        official_to_suite(state, "axonal")


def test_load_official_checkpoint(tmp_path) -> None:
    official, _ = _small_pair("dendritic", 0.0)
    path = tmp_path / "model.pt"
    torch.save(official.state_dict(), path)
    spec = ModelSpec(variant="dendritic", delay_type="dendritic", n_inputs=6, n_hidden=(8, 8), n_outputs=5,
                     kernel_size=7)
    model = load_official_checkpoint(path, spec).eval()
    x = _net_input()
    with torch.no_grad():
        check_abs("checkpoint output", model(x), official.eval()(x), NET_TOL)


def test_load_official_checkpoint_recovers_weight_masks(tmp_path) -> None:
    """Official weight-sparsity masks are not saved either; the masked weights are zero, so the mask is recovered."""
    official, _ = _small_pair("synaptic", 0.0)
    with torch.no_grad():
        for lay in official.snn:
            lay.delay_layer.weight.mul_((torch.rand_like(lay.delay_layer.weight) > 0.6).float())
    path = tmp_path / "model.pt"
    torch.save(official.state_dict(), path)
    spec = ModelSpec(variant="synaptic", delay_type="synaptic", n_inputs=6, n_hidden=(8, 8), n_outputs=5,
                     kernel_size=7, weight_sparsity=0.6)
    model = load_official_checkpoint(path, spec)
    for block, lay in zip(model.layers, official.snn, strict=True):
        assert torch.equal(block.weight_mask, (lay.delay_layer.weight[:, :, 0] != 0).float())
    model.after_step()  # re-applying the recovered masks changes nothing
    for block, lay in zip(model.layers, official.snn, strict=True):
        assert torch.equal(block.weight.detach(), lay.delay_layer.weight[:, :, 0])


def test_load_official_checkpoint_errors(tmp_path) -> None:
    official, _ = _small_pair("axonal", 0.0)
    spec = ModelSpec(variant="axonal", delay_type="axonal", n_inputs=6, n_hidden=(8, 8), n_outputs=5, kernel_size=7)
    state = official.state_dict()

    missing = tmp_path / "missing.pt"
    torch.save({k: v for k, v in state.items() if k != "snn.2.W.weight"}, missing)
    with pytest.raises(SuiteError, match=r"missing\.pt: missing key 'snn\.2\.W\.weight'") as err:
        load_official_checkpoint(missing, spec)
    assert "\n" not in str(err.value)

    with pytest.raises(SuiteError, match=r"model\.pt: key 'snn\.0\.W\.weight' has shape"):
        path = tmp_path / "model.pt"
        torch.save(state, path)
        load_official_checkpoint(path, ModelSpec(variant="axonal", delay_type="axonal", n_inputs=6,
                                                 n_hidden=(9, 8), n_outputs=5, kernel_size=7))
    with pytest.raises(SuiteError, match=r"model\.pt: unexpected key 'snn\.0\.delay_layer\.bias'"):
        torch.save({**state, "snn.0.delay_layer.bias": torch.zeros(6)}, path)
        load_official_checkpoint(path, spec)
    with pytest.raises(SuiteError, match=r"model\.pt: .*does not save its sparse-delay mask"):
        torch.save(state, path)
        load_official_checkpoint(path, ModelSpec(variant="axonal-sparse", delay_type="axonal", n_inputs=6,
                                                 n_hidden=(8, 8), n_outputs=5, kernel_size=7, delay_sparsity=0.8))
    with pytest.raises(SuiteError, match=r"model\.pt: snn\.0\.delay_layer\.weight: shape \(8, 6, 1\) is not"):
        synaptic, _ = _small_pair("synaptic", 0.0)
        torch.save(synaptic.state_dict(), path)
        load_official_checkpoint(path, spec)
    with pytest.raises(SuiteError, match=r"nope\.pt: no such checkpoint file"):
        load_official_checkpoint(tmp_path / "nope.pt", spec)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(SuiteError, match=r"garbage\.pt: cannot read"):
        load_official_checkpoint(garbage, spec)


def test_official_sig_schedule_matches_suite() -> None:
    """The SIG values the parity tests sweep are the ones ``DelayNetwork.end_epoch`` produces."""
    spec = ModelSpec(variant="axonal", delay_type="axonal", n_inputs=2, n_hidden=(2,), n_outputs=2, kernel_size=31)
    net = DelayNetwork(spec)
    expected = official_sig_schedule(31, epochs=100)
    for epoch in range(100):
        net.end_epoch(epoch, 100)
        for delay in net.delay_modules():
            assert math.isclose(float(delay.sig), expected[epoch + 1], rel_tol=1e-6), epoch
    assert math.isclose(expected[-1], 0.23, rel_tol=1e-5)
