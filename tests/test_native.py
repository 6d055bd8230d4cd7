"""The cpu-kernels backend and its compiled kernels (suite.ops.native): built and used where a compiler exists,
equal to the PyTorch reference ops they replace, threaded on PyTorch's pool, and a one-line error when asked for
where they cannot be built."""

from __future__ import annotations

import os
import platform
import shutil

import pytest
import torch

from suite.errors import SuiteError
from suite.ops import cpu_kernels as ops
from suite.ops import native, registry

HAVE_COMPILER = platform.system() == "Linux" and shutil.which(os.environ.get("CC", "cc")) is not None


def test_library_is_built_where_a_compiler_exists() -> None:
    """Guards against a silent fallback: on Linux with a C compiler the compiled kernels must be in use."""
    if not HAVE_COMPILER:
        pytest.skip("no C compiler here: the cpu-kernels backend cannot be built")
    assert native.library() is not None, native.status()
    assert native.status().startswith("compiled ("), native.status()


needs_library = pytest.mark.skipif(native.library() is None, reason="compiled kernels unavailable")


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
    (98, 16, 40, 31, 30, 15),     # the GSC input layer: 2 vectors and a partial one
    (60, 4, 140, 15, 14, 7),      # the SSC input layer: 8 vectors and a partial one (a second block)
    (30, 3, 35, 7, 6, 3),         # the dendritic output layer
    (12, 2, 5, 3, 2, 1),          # fewer channels than one vector
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
    """float64 and pad_left >= D run oneDNN."""
    x = torch.randn(10, 2, 16, dtype=torch.float64, requires_grad=True)
    kernel = torch.rand(16, 5, dtype=torch.float64)
    assert not native.depthwise_eligible(x, kernel, 4, 2)
    assert type(ops._channel_conv(x, kernel, 4, 2).grad_fn).__name__ == "_ChannelConvBackward"
    assert not native.depthwise_eligible(torch.randn(10, 2, 16), torch.rand(16, 5), 5, 2)


