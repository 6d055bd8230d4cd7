"""Backend selection errors, in a fresh interpreter without the simulator: no GPU -> one-line SuiteError from
check_available() saying what to do; numba missing -> ImportError from the module, SuiteError from the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, sys
    from suite.errors import SuiteError
    from suite.ops import registry
    result = {}
    try:
        registry.get_ops("numba-cuda")
        result["no_gpu"] = "loaded"
    except SuiteError as err:
        result["no_gpu"] = str(err)
    for name in [m for m in sys.modules if m == "numba" or m.startswith(("numba.", "suite.ops.numba_cuda"))]:
        del sys.modules[name]
    sys.modules["numba"] = None  # as if numba were not installed
    registry._LOADED.clear()
    try:
        import suite.ops.numba_cuda  # noqa: F401
        result["import"] = "imported"
    except ImportError as err:
        result["import"] = "ImportError: " + str(err)
    except Exception as err:
        result["import"] = type(err).__name__ + ": " + str(err)
    try:
        registry.get_ops("numba-cuda")
    except SuiteError as err:
        result["registry"] = str(err)
    print(json.dumps(result))
""")


def test_no_gpu_and_no_numba_give_clear_errors() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["no_gpu"] != "loaded":  # a machine with a GPU loads the backend, which is right too
        assert "\n" not in result["no_gpu"]
        assert "NUMBA_ENABLE_CUDASIM=1" in result["no_gpu"] and "--backend torch" in result["no_gpu"]
    assert result["import"].startswith("ImportError: "), result["import"]
    assert "pip install" in result["import"]
    assert result["registry"].startswith("backend 'numba-cuda' cannot be imported"), result["registry"]
