"""The delay-kind registry and the model contract: incomplete kinds, taken names and broken models are refused at
registration with the member named; a kind defined outside the suite (a fixed integer delay, registered through the
``suite.variants`` entry point) builds, trains, reports buffers and synaptic operations through the kind interface
and streams equal to its batch forward."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from suite import kinds, registry
from suite.errors import SuiteError
from suite.kinds.base import DelayKind
from suite.metrics import static_metrics, synaptic_operations
from suite.metrics.buffers import buffer_bits
from suite.metrics.latency import make_train_step
from suite.models.contract import DelayModel, missing_members
from suite.models.network import DelayNetwork
from suite.specs import ModelSpec
from suite.streaming import StreamingExecutor, streaming_state_bytes

PLUGIN = '''
"""A plug-in kind: every presynaptic line i of a layer delayed by a fixed i mod D steps (not learned)."""

import torch
from torch.nn import functional as F

from suite.kinds import register_kind
from suite.kinds.base import LayerBuffers
from suite.kinds.common import NeuronKind, delay_value_bits, weighted_operations
from suite.kinds.layers import NeuronLayer
from suite.kinds.rings import DelayLines, NeuronStreamingLayer
from suite.registry import register_variant


class FixedLayer(NeuronLayer):
    def build_synapses(self, spec, backend):
        super().build_synapses(spec, backend)
        self.register_buffer("delays", torch.arange(self.n_in) % spec.kernel_size)
        self.kernel_size = spec.kernel_size

    def project(self, x):
        shifted = torch.stack([F.pad(x[:, :, i], (0, 0, int(d), 0))[: x.shape[0]]
                               for i, d in enumerate(self.delays)], dim=2)
        return self.linear(shifted)


class FixedStream(NeuronStreamingLayer):
    def __init__(self, layer, device, sizing, bits):
        depth = torch.full_like(layer.delays, layer.kernel_size - 1) if sizing == "allocated" else layer.delays
        super().__init__(layer, device, DelayLines(layer.delays.cpu(), depth.cpu(), bits, device))

    def current(self, u, t, t_in):
        return F.linear(self.ring.step(u, t), self.weight)


class FixedKind(NeuronKind):
    name = "fixed-int"
    label = "fixed integer delay per presynaptic line"
    site = "pre"
    layer_class = FixedLayer

    def harden(self, layer):
        return

    def buffers(self, layer, index, input_bits, acc_bits):
        bits = input_bits if index == 0 else 1
        k, n = layer.kernel_size, layer.n_in
        return LayerBuffers(self.site, n * (k - 1) * bits, int(layer.delays.sum()) * bits, n, bits, n,
                            n * delay_value_bits(k), {"fixed_lines": n})

    def operations(self, layer, h):
        return weighted_operations(layer, h, torch.stack([F.pad(h[:, :, i], (0, 0, int(d), 0))[: h.shape[0]]
                                                          for i, d in enumerate(layer.delays)], dim=2))

    def training_macs_per_step(self, layer):
        return layer.n_in * layer.n_out

    def streaming_layer(self, layer, index, sizing, device):
        return FixedStream(layer, device, sizing, index > 0)


def register():
    register_kind(FixedKind)
    register_variant("fixed-int", description="fixed integer delays (test plug-in)", delay_type="fixed-int")
'''

BROKEN = '''
from torch import nn

from suite.kinds import register_kind
from suite.registry import register_variant
from fixed_int_kind import FixedKind


class OtherKind(FixedKind):
    name = "other-int"


class NoHardCopy(nn.Module):
    def __init__(self, spec, backend):
        super().__init__()
        self.spec, self.backend, self.layers = spec, backend, nn.ModuleList()

    def forward(self, x, spikes=None):
        return x

    param_groups = after_step = end_epoch = output_length = delay_modules = forward


def register():
    register_kind(OtherKind)
    register_variant("other-int", description="breaks the contract", delay_type="other-int",
                     builder=NoHardCopy)
'''


def _install(tmp_path: Path, dist: str, module: str, source: str) -> None:
    """What ``pip install`` of a plug-in provides: the module on sys.path and its entry-point metadata."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist_info = tmp_path / f"{module}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[suite.variants]\n{dist} = {module}:register\n")