def gaussian_positions(channels: int, taps: int, gen: torch.Generator) -> torch.Tensor:
    """Positions across the kernel, with integers, half-integers, both ends, and two far outside (at SIG <= 1 every
    tap is below the smallest normal float: a zero kernel)."""
    pos = (torch.rand(channels, generator=gen) - 0.5) * (taps - 1)
    special = torch.tensor([0.0, 0.5, -0.5, taps // 2, -(taps // 2), 1.25, 5.0 * taps, -5.0 * taps])
    pos[:min(channels, 8)] = special[:min(channels, 8)]
    return pos


@needs_library
@pytest.mark.parametrize("taps", [5, 15, 31])
@pytest.mark.parametrize("sig", [15.5, 1.0, 0.0])
def test_gaussian_taps_match_pytorch(taps: int, sig: float) -> None:
    """The C kernel computes the taps in float as the PyTorch ops (and DCLS) do: within 2 units in the last place."""
    pos = gaussian_positions(600, taps, torch.Generator().manual_seed(taps))
    ours = native.gaussian_kernel(pos, taps, abs(sig) + ops.SIGMA_OFFSET, ops.KERNEL_NORM_EPS)
    assert (ours - ops.gaussian_kernel(pos, sig, taps)).abs().max().item() <= 2.5e-7


@needs_library
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("sig", [15.5, 1.0, 0.0])
@pytest.mark.parametrize(("steps", "batch", "channels", "taps", "pad_left", "pad_right"), [
    (113, 16, 512, 31, 30, 15),   # the paper's GSC hidden layer
    (20, 3, 40, 7, 6, 3),         # 2 vectors and a partial one
    (9, 2, 35, 5, 2, 0),          # no padding behind
    (6, 2, 17, 31, 30, 15),       # fewer steps than taps
])
def test_gaussian_delay_matches_the_composed_form(steps, batch, channels, taps, pad_left, pad_right, sig,
                                                  threads) -> None:
    """One op (C taps, depthwise kernels, closed-form position gradient) against ``gaussian_kernel``'s autograd
    graph and the oneDNN correlation in float64."""
    gen = torch.Generator().manual_seed(steps + channels)
    x = torch.randn(steps, batch, channels, generator=gen)
    pos = gaussian_positions(channels, taps, gen)
    grad_y = torch.randn(steps + pad_left + pad_right - taps + 1, batch, channels, generator=gen)
    x_ref, pos_ref = x.double().requires_grad_(True), pos.double().requires_grad_(True)
    y_ref = ops._ChannelConv.apply(x_ref, ops.gaussian_kernel(pos_ref, sig, taps), pad_left, pad_right)
    y_ref.backward(grad_y.double())
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        xs, ps = x.clone().requires_grad_(True), pos.clone().requires_grad_(True)
        y = ops.channel_delay(xs, ps, sig, taps, pad_left, pad_right)
        y.backward(grad_y)
        with torch.no_grad():
            y_eval = ops.channel_delay(x, pos, sig, taps, pad_left, pad_right)
    finally:
        torch.set_num_threads(previous)
    assert type(y.grad_fn).__name__ == "_NativeGaussianDelayBackward"
    # float32 against float64: the positions and taps are rounded to float (at SIG = 0 a tap moves by ~1e-6 of
    # its value), then sums of D (output, input gradient) and B x T' x D (position gradient) products
    for name, ours, ref, tol in (("y", y, y_ref, 5e-6), ("eval y", y_eval, y_ref, 5e-6),
                                 ("grad x", xs.grad, x_ref.grad, 5e-6), ("grad pos", ps.grad, pos_ref.grad, 2e-5)):
        err = ((ours.double() - ref).abs().max() / ref.abs().max()).item()
        assert err < tol, f"{name}: relative error {err:.2e} > {tol}"
    if sig <= 1.0:  # positions 5 D away: every tap is exp(-190) or less
        assert (ps.grad[6:8] == 0).all() and (y[:, :, 6:8] == 0).all(), "a kernel of flushed taps delays nothing"


@needs_library
def test_gaussian_delay_computes_only_the_gradients_asked_for() -> None:
    """The input layer's x needs no gradient (only the positions do); frozen positions need none either."""
    gen = torch.Generator().manual_seed(3)
    x, pos = torch.randn(30, 2, 40, generator=gen), gaussian_positions(40, 15, gen)
    ps = pos.clone().requires_grad_(True)
    ops.channel_delay(x, ps, 2.0, 15, 14, 7).sum().backward()
    xs = x.clone().requires_grad_(True)
    ops.channel_delay(xs, pos, 2.0, 15, 14, 7).sum().backward()
    x_ref, pos_ref = x.clone().requires_grad_(True), pos.clone().requires_grad_(True)
    y_ref = ops._ChannelConv.apply(x_ref, ops.gaussian_kernel(pos_ref, 2.0, 15), 14, 7)
    y_ref.sum().backward()
    assert torch.allclose(ps.grad, pos_ref.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(xs.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


def test_gaussian_delay_falls_back_where_ineligible() -> None:
    """float64, or positions that do not match the channels, compose gaussian_kernel and the correlation."""
    x = torch.randn(10, 2, 16, dtype=torch.float64, requires_grad=True)
    assert not native.gaussian_delay_eligible(x, torch.zeros(16, dtype=torch.float64), 5, 4, 2)
    assert not native.gaussian_delay_eligible(torch.randn(10, 2, 16), torch.zeros(15), 5, 4, 2)
    assert not native.gaussian_delay_eligible(torch.randn(10, 2, 16), torch.zeros(16), 5, 5, 2)
    y = ops.channel_delay(x, torch.zeros(16, dtype=torch.float64, requires_grad=True), 1.0, 5, 4, 2)
    assert type(y.grad_fn).__name__ == "_ChannelConvBackward"


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
    monkeypatch.setattr(registry, "_LOADED", {})
    return tmp_path


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


def test_failing_extension_build_is_reported_and_nothing_is_cached(fresh_native, monkeypatch) -> None:
    """The C++ step (torch.utils.cpp_extension in a child process): its compiler's error line, not a traceback."""
    broken = fresh_native / "c++"
    broken.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && exec {shutil.which('c++')} --version\n"
                      "echo 'fatal error: disk full' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CXX", str(broken))
    assert native.library() is None
    assert native.status().startswith(f"unavailable ({broken} failed on the CPU kernels' torch extension "
                                      "(torch.utils.cpp_extension): "), native.status()
    assert native.status().endswith("fatal error: disk full)"), native.status()
    assert not list((fresh_native / "cache").glob("*.so"))


def test_any_load_failure_is_one_line_when_asked_for(fresh_native, monkeypatch) -> None:
    """Not only compiler errors: whatever goes wrong while building or loading, asking for cpu-kernels is a one-line
    SuiteError naming the cause (never a silent fallback), and ``auto`` resolves to the reference."""
    def broken(_compiler, _cxx):
        raise KeyError("no home directory")

    monkeypatch.setattr(native, "_build", broken)
    assert native.library() is None
    assert "KeyError" in native.status() and "no home directory" in native.status()
    with pytest.raises(SuiteError) as err:
        registry.resolve("cpu-kernels", "cpu")
    assert str(err.value) == ("backend 'cpu-kernels' cannot run here: the compiled CPU kernels are unavailable "
                              "(KeyError: 'no home directory')")
    assert registry.resolve("auto", "cpu") == "torch"


@needs_library
def test_malformed_inputs_raise_instead_of_reaching_the_kernels() -> None:
    """A kernel whose channel count differs from the input's goes to oneDNN, which raises; a dropout mask that only
    broadcasts to (B, C) is expanded (as ``x * keep`` would), one that does not raises; a fused op called where its
    ``*_supported`` is False raises a ValueError naming the tensors."""
    x = torch.randn(10, 2, 64)
    with pytest.raises(RuntimeError, match="channels"):
        ops._channel_conv(x, torch.rand(16, 5), 4, 2)
    norm = torch.nn.BatchNorm1d(64)
    out = ops.batchnorm_lif(x, norm.weight, norm.bias, None, 1e-5, 1.5, 1.0, 5.0, torch.full((1, 64), 2.0))
    ref = ops.batchnorm_lif(x, norm.weight, norm.bias, None, 1e-5, 1.5, 1.0, 5.0, torch.full((2, 64), 2.0))
    assert torch.equal(out, ref)
    with pytest.raises(RuntimeError):
        ops.batchnorm_lif(x, norm.weight, norm.bias, None, 1e-5, 1.5, 1.0, 5.0, torch.ones(3, 64))
    assert not ops.batchnorm_lif_supported(x, torch.ones(16))
    stage = (None, 1e-5, 1.5, 1.0, 5.0, None)
    with pytest.raises(ValueError, match=r"batchnorm_lif cannot run on input \(10, 2, 64\).*weight \(16,\)"):
        ops.batchnorm_lif(x, torch.ones(16), torch.zeros(16), *stage)
    with pytest.raises(ValueError, match=r"delay_batchnorm_lif cannot run .*positions \(63,\)"):
        ops.delay_batchnorm_lif(x, torch.zeros(63), 1.0, 5, 4, 2, norm.weight, norm.bias, *stage)
    with pytest.raises(ValueError, match=r"batchnorm_lif_delay cannot run .*float64"):
        ops.batchnorm_lif_delay(x.double(), norm.weight, norm.bias, *stage, torch.zeros(64), 1.0, 5, 4, 2)


@needs_library
def test_fused_statistics_do_not_cancel_for_a_large_mean() -> None:
    """float64 inputs around 1e4 with std 0.01: the fused forward's statistics equal the two-pass ones to 1e-9, and its
    spikes and membrane checkpoints those of BatchNorm1d + LIF."""
    gen = torch.Generator().manual_seed(3)
    x = 1e4 + 0.01 * torch.randn(20, 4, 8, generator=gen, dtype=torch.float64)
    norm = torch.nn.BatchNorm1d(8).double()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "_chunk_steps", lambda _x: 5)
        out, state, mean, var = native.batchnorm_lif_forward(x, norm.weight, norm.bias, None, norm.eps, 1 - 1 / 1.5,
                                                             1.0)
    y = norm(x.reshape(80, 8)).reshape(20, 4, 8)
    h_ref, spikes = native.lif_forward(y, 1 - 1 / 1.5, 1.0, keep_h=True)
    assert torch.allclose(var, x.reshape(80, 8).var(0, unbiased=False), rtol=1e-9, atol=0)
    assert torch.allclose(mean, x.reshape(80, 8).mean(0), rtol=1e-15, atol=0)
    assert torch.equal(out, spikes) and spikes.sum() > 0
    v_ref = h_ref * (1 - spikes)  # V after step t; checkpoint k holds V entering step 5 k
    assert state.checkpoints.shape == (4, 4, 8) and not state.checkpoints[0].any()
    assert (state.checkpoints[1:] - v_ref[4:19:5]).abs().max().item() < 1e-9


@needs_library
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_checkpointed_backward_is_bit_identical_for_any_chunk(dtype, threads, monkeypatch) -> None:
    """H is computed again chunk by chunk in the backward: every chunk length (one step, a partial last chunk, the
    whole sequence, which is H kept in full) gives the same gradients to the bit."""
    gen = torch.Generator().manual_seed(4)
    steps, batch, channels = 23, 5, 24
    x = (torch.randn(steps, batch, channels, generator=gen) * 2 + 0.5).to(dtype)
    grad = torch.randn(steps, batch, channels, generator=gen).to(dtype)
    weight = (torch.rand(channels, generator=gen) + 0.5).to(dtype)
    bias = (torch.randn(channels, generator=gen) * 0.2).to(dtype)
    keep = ((torch.rand(batch, channels, generator=gen) > 0.2).float() / 0.8).to(dtype)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    results = []
    try:
        for every in (steps, 1, 4, 7):
            monkeypatch.setattr(native, "_chunk_steps", lambda _x, every=every: every)
            out, state, mean, var = native.batchnorm_lif_forward(x, weight, bias, keep, 1e-5, 0.6, 1.0)
            invstd = (var + 1e-5).rsqrt()
            grads = native.batchnorm_lif_backward(x, state, grad, keep, weight, mean, invstd, 0.6, 1.0, 4.0, 1.0)
            results.append((out, *grads))
    finally:
        torch.set_num_threads(previous)
    assert results[0][0].sum() > 0
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other, strict=True))


