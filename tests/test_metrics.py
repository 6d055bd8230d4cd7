"""Metrics: parameter counts, synaptic operations (hand-computed and against NeuroBench), memory, latency, tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from suite.metrics import count_parameters, runtime_metrics, static_metrics, synaptic_operations
from suite.metrics.memory import _measure, measure_in_subprocess
from suite.metrics.table import paper_architecture_table
from suite.models.lif import LIF
from suite.models.network import DelayNetwork
from suite.specs import ModelSpec
from suite.timing import time_callable

PAPER_GSC = {"n_inputs": 40, "n_hidden": (512, 512, 512), "n_outputs": 35}


def tiny(delay_type: str = "axonal", **kw) -> DelayNetwork:
    spec = ModelSpec(variant=delay_type, delay_type=delay_type, **{"n_inputs": 6, "n_hidden": (8, 7), "n_outputs": 5,
                                                                   "kernel_size": 5, **kw})
    return DelayNetwork(spec)


# ---------------------------------------------------------------- parameters

@pytest.mark.parametrize(("delay_type", "total", "positions"),
                         [("synaptic", 1_128_448, 562_688), ("axonal", 567_336, 40 + 3 * 512),
                          ("dendritic", 567_331, 3 * 512 + 35), ("none", 565_760, 0)])
def test_paper_parameter_counts(delay_type: str, total: int, positions: int) -> None:
    net = DelayNetwork(ModelSpec(variant=delay_type, delay_type=delay_type, kernel_size=3, **PAPER_GSC))
    counts = count_parameters(net)
    assert counts["trainable"] == counts["effective"] == total
    assert counts["positions"] == positions
    assert counts["norm"] == 3072
    assert counts["weights"] == 40 * 512 + 2 * 512 * 512 + 512 * 35 == 562_688
    assert counts["weights"] + counts["positions"] + counts["norm"] + counts["other"] == total


def test_effective_parameters_honour_sparsity_masks() -> None:
    torch.manual_seed(3)
    net = tiny("axonal", weight_sparsity=0.5, delay_sparsity=0.5, passthrough="zero")
    counts = count_parameters(net)
    nnz = sum(int(torch.count_nonzero(layer.weight)) for layer in net.layers)
    active = sum(int(layer.delay.delay_mask.sum()) for layer in net.layers)
    assert counts["effective_weights"] == nnz < counts["weights"] == 6 * 8 + 8 * 7 + 7 * 5
    assert counts["effective_positions"] == active < counts["positions"] == 6 + 8 + 7
    assert counts["effective"] == nnz + active + 2 * (8 + 7)
    synaptic = tiny("synaptic", weight_sparsity=0.5)
    counts = count_parameters(synaptic)
    nnz = sum(int(torch.count_nonzero(layer.weight)) for layer in synaptic.layers)
    assert counts["effective_weights"] == counts["effective_positions"] == nnz  # a pruned synapse has no delay
    net.layers[0].linear.weight.requires_grad_(False)
    assert count_parameters(net)["trainable"] == 6 + 8 + 7 + 8 * 7 + 7 * 5 + 30


# ---------------------------------------------------------------- synaptic operations, hand-computed

def test_synops_hand_computed_no_delay() -> None:
    """2-2-1 net without delays or BN. Layer 1 (real inputs, MACs): t0 input 0 reaches 2 non-zero weights, t2 inputs
    0 and 1 reach 2 + 1 -> 5 MACs. LIF (decay 1/3, thr 1): currents [2, 1], [0, 0], [1, 1] -> spikes at t0 and t2 in
    both neurons: 4 spikes of 6 slots. Layer 2 (ACs): 4 spikes x 1 weight = 4. Dense: 3*2*2 + 3*2*1 = 18."""
    net = tiny("none", n_inputs=2, n_hidden=(2,), n_outputs=1, batchnorm=False)
    with torch.no_grad():
        net.layers[0].linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
        net.layers[1].linear.weight.copy_(torch.tensor([[1.0, 1.0]]))
    x = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]]])
    ops = synaptic_operations(net, x)
    assert ops["Effective_MACs"] == 5
    assert ops["Effective_ACs"] == 4
    assert ops["Dense"] == 18
    assert ops["spikes_per_sample"] == 4
    assert ops["ActivationSparsity"] == pytest.approx(1 / 3)
    assert ops["synops_kind_per_layer"] == ["MAC", "AC"]


def test_synops_hand_computed_synaptic_delays() -> None:
    """2-2-1 synaptic net, D = 3 (each layer adds 1 step), delays [[0, 1], [2, 0]], weights [[1, 1], [1, 0]].
    Binary input x = [1,0], [0,1], [1,1] (T = 3, T_out = 4). One tap per synapse and output step:
    (0,0) d0 reads x0 at t = 0, 2 -> 2; (0,1) d1 reads x1[t-1] at t = 2, 3 -> 2; (1,0) d2 reads x0[t-2] at t = 2 (t = 4
    is past the end) -> 1; (1,1) has weight 0 -> 0. Layer 1: 5 ACs, dense 4*2*2 = 16. Currents n0 = [1, 0, 2, 1] ->
    spikes [1, 0, 1, 1]; n1 = [0, 0, 1, 0] -> [0, 0, 1, 0]: 4 spikes of 8. Layer 2 (delays 0, weights 1): 4 ACs,
    dense 5*2*1 = 10."""
    net = tiny("synaptic", n_inputs=2, n_hidden=(2,), n_outputs=1, kernel_size=3, batchnorm=False)
    with torch.no_grad():  # delay = 1 - P
        net.layers[0].delay.P.copy_(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
        net.layers[0].delay.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        net.layers[1].delay.P.copy_(torch.tensor([[1.0, 1.0]]))
        net.layers[1].delay.weight.copy_(torch.tensor([[1.0, 1.0]]))
    x = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]])
    ops = synaptic_operations(net, x)
    assert ops["effective_synops_per_layer"] == [5, 4]
    assert ops["Effective_ACs"] == 9 and ops["Effective_MACs"] == 0
    assert ops["dense_synops_per_layer"] == [16, 10] and ops["Dense"] == 26
    assert ops["spikes_per_sample"] == 4
    assert ops["ActivationSparsity"] == 0.5


def test_synops_with_lengths_count_each_sample_alone() -> None:
    torch.manual_seed(0)
    net = tiny("axonal", delay_sparsity=0.5, passthrough="official")
    x = torch.rand(9, 3, 6) * 2
    lengths = torch.tensor([9, 5, 7])
    x[5:, 1] = 0
    x[7:, 2] = 0
    together = synaptic_operations(net, x, lengths)
    alone = [synaptic_operations(net, x[: int(n), b : b + 1]) for b, n in enumerate(lengths)]
    for key in ("Effective_MACs", "Effective_ACs", "Dense", "spikes_per_sample"):
        assert together[key] == pytest.approx(sum(a[key] for a in alone) / 3)
    assert together["input_steps_per_sample"] == 7


# ---------------------------------------------------------------- NeuroBench parity

class _BatchFirst(nn.Module):
    """NeuroBench feeds (batch, time, features); our network is time-major."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(0, 1)).transpose(0, 1)


