"""The two out-of-tree delay kinds of examples/ (suite-slayer-delays, suite-delrec): exact parameter counts, buffer
bits by hand, streaming = batch, delay gradients against the original formulations, and a tiny training run each;
then, installed as a user installs them, a run on the tiny protocol that reaches the leaderboard."""

from __future__ import annotations

import copy
import importlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

import suite
from suite import registry
from suite.errors import SuiteError
from suite.kinds import register_kind, registered_kinds, unregister_kind
from suite.kinds.base import Sizing
from suite.metrics import dense_op_counts
from suite.metrics.buffers import buffer_bits
from suite.metrics.synops import synaptic_operations
from suite.models.network import DelayNetwork, summed_softmax_loss
from suite.specs import ModelSpec
from suite.streaming import StreamingExecutor, streaming_state_bytes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PACKAGES = {"slayer": ("suite-slayer-delays", "suite_slayer_delays", "axonal-slayer"),
            "delrec": ("suite-delrec", "suite_delrec", "delrec")}


@pytest.fixture(scope="module")
def slayer(kinds_registered: None) -> ModuleType:
    return _import("slayer")


@pytest.fixture(scope="module")
def delrec(kinds_registered: None) -> ModuleType:
    return _import("delrec")


def _import(key: str) -> ModuleType:
    """The example package, importable from its src/ folder (what an installed package is, minus its metadata)."""
    project, module, _ = PACKAGES[key]
    src = str(EXAMPLES / project / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return importlib.import_module(module)


@pytest.fixture(scope="module")
def kinds_registered() -> Iterator[None]:
    """Both kinds in the suite's registry (what each package's ``register`` does first), removed afterwards."""
    registered = [register_kind(_import("slayer").SlayerAxonalKind()), register_kind(_import("delrec").DelRecKind())]
    yield
    for kind in registered:
        unregister_kind(kind.name)


def network(delay_type: str, seed: int = 0, **model: object) -> DelayNetwork:
    """The suite's generic network of ``delay_type`` layers (dropout off unless given)."""
    torch.manual_seed(seed)
    return DelayNetwork(ModelSpec(delay_type=delay_type, **{"dropout": 0.0, **model}))


@torch.no_grad()
def assert_streams_like_batch(hard: DelayNetwork, x: torch.Tensor, sizing: Sizing) -> list[int]:
    """Every hidden layer spikes (neither silent nor saturated); the executor's spikes equal the batch spikes and
    its output membranes agree to float32 rounding (the suite's own streaming tolerance). Returns the executor's
    buffer bits per layer."""
    spikes: list[torch.Tensor] = []
    want = hard(x, spikes)
    executor = StreamingExecutor.from_model(hard, sizing)
    got_spikes: list[torch.Tensor] = []
    got = executor.run(x, spikes=got_spikes)
    assert all(0.02 < float(s.mean()) < 0.98 for s in spikes)
    assert all(torch.equal(a, b) for a, b in zip(got_spikes, spikes, strict=True))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    return executor.buffer_bits_per_layer()


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def timing_task(seed: int, batch: int = 32, t_len: int = 14, channels: int = 4, gap: int = 5
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes with the same events in opposite order (channel 0 then 1, or 1 then 0, ``gap`` steps apart), plus
    sparse noise on the other channels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (batch,), generator=g)
    x = torch.zeros(t_len, batch, channels)
    start = torch.randint(0, 4, (batch,), generator=g)
    for b in range(batch):
        first, second = (0, 1) if labels[b] == 0 else (1, 0)
        x[start[b], b, first] = 1.0
        x[start[b] + gap, b, second] = 1.0
    x[:, :, 2:] = (torch.rand(t_len, batch, channels - 2, generator=g) < 0.1).float()
    return x, labels


def train_losses(net: DelayNetwork, epochs: int, steps: int, lr: float, lr_pos: float, gap: int) -> list[float]:
    """Adam on the network's parameter groups (asked of the kind; ``positions`` at ``lr_pos``), ``after_step`` after
    each step and ``end_epoch`` after each epoch, as the runner does, on the timing task with events ``gap`` steps
    apart; the mean training loss of every epoch."""
    groups = net.param_groups()
    assert sorted(map(id, (p for ps in groups.values() for p in ps))) == sorted(map(id, net.parameters()))
    opt = torch.optim.Adam([{"params": ps, "lr": lr_pos if name == "positions" else lr}
                            for name, ps in groups.items() if ps])
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for step in range(steps):
            x, y = timing_task(100 * epoch + step, gap=gap)
            net.train()
            loss = summed_softmax_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.after_step()
            total += loss.item()
        net.end_epoch(epoch, epochs)
        losses.append(total / steps)
    return losses


def with_running_stats(net: DelayNetwork, x: torch.Tensor) -> DelayNetwork:
    """Give every BatchNorm non-trivial running statistics and affine (as training would)."""
    norms = [layer.norm for layer in net.layers if getattr(layer, "norm", None) is not None]
    with torch.no_grad():
        for norm in norms:
            norm.momentum = 1.0
        net.train()(x)
        for norm in norms:
            norm.weight.uniform_(0.8, 1.6)
            norm.bias.uniform_(0.0, 0.6)
    return net.eval()


# ---------------------------------------------------------------- SLAYER-style integer axonal delays

def test_slayer_shift_is_integer_and_its_gradients_are_slayers(slayer: ModuleType) -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 5.0], [4.0, 6.0], [2.0, 1.0]]).unsqueeze(1)  # (T=5, B=1, N=2)
    x.requires_grad_(True)
    d = torch.tensor([1.6, 0.2], requires_grad=True)  # floors: 1 and 0
    y = slayer.delay_shift(x, d)
    assert y.squeeze(1).tolist() == [[0.0, 2.0], [1.0, 0.0], [3.0, 5.0], [0.0, 6.0], [4.0, 1.0]]
    g = torch.tensor([[0.5, -1.0], [2.0, 1.0], [-1.0, 0.5], [1.5, 2.0], [1.0, -0.5]]).unsqueeze(1)
    (y * g).sum().backward()
    # slayerPytorch _delayFunction.backward: dd = sum_t g[t] (y[t-1] - y[t]) (y[-1] = 0), dx[t] = g[t + floor d].
    ys = y.detach().squeeze(1)
    want = [sum(float(g[t, 0, n]) * ((float(ys[t - 1, n]) if t else 0.0) - float(ys[t, n])) for t in range(5))
            for n in range(2)]
    assert want == [0.5 * 0 + 2.0 * (0 - 1) - 1.0 * (1 - 3) + 1.5 * (3 - 0) + 1.0 * (0 - 4),
                    -1.0 * (0 - 2) + 1.0 * (2 - 0) + 0.5 * (0 - 5) + 2.0 * (5 - 6) - 0.5 * (6 - 1)]
    assert d.grad.tolist() == pytest.approx(want)
    assert d.grad.abs().min() > 0
    assert x.grad.squeeze(1).tolist() == [[2.0, -1.0], [-1.0, 1.0], [1.5, 0.5], [1.0, 2.0], [0.0, -0.5]]


