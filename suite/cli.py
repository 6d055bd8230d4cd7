"""Command line: list, describe, run, verify, leaderboard, data, doctor, bench, sweep, reproduce, status.

Every user-facing failure is a :class:`SuiteError`, printed as one line on stderr with exit code 2; Ctrl-C exits 130
and a closed stdout pipe (``| head``) exits 141 without a message. Building the parser imports nothing heavy (torch,
pandas, matplotlib, rich): each command imports what it needs when it runs, and the commands that live with their
subsystem are only imported when named, so ``--help`` and ``--version`` are instant. Text that comes from records,
protocol files or plug-ins goes through :mod:`suite.safetext` before rich renders it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite import __version__
from suite.errors import SuiteError
from suite.ops.registry import BACKEND_HELP, DEFAULT_BACKEND
from suite.safetext import one_line, terminal

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_OUT = Path("results")
# Sub-commands that live with their subsystem: (module, function adding the sub-parser, one-line help for --help).
SUBSYSTEM_COMMANDS = {
    "data": ("suite.data.commands", "add_data_commands", "generate synthetic datasets or check a data root"),
    "doctor": ("suite.doctor", "add_doctor_command", "check the numba-cuda backend against torch"),
    "bench": ("suite.bench", "add_bench_command", "time our kernels against the published stack"),
    "sweep": ("suite.launch.commands", "add_sweep_command", "run a named grid of runs here or on Slurm"),
    "reproduce": ("suite.launch.commands", "add_reproduce_command", "check the data, run the paper sweeps, verify"),
    "status": ("suite.status", "add_status_command", "done / running / failed / not started runs of a results folder"),
}


@functools.cache
def console() -> Console:
    """The CLI's rich console, created on first use (importing rich is not free)."""
    from rich.console import Console

    return Console()


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set`` values: YAML scalars and lists (``15``, ``0.8``, ``zero``, ``[64, 64]``); safe YAML only, so a tag
    such as ``!!python/object`` is a one-line error. Types and ranges are checked when the ModelSpec is built."""
    from suite.specs import load_yaml

    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SuiteError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set kernel_size=15 or --set epochs=1")
        parsed = load_yaml(value, f"--set {pair!r}")
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-5 as a string
            with contextlib.suppress(ValueError):
                parsed = float(parsed)
        result[key] = parsed
    return result


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from suite.data import dataset_kinds
    from suite.kinds import kinds
    from suite.ops.registry import BACKENDS
    from suite.registry import get_protocol, protocol_names, variants

    table = Table(title="Variants", title_justify="left")
    for col in ("variant", "delay type", "backends", "description", "from"):
        table.add_column(col)
    for v in variants().values():
        table.add_row(*map(terminal, (v.name, v.delay_type, ", ".join(v.supported_backends()), v.description,
                                      v.origin)))
    console().print(table)
    delay_kinds = Table(title="Delay kinds", title_justify="left")
    for col in ("kind", "description"):
        delay_kinds.add_column(col)
    for kind in kinds().values():
        delay_kinds.add_row(terminal(kind.name), terminal(kind.label))
    console().print(delay_kinds)
    backends = Table(title="Backends", title_justify="left")
    backends.add_column("backend")
    backends.add_column("description")
    for b in BACKENDS.values():
        backends.add_row(terminal(b.name), terminal(b.description))
    console().print(backends)
    datasets = Table(title="Dataset kinds", title_justify="left")
    for col in ("kind", "splits", "classes", "settings (defaults)", "description", "from"):
        datasets.add_column(col)
    for k in dataset_kinds().values():
        settings = ", ".join(f"{key}={value}" for key, value in k.settings.items())
        datasets.add_row(*map(terminal, (k.name, ", ".join(k.splits), k.official_classes, settings, k.label,
                                         k.origin)))
    console().print(datasets)
    protocols = Table(title="Protocols", title_justify="left")
    for col in ("protocol", "version", "embedded", "seeds", "description"):
        protocols.add_column(col)
    for name in protocol_names():
        p = get_protocol(name)
        protocols.add_row(*map(terminal, (p.name, p.version, "yes" if p.embedded else "no",
                                          ",".join(map(str, p.seeds)), p.description)))
    console().print(protocols)
    return 0


def embedded_protocols() -> list[str]:
    """The registered protocols marked ``embedded: true`` (CPU-sized, synthetic data): what ``run --all`` runs."""
    from suite.registry import get_protocol, protocol_names

    return [name for name in protocol_names() if get_protocol(name).embedded]


def describe(variant: str, protocol_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Architecture, parameters and static costs of a variant on a protocol, without training."""
    from suite import metrics
    from suite.kinds import kind_of
    from suite.registry import create_model, get_protocol
    from suite.specs import split_overrides

    protocol_overrides, model_overrides = split_overrides(overrides)
    protocol = get_protocol(protocol_name).with_overrides(protocol_overrides)
    model, spec = create_model(variant, protocol, "torch", model_overrides)
    layers = []
    for i, layer in enumerate(model.layers):
        delay = getattr(layer, "delay", None)
        layers.append({
            "layer": i, "n_in": layer.n_in, "n_out": layer.n_out, "output": layer.is_output,
            "delay": kind_of(model).label,
            "kernel_size": delay.kernel_size if delay is not None else None,
            "delayed_lines": delay.active_lines() if hasattr(delay, "active_lines") else None,
            "batchnorm": layer.norm is not None,
            "parameters": metrics.count_parameters(layer),
        })
    return {"variant": variant, "protocol": protocol.name, "protocol_version": protocol.version,
            "model_spec": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()},
            "layers": layers, "static": metrics.static_metrics(model.hard_copy())}