@needs_library
def test_build_is_cached_per_source_and_cpu(fresh_native) -> None:
    compilers = shutil.which("cc"), shutil.which("c++")
    first = native._build(*compilers)
    assert first.parent == fresh_native / "cache" and first.exists()
    stamp = first.stat().st_mtime_ns
    assert native._build(*compilers) == first and first.stat().st_mtime_ns == stamp  # not rebuilt


# ----------------------------------------------------------------------- fused BatchNorm -> LIF -> dropout


def train_pass(net, x, fused: bool, monkeypatch):
    """One forward + backward in training mode with the fused neuron stages (BatchNorm -> LIF -> dropout, with the
    dendritic delay before them or the next axonal delay after them) on or off; same dropout masks."""
    with monkeypatch.context() as patch:
        if not fused:
            patch.setattr(ops, "batchnorm_lif_supported", lambda *_a: False)
            patch.setattr(ops, "delay_batchnorm_lif_supported", lambda *_a: False)
            patch.setattr(ops, "batchnorm_lif_delay_supported", lambda *_a: False)
        torch.manual_seed(7)
        xs = x.clone().requires_grad_(True)
        out = net(xs)
        (out * torch.linspace(-1, 1, out.numel(), dtype=x.dtype).view(out.shape)).sum().backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    return out.detach(), xs.grad, grads, {name: b.clone() for name, b in net.named_buffers()}


