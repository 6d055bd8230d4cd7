"""Command line: list, describe, run, verify, leaderboard, data, doctor, bench.

Every user-facing failure is a :class:`SuiteError`, printed as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from suite.errors import SuiteError

DEFAULT_OUT = Path("results")
EMBEDDED_PROTOCOLS = ("gsc-mini", "ssc-mini")

console = Console()


def _parse_value(text: str) -> Any:
    """``--set`` values: YAML scalars and lists (``15``, ``0.8``, ``zero``, ``[64, 64]``)."""
    import yaml

    return yaml.safe_load(text)


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SuiteError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set kernel_size=15")
        parsed = _parse_value(value)
        result[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return result


def cmd_list(args: argparse.Namespace) -> int:
    from suite.ops.registry import BACKENDS
    from suite.registry import get_protocol, protocol_names, variants

    table = Table(title="Variants", title_justify="left")
    for col in ("variant", "delay type", "backends", "description", "from"):
        table.add_column(col)
    for v in variants().values():
        table.add_row(v.name, v.delay_type, ", ".join(v.supported_backends()), v.description, v.origin)
    console.print(table)
    backends = Table(title="Backends", title_justify="left")
    backends.add_column("backend")
    backends.add_column("description")
    for b in BACKENDS.values():
        backends.add_row(b.name, b.description)
    console.print(backends)
    protocols = Table(title="Protocols", title_justify="left")
    for col in ("protocol", "version", "embedded", "seeds", "description"):
        protocols.add_column(col)
    for name in protocol_names():
        p = get_protocol(name)
        protocols.add_row(p.name, str(p.version), "yes" if p.embedded else "no", ",".join(map(str, p.seeds)),
                          p.description)
    console.print(protocols)
    return 0


def describe(variant: str, protocol_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Architecture, parameters and static costs of a variant on a protocol, without training."""
    from suite import metrics
    from suite.registry import create_model, get_protocol

    protocol = get_protocol(protocol_name)
    model, spec = create_model(variant, protocol, "torch", overrides)
    layers = []
    for i, layer in enumerate(model.layers):
        delay = getattr(layer, "delay", None)
        layers.append({
            "layer": i, "n_in": layer.n_in, "n_out": layer.n_out, "output": layer.is_output,
            "delay": {"pre": "axonal (before W)", "post": "dendritic (after W)", "fused": "synaptic (per synapse)",
                      "none": "none"}[layer.delay_site],
            "kernel_size": delay.kernel_size if delay is not None else None,
            "delayed_lines": delay.active_lines() if hasattr(delay, "active_lines") else None,
            "batchnorm": layer.norm is not None,
            "parameters": metrics.count_parameters(layer),
        })
    return {"variant": variant, "protocol": protocol.name, "protocol_version": protocol.version,
            "model_spec": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()},
            "layers": layers, "static": metrics.static_metrics(model.hard_copy())}


def cmd_describe(args: argparse.Namespace) -> int:
    info = describe(args.variant, args.protocol, _overrides(args.set))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    table = Table(title=f"{info['variant']} on {info['protocol']} (v{info['protocol_version']})", title_justify="left")
    for col in ("layer", "N_in -> N_out", "delay", "D", "delayed lines", "BN", "trainable params"):
        table.add_column(col, justify="right" if col in ("layer", "D", "trainable params") else "left")
    for row in info["layers"]:
        table.add_row(str(row["layer"]), f"{row['n_in']} -> {row['n_out']}" + (" (output)" if row["output"] else ""),
                      row["delay"], str(row["kernel_size"] or "—"), str(row["delayed_lines"] or "—"),
                      "yes" if row["batchnorm"] else "no", f"{row['parameters']['trainable']:,}")
    console.print(table)
    static = info["static"]
    for key, value in static.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in value.items())
        elif isinstance(value, int):
            value = f"{value:,}"
        console.print(f"{key}: {value}")
    return 0


