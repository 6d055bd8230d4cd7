"""`python -m suite status RESULTS [--sweep NAME]`: each run done / running / failed / interrupted / not started.

A run's state is read from the results directory only (no scheduler query), so it is the same from a login node,
a laptop with the shared directory mounted, or CI: a record = done; its lock held = running (suite.launch);
an error file = failed, with its last error line; a checkpoint without any of those = interrupted (the next launch
resumes it); nothing = not started.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from suite.errors import SuiteError
from suite.records import CHECKPOINTS_DIR, RECORDS_DIR, find_record, record_name_parts

STATES = ("done", "running", "failed", "interrupted", "not started")


def run_state(out_dir: Path, run_id: str) -> tuple[str, str]:
    """(state, detail) of one run in ``out_dir``; detail is the lock owner or the last error line."""
    from suite.launch import last_error, lock_held

    if find_record(out_dir, run_id) is not None:
        return "done", ""
    owner = lock_held(out_dir, run_id)
    if owner is not None:
        return "running", owner
    error = last_error(out_dir, run_id)
    if error is not None:
        return "failed", error
    if (out_dir / CHECKPOINTS_DIR / f"{run_id}.pt").exists():
        return "interrupted", "resumes from its checkpoint"
    return "not started", ""


def summary(states: Iterable[str]) -> str:
    counts = Counter(states)
    total = sum(counts.values())
    return f"{total} run(s): " + ", ".join(f"{counts[s]} {s}" for s in STATES)


def _known_run_ids(out_dir: Path) -> dict[str, str]:
    """run_id -> label of every run the directory knows of (records, locks, errors, checkpoints)."""
    from suite.launch import ERRORS_DIR, LOCKS_DIR

    ids: dict[str, str] = {}
    for path in sorted((out_dir / RECORDS_DIR).glob("*.json")):
        if (parts := record_name_parts(path)) is not None:
            protocol, variant, seed, run_id = parts
            ids[run_id] = f"{variant}[{protocol},{seed}]"
    for folder, suffix in ((LOCKS_DIR, ".lock"), (ERRORS_DIR, ".txt"), (CHECKPOINTS_DIR, ".pt")):
        for path in sorted((out_dir / folder).glob(f"*{suffix}")):
            ids.setdefault(path.stem, "")
    return ids


def status_rows(out_dir: Path, sweep: str | None, data_root: Path | None = None, backend: str = "auto",
                device: str = "cpu") -> list[tuple[str, str, str, str]]:
    """(label, run_id, state, detail) for the sweep's runs, or for every run the directory knows of."""
    if sweep is not None:
        from suite.sweeps import load_sweep

        runs = load_sweep(sweep, backend, data_root, device).runs  # the backend is part of every run id
        if any(not r.spec.data_fingerprint for r in runs):
            raise SuiteError(f"status --sweep {sweep}: its runs read a real dataset; give --data-root to name them")
        pairs: Any = [(r.spec.label, r.spec.run_id) for r in runs]
    else:
        pairs = [(label, run_id) for run_id, label in _known_run_ids(out_dir).items()]
    return [(label, run_id, *run_state(out_dir, run_id)) for label, run_id in pairs]


def cmd_status(args: argparse.Namespace) -> int:
    out: Path = args.results
    if not out.is_dir():
        raise SuiteError(f"{out}: results directory does not exist")
    rows = status_rows(out, args.sweep, args.data_root, args.backend, args.device)
    for label, run_id, state, detail in rows:
        if state != "done" or args.all:
            print(f"{state:<12} {run_id}  {label}" + (f"  {detail}" if detail else ""))
    print(summary(state for *_, state, _ in rows))
    return 0


def add_status_command(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="done / running / failed / not started, per run of a results directory")
    p.add_argument("results", type=Path)
    p.add_argument("--sweep", default=None, help="sweep name or file: list its runs (default: runs found in RESULTS)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="with --sweep on real datasets: the data the runs read (their ids depend on it)")
    p.add_argument("--backend", default="auto", help="with --sweep: the backend its runs were launched with")
    p.add_argument("--device", default="cpu", help="with --sweep: the device they ran on (resolves --backend auto)")
    p.add_argument("--all", action="store_true", help="list done runs too (default: only the others)")
    p.set_defaults(func=cmd_status)
