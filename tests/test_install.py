"""A non-editable install: build the wheel, install it into a fresh virtual environment that cannot see this checkout,
and run the main job and verify from there.

The fresh environment borrows the dependencies (torch, pandas, ...) of the running interpreter's site-packages through
a ``.pth`` line, which adds that directory to ``sys.path`` without running its ``.pth`` files, so an editable install
of the suite there stays invisible; the test asserts that ``suite`` is imported from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files only (a build must not depend on, or write into, the working tree)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the files a wheel is built from")
    source = _tracked_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    return next(out.glob("delay_snn_suite-*.whl"))


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"suite", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, top
    for shipped in ("suite/reference_results/embedded.yaml", "suite/reference_results/paper.yaml",
                    "suite/reference_results/literature.yaml", "suite/reference_results/README.md",
                    "suite/baselines/official.py", "suite/protocols/gsc-mini.yaml", "suite/ops/native/neuron.h",
                    "suite/ops/native/kernels.cpp"):
        assert shipped in names


def test_main_job_and_verify_from_a_wheel(wheel: Path, tmp_path: Path, tiny_protocol_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    work = tmp_path / "work"  # not this checkout: `python -m` puts the working directory on sys.path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SUITE_CACHE_DIR"] = str(tmp_path / "cache")

    def suite(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-m", "suite", *args], cwd=work, env=env, capture_output=True, text=True)

    where = subprocess.run([python, "-c", "import suite, suite.references as r; print(suite.__file__); "
                            "print(len(r.load_references()))"], cwd=work, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    assert Path(where[0]).is_relative_to(site), where
    assert int(where[1]) > 0  # the shipped references load from the wheel
    assert subprocess.run([python, "-c", "import baselines"], cwd=work, env=env, capture_output=True).returncode != 0

    run = suite("run", "--protocol", str(tiny_protocol_path), "--variant", "axonal", "--out", "results")
    assert run.returncode == 0, run.stderr
    record = json.loads(next((work / "results" / "records").glob("tiny__axonal__*.json")).read_text())
    assert record["environment"]["git_commit"] is None
    assert record["environment"]["git_note"].startswith("not a git checkout")

    refs = tmp_path / "refs"
    refs.mkdir()
    value = 100 * record["metrics"]["test_acc_at_best_valid"]
    (refs / "tiny.yaml").write_text(
        "entries:\n"
        f"  - {{protocol: tiny, method: band, variant: axonal, metric: test_acc_at_best_valid, value: {value},"
        " source: tests, status: measured, tolerance: {abs: 0.01}}\n")
    verify = suite("verify", "--references", str(refs))
    assert verify.returncode == 0 and "verify: 1 PASS, 0 FAIL" in verify.stdout, verify.stdout + verify.stderr
    shipped = suite("verify")  # the shipped references are found; none is about this protocol: exit 3, not an error
    assert shipped.returncode == 3, shipped.stdout + shipped.stderr
    assert "NOT COMPARABLE" in shipped.stdout and "-> nothing compared" in shipped.stdout
