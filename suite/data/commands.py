"""`python -m suite data synth|check|download`: write synthetic datasets, check a data root against the protocol,
fetch the official archives (suite.data.download).

``data check`` exit codes: 0 when the files are structurally valid (sizes may differ from the official ones, as for
synthetic data: the table says so), 1 with ``--strict`` when any split size or the class count differs from the
official numbers, 2 on an error training would trip on, printed as one line naming the file: a missing file or key,
a bad WAV (truncated, wrong rate, shorter than one frame, NaN/Inf samples), a bad sample (labels, units, spike times
in ms), a duplicate in a split list, or more classes than the protocol (``--protocol``, default: the official one)
has. Fewer classes only differ: partial and synthetic data train.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from suite.data import check_class_count, dataset_kinds, get_dataset_kind, synthetic
from suite.data.download import manifest
from suite.errors import SuiteError


def add_data_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data`` with ``synth`` and ``check`` to a parent's subparsers; each leaf sets ``func(args) -> int``."""
    data = subparsers.add_parser("data", help="generate synthetic datasets or check a data root",
                                 description="Generate synthetic datasets or check a data root.")
    sub = data.add_subparsers(dest="data_command", metavar="{synth,check,download}", required=True)

    kinds = tuple(dataset_kinds())
    synth = sub.add_parser("synth", help="write a synthetic dataset in the real GSC / SSC / SHD file format",
                           description="Write a delay-dependent synthetic dataset in a real file format.")
    synth.add_argument("--format", dest="format", choices=kinds, required=True)
    synth.add_argument("--out", type=Path, required=True, help="folder to create (must not exist or be empty)")
    synth.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    synth.add_argument("--per-class", type=int, default=None, metavar="K",
                       help="train samples per class; valid and test get max(1, K // 4) (default 24 / 6 / 6)")
    synth.add_argument("--files", type=int, default=None, metavar="N",
                       help="about N files in all, split in the official proportions (105829 = the full GSC); "
                            "not with --per-class")
    synth.add_argument("--clip-ms", type=int, default=None, metavar="MS",
                       help="every clip MS long, a multiple of 10 (GSC clips are 1000; default 500-600)")
    synth.add_argument("--classes", type=int, default=None, metavar="N",
                       help="number of classes (default 35 for gsc/ssc, 20 for shd)")
    synth.set_defaults(func=run_synth)

    check = sub.add_parser("check", help="count samples per split and compare with the official sizes",
                           description="Check a data root's structure and compare split sizes with the official ones.")
    check.add_argument("root", type=Path, nargs="?", default=None,
                       help="data root (GSC folder, or folder of ssc_*.h5 / shd_*.h5); or give --root")
    check.add_argument("--root", dest="root_option", type=Path, default=None, help="data root (same as ROOT)")
    check.add_argument("--protocol", default=None,
                       help="protocol whose data format to check (gsc, ssc, shd, ...); sets --format")
    check.add_argument("--format", dest="format", choices=kinds, default=None,
                       help="data format (default: detected from the files)")
    check.add_argument("--strict", action="store_true", help="exit 1 when sizes differ from the official ones")
    check.add_argument("--quick", action="store_true", help="skip the per-file / per-sample checks")
    check.set_defaults(func=run_check)

    fetch = sub.add_parser("download", help="fetch the official GSC / SSC / SHD archives, check their checksums",
                           description="Download, verify and unpack a dataset into --root (atomic; a second call "
                                       "with the files in place does nothing).")
    fetch.add_argument("dataset", choices=tuple(manifest()))
    fetch.add_argument("--root", type=Path, required=True, help="data root to fill (the protocols' --data-root)")
    fetch.add_argument("--mirror", default=None, metavar="URL",
                       help="base URL of a mirror holding the same archive names (default: $SUITE_DATA_MIRROR, "
                            "else the official site)")
    fetch.set_defaults(func=run_download)
    return data


def run_download(args: argparse.Namespace) -> int:
    """Fetch and check; errors (transfer, checksum) raise SuiteError, i.e. one line and exit 2."""
    from suite.data.download import download

    for line in download(args.dataset, args.root, args.mirror):
        print(line)
    return 0


