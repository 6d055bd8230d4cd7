"""`python -m suite data download gsc|ssc|shd --root DIR`: fetch the official archives, check them, unpack atomically.

Transfers go through pooch (its HTTP downloader writes to a temporary file); this module only decides where files
come from, checks each archive against the checksum published by a well-kept loader, unpacks into a temporary name
and renames, so a half-finished or corrupt file never appears under its real name. A stamp file
(``.suite-download.json``) written last lists what was fetched, the archive hashes and the SHA-256 of every unpacked
``.h5``; a second call that finds the stamp and the files does nothing.

Each dataset kind declares its archives (``DatasetKind.download``) with the checksum published by a well-kept loader
and says where it read it (GSC: suite/data/gsc.py; SSC, SHD: suite/data/ssc.py). No published hash of the
decompressed ``.h5`` files was found (tonic, spytorch and the Zenke lab list only archive hashes), so
``unpacked_sha256`` is None for them: the SHA-256 of each unpacked file is computed and recorded in the stamp, and
checked against the manifest wherever one is given.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suite.errors import SuiteError
from suite.records import atomic_write_text

MIRROR_ENV = "SUITE_DATA_MIRROR"
STAMP = ".suite-download.json"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """One archive: its name on the server, its published hash ("md5:..." / "sha256:...") and what it unpacks to.

    ``target`` is the file name of a single-file archive (``.zip`` with one member, or ``.gz``); None for a tarball
    unpacked into the data root itself (GSC).
    """

    name: str
    hash: str
    target: str | None = None
    unpacked_sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """Where a dataset's archives live by default and what they are."""

    base_url: str
    files: tuple[Remote, ...]


def manifest() -> dict[str, Source]:
    """The archives of every registered dataset kind that has a download (suite.data.kinds)."""
    from suite.data.kinds import dataset_kinds

    return {name: kind.download for name, kind in dataset_kinds().items() if kind.download is not None}


def file_hash(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` through pooch; transfer failures become one-line SuiteErrors."""
    import pooch
    import requests

    logger = pooch.get_logger()  # its info lines ("Downloading...", "hash of downloaded file") would clutter ours
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        pooch.retrieve(url, known_hash=None, fname=dest.name, path=dest.parent, progressbar=False)
    except (requests.RequestException, OSError) as err:
        raise SuiteError(f"{url}: download failed ({_one_line(err)})") from None
    finally:
        logger.setLevel(level)


def _verify(path: Path, expected: str, url: str) -> None:
    """Compare the archive with its published checksum; the error names the file and both hashes."""
    algorithm, _, want = expected.partition(":")
    got = file_hash(path, algorithm)
    if got != want.lower():
        raise SuiteError(f"{url}: {algorithm} checksum mismatch: expected {want}, got {got} (file not kept)")


def _open_single(archive: Path, remote: Remote) -> IO[bytes]:
    """The readable stream of the one file inside a .zip / .gz archive."""
    if remote.name.endswith(".zip"):
        zf = zipfile.ZipFile(archive)
        members = [m for m in zf.namelist() if Path(m).name == remote.target]
        if len(members) != 1:
            zf.close()
            raise SuiteError(f"{archive.name}: expected one member {remote.target}, found {zf.namelist()}")
        return zf.open(members[0])
    if remote.name.endswith(".gz"):
        return gzip.open(archive, "rb")
    raise SuiteError(f"{remote.name}: unknown archive type, expected .zip, .gz or .tar.gz")


def _unpack_single(archive: Path, remote: Remote, dest: Path) -> str:
    """Write the one file inside a .zip / .gz archive to ``dest``; return its SHA-256."""
    digest = hashlib.sha256()
    try:
        with _open_single(archive, remote) as source, open(dest, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, OSError) as err:
        raise SuiteError(f"{archive.name}: cannot unpack ({_one_line(err)})") from None
    sha = digest.hexdigest()
    if remote.unpacked_sha256 is not None and sha != remote.unpacked_sha256:
        raise SuiteError(f"{remote.target} (from {remote.name}): sha256 checksum mismatch: expected "
                         f"{remote.unpacked_sha256}, got {sha}")
    return sha


def _unpack_tree(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tf:
            tf.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise SuiteError(f"{archive.name}: cannot unpack ({_one_line(err)})") from None


def _read_stamp(root: Path) -> dict[str, object]:
    try:
        return json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def is_complete(root: Path, kind: str, source: Source) -> bool:
    """True when the stamp lists every archive of ``source`` with these hashes and the unpacked files exist."""
    files = _read_stamp(root).get("files", {})
    if not isinstance(files, dict):
        return False
    for remote in source.files:
        entry = files.get(remote.name)
        if not isinstance(entry, dict) or entry.get("hash") != remote.hash:
            return False
        if remote.target is not None and not (root / remote.target).is_file():
            return False
    return bool(source.files)


def download(kind: str, root: Path, mirror: str | None = None,
             sources: Mapping[str, Source] | None = None) -> list[str]:
    """Fetch, check and unpack ``kind`` into ``root``; returns one line per action for the user.

    ``mirror`` (or the SUITE_DATA_MIRROR environment variable) replaces the source's base URL. ``sources`` is the
    table of archives and checksums (default: the dataset kinds' own, :func:`manifest`); tests pass their own for
    archives they build.
    """
    sources = manifest() if sources is None else sources
    if kind not in sources:
        raise SuiteError(f"data download {kind!r}: unknown dataset, expected one of {', '.join(sources)}")
    source = sources[kind]
    base = (mirror or os.environ.get(MIRROR_ENV) or source.base_url).rstrip("/") + "/"
    root = Path(root)
    if is_complete(root, kind, source):
        return [f"{kind} already in {root} (checked at download; {STAMP}); nothing to do"]
    tree = any(remote.target is None for remote in source.files)
    if tree and root.exists() and any(p.name != STAMP for p in root.iterdir()):
        raise SuiteError(f"{root}: not empty and holds no complete {kind} download; give an empty or new --root")
    root.parent.mkdir(parents=True, exist_ok=True)
    # One private work folder beside (tree) or inside (single files) the root, on the same file system for rename.
    work = Path(tempfile.mkdtemp(prefix=f".{root.name}-download-", dir=root.parent if tree else _mkdir(root)))
    stamp: dict[str, object] = {"dataset": kind, "files": {}}
    lines = []
    try:
        staged = work / "tree"
        for remote in source.files:
            url = base + remote.name
            archive = work / remote.name
            _fetch(url, archive)
            _verify(archive, remote.hash, url)
            entry: dict[str, object] = {"url": url, "hash": remote.hash}
            if remote.target is None:
                _unpack_tree(archive, staged)
                lines.append(f"{remote.name}: {remote.hash.partition(':')[0]} ok, unpacked")
            else:
                part = work / remote.target
                sha = _unpack_single(archive, remote, part)
                os.replace(part, root / remote.target)
                entry.update(target=remote.target, unpacked_sha256=sha,
                             unpacked_sha256_published=remote.unpacked_sha256 is not None)
                lines.append(f"{remote.name}: {remote.hash.partition(':')[0]} ok -> {remote.target} "
                             f"(sha256 {sha[:12]}…{', matches the published one' if remote.unpacked_sha256 else ''})")
            archive.unlink()
            stamp["files"][remote.name] = entry  # type: ignore[index]
        text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
        if tree:
            (staged / STAMP).write_text(text)
            if root.exists():
                root.rmdir()  # empty (checked above)
            os.rename(staged, root)
        else:
            atomic_write_text(root / STAMP, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"{kind} ready in {root}")
    return lines


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