def cmd_describe(args: argparse.Namespace) -> int:
    from rich.table import Table

    info = describe(args.variant, args.protocol, _overrides(args.set))
    if args.json:
        from suite.records import strict_json

        print(strict_json(info, indent=2, default=str))
        return 0
    table = Table(title=terminal(f"{info['variant']} on {info['protocol']} (v{info['protocol_version']})"),
                  title_justify="left")
    for col in ("layer", "N_in -> N_out", "delay", "D", "delayed lines", "BN", "trainable params"):
        table.add_column(col, justify="right" if col in ("layer", "D", "trainable params") else "left")
    for row in info["layers"]:
        table.add_row(str(row["layer"]), f"{row['n_in']} -> {row['n_out']}" + (" (output)" if row["output"] else ""),
                      row["delay"], str(row["kernel_size"] or "—"), str(row["delayed_lines"] or "—"),
                      "yes" if row["batchnorm"] else "no", f"{row['parameters']['trainable']:,}")
    console().print(table)
    static = info["static"]
    for key, value in static.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in value.items())
        elif isinstance(value, int):
            value = f"{value:,}"
        console().print(terminal(f"{key}: {value}"))
    return 0


def _plan(args: argparse.Namespace) -> list[tuple[Any, Any]]:
    """Expand the run command's selection into resolved (RunSpec, ProtocolSpec) pairs.

    Every override, variant and backend is validated (a full ProtocolSpec and ModelSpec per run) before the data is
    touched; then each protocol's data is fingerprinted (file listing and stat only) for the run ids.
    """
    from suite.data.identity import data_fingerprint
    from suite.ops.registry import resolve
    from suite.registry import get_protocol, get_variant, resolve_model_spec, variants
    from suite.specs import RunSpec, split_overrides

    if args.all:
        protocol_names = args.protocol or embedded_protocols()
        variant_names = args.variant or list(variants())
    else:
        if not args.protocol or not args.variant:
            raise SuiteError("run: give --protocol and --variant, or --all (every variant on the embedded protocols)")
        protocol_names, variant_names = args.protocol, args.variant
    resolve(args.backend, args.device)  # unknown or unusable backend: fail before any data is built
    backend_of = {}  # auto resolves per variant, among the backends the variant supports
    for name in variant_names:
        supported = get_variant(name).supported_backends()
        backend_of[name] = resolve(args.backend, args.device, supported)
        if backend_of[name] not in supported:
            raise SuiteError(f"variant {name!r} does not support backend {backend_of[name]!r} "
                             f"(supported: {', '.join(supported)})")
    protocol_overrides, overrides = split_overrides(_overrides(args.set))
    protocols = [get_protocol(name).with_overrides(protocol_overrides) for name in protocol_names]
    for protocol in protocols:
        for variant_name in variant_names:
            resolve_model_spec(variant_name, protocol, overrides)
    specs = []
    for protocol in protocols:
        needs_root = args.data_root is None and protocol.data.get("synthetic") is None
        fingerprint = "" if needs_root and args.dry_run else data_fingerprint(protocol.data, args.data_root)
        seeds = args.seeds if args.seeds is not None else list(protocol.seeds)
        for variant_name in variant_names:
            for seed in seeds:
                specs.append((RunSpec(variant_name, protocol.name, backend_of[variant_name], seed,
                                      tuple(sorted(overrides.items())), args.official_metric, protocol.protocol_hash,
                                      fingerprint), protocol))
    return specs


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    from suite.specs import MAX_SEED

    if not seeds or any(not 0 <= s <= MAX_SEED for s in seeds):
        raise argparse.ArgumentTypeError(f"expected seeds in 0..{MAX_SEED}, got {text!r}")
    return seeds


