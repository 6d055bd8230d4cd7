"""The compiled CPU kernels (suite.ops.native): built and used where a C compiler exists, equal to the PyTorch forms
they replace, threaded on PyTorch's pool, and a clear fallback when they cannot be built."""

from __future__ import annotations

import platform
import shutil

import pytest
import torch

from suite.ops import native
from suite.ops import pytorch as ops

HAVE_COMPILER = platform.system() == "Linux" and shutil.which("cc") is not None


def test_library_is_built_where_a_compiler_exists() -> None:
    """Guards against a silent fallback: on Linux with cc the compiled kernels must be in use."""
    if not HAVE_COMPILER:
        pytest.skip("no C compiler here: the fallback is what runs")
    assert native.library() is not None, native.status()
    assert native.status().startswith("compiled ("), native.status()


needs_library = pytest.mark.skipif(not HAVE_COMPILER, reason="no C compiler")


def onednn_channel_conv(x, kernel, pad_left, pad_right, grad_y):
    """Reference: the oneDNN autograd Function the compiled kernels replace."""
    x = x.clone().requires_grad_(True)
    kernel = kernel.clone().requires_grad_(True)
    y = ops._ChannelConv.apply(x, kernel, pad_left, pad_right)
    y.backward(grad_y)
    return y.detach(), x.grad, kernel.grad


@needs_library
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("steps", "batch", "channels", "taps", "pad_left", "pad_right"), [
    (113, 16, 512, 31, 30, 15),   # the paper's GSC hidden layer
    (20, 3, 32, 7, 6, 3),
    (5, 1, 16, 31, 30, 15),       # fewer steps than taps
    (9, 2, 16, 5, 0, 0),          # no padding: a valid correlation
    (9, 2, 48, 5, 2, 9),          # padding behind longer than the kernel
])
def test_depthwise_matches_onednn(steps, batch, channels, taps, pad_left, pad_right, threads) -> None:
    gen = torch.Generator().manual_seed(steps + channels)
    x = torch.randn(steps, batch, channels, generator=gen)
    kernel = torch.rand(channels, taps, generator=gen)
    grad_y = torch.randn(steps + pad_left + pad_right - taps + 1, batch, channels, generator=gen)
    assert native.depthwise_eligible(x, kernel, pad_left, pad_right)
    y_ref, gx_ref, gk_ref = onednn_channel_conv(x, kernel, pad_left, pad_right, grad_y)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        xs, ks = x.clone().requires_grad_(True), kernel.clone().requires_grad_(True)
        y = ops._channel_conv(xs, ks, pad_left, pad_right)
        y.backward(grad_y)
        with torch.no_grad():
            y_eval = ops._channel_conv(x, kernel, pad_left, pad_right)
    finally:
        torch.set_num_threads(previous)
    assert type(y.grad_fn).__name__ == "_NativeChannelConvBackward"
    # float32 sums of up to D products (forward, input gradient) and B x T' products (kernel gradient), each
    # accumulated in a different order than oneDNN's: relative to the largest value
    for name, ours, ref, tol in (("y", y, y_ref, 1e-6), ("eval y", y_eval, y_ref, 1e-6),
                                 ("grad x", xs.grad, gx_ref, 1e-6), ("grad kernel", ks.grad, gk_ref, 1e-5)):
        err = ((ours - ref).abs().max() / ref.abs().max()).item()
        assert err < tol, f"{name}: relative error {err:.2e} > {tol}"


def test_depthwise_falls_back_where_ineligible() -> None:
    """float64, channels not a multiple of 16, or pad_left >= D run oneDNN, with the same results."""
    x = torch.randn(10, 2, 16, dtype=torch.float64, requires_grad=True)
    kernel = torch.rand(16, 5, dtype=torch.float64)
    assert not native.depthwise_eligible(x, kernel, 4, 2)
    assert type(ops._channel_conv(x, kernel, 4, 2).grad_fn).__name__ == "_ChannelConvBackward"
    assert not native.depthwise_eligible(torch.randn(10, 2, 20), torch.rand(20, 5), 4, 2)
    assert not native.depthwise_eligible(torch.randn(10, 2, 16), torch.rand(16, 5), 5, 2)


@needs_library
def test_recurrences_split_across_threads_match_the_loop(monkeypatch) -> None:
    """Wide enough (8192 neurons) that two threads each take half; equal to the PyTorch per-step form."""
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(30, 4, 2048, generator=gen) * 0.8 + 0.3
    grad_out = torch.randn(x0.shape, generator=gen)

    def run(compiled: bool):
        with monkeypatch.context() as patch:
            if not compiled:
                patch.setattr(native, "recurrences_eligible", lambda _x: False)
            x = x0.clone().requires_grad_(True)
            spikes = ops.lif_spikes(x, 1.5, 1.0, 5.0)
            (spikes * grad_out).sum().backward()
            xr = x0.clone().requires_grad_(True)
            v_seq = ops.leaky_readout(xr, 1.5)
            (v_seq * grad_out).sum().backward()
            return spikes.detach(), x.grad, v_seq.detach(), xr.grad

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        compiled, loop = run(True), run(False)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(compiled[0], loop[0]), "spikes differ"
    for name, ours, ref in zip(("LIF grad", "readout", "readout grad"), compiled[1:], loop[1:], strict=True):
        err = ((ours - ref).abs().max() / ref.abs().max()).item()
        assert err < 1e-6, f"{name}: relative error {err:.2e}"


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """An unloaded module state and an empty cache, restored afterwards."""
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("SUITE_NATIVE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_disabled_by_environment(fresh_native, monkeypatch) -> None:
    monkeypatch.setenv("SUITE_NATIVE", "0")
    assert native.library() is None
    assert native.status() == "unavailable (disabled by SUITE_NATIVE=0); the CPU backend uses PyTorch ops"
    x = torch.randn(12, 2, 32, requires_grad=True)
    assert type(ops._channel_conv(x, torch.rand(32, 5), 4, 2).grad_fn).__name__ == "_ChannelConvBackward"


def test_missing_compiler_is_reported(fresh_native, monkeypatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    assert native.library() is None
    assert "no C compiler (no-such-compiler-xyz) on PATH" in native.status()


def test_failing_compiler_is_reported_and_nothing_is_cached(fresh_native, monkeypatch) -> None:
    broken = fresh_native / "cc"
    broken.write_text("#!/bin/sh\necho 'fatal: no space left' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    assert native.library() is None
    assert f"{broken} failed on the CPU kernels: fatal: no space left" in native.status()
    assert not list((fresh_native / "cache").glob("*.so"))


@needs_library
def test_build_is_cached_per_source_and_cpu(fresh_native) -> None:
    first = native._build(shutil.which("cc"))
    assert first.parent == fresh_native / "cache" and first.exists()
    stamp = first.stat().st_mtime_ns
    assert native._build(shutil.which("cc")) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