@pytest.fixture
def fresh_registries(monkeypatch: pytest.MonkeyPatch):
    """Registries that forget this test's registrations and rediscover entry points."""
    kinds.registered_kinds()
    monkeypatch.setattr(registry, "_VARIANTS", dict(registry._VARIANTS))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    yield
    for module in ("fixed_int_kind", "broken_int_kind"):
        sys.modules.pop(module, None)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registries: None) -> None:
    _install(tmp_path, "fixed-int-kind", "fixed_int_kind", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))


class Incomplete(DelayKind):
    name = "incomplete"
    label = "lacks most of the interface"

    def build_layer(self, n_in, n_out, spec, backend, is_output):
        return nn.Linear(n_in, n_out)


def test_incomplete_kind_is_refused_naming_the_missing_members(fresh_registries: None) -> None:
    with pytest.raises(SuiteError) as err:
        kinds.register_kind(Incomplete)
    message = str(err.value)
    assert "\n" not in message and message.startswith("delay kind Incomplete is incomplete: missing ")
    for member in ("buffers", "harden", "operations", "output_length", "streaming_layer", "training_macs_per_step"):
        assert member in message
    assert "build_layer" not in message

    class Nameless(Incomplete):
        name = ""
        label = "no name"

    with pytest.raises(SuiteError, match=r"Nameless is incomplete: missing .*\bname\b"):
        kinds.register_kind(Nameless)
    with pytest.raises(SuiteError, match="delay kind object is incomplete: missing the DelayKind base class"):
        kinds.register_kind(object())  # type: ignore[arg-type]
    assert "incomplete" not in kinds.registered_kinds()


def test_taken_kind_name_is_refused(fresh_registries: None) -> None:
    axonal = kinds.get_kind("axonal")
    with pytest.raises(SuiteError, match=r"^delay kind 'axonal' is already registered \(AxonalKind\)$"):
        kinds.register_kind(type(axonal))
    assert kinds.get_kind("axonal") is axonal


def test_unknown_kind_is_a_one_line_spec_error() -> None:
    with pytest.raises(SuiteError, match=r"^model\.delay_type: 'somatic' is not one of \('none', 'synaptic', "
                                         r"'axonal', 'dendritic'"):
        ModelSpec(delay_type="somatic")
    with pytest.raises(SuiteError, match=r"^unknown delay kind 'somatic'; registered: none, synaptic"):
        kinds.get_kind("somatic")


class LacksHardCopy(nn.Module):
    """A model with every member but ``hard_copy``, and a layer without ``is_output``."""

    def __init__(self, spec: ModelSpec, backend: str) -> None:
        super().__init__()
        self.spec, self.backend = spec, backend
        self.layers = nn.ModuleList([nn.Linear(spec.n_inputs, spec.n_outputs)])

    def forward(self, x: torch.Tensor, spikes: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.layers[0](x)

    param_groups = after_step = end_epoch = output_length = delay_modules = forward


def test_variant_breaking_the_model_contract_is_refused_at_registration(fresh_registries: None) -> None:
    with pytest.raises(SuiteError) as err:
        registry.register_variant("lacks-hard-copy", description="x", delay_type="axonal", builder=LacksHardCopy)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("variant 'lacks-hard-copy' (from suite): its builder returned LacksHardCopy lacking "
                              "hard_copy, layers[0].n_in, layers[0].n_out, layers[0].is_output, expected")
    assert "lacks-hard-copy" not in registry._VARIANTS
    assert missing_members(DelayNetwork(ModelSpec(n_inputs=3, n_hidden=(4,), n_outputs=2, kernel_size=3))) == []
    assert missing_members(object()) == ["torch.nn.Module base class"]

    def fails(spec: ModelSpec, backend: str) -> nn.Module:
        raise RuntimeError("no GPU\nhere")

    with pytest.raises(SuiteError, match=r"^variant 'fails' \(from suite\): its builder failed: RuntimeError: no "
                                         r"GPU here$"):
        registry.register_variant("fails", description="x", delay_type="axonal", builder=fails)


def test_broken_plugin_kind_is_one_warning_and_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       plugin: None, capsys: pytest.CaptureFixture[str]) -> None:
    _install(tmp_path, "broken-int-kind", "broken_int_kind", BROKEN)
    found = registry.variants()
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "plug-in broken-int-kind (entry point broken-int-kind = broken_int_kind:register" in err
    assert "its builder returned NoHardCopy lacking hard_copy," in err
    assert "other-int" not in found and "other-int" not in kinds.kinds()  # the kind it registered is undone
    assert "fixed-int" in found and "fixed-int" in kinds.kinds()  # the working plug-in is unaffected
    assert kinds.get_kind("fixed-int").label == "fixed integer delay per presynaptic line"