def test_slayer_parameters_and_buffer_bits_by_hand(slayer: ModuleType) -> None:
    net = network("slayer-axonal", n_inputs=3, n_hidden=(4,), n_outputs=2, kernel_size=5)
    kind = net.kind
    # layer 1: 3 delays + 4 x 3 weights + BatchNorm 2 x 4; output: 4 delays + 2 x 4 weights
    assert count(net) == (3 + 12 + 8) + (4 + 8) == 35
    assert [count(layer) for layer in net.layers] == [23, 12]
    assert net.param_groups()["positions"] == [net.layers[0].axon_delay, net.layers[1].axon_delay]
    with torch.no_grad():
        net.layers[0].axon_delay.copy_(torch.tensor([0.3, 2.7, 4.0]))
        net.layers[1].axon_delay.copy_(torch.tensor([1.2, 3.9, 0.0, 2.5]))
    hard = net.hard_copy()
    bufs = [kind.buffers(layer, i, 32, 32) for i, layer in enumerate(hard.layers)]
    assert [b.allocated_bits for b in bufs] == [3 * 4 * 32, 4 * 4 * 1] == [384, 16]
    assert [b.learned_bits for b in bufs] == [(0 + 2 + 4) * 32, 1 + 3 + 0 + 2] == [192, 6]
    assert [b.entry_bits for b in bufs] == [32, 1]
    assert [(b.stored_delay_values, b.stored_delay_value_bits) for b in bufs] == [(3, 3 * 3), (4, 4 * 3)]
    assert [b.buffered_lines for b in bufs] == [3, 4] and {b.site for b in bufs} == {"pre"}
    report = buffer_bits(hard)  # the network report asks the kind
    assert (report["allocated_bits"], report["learned_bits"], report["delay_sites"]) == (400, 198, ["pre", "pre"])
    for sizing, want in (("allocated", [384, 16]), ("learned", [192, 6])):
        executor = StreamingExecutor.from_model(hard, sizing)
        assert executor.buffer_bits_per_layer() == want
        state = sum(math.ceil(b / 8) for b in want) + 4 * (4 + 2)  # bit-packed rings + float32 membranes
        assert executor.state_bytes() == state == streaming_state_bytes(hard, sizing)
    assert [kind.training_macs_per_step(layer) for layer in hard.layers] == [12, 8]
    assert hard.output_length(9) == 9


