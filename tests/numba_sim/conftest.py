"""Run this folder's tests in Numba's CUDA simulator (no GPU needed).

``NUMBA_ENABLE_CUDASIM`` is read once, when ``numba.cuda`` is first imported, so it is set here at import time and
numba.cuda is imported right away: pytest imports this conftest when it starts collecting ``tests/numba_sim/``, before
any test of the folder runs. Nothing else in the suite imports numba unless the numba-cuda backend is asked for. If
some module imported numba.cuda in GPU mode earlier in the same process, every test here fails with a message saying
so rather than silently testing the wrong thing. The variable stays set, so subprocesses of later tests inherit it.
"""

from __future__ import annotations

import os

import pytest

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

try:
    from numba import cuda
except ImportError:  # numba is an optional dependency: nothing here can run without it
    cuda = None
    collect_ignore_glob = ["test_*.py"]

SIMULATOR_PROBLEM = (
    None
    if cuda is None or cuda.jit.__module__.startswith("numba.cuda.simulator")
    else "numba.cuda was imported in GPU mode before tests/numba_sim/conftest.py could enable the simulator; run "
    "`pytest tests/numba_sim` on its own, or keep other tests from importing numba at module level"
)


@pytest.fixture(autouse=True)
def _require_simulator() -> None:
    if SIMULATOR_PROBLEM is not None:
        pytest.fail(SIMULATOR_PROBLEM)
