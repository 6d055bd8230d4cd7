"""Named backends: how a name resolves (auto, errors), the cpu-kernels extension's one thread pool, and whole networks
on cpu-kernels against the PyTorch reference (torch): forward outputs and every gradient, each delay type, sparse
delays, synaptic delays at several widths, float32 and float64, training and evaluation (soft and hard).

Tolerances (relative to the reference's largest value, for outputs, every gradient and the running statistics):
float64 1e-12, float32 2e-5 (the kernels sum in other orders, contract multiply-adds and keep the fused BatchNorm's
statistics in double; measured worst cases 2.2e-14 and 4.5e-6). Evaluation spikes must be identical.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from suite.errors import SuiteError
from suite.models.delays import schedule_widths
from suite.models.network import DelayNetwork
from suite.ops import native, registry
from suite.ops.pytorch import WINDOW_MAX_TAPS, synaptic_window
from suite.specs import ModelSpec

needs_kernels = pytest.mark.skipif(native.library() is None, reason=f"compiled CPU kernels {native.status()}")


# ------------------------------------------------------------------------------------------------ resolution


@needs_kernels
def test_auto_resolves_to_the_compiled_backend_on_cpu_only() -> None:
    assert registry.resolve("auto", "cpu") == "cpu-kernels"
    assert registry.resolve("auto", "cuda:0") == "torch"
    assert registry.resolve("torch", "cuda") == "torch"
    assert registry.resolve("cpu-kernels", "cpu") == "cpu-kernels"


def test_named_backend_errors_are_one_line() -> None:
    with pytest.raises(SuiteError, match=r"^unknown backend 'nope'; available: cpu-kernels, numba-cuda, torch "
                                         r"\(or 'auto'\)$"):
        registry.resolve("nope", "cpu")
    if native.library() is None:
        with pytest.raises(SuiteError, match=r"^backend 'cpu-kernels' cannot run here: "):
            registry.resolve("cpu-kernels", "cpu")
        return
    with pytest.raises(SuiteError, match=r"^backend 'cpu-kernels' runs on the CPU only, not on device 'cuda'; use "
                                         r"--backend torch$"):
        registry.resolve("cpu-kernels", "cuda")


@needs_kernels
def test_run_records_the_resolved_backend(capsys) -> None:
    """`run` resolves the default (auto) once: the RunSpec, hence the run id, holds cpu-kernels, and --dry-run
    prints that id; the backend is part of the run id."""
    import dataclasses

    from suite.cli import _plan, build_parser, main

    argv = ["run", "--protocol", "gsc-mini", "--variant", "axonal", "--seeds", "0", "--dry-run"]
    ((spec, _),) = _plan(build_parser(argv).parse_args(argv))
    assert spec.backend == "cpu-kernels"
    assert spec.run_id != dataclasses.replace(spec, backend="torch").run_id
    assert main(argv) == 0
    assert spec.run_id in capsys.readouterr().out


@needs_kernels
def test_auto_resolves_per_variant_among_its_backends(monkeypatch, capsys) -> None:
    """A variant that runs on torch only (e.g. a plug-in) gets torch from auto beside cpu-kernels for the others, in
    `run` and in sweeps; naming a backend it lacks stays a one-line error; auto with no usable candidate names the
    variant's backends."""
    from suite import registry as variants
    from suite.cli import _plan, build_parser, main
    from suite.sweeps import load_sweep

    monkeypatch.setattr(variants, "_VARIANTS", dict(variants._VARIANTS))
    variants.register_variant("axonal-torch-only", description="test: torch only", delay_type="axonal",
                              backends=("torch",))
    argv = ["run", "--protocol", "gsc-mini", "--variant", "axonal", "--variant", "axonal-torch-only", "--seeds", "0",
            "--dry-run"]
    planned = {spec.variant: spec.backend for spec, _ in _plan(build_parser(argv).parse_args(argv))}
    assert planned == {"axonal": "cpu-kernels", "axonal-torch-only": "torch"}
    assert main([*argv, "--backend", "cpu-kernels"]) == 2
    assert capsys.readouterr().err.strip() == ("error: variant 'axonal-torch-only' does not support backend "
                                               "'cpu-kernels' (supported: torch)")
    assert registry.resolve("auto", "cpu", ("torch",)) == "torch"
    with pytest.raises(SuiteError, match=r"^backend 'auto' picks cpu-kernels or torch; the variant supports "
                                         r"numba-cuda on device 'cpu': name one with --backend$"):
        registry.resolve("auto", "cpu", ("numba-cuda",))
    sweep = {(r.spec.variant, r.spec.backend) for r in load_sweep("embedded").runs}  # variants: all
    assert ("axonal", "cpu-kernels") in sweep and ("axonal-torch-only", "torch") in sweep