def _fixed_model(kernel_size: int = 4 + 1) -> DelayNetwork:
    spec = registry.resolve_model_spec("fixed-int", registry.get_protocol("ssc-mini"),
                                       {"n_hidden": [8, 7], "kernel_size": kernel_size})
    assert spec.delay_type == "fixed-int"
    torch.manual_seed(0)
    model = registry.get_variant("fixed-int").build(spec, "torch")
    assert isinstance(model, DelayModel)
    return model  # type: ignore[return-value]


def test_plugin_kind_builds_trains_and_reports_through_the_interface(plugin: None) -> None:
    model = _fixed_model()
    n_in = model.spec.n_inputs
    assert [type(layer).__name__ for layer in model.layers] == ["FixedLayer"] * 3
    assert model.output_length(20) == 20
    x = (torch.rand(20, 4, n_in) < 0.3).float()
    labels = torch.tensor([0, 1, 2, 3])
    before = model.layers[0].linear.weight.detach().clone()
    step = make_train_step(model, x, labels)
    loss = step()
    assert torch.isfinite(torch.tensor(loss))
    assert not torch.equal(before, model.layers[0].linear.weight)  # one optimiser step moved the weights
    assert len(step.optimisers) == 1  # no positions group: nothing of the kind is learned but the weights

    bits = buffer_bits(model)
    delays = [layer.delays for layer in model.layers]
    sizes = [n_in, 8, 7]
    assert bits["delay_sites"] == ["pre", "pre", "pre"]
    assert bits["allocated_bits_per_layer"] == [n_in * 4 * 32, 8 * 4 * 1, 7 * 4 * 1]
    assert bits["learned_bits_per_layer"] == [int(delays[0].sum()) * 32, int(delays[1].sum()), int(delays[2].sum())]
    assert bits["fixed_lines"] == sum(sizes)  # a kind's extras are summed by key
    assert bits["synaptic_spike_line_bits"] == 0 and bits["stored_delay_values"] == sum(sizes)
    static = static_metrics(model.hard_copy())
    assert static["training_conv_macs_per_step"] == n_in * 8 + 8 * 7 + 7 * model.spec.n_outputs

    ops = synaptic_operations(model, x)
    shifted = torch.stack([torch.nn.functional.pad(x[:, :, i], (0, 0, int(d), 0))[:20]
                           for i, d in enumerate(delays[0])], dim=2)
    weight = model.layers[0].linear.weight.detach()
    first = int(((shifted != 0).sum(dim=(0, 1)) * (weight != 0).sum(dim=0)).sum())
    assert ops["effective_synops_per_layer"][0] == first / 4
    assert ops["Effective_ACs"] > first / 4 and ops["Effective_MACs"] == 0  # every layer's input is spikes