@pytest.mark.parametrize("sizing", ["allocated", "learned"])
def test_slayer_streaming_equals_batch(slayer: ModuleType, sizing: Sizing) -> None:
    net = network("slayer-axonal", 3, n_inputs=6, n_hidden=(10, 8), n_outputs=3, kernel_size=7)
    with torch.no_grad():
        for layer in net.layers:
            layer.axon_delay.uniform_(0.0, 6.99)
            layer.weight.mul_(2.0)
    x = torch.rand(20, 4, 6) * 2.0
    bits = assert_streams_like_batch(with_running_stats(net, x).hard_copy(), x, sizing)
    assert bits == buffer_bits(net.hard_copy())[f"{sizing}_bits_per_layer"]


def test_slayer_adaptive_cap_follows_the_original_schedule(slayer: ModuleType) -> None:
    kind = slayer.SlayerAxonalKind(warmup_fraction=0.25, interval=2, window=2, quantile=0.75)
    layer = kind.build_layer(4, 2, ModelSpec(n_inputs=4, n_hidden=(2,), n_outputs=2, kernel_size=9), "torch", True)
    assert float(layer.cap) == 8.0
    with torch.no_grad():
        layer.axon_delay.copy_(torch.tensor([1.5, 9.7, 3.2, -0.4]))
    kind.after_step(layer)  # warm-up: clamp to [0, D - 1] only
    assert layer.axon_delay.tolist() == pytest.approx([1.5, 8.0, 3.2, 0.0]) and float(layer.cap) == 8.0
    kind.end_epoch(layer, ModelSpec(), 1, 8)  # 8 epochs: the cap stays fixed while epoch <= 8 // 4 (main: <= 250)
    assert not bool(layer.adaptive)
    kind.end_epoch(layer, ModelSpec(), 2, 8)
    assert bool(layer.adaptive)
    with torch.no_grad():
        layer.axon_delay.copy_(torch.tensor([1.5, 6.2, 3.2, 5.9]))
    kind.after_step(layer)
    kind.after_step(layer)  # 2 steps: not more than `interval`
    assert float(layer.cap) == 8.0
    kind.after_step(layer)  # floors sorted [1, 3, 5, 6]: cap = 6; index 3 -> 6 > 6 - 2: cap 7, count restarts
    assert float(layer.cap) == 7.0 and int(layer.steps_since_check) == 0
    with torch.no_grad():
        layer.axon_delay.copy_(torch.tensor([0.5, 4.2, 0.2, 0.9]))
    for _ in range(3):
        kind.after_step(layer)  # floors [0, 0, 0, 4]: cap = 4; index 3 -> 4 > 2: cap 5
    assert float(layer.cap) == 5.0
    median = slayer.SlayerAxonalKind(interval=0, window=2, quantile=0.5)
    median.after_step(layer)  # floors [0, 0, 0, 4]: cap = 4; index 2 -> 0 is not > 2: the cap shrinks to 4
    assert float(layer.cap) == 4.0 and int(layer.steps_since_check) == 1
    assert float(layer.axon_delay.detach().max()) == 4.0  # 4.2 clamped to the new cap
    b = kind.buffers(layer, 1, 32, 32)
    assert (b.allocated_bits, b.learned_bits, b.stored_delay_value_bits) == (4 * 4, 0 + 4 + 0 + 0, 4 * 3)


