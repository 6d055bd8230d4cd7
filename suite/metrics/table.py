"""The paper architectures side by side: parameters, delay buffers, streaming state and streaming step latency.

``python -m suite.metrics.table OUT.md`` writes the table for the GSC (40-512-512-512-35) and SSC (140-512-512-512-35)
models per delay variant at D = 31 and 15. Learned buffer sizes need trained delays: they are filled in for a row only
when the trained model given has that row's architecture, and the trained model gets a section of its own.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from suite.metrics.buffers import buffer_bits
from suite.metrics.latency import streaming_step_latency
from suite.metrics.params import count_parameters
from suite.models.network import DelayNetwork
from suite.records import atomic_write_text
from suite.specs import ModelSpec
from suite.streaming import StreamingExecutor, streaming_state_bytes

PAPER_ARCHITECTURES: dict[str, tuple[int, tuple[int, ...], int]] = {
    "GSC": (40, (512, 512, 512), 35),
    "SSC": (140, (512, 512, 512), 35),
}
TABLE_VARIANTS: dict[str, dict[str, Any]] = {
    "synaptic": {"delay_type": "synaptic"},
    "axonal": {"delay_type": "axonal"},
    "dendritic": {"delay_type": "dendritic"},
    "axonal-sparse (zero)": {"delay_type": "axonal", "delay_sparsity": 0.8, "passthrough": "zero"},
}
_MATCH_KEYS = ("n_inputs", "n_hidden", "n_outputs", "delay_type", "kernel_size", "delay_sparsity", "passthrough",
               "weight_sparsity")


def _same_architecture(a: ModelSpec, b: ModelSpec) -> bool:
    da, db = asdict(a), asdict(b)
    if a.delay_sparsity == 0 and b.delay_sparsity == 0:
        da["passthrough"] = db["passthrough"]  # irrelevant without delay sparsity
    return all(da[k] == db[k] for k in _MATCH_KEYS)


def _row(net: DelayNetwork, label: str, variant: str, learned: bool, repeats: int) -> dict[str, Any]:
    params = count_parameters(net)
    bits = buffer_bits(net)
    executor = StreamingExecutor.from_model(net, "allocated", device="cpu")
    frames = torch.rand(max(repeats, 8), 1, net.spec.n_inputs)
    lat = streaming_step_latency(executor, frames, warmup=5, repeats=repeats)
    return {
        "dataset": label, "variant": variant, "D": net.spec.kernel_size,
        "params_trainable": params["trainable"], "params_effective": params["effective"],
        "buffer_allocated_bits": bits["allocated_bits"],
        "buffer_learned_bits": bits["learned_bits"] if learned else None,
        "synaptic_spike_line_bits": bits["synaptic_spike_line_bits"],
        "stored_delay_values": bits["stored_delay_values"],
        "streaming_state_bytes": executor.state_bytes(),
        "streaming_state_bytes_learned": streaming_state_bytes(net, "learned") if learned else None,
        "streaming_step_median_us": lat["median_s"] * 1e6, "streaming_step_iqr_us": lat["iqr_s"] * 1e6,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


_COLUMNS = [("dataset", "dataset"), ("variant", "variant"), ("D", "D"), ("params_trainable", "trainable params"),
            ("params_effective", "effective params"), ("buffer_allocated_bits", "buffer allocated (bits)"),
            ("buffer_learned_bits", "buffer learned (bits)"), ("synaptic_spike_line_bits", "per-synapse lines (bits)"),
            ("stored_delay_values", "stored delays"), ("streaming_state_bytes", "streaming state (B)"),
            ("streaming_state_bytes_learned", "state learned (B)"),
            ("streaming_step_median_us", "step median (µs)"), ("streaming_step_iqr_us", "step IQR (µs)")]


def _markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(h for _, h in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k, _ in _COLUMNS) + " |" for r in rows]
    return lines


def paper_architecture_table(out_md: Path, trained: Sequence[DelayNetwork] = (),
                             kernel_sizes: Sequence[int] = (31, 15),
                             architectures: Mapping[str, tuple[int, tuple[int, ...], int]] | None = None,
                             latency_repeats: int = 30, seed: int = 0) -> list[dict[str, Any]]:
    """Write the architecture table to ``out_md`` and return its rows (the trained model's row last, if given).

    Models are built untrained with ``seed`` (only the sparse delay mask, about 20% of lines, depends on it);
    latency is one StreamingExecutor step, batch 1, on the CPU with the current torch thread count.
    """
    torch.manual_seed(seed)
    archs = architectures if architectures is not None else PAPER_ARCHITECTURES
    rows = []
    for label, (n_in, hidden, n_out) in archs.items():
        for variant, overrides in TABLE_VARIANTS.items():
            for k in kernel_sizes:
                spec = ModelSpec(variant=variant.split()[0], n_inputs=n_in, n_hidden=hidden, n_outputs=n_out,
                                 kernel_size=k, **overrides)
                match = next((t for t in trained if _same_architecture(spec, t.spec)), None)
                net = match.hard_copy() if match is not None else DelayNetwork(spec).eval()
                rows.append(_row(net, label, variant, match is not None, latency_repeats))
    trained_rows = []
    for model in trained:
        spec = model.spec
        arch = "-".join(str(n) for n in (spec.n_inputs, *spec.n_hidden, spec.n_outputs))
        trained_rows.append(_row(model.hard_copy(), f"trained {arch}", spec.variant, True, latency_repeats))
    text = [
        "# Paper architectures: parameters, delay buffers, streaming state and latency",
        "",
        "Definitions: docs/metrics.md. Buffers are per stream (one sample); learned sizes need trained delays and read "
        "n/a without them. axonal-sparse uses `zero` pass-through (masked lines delay 0, not buffered) with delay "
        f"sparsity 0.8 and a mask drawn with seed {seed}. Latency: one `StreamingExecutor.step`, batch 1, CPU "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), median and IQR over "
        f"{latency_repeats} steps after 5 warm-up steps.",
        "",
        *_markdown(rows),
    ]
    if trained_rows:
        text += ["", "## Trained models", "",
                 "Learned sizes of models trained by `python -m suite run` (each line as deep as its own learned "
                 "integer delay), next to their allocated sizes.", "", *_markdown(trained_rows)]
    atomic_write_text(Path(out_md), "\n".join(text) + "\n")
    return rows + trained_rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="markdown file to write")
    parser.add_argument("--repeats", type=int, default=30, help="timed streaming steps per model")
    parser.add_argument("--results", type=Path, default=None,
                        help="a results directory of `suite run`: its trained models get learned-size rows")
    args = parser.parse_args(argv)
    trained = trained_models(args.results) if args.results is not None else []
    paper_architecture_table(args.out, trained=trained, latency_repeats=args.repeats)
    print(f"wrote {args.out}")


def trained_models(results_dir: Path) -> list[DelayNetwork]:
    """The selected (best-validation) model of every configuration in ``results_dir``
    (seed 0, no overrides; grouped as the leaderboard groups them, :func:`suite.records.collect_runs`)."""
    from suite.records import collect_runs, load_trained_model

    groups, _, _ = collect_runs(results_dir)
    return [load_trained_model(rec.path, rec) for group in groups for rec in group.records
            if rec.seed == 0 and not rec.overrides]


if __name__ == "__main__":
    main()

