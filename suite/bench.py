"""``python -m suite bench``: our kernels beside the published stack, in one process, on the paper's architectures.

For each delay type (synaptic, axonal, dendritic) the command builds the suite model on each backend and the
published stack (:class:`suite.baselines.official.OfficialDelaySNN`, dcls + spikingjelly) with the same weights
(:func:`suite.baselines.convert.suite_to_official`), and then:

1. asserts equal outputs first, layer by layer with the published stack's layer inputs (teacher forcing), in eval
   mode with soft (Gaussian) and with hard (integer) delays: every neuron input (delays, weights, BatchNorm) and the
   output membrane trace within ``PARITY_TOL`` (1e-4, absolute), hidden spikes equal but for threshold ties
   (at most ``SPIKE_MISMATCH_TOL`` of them). A failure aborts with a one-line :class:`~suite.errors.SuiteError` before
   any time is reported. The free-running output difference is recorded too (see :func:`compare_layerwise` for why it
   cannot be the assertion at full size);
2. times a training step (forward, summed-softmax loss, backward, the two Adam optimisers and the position clamp),
   interleaved call by call with the physical reference: the network's dense matrix products alone (each layer's
   bias-free Linear forward and backward on the rows its output has, (T + (i + 1) (D - 1) / 2) x B, no delays, no
   LIF, no BatchNorm), so that load drifts hit all of them alike;
3. times a hard-delay batch inference (eval copy, no autograd), interleaved the same way;
4. measures the peak memory of a training step: on CPU in fresh subprocesses (the memory worker), the
   resident-set high-water mark (``VmHWM``; ``ru_maxrss`` off Linux) of one that builds the model, data and optimisers
   and runs one step, minus that of one that builds the same and does not run it (both with glibc's mmap threshold
   at 64 KiB, so that the resident set follows live tensor memory, see :mod:`suite.metrics.memory`); on CUDA the
   caching allocator's peak over the step minus what was allocated before it. The number therefore holds gradients,
   Adam state, activations and workspaces.

Times are medians over ``--repeats`` calls after ``--warmup`` calls; JSON keeps every call's wall time, the median,
IQR, min, mean, the process CPU time and the minor page faults. Ratios are published / ours (> 1: ours is faster or
smaller); time ratios are the median over rounds of the ratio within a round (a round calls each timed function once,
back to back), so that a load change between rounds cancels. docs/performance.md explains how to read them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from suite.environment import cpu_model, record_environment
from suite.errors import SuiteError
from suite.kinds import PUBLISHED_KINDS
from suite.metrics.memory import measure_in_subprocess, peak_rss_bytes, prepare_worker
from suite.models.contract import DelayModel
from suite.records import atomic_write_text, strict_json
from suite.runtime import configure_cpu_process, resolve_device
from suite.timing import quartiles, time_interleaved
from suite.training import make_train_step

PARITY_TOL = 1e-4
"""Largest absolute difference of the forward output sequences (ours vs published) accepted before timing."""
DELAY_TYPES = PUBLISHED_KINDS
PROTOCOL_SHAPES: dict[str, tuple[int, int]] = {"gsc": (40, 98), "ssc": (140, 100)}
"""(input channels, time steps) per protocol: GSC 40 mel bins x 98 frames (1 s clip); SSC 140 channels, 100 frames."""
N_OUTPUTS = 35
PUBLISHED = "published"
DENSE = "dense matmuls"
WIDTHS = ("start", "middle", "final")
"""Points of the official SIG schedule a variant can be timed at (suite.models.delays.schedule_widths)."""
SCHEMA = 1


@dataclass(frozen=True)
class BenchConfig:
    protocol: str = "gsc"
    n_inputs: int = 40
    n_hidden: tuple[int, ...] = (512, 512, 512)
    n_outputs: int = N_OUTPUTS
    kernel_size: int = 31
    time_steps: int = 98
    batch: int = 16
    variants: tuple[str, ...] = DELAY_TYPES
    widths: tuple[str, ...] = ("start",)
    backends: tuple[str, ...] = ("torch",)
    repeats: int = 5
    warmup: int = 1
    device: str = "cpu"
    threads: int | None = 2
    memory: bool = True
    retain_freed_memory: bool = True
    seed: int = 0

    @property
    def pad_right(self) -> int:
        return (self.kernel_size - 1) // 2


# ---------------------------------------------------------------------------------------------- models


def model_spec(cfg: BenchConfig, delay_type: str) -> Any:
    from suite.registry import get_protocol
    from suite.specs import ModelSpec

    model = dict(get_protocol(cfg.protocol).model)
    model.update(n_hidden=tuple(cfg.n_hidden), kernel_size=cfg.kernel_size)
    return ModelSpec(variant=delay_type, delay_type=delay_type, n_inputs=cfg.n_inputs, n_outputs=cfg.n_outputs,
                     **model)


def bench_optim(cfg: BenchConfig) -> Mapping[str, Any]:
    """The optimisers of the benchmarked protocol: every training step here is the one a run of it takes."""
    from suite.registry import get_protocol

    return get_protocol(cfg.protocol).optim


def build_published(cfg: BenchConfig, delay_type: str, spec: Any) -> nn.Module:
    from suite.baselines.official import OfficialDelaySNN

    return OfficialDelaySNN(cfg.n_inputs, tuple(cfg.n_hidden), cfg.n_outputs, delay_type=delay_type,
                            kernel_size=cfg.kernel_size, tau=spec.tau, dropout=spec.dropout)


def width_sig(cfg: BenchConfig, delay_type: str, width: str) -> float:
    """SIG at a named point of the official schedule for this variant's model spec."""
    from suite.models.delays import schedule_widths

    spec = model_spec(cfg, delay_type)
    return schedule_widths(spec.sig_init, spec.sig_final)[width]