def test_slayer_synaptic_operations_by_hand(slayer: ModuleType) -> None:
    kind = slayer.SlayerAxonalKind()
    layer = kind.build_layer(2, 3, ModelSpec(n_inputs=2, n_hidden=(3,), n_outputs=3, kernel_size=5), "torch", True)
    with torch.no_grad():
        layer.axon_delay.copy_(torch.tensor([2.0, 0.0]))
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, 3.0]]))
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]).unsqueeze(1)  # (T=4, B=1, 2)
    ops = kind.operations(layer.eval(), h)
    # input 0 delayed by 2: its spikes at t=0, 2, 3 arrive at 2, 4 (past the end), 5 (past) -> 1 read x 2 weights;
    # input 1 (no delay): spikes at 1 and 2 -> 2 reads x 2 weights
    assert ops.effective == 1 * 2 + 2 * 2 == 6
    assert ops.dense == 4 * 1 * 2 * 3
    torch.testing.assert_close(ops.output, layer(h))


def test_slayer_tiny_training_run_lowers_the_loss(slayer: ModuleType) -> None:
    """In the suite's generic network (training through the backend's fused neuron stages), with sparse weights: the
    loss falls, the delays move and stay in [0, D - 1], pruned weights stay zero."""
    net = network("slayer-axonal", n_inputs=4, n_hidden=(16,), n_outputs=2, kernel_size=9, weight_sparsity=0.3)
    pruned = [layer.weight == 0 for layer in net.layers]
    assert all(0 < int(p.sum()) < p.numel() for p in pruned)
    before = [layer.axon_delay.detach().clone() for layer in net.layers]
    losses = train_losses(net, epochs=4, steps=8, lr=0.02, lr_pos=0.1, gap=2)
    assert losses[-1] < 0.9 * losses[0], losses
    assert all(bool((layer.weight[p] == 0).all()) for layer, p in zip(net.layers, pruned, strict=True))
    assert any(not torch.equal(layer.axon_delay, b) for layer, b in zip(net.layers, before, strict=True))
    assert all(0.0 <= float(layer.axon_delay.detach().min()) <= float(layer.axon_delay.detach().max()) <= 8.0
               for layer in net.layers)


# ---------------------------------------------------------------- DelRec recurrent delays

DELREC = {"n_inputs": 5, "n_hidden": (6, 4), "n_outputs": 3, "kernel_size": 7, "tau": 2.0}


def test_delrec_parameter_counts_by_hand_and_the_published_ssc_size(delrec: ModuleType) -> None:
    net = network("delrec", **DELREC)
    # hidden: W_ff + bias + W_rec + delays + spreads; output: W + bias
    assert [count(layer) for layer in net.layers] == [5 * 6 + 6 + 36 + 6 + 6, 6 * 4 + 4 + 16 + 4 + 4, 4 * 3 + 3]
    assert count(net) == 84 + 52 + 15 == 151
    groups = net.param_groups()
    assert [len(groups[k]) for k in ("weights", "norm", "positions")] == [3 + 3 + 2, 0, 2 + 2]
    # configs/perf_SSC.py: 700 // 5 inputs, three recurrent layers of 256, 35 classes: the paper's "0.37 M"
    ssc = network("delrec", n_inputs=140, n_hidden=(256, 256, 256), n_outputs=35, kernel_size=31)
    assert count(ssc) == (140 * 256 + 256) + 2 * (256 * 256 + 256) + (256 * 35 + 35) + 3 * (256 * 256 + 2 * 256)
    assert count(ssc) == 374_819
    # dense operations per step and effective synapses count the recurrent N^2 synapses too
    with torch.no_grad():
        net.layers[0].recurrent_weights[0, :2] = 0.0
    counts = dense_op_counts(net)
    assert counts["dense_synops_per_step"] == (5 * 6 + 36) + (6 * 4 + 16) + 4 * 3
    assert counts["effective_synapses"] == (5 * 6 + 36 - 2) + (6 * 4 + 16) + 4 * 3


