"""What a new user meets first: a light --help, --version, consistent flags, a short verify, shareable files, and the
per-user cache."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_verify import REFS, _runs

from suite import __version__
from suite.cli import build_parser, main
from suite.environment import git_state
from suite.records import atomic_write_text
from suite.usercache import CACHE_ENV, data_cache_dir, user_cache_root

HEAVY = ("torch", "pandas", "matplotlib", "seaborn", "numpy", "rich", "yaml")
ROOT = Path(__file__).resolve().parent.parent


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                          env=env).stdout


def test_help_imports_nothing_heavy() -> None:
    out = _python(
        "import sys, contextlib, io\n"
        "from suite.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as text, contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print(text.getvalue())\n")
    imported, _, help_text = out.partition("\n")
    assert imported == "[]", imported
    for command in ("run", "verify", "leaderboard", "bench", "doctor", "data"):
        assert command in help_text


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "suite", "--version"], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == f"python -m suite (delay-snn-suite) {__version__}"


def test_repeatable_flags_and_results_default() -> None:
    args = build_parser(["bench", "--variant", "axonal", "--variant", "dendritic", "--backend", "torch"]).parse_args(
        ["bench", "--variant", "axonal", "--variant", "dendritic", "--backend", "torch"])
    assert args.variants == ["axonal", "dendritic"] and args.backends == ["torch"]
    run = build_parser().parse_args(["run", "--variant", "a", "--variant", "b", "--protocol", "p"])
    assert run.variant == ["a", "b"] and run.out == Path("results")
    for command in ("verify", "leaderboard"):
        assert build_parser().parse_args([command]).results == Path("results")
        assert build_parser().parse_args([command, "elsewhere"]).results == Path("elsewhere")
    with pytest.raises(SystemExit):
        build_parser(["bench"]).parse_args(["bench", "--variants", "axonal"])  # one form only


def test_verify_summarises_not_comparable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "bands.yaml").write_text(REFS)
    _runs(tmp_path / "results")
    monkeypatch.chdir(tmp_path)  # RESULTS defaults to ./results
    assert main(["verify", "--references", str(refs)]) == 0
    short = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in short[:-2]] == ["PASS"] * 3
    assert short[-2] == ("NOT COMPARABLE 3 reference(s) with nothing to compare (gsc-mini, ssc-mini); "
                         "--verbose lists them")
    assert short[-1] == "verify: 3 PASS, 0 FAIL, 3 NOT COMPARABLE -> ok"
    assert main(["verify", "results", "--references", str(refs), "--verbose"]) == 0
    verbose = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("NOT COMPARABLE") for line in verbose) == 3 and len(verbose) == 7
    assert any("different feature pipeline" in line for line in verbose)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = tmp_path / "sub" / "record.json"
        atomic_write_text(path, "{}")
        atomic_write_text(path, "{} ")  # replacing keeps the umask's mode too
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert path.read_text() == "{} " and [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_cache_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_root() == tmp_path / "xdg" / "delay-snn-suite" == data_cache_dir()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_cache_dir() == tmp_path / "home" / ".cache" / "delay-snn-suite"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert data_cache_dir() == tmp_path / "env"
    assert data_cache_dir(tmp_path / "flag") == tmp_path / "flag"


def test_run_uses_the_shared_cache(tiny_protocol_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Two results directories, one cache (from the environment variable): nothing is cached under --out."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    from suite.data import cache as feature_cache

    misses = feature_cache.STATS["misses"]
    for out in ("a", "b"):
        argv = ["run", "--protocol", str(tiny_protocol_path), "--variant", "no-delay", "--out", str(tmp_path / out)]
        assert main(argv) == 0
        assert not (tmp_path / out / ".cache").exists()
    assert feature_cache.STATS["misses"] - misses == 3  # train, valid, test built once, then read from the cache
    assert sorted(p.name for p in cache.iterdir()) == ["features", "synthetic"]
    assert "Leaderboard written" in capsys.readouterr().out


def test_git_state_in_a_checkout() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("tests run outside a git checkout; tests/test_install.py covers the installed case")
    commit, dirty, note = git_state()
    assert commit is not None and len(commit) == 40 and isinstance(dirty, bool) and note is None