def _plan(args: argparse.Namespace) -> list[tuple[Any, Any]]:
    """Expand the run command's selection into (RunSpec, ProtocolSpec) pairs."""
    from suite.ops.registry import get_ops
    from suite.registry import get_protocol, get_variant, variants
    from suite.specs import RunSpec

    if args.all:
        protocol_names = args.protocol or list(EMBEDDED_PROTOCOLS)
        variant_names = args.variant or list(variants())
    else:
        if not args.protocol or not args.variant:
            raise SuiteError("run: give --protocol and --variant, or --all (every variant on the embedded protocols)")
        protocol_names, variant_names = args.protocol, args.variant
    get_ops(args.backend)  # unknown or unusable backend: fail before any data is built
    for name in variant_names:
        found = get_variant(name)
        if args.backend not in found.supported_backends():
            raise SuiteError(f"variant {name!r} does not support backend {args.backend!r} "
                             f"(supported: {', '.join(found.supported_backends())})")
    overrides = _overrides(args.set)
    specs = []
    for protocol_name in protocol_names:
        protocol = get_protocol(protocol_name)
        seeds = args.seeds if args.seeds is not None else list(protocol.seeds)
        for variant_name in variant_names:
            for seed in seeds:
                specs.append((RunSpec(variant_name, protocol.name, args.backend, seed,
                                      tuple(sorted(overrides.items())), args.official_metric), protocol))
    return specs


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected non-negative seeds, got {text!r}")
    return seeds


def cmd_run(args: argparse.Namespace) -> int:
    from suite.progress import RichProgress
    from suite.report import render_terminal
    from suite.results import CHECKPOINTS_DIR, find_record, load_record
    from suite.train import run_training

    specs = _plan(args)
    out: Path = args.out
    todo = []
    for spec, protocol in specs:
        existing = find_record(out, spec.run_id)
        if existing is not None and load_record(existing)["protocol"]["version"] != protocol.version:
            console.print(f"{existing.name}: recorded under another version of protocol {protocol.name}; rerunning")
            existing = None
        if existing is not None and args.force:
            existing.unlink()
            (out / CHECKPOINTS_DIR / f"{spec.run_id}.pt").unlink(missing_ok=True)
            existing = None
        if existing is None:
            todo.append((spec, protocol))
    skipped = len(specs) - len(todo)
    console.print(f"{len(specs)} run(s) planned, {skipped} already recorded in {out} (skipped; --force reruns), "
                  f"{len(todo)} to run.", soft_wrap=True)
    with RichProgress(console, len(todo)) as progress:
        for spec, protocol in todo:
            run_training(spec, out, data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
                         progress=progress, protocol=protocol)
    frames, warnings = _leaderboard(out)
    for table in render_terminal(frames):
        console.print(table)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _leaderboard(out: Path) -> tuple[dict[str, Any], list[str]]:
    from suite.report import build_leaderboard, write_leaderboard

    written, warnings = write_leaderboard(out)
    frames, _ = build_leaderboard(out)  # second read is cheap: records are small JSON files
    console.print(f"Leaderboard written: {', '.join(str(p) for p in written if p.suffix == '.md')}", soft_wrap=True)
    return frames, warnings


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from suite.report import render_terminal

    frames, warnings = _leaderboard(args.results)
    for table in render_terminal(frames):
        console.print(table)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from suite.verify import print_checks, verify_results

    return print_checks(verify_results(args.results, args.references))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m suite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="variants, backends and protocols")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("describe", help="architecture, parameters and buffers of a variant, without training")
    p.add_argument("variant")
    p.add_argument("--protocol", default="gsc")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model override, repeatable")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("run", help="train and score variants on protocols")
    p.add_argument("--all", action="store_true", help="every registered variant (default protocols: embedded ones)")
    p.add_argument("--protocol", action="append", help="protocol name (repeatable)")
    p.add_argument("--variant", action="append", help="variant name (repeatable)")
    p.add_argument("--backend", default="torch")
    p.add_argument("--seeds", type=_seeds, default=None, help="comma-separated seeds (default: the protocol's)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset root for the paper protocols")
    p.add_argument("--cache-dir", type=Path, default=None, help="feature/synthetic-data cache (default OUT/.cache)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--force", action="store_true", help="rerun runs that already have a record")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model override, repeatable")
    p.add_argument("--official-metric", action="store_true",
                   help="also evaluate test every epoch and report the official (test-leaking) metric, labelled")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="compare run records with reference results")
    p.add_argument("results", type=Path)
    p.add_argument("--references", type=Path, default=Path(__file__).resolve().parent.parent / "reference_results")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("leaderboard", help="Markdown/CSV tables and plots from run records")
    p.add_argument("results", type=Path)
    p.set_defaults(func=cmd_leaderboard)

    for add in _optional_commands():
        add(sub)
    return parser


def _optional_commands() -> list[Any]:
    """Sub-commands that live with their subsystem (data, doctor, bench, sweep, status)."""
    from suite.bench import add_bench_command
    from suite.data.commands import add_data_commands
    from suite.doctor import add_doctor_command
    from suite.launch.commands import add_reproduce_command, add_sweep_command
    from suite.status import add_status_command

    return [add_data_commands, add_doctor_command, add_bench_command, add_sweep_command, add_reproduce_command,
            add_status_command]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished epochs are checkpointed; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
