"""Feature cache build rate (files/s) on a synthetic GSC tree of 1 s clips: the fast builder and the faithful one.

``reference`` is kaldi.fbank per file in one process at the benchmark's thread count (the builder before the fast
path); ``fast`` is the suite's builder (one intra-op thread, one forked worker per core from
``suite.data.gsc.PARALLEL_MIN_FILES`` files). Both include reading, features and writing the cache.

asv: ``FeatureCache.track_files_per_second`` on a generated tree of ``SUITE_BENCH_GSC_FILES`` files (default 4000).
Standalone, for a tree made by ``python -m suite data synth --format gsc --files 105829 --clip-ms 1000 --out TREE``::

    python -m benchmarks.bench_data TREE --reference-files 2000 --repeat 2

times reference and fast back to back on the first N train files, ``--repeat`` times, then the fast build of the
whole tree (every split) ``--repeat`` times, and prints files/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from .common import prepare

DEFAULT_FILES = int(os.environ.get("SUITE_BENCH_GSC_FILES", "4000"))


def _train_source(root: Path, n_files: int, reference: bool):
    """The train split's first ``n_files`` files as a cache source (its own cache key) for the chosen path."""
    from suite.data import gsc

    source = gsc.sources(root, 40, 10.0)["train"]
    rels = gsc.scan_tree(root).files["train"][:n_files]
    return dataclasses.replace(source, labels=source.labels[:n_files], fingerprint=[("bench", n_files, reference)],
                               features=gsc.feature_iter(root, rels, 40, 10.0, reference))


def build_rate(sources: list, scratch: Path) -> tuple[int, float]:
    """(files, seconds) of building every source into a fresh cache under ``scratch`` (removed afterwards)."""
    from suite.data import cache

    cache_dir = Path(tempfile.mkdtemp(prefix="featcache-", dir=scratch))
    try:
        start = time.perf_counter()
        n = sum(len(cache.load_or_build(source, cache_dir)) for source in sources)
        return n, time.perf_counter() - start
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


class FeatureCache:
    """Files per second of a feature cache build (reading, fbank, writing) on a generated GSC tree."""

    params: ClassVar[list] = [["reference", "fast"]]
    param_names: ClassVar[list] = ["path"]
    timeout = 3600
    version = 1

    def setup_cache(self) -> str:
        from suite.cli import main

        out = Path(tempfile.mkdtemp(prefix="bench-gsc-")) / "tree"
        main(["data", "synth", "--format", "gsc", "--out", str(out), "--files", str(DEFAULT_FILES),
              "--clip-ms", "1000"])
        return str(out)

    def setup(self, root: str, path: str) -> None:
        prepare()

    def track_files_per_second(self, root: str, path: str) -> float:
        n = DEFAULT_FILES
        files, seconds = build_rate([_train_source(Path(root), n, path == "reference")], Path(root).parent)
        return files / seconds

    track_files_per_second.unit = "files/s"  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="GSC-layout tree (python -m suite data synth --format gsc ...)")
    parser.add_argument("--reference-files", type=int, default=2000, help="train files for reference vs fast")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="skip the fast build of the whole tree")
    args = parser.parse_args()
    prepare()
    from suite.data import gsc

    scratch = args.root.parent
    n = args.reference_files
    for rep in range(args.repeat):
        for name in ("reference", "fast"):
            files, seconds = build_rate([_train_source(args.root, n, name == "reference")], scratch)
            print(f"run {rep + 1} {name:>9}: {files} train files in {seconds:7.1f} s = {files / seconds:7.1f} files/s",
                  flush=True)
    if args.skip_full:
        return
    for rep in range(args.repeat):
        files, seconds = build_rate(list(gsc.sources(args.root, 40, 10.0).values()), scratch)
        print(f"run {rep + 1} fast, whole tree: {files} files in {seconds:7.1f} s = {files / seconds:7.1f} files/s",
              flush=True)


if __name__ == "__main__":
    main()
