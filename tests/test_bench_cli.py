"""``python -m suite bench`` at tiny sizes: the parity assertion runs before any timing, the JSON report has its keys,
and a model that disagrees with the published stack aborts the command with a one-line error."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("DCLS")
pytest.importorskip("spikingjelly")

from suite import bench
from suite.cli import main

TINY = ["bench", "--hidden", "16", "--time-steps", "12", "--batch", "2", "--repeats", "1", "--warmup", "0",
        "--kernel-size", "7", "--threads", "1"]


def test_bench_tiny_report(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    compare, timer = bench.compare_layerwise, bench.time_interleaved

    def spy_compare(name, delay_type, mode, *args):
        order.append(f"parity {delay_type} {mode}")
        return compare(name, delay_type, mode, *args)

    def spy_timer(fns, *args):
        order.append("time")
        return timer(fns, *args)

    monkeypatch.setattr(bench, "compare_layerwise", spy_compare)
    monkeypatch.setattr(bench, "time_interleaved", spy_timer)
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert main([*TINY, "--no-memory", "--out", str(out), "--markdown", str(md)]) == 0

    for delay_type in bench.DELAY_TYPES:  # parity (soft and hard) of each variant comes before its timings
        first_time = order.index("time", order.index(f"parity {delay_type} soft"))
        assert order.index(f"parity {delay_type} hard") < first_time
    report = json.loads(out.read_text())
    assert {"schema", "config", "environment", "variants", "parity_tolerance", "ratio"} <= set(report)
    assert report["config"]["n_hidden"] == [16, 16, 16] and report["config"]["batch"] == 2
    assert {"torch", "dcls", "spikingjelly", "loadavg_before", "loadavg_after", "torch_threads"} <= set(
        report["environment"])
    assert set(report["variants"]) == set(bench.DELAY_TYPES)
    names = report["config"]["backends"]  # by default the reference and, where it builds, the compiled backend
    assert names == bench.available_backends(None, "cpu") and names[0] == "torch"
    for result in report["variants"].values():
        assert {"parity", "train_step", "inference_hard", "dense_matmuls", "ratios"} <= set(result)
        for mode, name in ((mode, name) for mode in ("soft", "hard") for name in names):
            assert result["parity"][name][mode]["max_abs"] <= bench.PARITY_TOL
        for key in ("train_step", "inference_hard"):
            assert set(result[key]) == {*names, bench.PUBLISHED}
            assert result[key]["torch"]["median_s"] > 0
        assert set(result["ratios"]["torch"]) == {"train_step", "inference_hard", "train_over_dense"}
        # one round: the paired ratios are the ratios of that round's calls
        (ours,), (theirs,) = result["train_step"]["torch"]["wall_each_s"], result["train_step"][bench.PUBLISHED][
            "wall_each_s"]
        (dense,) = result["dense_matmuls"]["wall_each_s"]
        assert result["ratios"]["torch"]["train_step"] == pytest.approx(theirs / ours)
        assert result["ratios"]["torch"]["train_over_dense"] == pytest.approx(ours / dense)
        assert result["ratio_quartiles"]["torch"]["train_over_dense"] == [pytest.approx(ours / dense)] * 2
        assert set(result["ratio_quartiles"][bench.PUBLISHED]) == {"train_over_dense"}
        assert result["train_step"]["torch"]["minor_faults_median"] >= 0
    assert report["environment"]["process_settings"]["flush_denormal"] is True
    assert "| synaptic | training step (ms) |" in md.read_text()
    assert "Minor page faults per call (median)" in md.read_text()


def test_ratio_quartiles_in_the_table() -> None:
    """Several rounds: each time ratio is the median of the per-round ratios, shown with their quartiles."""
    def timing(*walls: float) -> dict:
        return {"median_s": sorted(walls)[len(walls) // 2], "wall_each_s": list(walls)}

    result = {"train_step": {"torch": timing(1.0, 1.0, 2.0, 1.0, 1.0),
                             bench.PUBLISHED: timing(5.0, 4.0, 8.0, 6.0, 5.0)},
              "inference_hard": {"torch": timing(1.0, 1.0, 1.0, 1.0, 1.0),
                                 bench.PUBLISHED: timing(3.0, 3.0, 3.0, 3.0, 3.0)},
              "dense_matmuls": timing(0.5, 0.8, 1.0, 0.5, 0.5)}
    paired = bench._paired_ratios(result["train_step"][bench.PUBLISHED], result["train_step"]["torch"])
    assert paired == [5.0, 4.0, 4.0, 6.0, 5.0] and bench.quartiles(paired) == (4.0, 5.0)
    result["ratios"] = {"torch": {"train_step": 5.0, "inference_hard": 3.0, "train_over_dense": 2.0},
                        bench.PUBLISHED: {"train_over_dense": 10.0}}
    result["ratio_quartiles"] = {"torch": {"train_step": [4.0, 5.0], "inference_hard": [3.0, 3.0],
                                           "train_over_dense": [1.25, 2.0]},
                                 bench.PUBLISHED: {"train_over_dense": [8.0, 10.0]}}
    _, rows = bench.table_rows({"config": {"backends": ["torch"]}, "variants": {"axonal": result}})
    by_measure = {row[1]: row for row in rows}
    assert by_measure["training step (ms)"][-1] == "5.00x (4.00-5.00)"
    assert by_measure["hard-delay inference (ms)"][-1] == "3.00x"  # equal quartiles: no brackets
    assert by_measure["training step / dense matmuls"][2:4] == ["10.00x (8.00-10.00)", "2.00x (1.25-2.00)"]
    del result["ratio_quartiles"]  # a report written before the quartiles were recorded still renders
    assert bench.table_rows({"config": {"backends": ["torch"]}, "variants": {"axonal": result}})[1][0][-1] == "5.00x"


def test_bench_memory_worker(tmp_path) -> None:
    """The CPU peak-memory path: two fresh processes per stack, the difference of their resident-set peaks."""
    cfg = bench.BenchConfig(n_hidden=(16, 16, 16), time_steps=12, batch=2, kernel_size=7, threads=1)
    result = bench.cpu_train_peak_memory(cfg, "axonal", "torch")
    assert result["peak_bytes"] >= 0 and result["step_maxrss_bytes"] >= result["baseline_maxrss_bytes"] > 0


def test_broken_model_aborts_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    build = bench.build_pair

    def broken(cfg, delay_type, backends):
        ours, published = build(cfg, delay_type, backends)
        with torch.no_grad():
            ours["torch"].layers[1].weight.mul_(1.5)  # no longer the published model's weights
        return ours, published

    monkeypatch.setattr(bench, "build_pair", broken)
    assert main([*TINY, "--no-memory", "--variant", "axonal"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: bench parity: axonal soft delays, backend torch, layer 1")
    assert "training step" not in captured.out  # nothing was timed or reported


@pytest.mark.parametrize("delay_type", bench.DELAY_TYPES)
def test_dense_reference_has_the_networks_products(delay_type: str) -> None:
    """The dense reference computes the first layer's input gradient exactly where the network's training step does
    (the axonal network's input delay learns from it), and one forward and backward product set per layer."""
    cfg = bench.BenchConfig(n_hidden=(16, 16), time_steps=12, batch=2, kernel_size=7)
    ours, _ = bench.build_pair(cfg, delay_type, ["torch"])
    net = ours["torch"]
    net.train()
    first = net.layers[0].linear if net.layers[0].linear is not None else net.layers[0].delay
    seen: list[bool] = []
    first.register_forward_pre_hook(lambda _m, args: seen.append(args[0].requires_grad))
    net(bench.bench_inputs(cfg, "cpu")[0])
    assert seen == [bench.input_needs_grad(delay_type)]

    dense = bench.make_dense_reference(cfg, "cpu", bench.input_needs_grad(delay_type))
    with torch.profiler.profile() as prof:
        dense()
    products = sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    layers = len(bench.dense_layers(cfg))  # forward, input gradient, weight gradient of each
    assert products == 3 * layers - (0 if bench.input_needs_grad(delay_type) else 1)


def test_bench_at_schedule_widths(tmp_path) -> None:
    """``--width start --width final``: the synaptic model and the published stack are timed at both SIGs, parity
    holds at each (the final width runs the windowed delay), and the table names the CPU beside every ratio."""
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert main([*TINY, "--no-memory", "--variant", "synaptic", "--width", "start", "--width", "final",
                 "--out", str(out), "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["synaptic", "synaptic@final"]
    assert [v["sig"] for v in report["variants"].values()] == [3.0, 0.23]
    assert all(v["parity"]["torch"]["soft"]["max_abs"] <= bench.PARITY_TOL for v in report["variants"].values())
    text = md.read_text()
    assert "| synaptic@final | training step (ms) |" in text
    assert f"published / torch ({report['environment']['cpu']})" in text
    assert f"training step / dense matmuls ({report['environment']['cpu']})" in text


def test_bench_rejects_an_unknown_width(capsys: pytest.CaptureFixture) -> None:
    assert main([*TINY, "--no-memory", "--width", "late"]) == 2
    assert "bench --width: 'late' is not a point of the SIG schedule" in capsys.readouterr().err


def test_bench_backends_are_resolved_names() -> None:
    """--backend takes auto (resolved for the device, duplicates dropped); a CPU-only backend on CUDA is refused."""
    from suite.errors import SuiteError
    from suite.ops import native

    assert bench.available_backends(["torch", "auto"], "cuda") == ["torch"]
    if native.library() is None:
        assert bench.available_backends(None, "cpu") == ["torch"]
        return
    assert bench.available_backends(["auto", "cpu-kernels", "torch"], "cpu") == ["cpu-kernels", "torch"]
    assert bench.available_backends(None, "cpu") == ["torch", "cpu-kernels"]
    with pytest.raises(SuiteError, match="runs on the CPU only"):
        bench.available_backends(["cpu-kernels"], "cuda")