def test_synops_match_neurobench_on_linear_lif() -> None:
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    torch.manual_seed(0)
    net = tiny("none", weight_sparsity=0.3).eval()
    for layer in net.layers:
        if layer.norm is not None:
            with torch.no_grad():
                layer.norm.bias.uniform_(0.2, 0.8)
    x = torch.rand(10, 4, 6) * 2  # (T, B, C), real-valued: layer 1 does MACs
    ours = synaptic_operations(net, x)
    assert ours["spikes_per_sample"] > 0
    model = TorchModel(_BatchFirst(net))
    model.add_activation_module(LIF)
    data = torch.utils.data.TensorDataset(x.transpose(0, 1), torch.zeros(4))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    bench = Benchmark(model, loader, [], [], [[], [SynapticOperations, ActivationSparsity]])
    theirs = bench.run(quiet=True)
    assert theirs["SynapticOperations"]["Effective_MACs"] == ours["Effective_MACs"]
    assert theirs["SynapticOperations"]["Effective_ACs"] == ours["Effective_ACs"]
    assert theirs["SynapticOperations"]["Dense"] == ours["Dense"]
    assert theirs["ActivationSparsity"] == pytest.approx(ours["ActivationSparsity"], abs=1e-12)


# ---------------------------------------------------------------- memory and latency