def cmd_run(args: argparse.Namespace) -> int:
    from suite.progress import RichProgress
    from suite.records import find_record, load_record, record_path
    from suite.train import run_training

    specs = _plan(args)
    out: Path = args.out
    for option, folder in (("--out", out), ("--cache-dir", args.cache_dir)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise SuiteError(f"{option} {folder}: is a file, expected a folder")  # before any training
    if args.dry_run:
        return _print_plan(specs, out)
    todo = []
    for spec, protocol in specs:
        existing = find_record(out, spec.run_id)
        if existing is not None:
            try:
                load_record(existing)
            except SuiteError as err:  # a torn or foreign file never blocks its run; the new record replaces it
                console().print(terminal(f"{err}; rerunning (the file is replaced when the new record is written)"),
                                soft_wrap=True)
                todo.append((spec, protocol, existing))
                continue
        if existing is not None and not args.force:
            continue
        todo.append((spec, protocol, existing))
    skipped = len(specs) - len(todo)
    console().print(terminal(f"{len(specs)} run(s) planned, {skipped} already recorded in {out} (skipped; --force "
                             f"reruns), {len(todo)} to run."), soft_wrap=True)
    with RichProgress(console(), len(todo)) as progress:
        for spec, protocol, existing in todo:
            # A rerun replaces its old record only once its own is written (same file name, atomic rename), and the
            # old checkpoint only when it saves its first epoch: an interrupted --force loses nothing.
            run_training(spec, out, data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
                         progress=progress, protocol=protocol,
                         resume=existing is None or _checkpoint_is_newer(out, spec.run_id, existing))
            written = record_path(out, spec.protocol, spec.variant, spec.seed, spec.run_id)
            if existing is not None and existing != written:
                try:
                    existing.unlink(missing_ok=True)  # the old record had another file name: the new one replaces it
                except OSError as err:
                    console().print(terminal(f"{existing}: left in place ({err.strerror})"))
    return _leaderboard(out)


def _print_plan(specs: list[tuple[Any, Any]], out: Path) -> int:
    """``run --dry-run``: each resolved protocol (what differs from the registered one) and each run's id."""
    from rich.table import Table

    from suite.identity import comparability
    from suite.records import find_record

    shown: set[str] = set()
    table = Table(title=terminal(f"Planned runs (dry run; records in {out})"), title_justify="left")
    for col in ("run", "run id", "protocol", "data", "recorded"):
        table.add_column(col, overflow="fold")
    for spec, protocol in specs:
        label, reason = comparability(protocol.name, protocol.content())
        if protocol.protocol_hash not in shown:
            shown.add(protocol.protocol_hash)
            console().print(terminal(
                f"protocol {label}: hash {protocol.protocol_hash}, epochs {protocol.optim['epochs']}, "
                f"batch {protocol.optim['batch_size']}, data {dict(protocol.data)}"
                + (f"; NOT COMPARABLE with published {protocol.name} numbers: {reason}" if reason else "")),
                soft_wrap=True, highlight=False)
        if not spec.data_fingerprint:  # a real dataset and no --data-root: the id needs the data's fingerprint
            table.add_row(terminal(spec.label), "— (needs --data-root)", terminal(label), "—", "—")
            continue
        recorded = find_record(out, spec.run_id)
        table.add_row(terminal(spec.label), spec.run_id, terminal(label), spec.data_fingerprint,
                      recorded.name if recorded else "no")
    console().print(table)
    return 0


def _checkpoint_is_newer(out: Path, run_id: str, record: Path) -> bool:
    """A checkpoint newer than the record it would replace is a rerun's own (an interrupted ``--force``): resume it.
    An older one is a leftover of the recorded run and is not resumed."""
    from suite.records import CHECKPOINTS_DIR

    checkpoint = out / CHECKPOINTS_DIR / f"{run_id}.pt"
    return checkpoint.exists() and checkpoint.stat().st_mtime_ns > record.stat().st_mtime_ns


def _leaderboard(out: Path, references: Path | None = None, html: Path | None = None) -> int:
    """Write the Markdown/CSV/plots (and with ``html`` the static site), then print each protocol's table with
    verify's verdicts beside our runs."""
    from suite.report import build_leaderboard, write_leaderboard
    from suite.terminal import render_terminal, verdicts

    written, warnings = write_leaderboard(out, references_dir=references)
    frames, _ = build_leaderboard(out, references)  # second read is cheap: records are small JSON files
    try:
        checks = verdicts(out, references)
    except SuiteError:  # broken reference files: already one warning from write_leaderboard
        checks = {}
    console().print(terminal(f"Leaderboard written: {', '.join(str(p) for p in written if p.suffix == '.md')}"),
                    soft_wrap=True)
    for table in render_terminal(frames, checks, console()):
        console().print(table)
    if html is not None:
        from suite.site import write_site

        _, site_warnings = write_site(out, html, references)
        warnings += [w for w in site_warnings if w not in warnings]
        console().print(terminal(f"HTML leaderboard written: {html / 'index.html'}"), soft_wrap=True)
    for warning in warnings:
        print(f"warning: {one_line(warning)}", file=sys.stderr)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    return _leaderboard(args.results, args.references, args.html)


def cmd_verify(args: argparse.Namespace) -> int:
    from suite.verify import print_checks, verify_results

    return print_checks(verify_results(args.results, args.references), verbose=args.verbose)


def _results_arguments(p: argparse.ArgumentParser) -> None:
    """RESULTS and --references, the same for every command that reads a results directory."""
    p.add_argument("results", type=Path, nargs="?", default=DEFAULT_OUT, metavar="RESULTS",
                   help=f"results directory, as given to run --out (default {DEFAULT_OUT})")
    p.add_argument("--references", type=Path, default=None,
                   help="directory of reference YAML files (default: the ones shipped in suite/reference_results/)")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. Of the subsystem commands only the one named in ``argv`` is imported and fully defined; the
    others appear in ``--help`` with their one-line help (a parser for --help must not import torch)."""
    parser = argparse.ArgumentParser(prog="python -m suite", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s (delay-snn-suite) {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="variants, backends and protocols")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("describe", help="architecture, parameters and buffers of a variant, without training")
    p.add_argument("variant")
    p.add_argument("--protocol", default="gsc")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="protocol or model override, repeatable (see run --help)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("run", help="train and score variants on protocols")
    p.add_argument("--all", action="store_true", help="every registered variant (default protocols: embedded ones)")
    p.add_argument("--protocol", action="append",
                   help="protocol name or path to a protocol YAML file (repeatable)")
    p.add_argument("--variant", action="append", help="variant name (repeatable)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, help=BACKEND_HELP)
    p.add_argument("--seeds", type=_seeds, default=None, help="comma-separated seeds (default: the protocol's)")
    p.add_argument("--data-root", type=Path, default=None, help="dataset root for the paper protocols")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="synthetic-data and feature cache (default $SUITE_CACHE_DIR, else $XDG_CACHE_HOME/"
                        "delay-snn-suite, else ~/.cache/delay-snn-suite)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--force", action="store_true", help="rerun runs that already have a record")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, repeatable: a protocol key (epochs, batch_size, groups.GROUP.SETTING such as "
                        "groups.positions.lr, max_lr_w, lr_pos, weight_decay, n_mels, n_bins, time_step_ms, synthetic, "
                        "memory, ...; or optim.KEY, data.KEY, measure.KEY) or a model key (kernel_size, "
                        "delay_sparsity, ...); checked before any data")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved protocols and runs with their ids and whether recorded; build nothing")
    p.add_argument("--official-metric", action="store_true",
                   help="also evaluate test every epoch and report the official (test-leaking) metric, labelled")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="compare run records with reference results")
    _results_arguments(p)
    p.add_argument("--verbose", action="store_true", help="one line per NOT COMPARABLE check (default: one summary)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("leaderboard", help="Markdown/CSV tables and plots from run records")
    _results_arguments(p)
    p.add_argument("--html", type=Path, default=None, metavar="DIR",
                   help="also write a self-contained HTML leaderboard (index.html, one page per protocol and method)")
    p.set_defaults(func=cmd_leaderboard)

    named = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    for name, (module, function, help_text) in SUBSYSTEM_COMMANDS.items():
        if name == named:
            getattr(importlib.import_module(module), function)(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (`... | head`): stop quietly with 128 + SIGPIPE, as `seq 9 | head -1` does,
        # and point stdout at /dev/null so the interpreter's final flush does not print a second error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:  # disk full, read-only folder, a file where a folder should be: one line naming the path
        from suite.records import os_reason

        print(f"error: {err.filename or 'filesystem'}: {os_reason(err, err.filename)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished epochs are checkpointed; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