def run_synth(args: argparse.Namespace) -> int:
    """Generate into a temp folder next to ``--out`` and rename, so ``--out`` is complete or absent."""
    kind: str = args.format
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SuiteError(f"{out}: already exists and is not an empty folder; choose a new --out")
    values: dict[str, Any] = {"seed": args.seed}
    if args.per_class is not None:
        if args.per_class < 1:
            raise SuiteError(f"--per-class {args.per_class}: expected a positive integer")
        values.update(train_per_class=args.per_class, valid_per_class=max(1, args.per_class // 4),
                      test_per_class=max(1, args.per_class // 4))
    if args.classes is not None:
        values["n_classes"] = args.classes
    if args.files is not None:
        if args.per_class is not None:
            raise SuiteError("--files and --per-class both set: give one of them")
        n_classes = args.classes or get_dataset_kind(kind).official_classes
        counts = synthetic.counts_for_total(args.files, n_classes, get_dataset_kind(kind).official_sizes)
        values.update({f"{split}_per_class": n for split, n in counts.items()})
    if args.clip_ms is not None:
        values.update(clip_min_ms=args.clip_ms, clip_max_ms=args.clip_ms)
    settings = synthetic.resolve_settings(values, kind, "data synth")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        synthetic.write_format(kind, tmp, settings, args.seed)
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    counts = synthetic.split_counts(settings, kind)
    total = {split: n * settings.n_classes for split, n in counts.items()}  # type: ignore[operator]
    print(f"wrote synthetic {kind} to {out}: {settings.n_classes} classes, "
          + ", ".join(f"{split} {n}" for split, n in total.items()))
    print(f"chance {synthetic.chance_level(settings, kind):.4f}, "
          f"no-delay ceiling {synthetic.no_delay_ceiling(settings, kind):.4f} "
          f"({synthetic.n_groups(settings)} event groups / {settings.n_classes} classes)")
    return 0


def detect_format(root: Path) -> str:
    """The first registered kind whose files are at ``root`` (gsc: split lists; ssc / shd: their train file)."""
    if not root.is_dir():
        raise SuiteError(f"{root}: data root not found")
    kinds = dataset_kinds()
    for name, kind in kinds.items():
        if kind.detect(root):
            return name
    raise SuiteError(f"{root}: cannot tell the format (no files of kind {', '.join(kinds)}); pass --format")


def run_check(args: argparse.Namespace) -> int:
    """Print a table of split sizes against the official ones; see the module docstring for exit codes."""
    root: Path | None = args.root_option or args.root
    try:
        if root is None:
            raise SuiteError("data check: give the data root (ROOT or --root DIR)")
        expected: int | None = None
        if args.protocol is not None:
            from suite.data import n_classes
            from suite.registry import get_protocol

            protocol = get_protocol(args.protocol)
            args.format = args.format or protocol.data["kind"]
            expected = n_classes(protocol.data)
        kind = get_dataset_kind(args.format or detect_format(root), "--format")
        sizes, classes = kind.inspect(root, deep=not args.quick)
        check_class_count(classes, expected or kind.official_classes, str(kind.class_origin(root)), kind.name)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = [(split, n, kind.official_sizes[split]) for split, n in sizes.items()]
    rows.append(("classes", classes, kind.official_classes))
    print(f"{kind.name} data at {root}: structure ok" + (" (quick: files not opened)" if args.quick else ""))
    print(f"{'split':<8} {'found':>8} {'official':>9}  status")
    for name, found, official in rows:
        print(f"{name:<8} {found:>8,} {official:>9,}  {'ok' if found == official else 'differs'}")
    differs = any(found != official for _, found, official in rows)
    if kind.check_note:
        print(f"note: {kind.check_note}")
    if differs:
        print("sizes differ from the official dataset" + (" (--strict: failing)" if args.strict else
                                                          " (expected for synthetic or partial data)"))
    return 1 if differs and args.strict else 0