# ------------------------------------------------------------------------------------------- one thread pool


@needs_kernels
def test_extension_uses_the_libgomp_torch_loaded() -> None:
    """The extension links libgomp by soname; in the process only torch's libgomp is mapped (one OpenMP pool)."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    mapped = sorted({line.split()[-1] for line in maps if "libgomp" in line.split()[-1]})
    torch_lib = Path(torch.__file__).parent / "lib"
    assert len(mapped) == 1 and Path(mapped[0]).parent == torch_lib, mapped
    extension = next(line.split()[-1] for line in maps if "suite_kernels_" in line.split()[-1])
    if shutil.which("ldd") is None:
        pytest.skip("no ldd to read the extension's dependencies")
    linked = subprocess.run(["ldd", extension], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\s*libgomp\.so\.1 =>", linked, re.MULTILINE), linked  # resolved by soname, as torch's is


# ------------------------------------------------------------------------------------------------ parity

WIDTHS = schedule_widths(15.0, 0.23)  # D = 31: SIG starts at D // 2


def _pair(delay_type: str, dtype: torch.dtype, sparsity: float = 0.0, sig: float | None = None
          ) -> tuple[DelayNetwork, DelayNetwork]:
    """The reference network and a copy on cpu-kernels; synaptic ones at D = 31 and SIG ``sig``."""
    spec = ModelSpec(variant=delay_type, delay_type=delay_type, n_inputs=6, n_hidden=(24, 20), n_outputs=5,
                     kernel_size=7 if sig is None else 31, delay_sparsity=sparsity, dropout=0.25)
    torch.manual_seed(0)
    reference = DelayNetwork(spec, "torch").to(dtype)
    if sig is not None:
        for module in reference.delay_modules():
            module.sig.fill_(sig)
    compiled = copy.deepcopy(reference)
    for module in compiled.modules():
        if hasattr(module, "backend"):
            module.backend = "cpu-kernels"
    return reference, compiled


def _train_step(net: DelayNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(5)  # the same dropout masks
    xs = x.clone().requires_grad_(True)
    out = net.train()(xs)
    (out * torch.linspace(-1, 1, out.numel(), dtype=x.dtype).view(out.shape)).sum().backward()
    return out.detach(), xs.grad, {name: p.grad for name, p in net.named_parameters()}


def _close(label: str, ours: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
    err = ((ours.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()
    assert err <= tol, f"{label}: relative error {err:.2e} > {tol:g}"


CASES = [("axonal", 0.0, None), ("axonal", 0.5, None), ("dendritic", 0.0, None), ("dendritic", 0.5, None),
         *[("synaptic", 0.0, WIDTHS[w]) for w in ("start", "middle", "final")]]
"""Synaptic widths: start and middle run the reference's D matrix products on cpu-kernels too (a window wider than
WINDOW_MAX_TAPS), final the window kernels."""


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("delay_type", "sparsity", "sig"), CASES)
def test_whole_network_matches_the_reference(delay_type: str, sparsity: float, sig: float | None,
                                             dtype: torch.dtype) -> None:
    reference, compiled = _pair(delay_type, dtype, sparsity, sig)
    if sig is not None:
        assert (synaptic_window(sig, 31)[0] <= WINDOW_MAX_TAPS) == (sig == WIDTHS["final"])
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    x = torch.rand(30, 4, 6, generator=torch.Generator().manual_seed(1), dtype=dtype) * 3
    label = f"{delay_type} s={sparsity} sig={sig} {dtype}"
    out_r, gx_r, grads_r = _train_step(reference, x)
    out_c, gx_c, grads_c = _train_step(compiled, x)
    _close(f"train output [{label}]", out_c, out_r, tol)
    _close(f"grad input [{label}]", gx_c, gx_r, tol)
    assert grads_r.keys() == grads_c.keys() and all(g is not None for g in grads_r.values())
    for name in grads_r:
        _close(f"grad {name} [{label}]", grads_c[name], grads_r[name], tol)
    for name, buffer in reference.named_buffers():  # BatchNorm running statistics
        if buffer.is_floating_point():
            _close(f"{name} [{label}]", dict(compiled.named_buffers())[name], buffer, tol)
    with torch.no_grad():
        spikes_r: list[torch.Tensor] = []
        spikes_c: list[torch.Tensor] = []
        _close(f"eval output [{label}]", compiled.eval()(x, spikes_c), reference.eval()(x, spikes_r), tol)
        assert all(torch.equal(a, b) for a, b in zip(spikes_c, spikes_r, strict=True)), f"eval spikes [{label}]"
        _close(f"hard eval output [{label}]", compiled.hard_copy()(x), reference.hard_copy()(x), tol)