def test_delrec_buffer_bits_by_hand(delrec: ModuleType) -> None:
    net = network("delrec", 1, **DELREC)
    with torch.no_grad():
        net.layers[0].recurrent_delays.copy_(torch.tensor([0.2, 1.6, 6.0, 2.4, 0.5, 3.5]))  # rounds 0 2 6 2 0 4
        net.layers[1].recurrent_delays.copy_(torch.tensor([5.0, 0.0, 1.0, 2.6]))  # 5 0 1 3
    hard = net.hard_copy()
    bufs = [net.kind.buffers(layer, i, 32, 32) for i, layer in enumerate(hard.layers)]
    # one 1-bit spike line per recurrent source neuron: D = 7 deep allocated, 1 + its own delay deep learned
    assert [b.allocated_bits for b in bufs] == [6 * 7, 4 * 7, 0]
    assert [b.learned_bits for b in bufs] == [6 + (0 + 2 + 6 + 2 + 0 + 4), 4 + (5 + 0 + 1 + 3), 0] == [20, 13, 0]
    assert [b.site for b in bufs] == ["recurrent", "recurrent", "none"]
    assert [(b.stored_delay_values, b.stored_delay_value_bits) for b in bufs] == [(6, 18), (4, 12), (0, 0)]
    assert [b.buffered_lines for b in bufs] == [6, 4, 0]
    report = buffer_bits(hard)
    assert (report["allocated_bits"], report["learned_bits"]) == (70, 33)
    assert report["delay_sites"] == ["recurrent", "recurrent", "none"]
    for sizing, bits in (("allocated", [42, 28, 0]), ("learned", [20, 13, 0])):
        executor = StreamingExecutor.from_model(hard, sizing)
        assert executor.buffer_bits_per_layer() == bits
        # real bytes per stream: bit-packed rings + one float32 membrane per neuron, the documented formula
        state = sum(math.ceil(b / 8) for b in bits) + 4 * (6 + 4 + 3)
        assert executor.state_bytes() == state == streaming_state_bytes(hard, sizing)


def spiking_delrec(seed: int) -> DelayNetwork:
    net = network("delrec", seed, **DELREC)
    with torch.no_grad():
        for layer in net.layers[:-1]:
            layer.linear.weight.mul_(4.0)
            layer.recurrent_delays.uniform_(0.0, 6.0)
    return net


@pytest.mark.parametrize("sizing", ["allocated", "learned"])
def test_delrec_streaming_equals_batch(delrec: ModuleType, sizing: Sizing) -> None:
    hard = spiking_delrec(2).hard_copy()
    bits = assert_streams_like_batch(hard, torch.rand(25, 3, 5), sizing)
    assert bits == buffer_bits(hard)[f"{sizing}_bits_per_layer"]


def test_delrec_hard_forward_is_the_soft_kernel_at_zero_spread(delrec: ModuleType) -> None:
    """sigma = 0 and integer delays: the training path's triangle is one step wide, so both paths give one spike
    train (the hard path reads y[t - 1 - d] directly; the soft one moves a window of future inputs)."""
    hard = spiking_delrec(4).hard_copy()
    soft = copy.deepcopy(hard)
    for layer in soft.layers[:-1]:
        layer.hard.fill_(False)
    x = torch.rand(25, 3, 5)
    hidden_hard: list[torch.Tensor] = []
    hidden_soft: list[torch.Tensor] = []
    with torch.no_grad():
        torch.testing.assert_close(soft(x, hidden_soft), hard(x, hidden_hard), atol=1e-5, rtol=0)
    assert all(torch.equal(a, b) for a, b in zip(hidden_soft, hidden_hard, strict=True))