@needs_library
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("delay_type", "dropout", "momentum"), [
    ("axonal", 0.25, 0.1), ("dendritic", 0.0, 0.1), ("synaptic", 0.25, None)])
def test_fused_neuron_stage_matches_the_composed_one(dtype, delay_type, dropout, momentum, monkeypatch) -> None:
    """Spikes identical; every gradient and the running statistics equal to BatchNorm1d + LIF + dropout within
    float rounding (1e-12 relative in float64; 1e-5 in float32, where the BatchNorm reductions round differently)."""
    import copy

    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec

    spec = ModelSpec(variant=delay_type, delay_type=delay_type, n_inputs=6, n_hidden=(24, 20), n_outputs=5,
                     kernel_size=5, dropout=dropout)
    torch.manual_seed(0)
    net = DelayNetwork(spec, "cpu-kernels").to(dtype).train()
    for layer in net.layers:
        if layer.norm is not None:
            layer.norm.momentum = momentum
    x = torch.rand(30, 8, 6, dtype=dtype) * 3
    fused_net, composed_net = copy.deepcopy(net), copy.deepcopy(net)
    out_f, gx_f, grads_f, bufs_f = train_pass(fused_net, x, True, monkeypatch)
    out_c, gx_c, grads_c, bufs_c = train_pass(composed_net, x, False, monkeypatch)
    tol = 1e-12 if dtype == torch.float64 else 1e-5

    def close(name, ours, ref):
        err = ((ours.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()
        assert err < tol, f"{name}: relative error {err:.2e} > {tol}"

    assert torch.equal(out_f, out_c)
    close("grad input", gx_f, gx_c)
    for name in grads_c:
        close(f"grad {name}", grads_f[name], grads_c[name])
    for name in bufs_c:
        close(name, bufs_f[name], bufs_c[name])
    assert int(bufs_f["layers.0.norm.num_batches_tracked"]) == 1


@needs_library
def test_fused_neuron_stage_runs_in_training_only() -> None:
    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec

    net = DelayNetwork(ModelSpec(n_inputs=6, n_hidden=(16,), n_outputs=5, kernel_size=5), "cpu-kernels")
    x = torch.rand(12, 4, 6)
    hidden = net.layers[0]
    assert type(ops.network_forward([hidden], x).grad_fn).__name__ == "_BatchNormLIFBackward"
    net.eval()
    out = ops.network_forward([hidden], x)
    assert out.grad_fn is None or "BatchNormLIF" not in type(out.grad_fn).__name__
    weight = hidden.norm.weight
    assert not ops.batchnorm_lif_supported(torch.rand(1, 1, 16), weight)  # one row: BatchNorm itself refuses it
    assert not ops.batchnorm_lif_supported(torch.rand(3, 2, 16), None)  # not affine


@needs_library
def test_dendritic_layers_fuse_their_delay_in_training_only() -> None:
    """Soft dendritic delays join the fused stage; sparse delays (pass-through mixed in after the delay), hard
    delays and evaluation do not."""
    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec

    x = torch.rand(12, 4, 6)
    for sparsity, fused in ((0.0, "_DelayBatchNormLIFBackward"), (0.5, "_BatchNormLIFBackward")):
        net = DelayNetwork(ModelSpec(variant="dendritic", delay_type="dendritic", n_inputs=6, n_hidden=(16,),
                                     n_outputs=5, kernel_size=5, delay_sparsity=sparsity), "cpu-kernels")
        assert type(ops.network_forward(net.layers[:1], x).grad_fn).__name__ == fused
    net.layers[0].delay.hard = True
    assert type(ops.network_forward(net.layers[:1], x).grad_fn).__name__ == "_BatchNormLIFBackward"
    assert "BatchNormLIF" not in type(ops.network_forward(net.eval().layers[:1], x).grad_fn).__name__
    pos, weight = torch.zeros(16), torch.ones(16)
    assert ops.delay_batchnorm_lif_supported(torch.rand(12, 4, 16), pos, 5, 4, 2, weight)
    assert not ops.delay_batchnorm_lif_supported(torch.rand(12, 4, 16).double(), pos.double(), 5, 4, 2, weight)
    assert not ops.delay_batchnorm_lif_supported(torch.rand(12, 4, 16), pos, 5, 4, 2, None)  # not affine
    assert not ops.delay_batchnorm_lif_supported(torch.rand(1, 1, 16), pos, 5, 0, 0, weight)  # one row


FUSED_SHAPES = [(98, 16, 512, 31), (20, 3, 40, 7), (6, 2, 35, 31)]  # (steps, batch, channels, taps)


def compare_fusion(run, threads: int, tol: float) -> None:
    """``run(fused)`` -> (output, gradients and running statistics by name), fused and composed, on ``threads``:
    outputs (spikes or their delays) identical, the rest within ``tol`` relative to the largest value."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        (out_f, rest_f), (out_c, rest_c) = run(True), run(False)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(out_f, out_c)
    for name in rest_c:
        err = ((rest_f[name] - rest_c[name]).abs().max() / rest_c[name].abs().max()).item()
        assert err < tol, f"{name}: relative error {err:.2e} > {tol}"


def stage_case(steps: int, batch: int, channels: int, taps: int, seed: int):
    """A delay fused with a neuron stage: its input and output gradient, the positions, BatchNorm affine
    parameters, a dropout mask and the paper's padding."""
    gen = torch.Generator().manual_seed(seed)
    current = torch.randn(steps, batch, channels, generator=gen) * 2 + 0.5
    pos = gaussian_positions(channels, taps, gen)
    weight, bias = torch.rand(channels, generator=gen) + 0.5, torch.randn(channels, generator=gen) * 0.2
    keep = (torch.rand(batch, channels, generator=gen) > 0.2).float() / 0.8
    pad_left, pad_right = taps - 1, (taps - 1) // 2
    grad = torch.randn(steps + pad_right, batch, channels, generator=gen)
    return current, grad, pos, weight, bias, keep, pad_left, pad_right


@needs_library
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("steps", "batch", "channels", "taps"), FUSED_SHAPES)
def test_delay_batchnorm_lif_matches_the_two_ops(steps, batch, channels, taps, threads) -> None:
    """The dendritic fusion (BatchNorm statistics from the depthwise forward, its input gradient computed in the
    depthwise backward's gather) against channel_delay then batchnorm_lif: spikes identical, gradients and running
    statistics within float32 rounding (the statistics are summed in another order)."""
    current, grad, pos, weight, bias, keep, pad_left, pad_right = stage_case(steps, batch, channels, taps, 1)
    assert ops.delay_batchnorm_lif_supported(current, pos, taps, pad_left, pad_right, weight)

    def run(fused: bool):
        xs, ps, w, b = (t.clone().requires_grad_(True) for t in (current, pos, weight, bias))
        running = (torch.zeros(channels), torch.ones(channels), 0.1)
        args = (w, b, running, 1e-5, 1.5, 1.0, 5.0, keep)
        if fused:
            out = ops.delay_batchnorm_lif(xs, ps, 2.0, taps, pad_left, pad_right, *args)
        else:
            out = ops.batchnorm_lif(ops.channel_delay(xs, ps, 2.0, taps, pad_left, pad_right), *args)
        out.backward(grad)
        return out.detach(), {"grad x": xs.grad, "grad pos": ps.grad, "grad weight": w.grad, "grad bias": b.grad,
                              "running mean": running[0], "running var": running[1]}

    compare_fusion(run, threads, 1e-5)


@needs_library
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("steps", "batch", "channels", "taps"), FUSED_SHAPES)
def test_batchnorm_lif_delay_matches_the_two_ops(steps, batch, channels, taps, threads) -> None:
    """The axonal fusion (the spikes built block by block in the depthwise kernel, H and the spikes computed again in
    the backward, the LIF's reverse recurrence run on each block's gradient) against batchnorm_lif then
    channel_delay: the same arithmetic (the BatchNorm sums only add in another order), so equal outputs and gradients
    to rounding; and the fused op keeps one (T, B, C) tensor for its backward (z), not H."""
    current, grad, pos, weight, bias, keep, pad_left, pad_right = stage_case(steps, batch, channels, taps, 2)
    assert ops.batchnorm_lif_delay_supported(current, weight, pos, taps, pad_left, pad_right)

    def run(fused: bool):
        zs, w, b, ps = (t.clone().requires_grad_(True) for t in (current, weight, bias, pos))
        running = (torch.zeros(channels), torch.ones(channels), 0.1)
        args = (running, 1e-5, 1.5, 1.0, 5.0, keep)
        if fused:
            y = ops.batchnorm_lif_delay(zs, w, b, *args, ps, 2.0, taps, pad_left, pad_right)
            saved = sorted(t.numel() for t in y.grad_fn.saved_tensors)
            assert saved[-1] == current.numel() and saved[-2] < current.numel()
        else:
            y = ops.channel_delay(ops.batchnorm_lif(zs, w, b, *args), ps, 2.0, taps, pad_left, pad_right)
        y.backward(grad)
        return y.detach(), {"grad z": zs.grad, "grad pos": ps.grad, "grad weight": w.grad, "grad bias": b.grad,
                            "running mean": running[0], "running var": running[1]}

    compare_fusion(run, threads, 1e-6)


