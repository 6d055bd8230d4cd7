"""`data download` against a real HTTP server on 127.0.0.1 serving archives built here in the real layouts."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from suite.cli import main
from suite.data import download as dl
from suite.data import synthetic
from suite.errors import SuiteError

TINY = {"n_classes": 3, "train_per_class": 2, "valid_per_class": 1, "test_per_class": 1, "seed": 0}


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    mode: ClassVar[dict[str, str]] = {}  # name -> "truncate" | "error"

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = self.files.get(name)
        if body is None or self.mode.get(name) == "error":
            self.send_response(404 if body is None else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.mode.get(name) == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"files": {}, "mode": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror/", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _gsc_tarball(tmp: Path) -> bytes:
    """The Speech Commands archive layout: word folders, split lists and _background_noise_ at the top level."""
    tree = synthetic.write_gsc_tree(tmp / "gsc-src", TINY, 0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for path in sorted(tree.rglob("*")):
            tf.add(path, arcname=f"./{path.relative_to(tree)}", recursive=False)
    return buffer.getvalue()


def _h5_archives(tmp: Path, kind: str, packer: str) -> dict[str, bytes]:
    """``{kind}_{split}.h5.zip`` (the Zenke lab's form) or ``.h5.gz`` archives of synthetic spike files."""
    src = synthetic.write_ssc_h5(tmp / f"{kind}-src", TINY, 0, prefix=kind)
    out = {}
    for path in sorted(src.glob("*.h5")):
        if packer == "zip":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as zf:
                zf.write(path, path.name)
            out[f"{path.name}.zip"] = buffer.getvalue()
        else:
            out[f"{path.name}.gz"] = gzip.compress(path.read_bytes(), mtime=0)
    return out


def _manifest(kind: str, archives: dict[str, bytes], unpacked: dict[str, bytes] | None = None) -> dict[str, dl.Source]:
    """A manifest like the real one, with the checksums of the test's archives."""
    files = []
    for name, body in archives.items():
        target = None if name.endswith(".tar.gz") else name.rsplit(".", 1)[0]
        sha = hashlib.sha256(unpacked[target]).hexdigest() if unpacked and target in unpacked else None
        algorithm = "sha256" if target is None else "md5"
        files.append(dl.Remote(name, f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}", target, sha))
    return {kind: dl.Source("http://127.0.0.1:9/unused/", tuple(files))}


def _visible(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_good_downloads_are_checked_unpacked_and_pass_data_check(tmp_path, server, capsys):
    url, handler = server
    gsc_archives = {"speech_commands_v0.02.tar.gz": _gsc_tarball(tmp_path)}
    ssc_archives = _h5_archives(tmp_path, "ssc", "zip")
    shd_archives = _h5_archives(tmp_path, "shd", "gz")
    handler.files.update({**gsc_archives, **ssc_archives, **shd_archives})
    shd_h5 = {p.name: p.read_bytes() for p in (tmp_path / "shd-src").glob("*.h5")}
    manifest = {**_manifest("gsc", gsc_archives), **_manifest("ssc", ssc_archives),
                **_manifest("shd", shd_archives, shd_h5)}

    for kind in ("gsc", "ssc", "shd"):
        root = tmp_path / "data" / kind
        lines = dl.download(kind, root, url, manifest)
        assert lines[-1] == f"{kind} ready in {root}"
        assert main(["data", "check", str(root)]) == 0
        assert f"{kind} data at {root}: structure ok" in capsys.readouterr().out
        # nothing left over beside or inside the root but the data and the stamp
        assert [p.name for p in root.parent.iterdir() if p.name.startswith(".")] == []
    assert (tmp_path / "data/gsc/validation_list.txt").read_bytes() == (
        tmp_path / "gsc-src/validation_list.txt").read_bytes()
    for name in ("ssc_train.h5", "ssc_valid.h5", "ssc_test.h5"):
        assert (tmp_path / "data/ssc" / name).read_bytes() == (tmp_path / "ssc-src" / name).read_bytes()
    stamp = dl._read_stamp(tmp_path / "data/shd")
    assert stamp["files"]["shd_train.h5.gz"]["unpacked_sha256"] == hashlib.sha256(shd_h5["shd_train.h5"]).hexdigest()
    assert stamp["files"]["shd_train.h5.gz"]["unpacked_sha256_published"] is True

    # second call: nothing fetched (the server no longer has the files, so a fetch would fail)
    handler.files.clear()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*")}
    for kind in ("gsc", "ssc", "shd"):
        assert dl.download(kind, tmp_path / "data" / kind, url, manifest) == [
            f"{kind} already in {tmp_path / 'data' / kind} (checked at download; {dl.STAMP}); nothing to do"]
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*")}


def test_wrong_checksum_is_one_line_exit_2_and_leaves_nothing(tmp_path, server, capsys, monkeypatch):
    """The real manifest against the tiny archives: the published MD5 cannot match; the CLI names both hashes."""
    url, handler = server
    archives = _h5_archives(tmp_path, "shd", "zip")
    handler.files.update(archives)
    root = tmp_path / "shd"
    monkeypatch.setenv(dl.MIRROR_ENV, url)  # the environment variable is the mirror when --mirror is absent
    assert main(["data", "download", "shd", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    got = hashlib.md5(archives["shd_train.h5.zip"]).hexdigest()
    assert err == (f"error: {url}shd_train.h5.zip: md5 checksum mismatch: expected f3252aeb598ac776c1b526422d90eecb, "
                   f"got {got} (file not kept)")
    assert _visible(root) == []
    assert main(["data", "check", str(root)]) == 2

    # an unpacked file whose published hash differs is refused too, even when the archive matches
    shd_h5 = {p.name: b"other bytes" for p in (tmp_path / "shd-src").glob("*.h5")}
    with pytest.raises(SuiteError, match=r"shd_test.h5 \(from shd_test.h5.zip\): sha256 checksum mismatch: "
                                            r"expected [0-9a-f]{64}, got [0-9a-f]{64}"):
        dl.download("shd", root, url, _manifest("shd", archives, shd_h5))
    assert _visible(root) == []


def test_truncated_transfer_fails_and_leaves_nothing(tmp_path, server, capsys):
    url, handler = server
    archives = {"speech_commands_v0.02.tar.gz": _gsc_tarball(tmp_path)}
    handler.files.update(archives)
    handler.mode["speech_commands_v0.02.tar.gz"] = "truncate"
    root = tmp_path / "gsc"
    with pytest.raises(SuiteError, match=rf"^{url}speech_commands_v0.02.tar.gz: download failed \(.*"
                                            r"(IncompleteRead|Connection broken)"):
        dl.download("gsc", root, url, _manifest("gsc", archives))
    assert _visible(tmp_path / "gsc") == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".gsc")]
    # the same server, now complete: the download succeeds into the same root
    handler.mode.clear()
    assert dl.download("gsc", root, url, _manifest("gsc", archives))[-1] == f"gsc ready in {root}"


def test_server_error_is_one_line_exit_2(tmp_path, server, capsys):
    url, handler = server
    archives = _h5_archives(tmp_path, "ssc", "zip")
    handler.files.update(archives)
    handler.mode["ssc_train.h5.zip"] = "error"
    root = tmp_path / "ssc"
    assert main(["data", "download", "ssc", "--root", str(root), "--mirror", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {url}ssc_train.h5.zip: download failed (500 Server Error")
    assert _visible(root) == []