@pytest.mark.parametrize("n_bytes", [24_000_000, 40_000_000])
def test_memory_subprocess_protocol(n_bytes: int) -> None:
    """The fresh-process measurement (JSON over stdin/stdout, glibc mmap threshold fixed) on a known allocation.

    Always in a fresh process: this one may already have let glibc keep freed memory (``suite.runtime``), after which
    an allocation can reuse resident pages and no in-process RSS measurement sees it.
    """
    answer = measure_in_subprocess({"mode": "probe", "bytes": n_bytes}, timeout=120)
    assert answer["method"] in ("rss-hwm-reset", "ru_maxrss-delta")
    assert abs(answer["peak_bytes"] - n_bytes) < 0.02 * n_bytes


def test_training_and_inference_measurement() -> None:
    spec = {"variant": "axonal", "delay_type": "axonal", "n_inputs": 6, "n_hidden": [32, 32], "n_outputs": 5,
            "kernel_size": 5}
    train = _measure({"mode": "train", "spec": spec, "batch": 4, "T": 12})
    inference = _measure({"mode": "inference", "spec": spec, "batch": 4, "T": 12})
    params = sum(p.numel() for p in DelayNetwork(ModelSpec(**spec)).parameters()) * 4
    # parameters + gradients + two Adam moments at least, plus the batch
    assert train["persistent_bytes"] >= 4 * params
    assert train["peak_bytes"] >= train["persistent_bytes"]
    assert inference["persistent_bytes"] >= params
    assert set(train) >= {"peak_bytes", "persistent_bytes", "transient_bytes", "device", "method"}


def test_time_callable_statistics() -> None:
    stats = time_callable(lambda: sum(range(1000)), "cpu", warmup=1, repeats=5)
    assert stats["repeats"] == 5
    assert 0 < stats["min_s"] <= stats["median_s"]
    assert stats["iqr_s"] >= 0 and stats["std_s"] >= 0


def test_static_and_runtime_metrics_keys() -> None:
    torch.manual_seed(0)
    net = tiny("dendritic", delay_sparsity=0.5, passthrough="zero")
    static = static_metrics(net)
    for key in ("params_trainable", "params_effective", "buffer_allocated_bits", "buffer_learned_bits",
                "dense_synops_per_step", "streaming_state_bytes_allocated", "streaming_state_bytes_learned"):
        assert key in static
    assert static["dense_synops_per_step"] == 6 * 8 + 8 * 7 + 7 * 5
    x = torch.rand(8, 3, 6) * 2
    before = {k: v.clone() for k, v in net.state_dict().items()}
    runtime = runtime_metrics(net, x, torch.tensor([8, 6, 4]), "cpu", measure_memory=False, warmup=1, repeats=3)
    for key in ("Effective_MACs", "Effective_ACs", "Dense", "ActivationSparsity", "spikes_per_sample",
                "inference_latency_median_s_per_sample", "streaming_step_latency_median_s",
                "training_step_latency_median_s", "training_step_latency_iqr_s"):
        assert key in runtime
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the model is never touched


# ---------------------------------------------------------------- architecture table

def test_architecture_table(tmp_path: Path) -> None:
    archs = {"tiny": (6, (8, 8), 5)}
    torch.manual_seed(0)
    trained = DelayNetwork(ModelSpec(variant="axonal", delay_type="axonal", n_inputs=6, n_hidden=(8, 8), n_outputs=5,
                                     kernel_size=5))
    out = tmp_path / "table.md"
    rows = paper_architecture_table(out, [trained], kernel_sizes=(5, 3), architectures=archs, latency_repeats=3)
    assert len(rows) == 4 * 2 + 1
    matched = [r for r in rows if r["buffer_learned_bits"] is not None]
    assert [(r["dataset"], r["variant"], r["D"]) for r in matched] == [("tiny", "axonal", 5),
                                                                      ("trained 6-8-8-5", "axonal", 5)]
    text = out.read_text()
    assert "n/a" in text and "## Trained model" in text
    synaptic = next(r for r in rows if r["variant"] == "synaptic" and r["D"] == 5)
    assert synaptic["buffer_allocated_bits"] == (8 + 8 + 5) * 4 * 32
    assert synaptic["params_trainable"] == 2 * (6 * 8 + 8 * 8 + 8 * 5) + 2 * 16