@needs_library
def test_axonal_layers_take_their_input_delayed_in_training_only(monkeypatch) -> None:
    """A layer hands the next axonal layer its spikes delayed (fused where it can); asking for the spikes, evaluation,
    and sparse delays (whose pass-through lines need the undelayed spikes: composed there) give the same outputs."""
    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec

    x = torch.rand(16, 4, 6) * 3
    for sparsity in (0.0, 0.5):
        torch.manual_seed(0)
        net = DelayNetwork(ModelSpec(variant="axonal", delay_type="axonal", n_inputs=6, n_hidden=(24, 20),
                                     n_outputs=5, kernel_size=5, dropout=0.0, delay_sparsity=sparsity), "cpu-kernels")
        fused = net(x)
        spikes: list[torch.Tensor] = []
        with_spikes = net(x, spikes=spikes)
        with monkeypatch.context() as patch:
            patch.setattr(ops, "batchnorm_lif_delay_supported", lambda *_a: False)
            composed = net(x)
        assert torch.equal(fused, with_spikes) and torch.equal(fused, composed)
        assert [s.shape[2] for s in spikes] == [24, 20]
        assert ("_BatchNormLIFDelayBackward" in _graph(fused)) == (sparsity == 0.0)
        assert "_BatchNormLIFDelayBackward" not in _graph(with_spikes)
        net.eval()
        assert "_BatchNormLIFDelayBackward" not in _graph(net(x))


