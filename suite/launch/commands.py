"""`python -m suite sweep NAME|FILE --launcher local|slurm [--dry-run] [--jobs N]`: plan, show and launch a sweep.

Runs already recorded are skipped, runs whose lock is held are left to their process, everything else (not started,
interrupted, failed) is launched; an interrupted run resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from suite.errors import SuiteError
from suite.launch import Job
from suite.ops.registry import BACKEND_HELP, DEFAULT_BACKEND, resolve
from suite.registry import get_variant
from suite.status import run_state, summary
from suite.sweeps import PlannedRun, Sweep, data_root_for, load_sweep, sweep_names

DEFAULT_OUT = Path("results")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_sweep_command(subparsers: Any) -> None:
    p = subparsers.add_parser("sweep", help="run a named grid of runs here or on Slurm",
                              description=f"Run a sweep ({', '.join(sweep_names())}, or a sweep .yaml file).")
    p.add_argument("sweep", help="shipped sweep name or a sweep .yaml file")
    _add_launch_options(p)


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", choices=("local", "slurm"), default="local")
    p.add_argument("--dry-run", action="store_true",
                   help="list runs (done / to do) and the compute asked; launch nothing")
    p.add_argument("--jobs", type=_positive, default=1, help="local: runs at a time (cores split between them)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory (shared by all jobs)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="dataset root, or a folder with gsc/, ssc/, shd/ (as `data download --root DIR/<kind>`)")
    p.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default OUT/.cache)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, help=BACKEND_HELP)
    p.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda for GPU jobs on Slurm, else cpu)")
    group = p.add_argument_group("what each Slurm job asks for (default: the sweep file's resources)")
    group.add_argument("--partition", default=None)
    group.add_argument("--gpus", type=int, default=None)
    group.add_argument("--cpus", type=_positive, default=None)
    group.add_argument("--mem-gb", type=float, default=None)
    group.add_argument("--time-hours", type=float, default=None, help="time limit; a job reaching it is requeued")
    p.set_defaults(func=cmd_sweep)


def add_reproduce_command(subparsers: Any) -> None:
    p = subparsers.add_parser("reproduce", help="check the data, run the paper sweeps, verify, leaderboard",
                              description="Reproduce the paper: data check, the paper and paper-sparsity sweeps, then "
                                          "verify and the leaderboard. With Slurm, run it again when jobs are done.")
    p.add_argument("target", choices=("paper",))
    _add_launch_options(p)
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Each step as its own command would do it; the verification covers whatever runs are recorded so far."""
    from suite.data import get_dataset_kind
    from suite.report import write_leaderboard
    from suite.verify import print_checks, verify_results

    if args.data_root is None:
        raise SuiteError("reproduce paper: give --data-root (a folder with gsc/ and ssc/, see `data download`)")
    for kind in ("gsc", "ssc"):
        root = data_root_for(args.data_root, kind)
        data_kind = get_dataset_kind(kind)
        sizes, _ = data_kind.inspect(root, deep=False)  # structure: a bad root fails here, not in 420 jobs
        differ = {split: n for split, n in sizes.items() if n != data_kind.official_sizes[split]}
        print(f"data {kind} at {root}: " + ("official sizes" if not differ else f"sizes differ from the official "
                                            f"ones: {differ} (numbers will not be comparable)"))
    waiting = 0
    for name in ("paper", "paper-sparsity"):
        args.sweep = name
        rc = cmd_sweep(args)
        if rc:
            return rc
        if args.launcher == "slurm":
            waiting += sum(run_state(args.out, r.spec.run_id)[0] != "done"
                           for r in _load(args, name)[0].runs)
    if not args.out.exists():
        return 0
    write_leaderboard(args.out)
    code = print_checks(verify_results(args.out))
    if waiting:
        print(f"{waiting} run(s) still queued or running on Slurm: run this command again when `python -m suite "
              f"status {args.out}` shows them done; the checks above cover the runs recorded so far")
    return code


def resources_from(args: argparse.Namespace, sweep: Sweep) -> dict[str, Any]:
    """The sweep file's resources with the command-line options on top."""
    options = {"partition": args.partition, "gpus": args.gpus, "cpus": args.cpus, "mem_gb": args.mem_gb,
               "time_hours": args.time_hours}
    return {**sweep.resources, **{k: v for k, v in options.items() if v is not None}}


def expected_hours(run: PlannedRun, resources: Mapping[str, Any]) -> float | None:
    """Epochs x the sweep's per-epoch minutes for this protocol and variant, in hours; None when not given."""
    minutes = resources.get("epoch_minutes", {}).get(run.protocol.name, {}).get(run.spec.variant)
    return None if minutes is None else int(run.protocol.optim["epochs"]) * float(minutes) / 60


