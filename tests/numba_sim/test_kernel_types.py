"""The simulator runs kernels as Python, so it cannot catch typing errors of the real CUDA target. These tests close
that gap without a GPU: (1) in the simulator, record the Numba type of every argument each wrapper launches a kernel
with and check it against ``SIGNATURES``; (2) in a subprocess without the simulator, compile every kernel with exactly
those signatures to PTX for sm_90 (H100/H200) through NVVM, which needs the CUDA toolkit's NVVM but no driver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from numba import typeof, types

from suite.ops.pytorch import delays_from_positions
from suite.ops.registry import get_ops

_F, _I, _F64 = types.float32, types.int64, types.float64
_A1, _A2, _A3 = (types.Array(_F, n, "C") for n in (1, 2, 3))
_I1, _I2 = (types.Array(_I, n, "C") for n in (1, 2))

SIGNATURES: dict[str, tuple[Any, ...]] = {
    "lif_forward": (_A2, _A2, _A2, _F, _F),
    "lif_backward": (_A2, _A2, _A2, _F, _F, _F, _F),
    "readout_forward": (_A2, _A2, _F),
    "readout_backward": (_A2, _A2, _F),
    "gaussian_rows": (_A1, _A2, _F64),
    "channel_forward": (_A3, _A2, _A3, _I),
    "channel_backward_input": (_A3, _A2, _A3, _I),
    "channel_backward_kernel_partial": (_A3, _A3, _A3, _I),
    "channel_backward_pos": (_A1, _A3, _A1, _F64),
    "channel_hard_forward": (_A3, _I1, _A3, _I, _I),
    "channel_hard_backward": (_A3, _I1, _A3, _I, _I),
    "synaptic_kernel_matrix": (_A2, _A2, _A2, _F64, types.boolean),
    "synaptic_kernel_grad": (_A2, _A2, _A2, _A2, _A2, _F64),
    "shifted_gemm": (_A2, _A2, _A2, _I, _I),
    "shifted_gemm_tn": (_A2, _A2, _A2, _I, _I),
    "synaptic_window_forward": (_A3, _A3, _I2, _A3, _I),
    "synaptic_window_backward_input": (_A3, _A3, _I2, _A3, _I),
    "synaptic_window_backward_taps": (_A3, _A3, _I2, _A3, _I),
}
"""Argument types of every kernel as the wrappers launch them (float32 tensors, int64 delays, Python scalars)."""


def test_wrappers_launch_the_recorded_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    nb = get_ops("numba-cuda")
    seen: dict[str, set[tuple[Any, ...]]] = {}

    def recorder(original: Any) -> Any:
        def launch(kernel: Any, n1: int, *rest: Any) -> None:
            args = rest[2:] if original is launch_tiles else rest[1:]
            seen.setdefault(kernel.fn.__name__, set()).add(tuple(typeof(a) for a in args))
            original(kernel, n1, *rest)

        return launch

    launch_tiles = nb._launch_tiles
    monkeypatch.setattr(nb, "_launch", recorder(nb._launch))
    monkeypatch.setattr(nb, "_launch_tiles", recorder(launch_tiles))
    x = torch.randn(6, 2, 3, requires_grad=True)
    w = torch.randn(2, 3, requires_grad=True)
    pos_c = torch.zeros(3, requires_grad=True)
    pos_s = torch.zeros(2, 3, requires_grad=True)
    outputs = [
        nb.lif_spikes(x, 1.5, 1.0, 5.0),
        nb.leaky_readout(x, 1.5),
        nb.channel_delay(x, pos_c, 1.0, 3, 2, 1),
        nb.channel_delay_hard(x, delays_from_positions(pos_c.detach(), 3), 3, 2, 1),
        nb.synaptic_delay(x, w, pos_s, 1.0, 3, 2, 1),  # a window of 3 taps
        nb.synaptic_delay(x, w, pos_s, 5.0, 15, 14, 7),  # wide: the full kernel
        nb.synaptic_delay_hard(x, w, delays_from_positions(pos_s.detach(), 3), 3, 2, 1),
    ]
    torch.autograd.grad(sum(o.sum() for o in outputs), [x, w, pos_c, pos_s])
    assert set(seen) == set(SIGNATURES)
    for name, sigs in seen.items():
        assert sigs == {SIGNATURES[name]}, name


def test_kernels_compile_for_sm90_without_simulator(tmp_path: Path) -> None:
    """Type-check and compile every kernel for the real CUDA target (the GPU path the simulator cannot check)."""
    script = textwrap.dedent(f"""
        import importlib.util, sys, types as pytypes
        import numba.cuda.dispatcher as dispatcher
        from numba import cuda, types
        try:
            from numba.cuda.cudadrv.nvvm import NVVM
            NVVM()
        except Exception as err:
            print("NO-NVVM", type(err).__name__, err)
            sys.exit(0)
        # device functions ask the current device for its compute capability; there is no device here
        dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(9, 0))
        spec = importlib.util.spec_from_file_location("sigs", {str(Path(__file__))!r})
        sigs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sigs)
        from suite.ops.numba_cuda import kernels
        assert not kernels.SIMULATOR and kernels.TILE == 16
        for name, sig in sigs.SIGNATURES.items():
            ptx, _ = cuda.compile_ptx(getattr(kernels, name).py_func, types.void(*sig), cc=(9, 0))
            assert ".entry" in ptx, name
            print("OK", name)
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
    if "NO-NVVM" in done.stdout:
        pytest.skip(f"NVVM not available here: {done.stdout.strip()}")
    assert done.stdout.count("OK ") == len(SIGNATURES), done.stdout