def variant_key(delay_type: str, width: str) -> str:
    """The report's key of one timed case: the delay type alone at the schedule's start (its initial SIG, what the
    models are built with), ``type@width`` elsewhere."""
    return delay_type if width == "start" else f"{delay_type}@{width}"


def set_sig(model: nn.Module, sig: float) -> None:
    """SIG of every delay of a suite model or of the published stack."""
    if isinstance(model, DelayModel):
        for delay in model.delay_modules():
            delay.sig.fill_(sig)
    else:
        model.set_sig(sig)


def build_pair(cfg: BenchConfig, delay_type: str, backends: Sequence[str]) -> tuple[dict[str, nn.Module], nn.Module]:
    """One suite model per backend and the published stack, all with the weights of the first suite model."""
    from suite.baselines.convert import suite_to_official
    from suite.models.network import DelayNetwork

    spec = model_spec(cfg, delay_type)
    torch.manual_seed(cfg.seed)
    first = DelayNetwork(spec, backends[0])
    ours = {backends[0]: first}
    for backend in backends[1:]:
        other = DelayNetwork(spec, backend)
        other.load_state_dict(first.state_dict())
        ours[backend] = other
    published = build_published(cfg, delay_type, spec)
    published.load_state_dict(suite_to_official(first.state_dict(), delay_type), strict=True)
    device = torch.device(cfg.device)
    return {k: m.to(device) for k, m in ours.items()}, published.to(device)


def published_hard_copy(published: nn.Module) -> nn.Module:
    clone = copy.deepcopy(published).eval()
    clone.set_hard(True)
    return clone