def compute_lines(todo: Sequence[PlannedRun], resources: Mapping[str, Any], launcher: str) -> list[str]:
    """What each job asks for and what the runs still to do add up to."""
    gpus, hours = int(resources["gpus"]), float(resources["time_hours"])
    if launcher == "local":
        lines = ["each job: one local process (cores split over --jobs)"]
    else:
        lines = [f"each job asks: {gpus} GPU(s), {resources['cpus']} CPU(s), {resources['mem_gb']} GB, "
                 f"time limit {hours:g} h" + (f", partition {resources['partition']}" if resources["partition"] else
                                             "") + " (requeued from its checkpoint when the limit is reached)"]
    expected = [expected_hours(r, resources) for r in todo]
    known = [h for h in expected if h is not None]
    unit = "GPU-hours" if gpus else "CPU-job-hours"
    if known:
        lines.append(f"expected compute of the {len(todo)} run(s) to do: {sum(known) * max(gpus, 1):,.1f} {unit} "
                     f"(epochs x the sweep's epoch_minutes; {len(expected) - len(known)} run(s) without an estimate)")
        if resources.get("epoch_minutes_source"):
            lines.append(f"epoch_minutes source: {resources['epoch_minutes_source']}")
    if launcher == "slurm":
        count, unit = (gpus, "GPU") if gpus else (int(resources["cpus"]), "CPU")
        lines.append(f"asked for per submission: {len(todo)} job(s) x {hours:g} h x {count} {unit} = "
                     f"{len(todo) * hours * count:,.1f} {unit}-hours of allocation at most per slice")
    return lines


def _load(args: argparse.Namespace, name: str) -> tuple[Sweep, dict[str, Any], str]:
    """(the sweep on the backend its jobs will run, the resources each job asks for, the jobs' device): ``--backend``
    is resolved for that device (``auto``: cpu-kernels on CPU where they build, else torch) before any run id."""
    sweep = load_sweep(name, "torch", args.data_root)
    resources = resources_from(args, sweep)
    gpu_job = args.launcher == "slurm" and int(resources["gpus"]) > 0
    device = args.device or ("cuda" if gpu_job else "cpu")
    resolve(args.backend, device)  # a named backend that cannot run here: one line before anything else

    def backend_of(variant: str) -> str:
        return resolve(args.backend, device, get_variant(variant).supported_backends())

    return sweep.on_backend(backend_of), resources, device


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep, resources, device = _load(args, args.sweep)
    unresolved = sorted({r.protocol.name for r in sweep.runs if not r.spec.data_fingerprint})
    if unresolved and not args.dry_run:
        raise SuiteError(f"sweep {sweep.name}: protocols {', '.join(unresolved)} read a real dataset: give --data-root")
    out: Path = args.out
    states = {r.spec.run_id: run_state(out, r.spec.run_id) for r in sweep.runs}
    todo = [r for r in sweep.runs if states[r.spec.run_id][0] not in ("done", "running")]
    print(f"sweep {sweep.name} v{sweep.version} ({sweep.path}): {sweep.description}")
    if args.dry_run:
        for run in sweep.runs:
            state, detail = states[run.spec.run_id]
            hours = expected_hours(run, resources)
            print(f"{'done' if state == 'done' else 'to do' if run in todo else state:<8} {run.spec.run_id}  "
                  f"{run.spec.label}  epochs {run.protocol.optim['epochs']}"
                  + (f", ~{hours:.1f} h" if hours is not None else "") + (f"  ({state}: {detail})" if detail else ""))
    print(summary(s for s, _ in states.values()) + f"; {len(todo)} to launch")
    for line in compute_lines(todo, resources, args.launcher):
        print(line)
    if args.dry_run or not todo:
        return 0
    jobs = [Job(r.spec, r.protocol_ref, out.resolve(), data_root_for(args.data_root, r.protocol.data["kind"]),
                args.cache_dir, device, int(resources["cpus"]) if args.launcher == "slurm" else None) for r in todo]
    if args.launcher == "slurm":
        from suite.launch.slurm import LOGS_DIR, submit

        submitted = submit(jobs, out, resources, sweep.name)
        array = submitted[0].job_id.split("_")[0]
        print(f"submitted {len(submitted)} Slurm job(s) ({array}_[0-{len(submitted) - 1}]); logs in {out / LOGS_DIR}; "
              f"follow with: python -m suite status {out} --sweep {args.sweep} --backend {todo[0].spec.backend} "
              f"--device {device}")
        return 0
    return _run_here(jobs, args.jobs, out)


def _run_here(jobs: Sequence[Job], n_jobs: int, out: Path) -> int:
    from suite.launch.local import run_local
    from suite.report import write_leaderboard

    finished = 0

    def report(job: Job, outcome: str) -> None:
        nonlocal finished
        finished += 1
        print(f"[{finished}/{len(jobs)}] {job.spec.label} ({job.spec.run_id}): {outcome}", flush=True)

    outcomes = run_local(jobs, n_jobs, report)
    written, warnings = write_leaderboard(out)
    print(f"Leaderboard written: {', '.join(str(p) for p in written if p.suffix == '.md')}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    failed = [o for o in outcomes.values() if o.startswith("failed")]
    if failed:
        print(f"{len(failed)} run(s) failed; see python -m suite status {out}", file=sys.stderr)
    return 1 if failed else 0