def original_axonal_recdel(layer: nn.Module, current: torch.Tensor) -> torch.Tensor:
    """alexmaxad/DelRec src/recurrent_neurons.py ``axonal_recdel.multi_step_forward`` (lines 70-123), dropout off,
    its spikingjelly LIFNode(decay_input=False, v_reset=None) written out: the in-place ring with a pointer."""
    from suite_delrec.kind import TriangleSpike

    t_len, batch, n = current.shape
    w = layer.recurrent_weights.unsqueeze(0)
    d = layer.recurrent_delays
    s = 1.0 + 2.0 * layer.sigma * torch.sigmoid(layer.p_spread)
    s_max = s.max()
    s = s.unsqueeze(1)
    length = int(torch.ceil(1.0 + torch.max(d) + s_max).item()) + 1
    support = torch.arange(length, dtype=current.dtype)
    mask = (torch.clamp(s - torch.abs(support[None, :] - (1.0 + d)[:, None]), min=0.0) / (s * s)).unsqueeze(0)
    buffer = torch.zeros(batch, n, length, dtype=current.dtype)
    pointer = 0
    v = torch.zeros(batch, n, dtype=current.dtype)
    out = []
    for t in range(t_len):
        rec_now = buffer[:, :, pointer]
        v = v - (v - 0.0) / layer.neuron.tau + (current[t] + rec_now)
        y = TriangleSpike.apply(v - layer.neuron.v_threshold)
        v = v - y * layer.neuron.v_threshold
        x_rec = torch.matmul(w, y.unsqueeze(2) * mask)
        buffer[:, :, pointer] = 0.0
        pointer = (pointer + 1) % length
        first = min(length - 1, length - pointer)
        if first > 0:
            buffer[:, :, pointer:pointer + first].add_(x_rec[:, :, 1:1 + first])
        remaining = length - 1 - first
        if remaining > 0:
            buffer[:, :, 0:remaining].add_(x_rec[:, :, 1 + first:1 + first + remaining])
        out.append(y)
    return torch.stack(out)


def test_delrec_training_path_and_delay_gradients_match_the_original(delrec: ModuleType) -> None:
    torch.manual_seed(5)
    spec = ModelSpec(delay_type="delrec", dropout=0.0, **DELREC)
    layer = delrec.DelRecKind(recurrent_dropout=0.0).build_layer(5, 6, spec, "torch", False).double()
    with torch.no_grad():
        layer.linear.weight.mul_(4.0)
        layer.p_spread.uniform_(-1.0, 1.0)
        layer.sigma.fill_(1.5)
    x = torch.rand(30, 2, 5, dtype=torch.float64)
    probe = torch.randn(30, 2, 6, dtype=torch.float64)
    grads = []
    for forward in (layer, lambda inp: original_axonal_recdel(layer, layer.linear(inp))):
        layer.zero_grad()
        out = forward(x)
        (out * probe).sum().backward()
        grads.append((out.detach(), layer.recurrent_delays.grad.clone(), layer.p_spread.grad.clone(),
                      layer.recurrent_weights.grad.clone()))
    (ours, *our_grads), (theirs, *their_grads) = grads
    assert 0.05 < float(ours.mean()) < 0.95
    assert torch.equal(ours, theirs)
    for a, b in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    assert float(our_grads[0].abs().max()) > 0 and float(our_grads[1].abs().max()) > 0