def bench_inputs(cfg: BenchConfig, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-seed batch: real-valued features in [0, 3) (the hidden layers spike) and labels."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    x = torch.rand(cfg.time_steps, cfg.batch, cfg.n_inputs, generator=gen) * 3.0
    labels = torch.randint(0, cfg.n_outputs, (cfg.batch,), generator=gen)
    return x.to(device), labels.to(device)


# --------------------------------------------------------------------------------------------- parity


SPIKE_MISMATCH_TOL = 1e-4
"""Largest fraction of hidden spikes allowed to differ under teacher forcing (threshold ties, see check_parity)."""


def _capture_inputs(modules: Sequence[nn.Module]) -> tuple[list[torch.Tensor | None], list[Any]]:
    """Forward pre-hooks that keep the first positional input of each module."""
    seen: list[torch.Tensor | None] = [None] * len(modules)
    handles = []
    for i, module in enumerate(modules):
        def hook(_module: nn.Module, args: tuple[Any, ...], i: int = i) -> None:
            seen[i] = args[0].detach()
        handles.append(module.register_forward_pre_hook(hook))
    return seen, handles


def compare_layerwise(name: str, delay_type: str, mode: str, ours: nn.Module, published: nn.Module,
                      x: torch.Tensor) -> dict[str, float]:
    """Teacher-forced parity of every layer, then the free-running output difference (reported, not asserted).

    Each suite layer gets the published layer's input (the published spikes of the layer before), and three things are
    checked: the neuron input (delays, weights, BatchNorm) and the output layer's membrane trace within PARITY_TOL,
    and the hidden spikes equal but for at most SPIKE_MISMATCH_TOL of them. Free-running outputs of a full-size
    network are not a usable check: a current that differs by 1e-6 next to the threshold flips a spike, which then
    moves the output by ~0.1 (measured: 3 flipped spikes of 0.9 M in layer 1 of the GSC axonal model, hard delays,
    where the published 'max' kernel is 1 / (1 + 1e-7) and ours is 1).
    """
    from spikingjelly.activation_based import functional as sj_functional

    ref_layers, our_layers = list(published.snn), list(ours.layers)
    ref_in, ref_handles = _capture_inputs([lay.neuron for lay in ref_layers])
    lay_in, lay_handles = _capture_inputs(ref_layers)
    our_in, our_handles = _capture_inputs([lay.neuron for lay in our_layers])
    try:
        y_ref = published(x)
        y_free = ours(x)
        worst_current, worst_mismatch, spikes_total = 0.0, 0, 0
        for i, (mine, ref) in enumerate(zip(our_layers, ref_layers, strict=True)):
            sj_functional.reset_net(ref)
            ref_out = ref(lay_in[i])
            if ref.is_output:
                ref_out = ref.neuron.v_seq
            sj_functional.reset_net(ref)
            out = mine(lay_in[i])
            err = float((our_in[i] - ref_in[i]).abs().max())
            where = f"bench parity: {delay_type} {mode} delays, backend {name}, layer {i}"
            if out.shape != ref_out.shape:
                raise SuiteError(f"{where}: output shape {tuple(out.shape)} != published {tuple(ref_out.shape)}")
            if not err <= PARITY_TOL:  # also catches NaN
                raise SuiteError(f"{where}: neuron input differs from the published stack by {err:.3g} > "
                                 f"{PARITY_TOL:g}; no times reported")
            worst_current = max(worst_current, err)
            if ref.is_output:
                err = float((out - ref_out).abs().max())
                if not err <= PARITY_TOL:
                    raise SuiteError(f"{where}: output membrane differs from the published stack by {err:.3g} > "
                                     f"{PARITY_TOL:g}; no times reported")
                worst_current = max(worst_current, err)
            else:
                mismatch = int((out != ref_out).sum())
                if mismatch > SPIKE_MISMATCH_TOL * out.numel():
                    raise SuiteError(f"{where}: {mismatch} of {out.numel()} spikes differ from the published stack "
                                     f"(more than {SPIKE_MISMATCH_TOL:g}); no times reported")
                worst_mismatch += mismatch
                spikes_total += out.numel()
    finally:
        for handle in (*ref_handles, *lay_handles, *our_handles):
            handle.remove()
    return {"max_abs": worst_current, "spike_mismatches": worst_mismatch, "spikes_compared": spikes_total,
            "free_running_max_abs": float((y_free - y_ref).abs().max()) if y_free.shape == y_ref.shape else None}


def check_parity(name: str, delay_type: str, ours: nn.Module, published: nn.Module,
                 x: torch.Tensor) -> dict[str, dict[str, float]]:
    """Layer-wise parity of the eval forward (soft and hard delays) with the published stack; SuiteError on failure."""
    with torch.no_grad():
        pairs = {"soft": (copy.deepcopy(ours).eval(), copy.deepcopy(published).eval()),
                 "hard": (ours.hard_copy(), published_hard_copy(published))}
        return {mode: compare_layerwise(name, delay_type, mode, mine, ref, x) for mode, (mine, ref) in pairs.items()}


# ------------------------------------------------------------------------------------------ train step


def make_inference(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def infer() -> None:
        with torch.no_grad():
            model(x)

    return infer


def dense_layers(cfg: BenchConfig) -> list[tuple[int, int, int]]:
    """(rows in time, N_in, N_out) of every layer's matrix product: each layer outputs T + (i + 1) (D - 1) / 2 steps."""
    sizes = [cfg.n_inputs, *cfg.n_hidden, cfg.n_outputs]
    return [(cfg.time_steps + (i + 1) * cfg.pad_right, sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]


def input_needs_grad(delay_type: str) -> bool:
    """Whether the network's training step needs the gradient of its first product's input: only where a learned
    delay comes before it (the axonal network delays its input, and the positions of that delay learn from it)."""
    return delay_type == "axonal"


def make_dense_reference(cfg: BenchConfig, device: torch.device | str, first_input_grad: bool
                         ) -> Callable[[], None]:
    """Forward and backward of the network's bias-free Linear layers alone, at the network's sizes; the first layer's
    input gradient only with ``first_input_grad`` (:func:`input_needs_grad`), as in the network's training step."""
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    work = []
    for i, (rows, n_in, n_out) in enumerate(dense_layers(cfg)):
        x = torch.rand(rows, cfg.batch, n_in, generator=gen).to(device).requires_grad_(i > 0 or first_input_grad)
        w = (torch.randn(n_out, n_in, generator=gen) / n_in**0.5).to(device).requires_grad_(True)
        grad = torch.randn(rows, cfg.batch, n_out, generator=gen).to(device)
        work.append((x, w, grad))

    def dense() -> None:
        for x, w, grad in work:
            inputs = [x, w] if x.requires_grad else [w]
            torch.autograd.grad(F.linear(x, w), inputs, grad)

    return dense


# ---------------------------------------------------------------------------------------------- memory


def memory_worker(request: Mapping[str, Any]) -> dict[str, Any]:
    """Inside a fresh process (mode ``bench`` of :func:`suite.metrics.memory.main`): build one stack, its data and
    optimisers, run one training step if asked; report the resident-set peak."""
    prepare_worker({**request, "seed": request["config"]["seed"]})
    cfg = BenchConfig(**{**request["config"], "n_hidden": tuple(request["config"]["n_hidden"]),
                         "variants": tuple(request["config"]["variants"]),
                         "widths": tuple(request["config"]["widths"]),
                         "backends": tuple(request["config"]["backends"])})
    delay_type, stack = request["delay_type"], request["stack"]
    spec = model_spec(cfg, delay_type)
    if stack == PUBLISHED:
        model = build_published(cfg, delay_type, spec)
    else:
        from suite.models.network import DelayNetwork

        model = DelayNetwork(spec, stack)
    if request.get("sig") is not None:
        set_sig(model, float(request["sig"]))
    x, labels = bench_inputs(cfg, "cpu")
    step = make_train_step(model, x, labels, bench_optim(cfg))
    if request["run"]:
        step()
    return {"maxrss_bytes": peak_rss_bytes(), "stack": stack, "run": bool(request["run"])}


def cpu_train_peak_memory(cfg: BenchConfig, delay_type: str, stack: str, sig: float | None = None) -> dict[str, Any]:
    """Max RSS of (build + one step, at SIG ``sig`` if given) - max RSS of (build only), each in a fresh process."""
    base = {"mode": "bench", "config": _config_json(cfg), "delay_type": delay_type, "stack": stack,
            "threads": cfg.threads, "sig": sig}
    baseline = measure_in_subprocess({**base, "run": False}, timeout=1800.0)["maxrss_bytes"]
    stepped = measure_in_subprocess({**base, "run": True}, timeout=1800.0)["maxrss_bytes"]
    return {"peak_bytes": max(0, stepped - baseline), "baseline_maxrss_bytes": baseline,
            "step_maxrss_bytes": stepped, "method": "max RSS (VmHWM) of build + one step - that of build only, fresh "
                                                    "processes, MALLOC_MMAP_THRESHOLD_=65536"}


def cuda_train_peak_memory(model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                           optim: Mapping[str, Any]) -> dict[str, Any]:
    dev = x.device
    step = make_train_step(model, x, labels, optim)
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    before = torch.cuda.memory_allocated(dev)
    step()
    torch.cuda.synchronize(dev)
    return {"peak_bytes": int(torch.cuda.max_memory_allocated(dev) - before),
            "method": "torch.cuda.max_memory_allocated over the first step - memory_allocated before it"}


# ---------------------------------------------------------------------------------------------- driver


def _config_json(cfg: BenchConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg)))


def environment(cfg: BenchConfig) -> dict[str, Any]:
    """The run record's environment block (suite/environment.py), plus the CPU's name and, at the top level, the
    versions the report's machine line names."""
    env = record_environment(cfg.device)
    env.update(cpu=cpu_model(), **{p: env["packages"][p] for p in ("torch", "dcls", "spikingjelly")})
    if cfg.device == "cuda" and torch.cuda.is_available():
        env["gpu"] = env["device_name"]
    return env


def available_backends(requested: Sequence[str] | None, device: str) -> list[str]:
    """The backends to time: those requested (resolved for ``device``: SuiteError, one line, when unusable), else
    ``torch`` and the device's compiled backend where it loads (cpu-kernels on CPU, numba-cuda on CUDA)."""
    from suite.ops.registry import get_ops, resolve

    if requested:
        return list(dict.fromkeys(resolve(name, device) for name in requested))
    names = ["torch"]
    compiled = "numba-cuda" if device == "cuda" else "cpu-kernels"
    try:
        get_ops(compiled)
        names.append(compiled)
    except SuiteError:
        pass
    return names


def _ratio(published: float, ours: float) -> float | None:
    return published / ours if ours > 0 else None


def _paired_ratios(numerator: Mapping[str, Any], denominator: Mapping[str, Any]) -> list[float]:
    """numerator / denominator time within each round (see :func:`time_interleaved`)."""
    return [a / b for a, b in zip(numerator["wall_each_s"], denominator["wall_each_s"], strict=True) if b > 0]


def bench_variant(cfg: BenchConfig, delay_type: str, say: Callable[[str], None], width: str = "start"
                  ) -> dict[str, Any]:
    device = torch.device(cfg.device)
    sig = width_sig(cfg, delay_type, width)
    ours, published = build_pair(cfg, delay_type, cfg.backends)
    for model in [*ours.values(), published]:
        set_sig(model, sig)
    x, labels = bench_inputs(cfg, device)
    result: dict[str, Any] = {"width": width, "sig": sig, "parity": {}}
    case = variant_key(delay_type, width)
    for name, model in ours.items():
        result["parity"][name] = check_parity(name, case, model, published, x)
    worst = ", ".join(f"{n} {max(e['max_abs'] for e in modes.values()):.2g}" for n, modes in result["parity"].items())
    say(f"{case}: parity ok (max abs {worst}); timing training steps and the dense matmuls alone")
    optim = bench_optim(cfg)
    steps = {name: make_train_step(copy.deepcopy(m), x, labels, optim) for name, m in ours.items()}
    steps[PUBLISHED] = make_train_step(copy.deepcopy(published), x, labels, optim)
    # interleaved with the steps: the same load for the ratio
    steps[DENSE] = make_dense_reference(cfg, device, input_needs_grad(delay_type))
    timed = time_interleaved(steps, device, cfg.warmup, cfg.repeats)
    result["dense_matmuls"] = timed.pop(DENSE)
    result["train_step"] = timed
    del steps
    say(f"{case}: timing hard-delay inference")
    infer = {name: make_inference(m.hard_copy(), x) for name, m in ours.items()}
    infer[PUBLISHED] = make_inference(published_hard_copy(published), x)
    result["inference_hard"] = time_interleaved(infer, device, cfg.warmup, cfg.repeats)
    del infer
    if cfg.memory:
        say(f"{case}: peak training memory")
        memory = {}
        for name in [*ours, PUBLISHED]:
            if device.type == "cuda":
                model = copy.deepcopy(published if name == PUBLISHED else ours[name])
                memory[name] = cuda_train_peak_memory(model, x, labels, optim)
                del model
            else:
                memory[name] = cpu_train_peak_memory(cfg, delay_type, name, sig)
        result["peak_memory_train"] = memory
    ratios: dict[str, Any] = {}
    spread: dict[str, Any] = {}
    train, infer_hard = result["train_step"], result["inference_hard"]
    for name in [*ours, PUBLISHED]:
        paired = {"train_over_dense": _paired_ratios(train[name], result["dense_matmuls"])}
        if name != PUBLISHED:
            paired["train_step"] = _paired_ratios(train[PUBLISHED], train[name])
            paired["inference_hard"] = _paired_ratios(infer_hard[PUBLISHED], infer_hard[name])
        entry: dict[str, float | None] = {k: statistics.median(v) if v else None for k, v in paired.items()}
        spread[name] = {k: list(quartiles(v)) for k, v in paired.items() if v}
        if name != PUBLISHED and cfg.memory:
            entry["peak_memory_train"] = _ratio(result["peak_memory_train"][PUBLISHED]["peak_bytes"],
                                                result["peak_memory_train"][name]["peak_bytes"])
        ratios[name] = entry
    result["ratios"] = ratios
    result["ratio_quartiles"] = spread  # of the per-round ratios: how much of a ratio is the host's noise
    return result


def run_bench(cfg: BenchConfig, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the whole comparison; returns the JSON-ready report."""
    for v in cfg.variants:
        if v not in DELAY_TYPES:
            raise SuiteError(f"bench --variant: {v!r} has no published counterpart; expected some of {DELAY_TYPES}")
    for w in cfg.widths:
        if w not in WIDTHS:
            raise SuiteError(f"bench --width: {w!r} is not a point of the SIG schedule; expected some of {WIDTHS}")
    resolve_device(cfg.device, "bench --device")
    process_settings = configure_cpu_process(cfg.retain_freed_memory)
    previous_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        load_before = os.getloadavg()
        variants = {variant_key(dt, w): bench_variant(cfg, dt, say, w) for dt in cfg.variants for w in cfg.widths}
        load_after = os.getloadavg()
    finally:
        torch.set_num_threads(previous_threads)
    env = environment(cfg)
    env["torch_threads"] = cfg.threads or previous_threads
    env["loadavg_before"], env["loadavg_after"] = list(load_before), list(load_after)
    env["process_settings"] = process_settings
    return {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": _config_json(cfg),
            "parity_tolerance": PARITY_TOL, "ratio": "published / ours (> 1: ours faster or smaller)",
            "environment": env, "variants": variants}


# ---------------------------------------------------------------------------------------------- output


def _ms(stats: Mapping[str, float]) -> str:
    return f"{1e3 * stats['median_s']:.1f}"


def _mib(entry: Mapping[str, Any]) -> str:
    return f"{entry['peak_bytes'] / 2**20:.0f}"


def _x(value: float | None, spread: Sequence[float] | None = None) -> str:
    """A ratio, with the quartiles of its per-round values when there are several rounds."""
    if value is None:
        return "—"
    if spread is None or spread[0] == spread[1]:
        return f"{value:.2f}x"
    return f"{value:.2f}x ({spread[0]:.2f}-{spread[1]:.2f})"


def table_rows(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table (shared by the terminal table and the Markdown file)."""
    backends = list(report["config"]["backends"])
    cpu = report.get("environment", {}).get("cpu")
    on = f" ({cpu})" if cpu else ""  # the machine beside every ratio
    header = ["variant", "measure", "published"]
    for b in backends:
        header += [b, f"published / {b}{on}"]
    rows = []
    for dt, res in report["variants"].items():
        measures: list[tuple[str, str, Callable[[str], str], str | None]] = [
            ("training step (ms)", "train_step", lambda n, r=res: _ms(r["train_step"][n]), "train_step"),
            ("hard-delay inference (ms)", "inference_hard", lambda n, r=res: _ms(r["inference_hard"][n]),
             "inference_hard"),
        ]
        if "peak_memory_train" in res:
            measures.append(("training peak memory (MiB)", "peak_memory_train",
                             lambda n, r=res: _mib(r["peak_memory_train"][n]), "peak_memory_train"))
        spread = res.get("ratio_quartiles", {})  # reports written before it was recorded lack it
        for label, _, value, ratio_key in measures:
            row = [dt, label, value(PUBLISHED)]
            for b in backends:
                row += [value(b), _x(res["ratios"][b].get(ratio_key), spread.get(b, {}).get(ratio_key))]
            rows.append(row)
        row = [dt, "dense matmuls alone (ms), same sizes", "—"]
        for _ in backends:
            row += [_ms(res["dense_matmuls"]), ""]
        rows.append(row)
        row = [dt, f"training step / dense matmuls{on}", _x(res["ratios"][PUBLISHED]["train_over_dense"],
                                                         spread.get(PUBLISHED, {}).get("train_over_dense"))]
        for b in backends:
            row += [_x(res["ratios"][b]["train_over_dense"], spread.get(b, {}).get("train_over_dense")), ""]
        rows.append(row)
    return header, rows


def _yes(settings: Mapping[str, Any], key: str) -> str:
    return "yes" if settings.get(key) else "no"


def markdown(report: Mapping[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    header, rows = table_rows(report)
    lines = [f"`suite bench` {cfg['protocol'].upper()} {cfg['n_inputs']}-{'-'.join(map(str, cfg['n_hidden']))}-"
             f"{cfg['n_outputs']}, D={cfg['kernel_size']}, T={cfg['time_steps']}, batch {cfg['batch']}, "
             f"{cfg['device']}, {env['torch_threads']} threads, median of {cfg['repeats']} (after {cfg['warmup']} "
             "warm-up); ratio = published / ours, time ratios are medians of per-round ratios (in brackets: their "
             "quartiles)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    parity = "; ".join(f"{dt} " + ", ".join(f"{b} soft {e['soft']['max_abs']:.1e} hard {e['hard']['max_abs']:.1e}"
                                            for b, e in res["parity"].items())
                       for dt, res in report["variants"].items())
    settings = env.get("process_settings", {})
    faults = "; ".join(f"{dt} " + ", ".join(f"{name} {t['minor_faults_median']:.0f}" for name, t in
                                            [*res["train_step"].items(), (DENSE, res["dense_matmuls"])])
                       for dt, res in report["variants"].items())
    lines += ["", f"Process (suite/runtime.py): subnormals flushed {_yes(settings, 'flush_denormal')}; glibc keeps "
              f"freed memory {_yes(settings, 'retain_freed_memory')}. Minor page faults per call (median), training "
              f"steps and the dense reference: {faults}.",
              "", "Compiled CPU kernels (backend cpu-kernels, suite/ops/native): "
              f"{env.get('cpu_kernels', 'not recorded')}."]
    lines += ["", "Parity, asserted before timing (teacher-forced, layer by layer: max |ours - published| of every "
              f"neuron input and of the output membrane, <= {report['parity_tolerance']:g}): {parity}.",
              f"Machine: {env['cpu']} ({env['cpu_count']} CPUs){', ' + env['gpu'] if env.get('gpu') else ''}; "
              f"{env['platform']}; Python {env['python']}, torch {env['torch']}, dcls {env['dcls']}, spikingjelly "
              f"{env['spikingjelly']}; commit {env['git_commit']}.",
              "Load average (1, 5, 15 min) before: " + ", ".join(f"{v:.2f}" for v in env["loadavg_before"])
              + "; after: " + ", ".join(f"{v:.2f}" for v in env["loadavg_after"]) + "."]
    return "\n".join(lines) + "\n"


def print_report(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    cfg, env = report["config"], report["environment"]
    header, rows = table_rows(report)
    table = Table(title=f"suite bench: {cfg['protocol']} architecture, batch {cfg['batch']}, {cfg['device']}, "
                        f"{env['torch_threads']} threads (ratio = published / ours; in brackets the quartiles "
                        "of its per-round values)", title_justify="left")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print("load average before " + ", ".join(f"{v:.2f}" for v in env["loadavg_before"]) + "; after "
                  + ", ".join(f"{v:.2f}" for v in env["loadavg_after"]))


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    from suite.specs import MAX_SEED

    if args.protocol not in PROTOCOL_SHAPES:
        raise SuiteError(f"bench --protocol: {args.protocol!r} is not one of {sorted(PROTOCOL_SHAPES)}")
    n_inputs, steps = PROTOCOL_SHAPES[args.protocol]
    if args.kernel_size < 1 or args.kernel_size % 2 == 0:
        raise SuiteError(f"bench --kernel-size: must be a positive odd number, got {args.kernel_size}")
    batch = args.batch if args.batch is not None else (128 if args.device == "cuda" else 16)
    time_steps = args.time_steps if args.time_steps is not None else steps
    for flag, value, low, high in (("--batch", batch, 1, None), ("--repeats", args.repeats, 1, None),
                                   ("--warmup", args.warmup, 0, None), ("--threads", args.threads, 1, None),
                                   ("--time-steps", time_steps, 1, None), ("--hidden", args.hidden, 1, None),
                                   ("--layers", args.layers, 1, None), ("--seed", args.seed, 0, MAX_SEED)):
        if value < low or (high is not None and value > high):
            raise SuiteError(f"bench {flag}: must be {f'in {low}..{high}' if high else f'>= {low}'}, got {value}")
    return BenchConfig(
        protocol=args.protocol, n_inputs=n_inputs, n_hidden=(args.hidden,) * args.layers, kernel_size=args.kernel_size,
        time_steps=time_steps, batch=batch, variants=tuple(args.variants or DELAY_TYPES),
        widths=tuple(args.widths or ("start",)), backends=tuple(available_backends(args.backends, args.device)),
        repeats=args.repeats, warmup=args.warmup,
        device=args.device, threads=args.threads if args.device == "cpu" else None, memory=args.memory,
        retain_freed_memory=args.retain_freed_memory,
        seed=args.seed)


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=False)
    cfg = config_from_args(args)
    console.print(f"bench: {cfg.protocol} {cfg.n_inputs}-{'-'.join(map(str, cfg.n_hidden))}-{cfg.n_outputs}, "
                  f"D={cfg.kernel_size}, T={cfg.time_steps}, batch {cfg.batch}, {cfg.device}, backends "
                  f"{', '.join(cfg.backends)} vs published (dcls + spikingjelly)")
    report = run_bench(cfg, say=lambda msg: console.print(f"[dim]{msg}[/dim]"))
    print_report(report, console)
    if args.out:
        atomic_write_text(args.out, strict_json(report, indent=2) + "\n")
        console.print(f"wrote {args.out}")
    if args.markdown:
        atomic_write_text(args.markdown, markdown(report))
        console.print(f"wrote {args.markdown}")
    return 0


def add_bench_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the CLI's sub-parsers; sets ``func`` to :func:`cmd_bench`."""
    p = subparsers.add_parser("bench", help="time our kernels against the published stack (dcls + spikingjelly)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol", default="gsc", choices=sorted(PROTOCOL_SHAPES), help="architecture (default gsc)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 16 on CPU, 128 on CUDA)")
    p.add_argument("--variant", action="append", dest="variants", default=None, metavar="TYPE",
                   help="delay type: synaptic, axonal or dendritic (repeatable; default all three)")
    p.add_argument("--width", action="append", dest="widths", default=None, metavar="WIDTH",
                   help="point of the official SIG schedule to time each variant at (repeatable): start (SIG = D // 2, "
                        "the default), middle (the decay's geometric middle), final (0.23)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--backend", action="append", dest="backends", default=None, metavar="NAME",
                   help="one of our backends, or auto (repeatable; default: torch and the compiled one, cpu-kernels "
                        "on CPU or numba-cuda on CUDA, where it loads)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads on CPU (default 2)")
    p.add_argument("--time-steps", type=int, default=None, help="T (default 98 for gsc, 100 for ssc)")
    p.add_argument("--hidden", type=int, default=512, help="hidden layer width (default 512)")
    p.add_argument("--layers", type=int, default=3, help="hidden layers (default 3)")
    p.add_argument("--kernel-size", type=int, default=31, help="delay kernel length D (default 31)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory measurement")
    p.add_argument("--default-malloc", dest="retain_freed_memory", action="store_false",
                   help="leave glibc's malloc settings alone (default: keep freed memory, see suite/runtime.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown table here")
    p.set_defaults(func=cmd_bench)
    return p
