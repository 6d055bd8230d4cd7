"""Filesystem failures are one line naming the path, exit 2, nothing half-written (issue 15 class 6): a full
disk (a real 64 KiB tmpfs), a file over the size limit (RLIMIT_FSIZE), a read-only folder (a read-only mount;
permission bits when not root), --out or --cache-dir that is a file, and a corrupt feature cache entry (rebuilt,
never trained on)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_records import full_record, write_runs
from test_security import Payload

from suite.cli import main
from suite.data import build_datasets, cache
from suite.errors import SuiteError
from suite.records import write_record
from suite.registry import get_protocol

REPO = Path(__file__).resolve().parent.parent


def _mount(target: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs these as an unprivileged user; see the chmod test)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount not permitted here: {done.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem, unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _mount(mnt, "size=64k")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(fs: Path) -> None:
    """Write until the filesystem is full."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 1024):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def _one_line(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def _no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*.tmp")], list(folder.rglob("*"))


def test_disk_full_is_one_line_and_keeps_the_old_file(small_fs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = small_fs / "results"
    (first, _) = write_runs(results)
    before = first.read_bytes()
    _fill(small_fs)
    bigger = full_record()
    bigger["history"] *= 200  # does not fit any more
    with pytest.raises(SuiteError, match=rf"^{first}: cannot write \(No space left on device\)$"):
        write_record(first, bigger)
    assert first.read_bytes() == before
    assert main(["leaderboard", str(results)]) == 2
    _one_line(capsys.readouterr().err, str(results / "leaderboard"), "No space left on device")
    _no_temp_files(small_fs)


def test_run_into_a_full_disk_is_one_line(small_fs: Path, tiny_protocol_path: Path, data_cache: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _fill(small_fs)
    out = small_fs / "results"
    argv = ["run", "--protocol", str(tiny_protocol_path), "--variant", "no-delay", "--out", str(out), "--cache-dir",
            str(data_cache)]
    assert main(argv) == 2
    _one_line(capsys.readouterr().err, str(out), "No space left on device")
    _no_temp_files(small_fs)


@pytest.fixture
def read_only_results(tmp_path: Path) -> Iterator[Path]:
    """Results with two records on a filesystem remounted read-only."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    _mount(mnt, "size=1m")
    try:
        write_runs(mnt / "results")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt / "results"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_read_only_results_folder(read_only_results: Path, tiny_protocol_path: Path, data_cache: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(read_only_results)]) == 2
    _one_line(capsys.readouterr().err, str(read_only_results / "leaderboard"), "Read-only file system")
    assert main(["verify", str(read_only_results)]) in (0, 1, 3)  # reading still works
    capsys.readouterr()
    assert main(["run", "--protocol", str(tiny_protocol_path), "--variant", "no-delay", "--out",
                 str(read_only_results), "--cache-dir", str(data_cache)]) == 2
    _one_line(capsys.readouterr().err, str(read_only_results), "Read-only file system")


def test_unwritable_folder_without_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits; the read-only mount test covers this as root")
    results = tmp_path / "results"
    write_runs(results)
    results.chmod(0o555)
    try:
        assert main(["leaderboard", str(results)]) == 2
        _one_line(capsys.readouterr().err, str(results / "leaderboard"), "Permission denied")
    finally:
        results.chmod(0o755)


def test_file_too_large_is_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_runs(results)

    def limit() -> None:  # in the child: EFBIG instead of death by SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = subprocess.run([sys.executable, "-m", "suite", "leaderboard", str(results)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    _one_line(proc.stderr, str(results / "leaderboard"), "File too large")
    _no_temp_files(results)


@pytest.mark.parametrize("option", ["--out", "--cache-dir"])
def test_out_or_cache_dir_that_is_a_file(tmp_path: Path, tiny_protocol_path: Path, data_cache: Path, option: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    paths = {"--out": str(tmp_path / "results"), "--cache-dir": str(data_cache), option: str(a_file)}
    argv = ["run", "--protocol", str(tiny_protocol_path), "--variant", "no-delay", *[x for kv in paths.items()
                                                                                      for x in kv]]
    assert main(argv) == 2
    _one_line(capsys.readouterr().err, f"{option} {a_file}: is a file, expected a folder")
    assert main(["leaderboard", str(a_file)]) == 2
    _one_line(capsys.readouterr().err, str(a_file), "not a results directory")
    assert a_file.read_text() == "not a folder"


# ------------------------------------------------------------------------------------------- feature cache entries
def _damage(entry: Path, how: str, marker: Path) -> None:
    if how == "truncated features":
        with (entry / "features.bin").open("r+b") as handle:
            handle.truncate((entry / "features.bin").stat().st_size // 2)
    elif how == "garbage meta":
        (entry / "meta.json").write_bytes(b"\xff{")
    elif how == "pickled lengths":
        np.save(entry / "lengths.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    elif how == "other labels":
        labels = np.load(entry / "labels.npy")
        np.save(entry / "labels.npy", labels[::-1].copy() + 1)
    elif how == "missing file":
        (entry / "lengths.npy").unlink()


@pytest.mark.parametrize("how", ["truncated features", "garbage meta", "pickled lengths", "other labels",
                                 "missing file"])
def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, tiny_protocol_path: Path, data_cache: Path, how: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(data_cache, tmp_path / "cache", dirs_exist_ok=True)
    data = dict(get_protocol(str(tiny_protocol_path)).data)
    first = build_datasets(data, None, tmp_path / "cache")["train"]
    original = [first[i] for i in range(len(first))]
    entry = first.path
    marker = tmp_path / "marker"
    _damage(entry, how, marker)
    capsys.readouterr()
    misses = cache.STATS["misses"]
    again = build_datasets(data, None, tmp_path / "cache")["train"]
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "corrupt feature cache entry" in line]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {entry}: corrupt feature cache entry (") \
        and lines[0].endswith("; rebuilding it"), err
    assert cache.STATS["misses"] == misses + 1 and not again.from_cache
    assert [(x.tolist(), y) for x, y in (again[i] for i in range(len(again)))] == \
        [(x.tolist(), y) for x, y in original]
    assert not marker.exists()
    third = build_datasets(data, None, tmp_path / "cache")["train"]
    assert third.from_cache and "corrupt" not in capsys.readouterr().err  # the rebuilt entry is a plain hit


def test_sound_cache_entry_is_a_hit(tmp_path: Path, tiny_protocol_path: Path, data_cache: Path) -> None:
    data = dict(get_protocol(str(tiny_protocol_path)).data)
    build_datasets(data, None, data_cache)
    hits = cache.STATS["hits"]
    assert build_datasets(data, None, data_cache)["train"].from_cache
    assert cache.STATS["hits"] > hits
    meta = json.loads((build_datasets(data, None, data_cache)["train"].path / "meta.json").read_text())
    assert meta["n_samples"] == 40