def _graph(out: torch.Tensor) -> list[str]:
    """Names of every autograd node behind ``out``."""
    names, stack, seen = [], [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack += [child for child, _ in node.next_functions]
    return names


@needs_library
def test_operators_are_typed_and_check_their_tensors() -> None:
    """torch.ops.suite_kernels.*: typed schemas (outputs marked mutable), and a tensor of the wrong dtype or layout is
    a one-line error naming the operator and the argument, never an out-of-bounds read."""
    kernels = native.library()
    assert str(kernels.recurrence.default._schema) == (
        "suite_kernels::recurrence(int kind, Tensor input, Tensor? grad, Tensor(a!) out, Tensor(b!)? out2, "
        "Tensor(c!)? v, float decay, float threshold, float scale, float half_alpha, int T, int N, int h_rows, "
        "int threads) -> ()")
    src = torch.zeros(2, 3, 16, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"^suite_kernels\.window_correlate: src must be a contiguous CPU Float "
                                           r"tensor, got Double on cpu$"):
        kernels.window_correlate(src, torch.zeros(1, 2, 1), torch.zeros(1, 2, dtype=torch.int32),
                                 torch.zeros(1, 1, 16), 1, 2, 1, 3, 1, 1, 1)
    with pytest.raises(RuntimeError, match=r"^suite_kernels\.recurrence: out must be a contiguous CPU Float tensor, "
                                           r"got Float on cpu \(not contiguous\)$"):
        kernels.recurrence(0, torch.zeros(3, 4), None, torch.zeros(4, 3).t(), None, None, 0.5, 1.0, 0.0, 0.0, 3, 4, 3,
                           1)