def test_delrec_kernel_gradient_matches_finite_differences(delrec: ModuleType) -> None:
    """Delays enter the model only through the triangular kernel, which is piecewise linear in d and s: away from its
    kinks autograd and a central difference agree."""
    d = torch.tensor([0.3, 2.45, 4.7], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([1.25, 2.2, 1.05], dtype=torch.float64, requires_grad=True)
    probe = torch.randn(3, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(dd: torch.Tensor, ss: torch.Tensor) -> torch.Tensor:
        return (delrec.kind.recurrent_kernel(dd, ss)[:, :9] * probe).sum()

    loss(d, s).backward()
    eps = 1e-6
    for var, grad in ((d, d.grad), (s, s.grad)):
        for i in range(3):
            step = torch.zeros(3, dtype=torch.float64)
            step[i] = eps
            plus = loss(d + step, s) if var is d else loss(d, s + step)
            minus = loss(d - step, s) if var is d else loss(d, s - step)
            assert float(grad[i]) == pytest.approx(float((plus - minus).detach()) / (2 * eps), abs=1e-6)
    assert float(d.grad.abs().min()) > 0


def test_delrec_operations_count_arrivals_within_the_sequence(delrec: ModuleType) -> None:
    hard = spiking_delrec(6).hard_copy()
    layer = hard.layers[0]
    x = torch.rand(16, 2, 5)
    ops = hard.kind.operations(layer, x)
    out = layer(x)
    torch.testing.assert_close(ops.output, out)
    ff = sum(int((x[:, :, i] != 0).sum()) * int((layer.linear.weight[:, i] != 0).sum()) for i in range(5))
    arrive = 1 + layer.integer_delays()
    rec = sum(int((out[: 16 - int(arrive[n]), :, n] != 0).sum()) * int((layer.recurrent_weights[:, n] != 0).sum())
              for n in range(6))
    assert rec > 0 and ops.effective == ff + rec
    assert ops.dense == 16 * 2 * (5 * 6 + 6 * 6)
    report = synaptic_operations(hard, x)  # the network report asks the kind, layer by layer, per sample
    assert report["effective_synops_per_layer"][0] == (ff + rec) / 2
    assert report["dense_synops_per_layer"] == [16 * (5 * 6 + 6 * 6), 16 * (6 * 4 + 4 * 4), 16 * 4 * 3]
    assert report["spikes_per_sample_per_layer"][0] == int(out.sum()) / 2


def test_delrec_end_epoch_rounds_delays_and_shrinks_sigma_as_released(delrec: ModuleType) -> None:
    net = network("delrec", **DELREC)
    kind, layer = net.kind, net.layers[0]
    with torch.no_grad():
        layer.recurrent_delays.copy_(torch.tensor([0.4, 1.6, 7.3, 2.5, 3.49, -0.2]))
    kind.after_step(layer)
    assert layer.recurrent_delays.tolist() == pytest.approx([0.4, 1.6, 6.0, 2.5, 3.49, 0.0])
    kind.end_epoch(layer, net.spec, 0, 50)
    assert layer.recurrent_delays.tolist() == [0.0, 2.0, 6.0, 2.0, 3.0, 0.0]
    assert float(layer.sigma) == pytest.approx(10.0 * 0.95 ** 2)  # decay per epoch 0.95^(100 / 50), epoch 1
    lags = math.ceil(1 + 6 + float(layer.spread().detach().max()))  # L - 1 of the kernel: 1 + max d + max s
    assert kind.training_macs_per_step(layer) == 5 * 6 + 6 * 6 * lags


def test_delrec_tiny_training_run_lowers_the_loss(delrec: ModuleType) -> None:
    net = network("delrec", n_inputs=4, n_hidden=(16,), n_outputs=2, kernel_size=9, tau=2.0)
    before = net.layers[0].recurrent_delays.detach().clone()
    losses = train_losses(net, epochs=4, steps=6, lr=0.02, lr_pos=0.05, gap=5)
    assert losses[-1] < 0.9 * losses[0], losses
    assert not torch.equal(net.layers[0].recurrent_delays, before)


@pytest.mark.parametrize(("kind", "field", "message"), [
    ("slayer-axonal", "delay_sparsity", "delay sparsity needs axonal or dendritic delays, not 'slayer-axonal'"),
    ("delrec", "delay_sparsity", "delay sparsity needs axonal or dendritic delays, not 'delrec'"),
    ("delrec", "weight_sparsity", "kind 'delrec' has no sparse form, got 0.5 (expected 0)"),
])
def test_sparse_specs_the_kind_cannot_build_are_refused_naming_the_key(
        kinds_registered: None, kind: str, field: str, message: str) -> None:
    with pytest.raises(SuiteError) as err:
        ModelSpec(delay_type=kind, **{field: 0.5})
    assert str(err.value) == f"model.{field}: {message}"


# ---------------------------------------------------------------- installed as a user installs them

def write_dist_infos(folder: Path) -> None:
    """What ``pip install`` leaves for each example package: a .dist-info with its ``suite.variants`` entry point."""
    for project, module, _ in PACKAGES.values():
        dist_info = folder / f"{module}-0.1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project}\nVersion: 0.1.0\n")
        entry = project.removeprefix("suite-")
        (dist_info / "entry_points.txt").write_text(f"[suite.variants]\n{entry} = {module}:register\n")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What ``pip install examples/suite-slayer-delays examples/suite-delrec`` provides: each package on sys.path and
    its entry-point metadata, discovered through importlib.metadata like any installed distribution. The kinds
    this module registered by hand make way for the packages' own registration, and come back afterwards."""
    write_dist_infos(tmp_path)
    for project, _, _ in PACKAGES.values():
        monkeypatch.syspath_prepend(str(EXAMPLES / project / "src"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_VARIANTS", dict(registry._VARIANTS))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    before = registered_kinds()
    for name in ("slayer-axonal", "delrec"):
        unregister_kind(name)
    yield
    for name in ("slayer-axonal", "delrec"):
        unregister_kind(name)
        if name in before:
            register_kind(before[name])


def _schema_enumerates_kinds() -> bool:
    """Whether the run-record schema still lists the built-in kinds as the only delay types (then the record of a
    plug-in kind cannot validate; branch 'kinds' opens it to any registered name)."""
    schema = json.loads((Path(suite.__file__).parent / "schemas" / "run-record.schema.json").read_text())
    return "enum" in schema["properties"]["model_spec"]["properties"]["delay_type"]


@pytest.mark.skipif(_schema_enumerates_kinds(), reason="suite/schemas/run-record.schema.json enumerates the built-in "
                    "delay kinds, so a plug-in kind's record cannot validate (opened on branch 'kinds')")
@pytest.mark.parametrize(("key", "params", "allocated"), [
    # tiny protocol (35 -> 8 -> 10, D = 5): delays + weights + BatchNorm; output delays + weights. Buffers: 35 lines
    # of 4 x 32-bit inputs, 8 lines of 4 spikes (the cap stays at D - 1: 9 steps in all, far below 150)
    ("slayer", (35 + 35 * 8 + 2 * 8) + (8 + 8 * 10), 35 * 4 * 32 + 8 * 4),
    # W_ff + bias + W_rec + delays + spreads; output W + bias. Buffers: 8 recurrent lines of D = 5 spikes
    ("delrec", (35 * 8 + 8 + 64 + 8 + 8) + (8 * 10 + 10), 8 * 5),
])
def test_installed_kind_trains_on_the_tiny_protocol_and_reaches_the_leaderboard(
        installed: None, tmp_path: Path, tiny_protocol_path: Path, data_cache: Path, key: str, params: int,
        allocated: int) -> None:
    from suite.report import build_leaderboard
    from suite.specs import RunSpec
    from suite.train import run_training

    project, _, variant = PACKAGES[key]
    found = registry.variants()
    assert variant in found and found[variant].origin == project
    protocol = registry.get_protocol(str(tiny_protocol_path))
    record = run_training(RunSpec(variant, "tiny"), tmp_path, cache_dir=data_cache, protocol=protocol)
    metrics = record["metrics"]
    assert metrics["params_trainable"] == params
    assert metrics["buffer_allocated_bits"] == allocated
    assert 0 <= metrics["buffer_learned_bits"] <= allocated
    frames, warnings = build_leaderboard(tmp_path)
    assert not warnings
    assert variant in set(frames["tiny"]["variant"])