@pytest.mark.parametrize("sizing", ["allocated", "learned"])
def test_plugin_kind_streams_equal_to_its_batch_forward(plugin: None, sizing: str) -> None:
    model = _fixed_model()
    with torch.no_grad():  # BatchNorm statistics of a real pass, so that the folded affine is not the identity
        model.train()
        for layer in model.layers:
            if layer.norm is not None:
                layer.norm.momentum = 1.0
        model(torch.rand(20, 4, model.spec.n_inputs) * 2)
    hard = model.hard_copy()
    x = torch.rand(20, 3, model.spec.n_inputs) * 2
    batch_spikes: list[torch.Tensor] = []
    with torch.no_grad():
        expected = hard(x, spikes=batch_spikes)
    assert all(0.0 < float(s.mean()) < 1.0 for s in batch_spikes)
    executor = StreamingExecutor.from_model(hard, sizing)  # type: ignore[arg-type]
    stream_spikes: list[torch.Tensor] = []
    out = executor.run(x, spikes=stream_spikes)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    for got, want in zip(stream_spikes, batch_spikes, strict=True):
        assert torch.equal(got, want)
    assert executor.buffer_bits() == buffer_bits(hard)[f"{sizing}_bits"]
    assert executor.state_bytes() == streaming_state_bytes(hard, sizing)  # type: ignore[arg-type]


def test_plugin_kind_runs_and_reaches_the_leaderboard(plugin: None, tmp_path: Path, tiny_protocol_path: Path,
                                                       data_cache: Path) -> None:
    """The runner trains the plug-in kind and records its metrics through the kind interface."""
    from suite.report import build_leaderboard
    from suite.specs import RunSpec
    from suite.train import run_training

    protocol = registry.get_protocol(str(tiny_protocol_path))
    record = run_training(RunSpec("fixed-int", "tiny"), tmp_path, cache_dir=data_cache, protocol=protocol)
    metrics = record["metrics"]
    assert record["model_spec"]["delay_type"] == "fixed-int"
    n_in = record["model_spec"]["n_inputs"]
    assert metrics["params_trainable"] == n_in * 8 + 8 * 10 + 2 * 8  # weights and BatchNorm: no delay is learned
    assert metrics["buffer_delay_sites"] == ["pre", "pre"]
    assert metrics["buffer_allocated_bits"] == n_in * 4 * 32 + 8 * 4 * 1  # D = 5: every line 4 deep
    assert metrics["buffer_fixed_lines"] == n_in + 8
    assert metrics["Effective_ACs"] + metrics["Effective_MACs"] > 0
    frames, warnings = build_leaderboard(tmp_path)
    assert not warnings
    row = frames["tiny"][frames["tiny"]["variant"] == "fixed-int"]
    assert len(row) == 1 and int(row["D"].iloc[0]) == 5


def test_learned_delays_of_a_plugin_kind_count_as_positions(plugin: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind's ``positions`` group is what the parameter metric counts as positions, whatever module holds it."""
    from suite.kinds.common import NeuronKind
    from suite.metrics import count_parameters

    model = _fixed_model()
    model.layers[0].register_parameter("steps", nn.Parameter(torch.zeros(5)))
    assert (count_parameters(model)["other"], count_parameters(model)["positions"]) == (5, 0)

    def with_steps(self: NeuronKind, layer: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {**NeuronKind.param_groups(self, layer), "positions": [p for n, p in layer.named_parameters()
                                                                      if n == "steps"]}

    monkeypatch.setattr(type(kinds.get_kind("fixed-int")), "param_groups", with_steps)
    counts = count_parameters(model)
    assert (counts["other"], counts["positions"], counts["effective_positions"]) == (0, 5, 5)
    assert counts["trainable"] == sum(p.numel() for p in model.parameters())


def test_registration_check_leaves_the_random_state_alone_and_names_bad_defaults(fresh_registries: None) -> None:
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    registry.register_variant("axonal-built", description="x", delay_type="axonal", builder=DelayNetwork)
    assert torch.equal(torch.rand(3), expected)  # the tiny build drew from a forked random state
    with pytest.raises(SuiteError, match=r"^variant 'bad-defaults' \(from suite\): its defaults are not a valid "
                                         r"model: model\.delay_sparsity: delay sparsity needs axonal or dendritic "
                                         r"delays, not 'synaptic'$"):
        registry.register_variant("bad-defaults", description="x", delay_type="synaptic", delay_sparsity=0.5)
    assert "bad-defaults" not in registry._VARIANTS
