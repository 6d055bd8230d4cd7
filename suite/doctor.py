"""``python -m suite doctor [--gpu] [--out FILE] [--small]``: is the numba-cuda backend right, and what does it cost?

Runs every op of the numba-cuda backend against the PyTorch reference backend (forward and every gradient) and times
LIF, the soft and hard delays of each type and one full training step per registered variant on both backends, then
writes a Markdown report (date, device, versions, parity table, timing table).

- ``--gpu``: on the CUDA device, at the paper's GSC sizes (40-512-512-512-35, T = 98, batch 128, D = 31 with the
  paper's padding), unless ``--small``. TF32 is switched off for the parity checks (both sides in plain float32).
- without ``--gpu``: Numba's CUDA simulator on CPU, always at tiny sizes (the simulator runs each GPU thread as a
  Python thread). It proves the script and the kernels' logic, not GPU speed; the timings are then meaningless.

Exit code 0 when every parity row passes, 1 otherwise; SuiteError when the requested mode cannot run here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from suite.environment import package_version
from suite.errors import SuiteError
from suite.ops import native
from suite.records import atomic_write_text
from suite.timing import time_callable

BACKENDS = ("torch", "numba-cuda")


@dataclass(frozen=True)
class Sizes:
    """Network and batch sizes the doctor checks at."""

    n_inputs: int
    n_hidden: tuple[int, ...]
    n_outputs: int
    steps: int
    batch: int
    kernel_size: int

    @property
    def pad_left(self) -> int:
        return self.kernel_size - 1

    @property
    def pad_right(self) -> int:
        return (self.kernel_size - 1) // 2

    def describe(self) -> str:
        layers = "-".join(str(n) for n in (self.n_inputs, *self.n_hidden, self.n_outputs))
        return (f"{layers}, T = {self.steps} (+{self.pad_right} per layer), batch {self.batch}, D = {self.kernel_size}"
                f" (pad {self.pad_left} + {self.pad_right})")


PAPER_SIZES = Sizes(n_inputs=40, n_hidden=(512, 512, 512), n_outputs=35, steps=98, batch=128, kernel_size=31)
"""GSC model of the paper (docs/protocol-facts.md 'Network' and 'Delays')."""
SMALL_SIZES = Sizes(n_inputs=4, n_hidden=(6,), n_outputs=3, steps=8, batch=2, kernel_size=5)
"""Small enough for the CUDA simulator (tens of seconds for the whole doctor)."""


@dataclass(frozen=True)
class Tolerance:
    """Forward: max |a - b| <= forward_abs * max(1, max |ref|). Gradients: max |a - b| <= grad_rel * max |ref|."""

    forward_abs: float
    grad_rel: float
    spike_mismatch_fraction: float


SMALL_TOLERANCE = Tolerance(forward_abs=1e-5, grad_rel=1e-4, spike_mismatch_fraction=0.0)
PAPER_TOLERANCE = Tolerance(forward_abs=1e-4, grad_rel=1e-3, spike_mismatch_fraction=1e-4)
"""At the paper's sizes sums run over ~16k terms in different orders, and a membrane within one float32 ulp of the
threshold can spike on one backend only; such neurons are counted and left out of the LIF gradient comparison."""


@dataclass
class OpCase:
    """One parity / timing case: ``call(ops, *inputs)`` on float inputs that get gradients, plus fixed extras."""

    op: str
    shape: str
    call: Callable[..., torch.Tensor]
    inputs: list[torch.Tensor]
    note: str = ""
    grad_names: tuple[str, ...] = ("x",)
    spiking: bool = False
    grad: bool = True
    timed: bool = True


@dataclass
class ParityRow:
    op: str
    shape: str
    note: str
    forward_abs: float
    grad_rel: dict[str, float]
    passed: bool
    detail: str = ""


@dataclass
class Report:
    mode: str
    sizes: Sizes
    environment: dict[str, str]
    parity: list[ParityRow] = field(default_factory=list)
    timing: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.parity) and all(row.passed for row in self.parity)


# --------------------------------------------------------------------------------------------------------- set-up
def _numba_backend(gpu: bool) -> ModuleType:
    """Load the numba-cuda backend in the requested mode, or say in one line why it cannot run in this process."""
    if gpu and not torch.cuda.is_available():
        raise SuiteError("doctor --gpu needs a CUDA GPU visible to torch; run without --gpu for the simulator check")
    if not gpu and "numba.cuda" not in sys.modules:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # must precede the first import of numba.cuda
    from suite.ops.registry import get_ops

    ops = get_ops("numba-cuda")
    simulated = ops.is_simulator()
    if gpu and simulated:
        raise SuiteError("doctor --gpu: Numba runs in its CPU simulator (NUMBA_ENABLE_CUDASIM=1 is set); unset it")
    if not gpu and not simulated:
        raise SuiteError("doctor without --gpu runs Numba's CUDA simulator, but numba.cuda was already imported in GPU "
                         "mode in this process: run `NUMBA_ENABLE_CUDASIM=1 python -m suite doctor`, or add --gpu")
    return ops


def _environment(gpu: bool) -> dict[str, str]:
    from numba import cuda

    env = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": package_version("numba") or "not installed",
        "numba-cuda": package_version("numba-cuda") or "not installed",
        "CUDA (torch build)": str(torch.version.cuda),
        "Compiled CPU kernels (backend cpu-kernels)": native.status(),
    }
    if gpu:
        env["device"] = f"{torch.cuda.get_device_name()} (compute capability {torch.cuda.get_device_capability()})"
        try:
            env["CUDA runtime (numba)"] = ".".join(map(str, cuda.runtime.get_version()))
            env["CUDA driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
        except Exception as err:  # version probes only decorate the report
            env["CUDA runtime (numba)"] = f"unknown ({type(err).__name__})"
    else:
        env["device"] = f"CPU ({platform.processor() or platform.machine()}), Numba CUDA simulator"
        env["CUDA runtime (numba)"] = "none (simulator)"
    return env


# ---------------------------------------------------------------------------------------------------------- cases
def _positions(shape: tuple[int, ...], kernel_size: int, gen: torch.Generator) -> torch.Tensor:
    """Official init: U[-(D // 2) - 1, D // 2], clamped to [-(D // 2), D // 2]."""
    half = kernel_size // 2
    return (torch.rand(shape, generator=gen) * (2 * half + 1) - half - 1).clamp(-half, half)


def _weight(n_out: int, n_in: int, gen: torch.Generator) -> torch.Tensor:
    """Kaiming-uniform (relu gain), as the models initialise their weights."""
    bound = math.sqrt(6.0 / n_in)
    return (torch.rand((n_out, n_in), generator=gen) * 2 - 1) * bound


def _delays(pos: torch.Tensor, kernel_size: int) -> torch.Tensor:
    from suite.ops.pytorch import delays_from_positions

    return delays_from_positions(pos, kernel_size)


def op_cases(sizes: Sizes, device: torch.device, seed: int = 0) -> list[OpCase]:
    """Every op at the shapes the paper's network gives it: layer 1 sees real-valued features, deeper layers spikes."""
    gen = torch.Generator().manual_seed(seed)
    D, pl, pr, B = sizes.kernel_size, sizes.pad_left, sizes.pad_right, sizes.batch
    hidden = sizes.n_hidden[0]
    t1, t2 = sizes.steps, sizes.steps + pr  # input length of layer 1 and of layer 2
    t_last = sizes.steps + pr * len(sizes.n_hidden)
    sigs = (float(D // 2), 0.23)

    def real(t: int, c: int) -> torch.Tensor:
        return torch.randn((t, B, c), generator=gen)

    def spikes(t: int, c: int) -> torch.Tensor:
        return (torch.rand((t, B, c), generator=gen) < 0.2).float()

    def dev(*tensors: torch.Tensor) -> list[torch.Tensor]:
        return [t.to(device) for t in tensors]

    cases = [
        OpCase("lif_spikes", f"({t2}, {B}, {hidden})", lambda ops, x: ops.lif_spikes(x, 1.5, 1.0, 5.0),
               dev(0.8 * real(t2, hidden) + 0.5), "tau 1.5, thr 1, alpha 5", spiking=True),
        OpCase("leaky_readout", f"({t_last + pr}, {B}, {sizes.n_outputs})", lambda ops, x: ops.leaky_readout(x, 1.5),
               dev(real(t_last + pr, sizes.n_outputs)), "tau 1.5"),
    ]
    for c, t, x_of in ((sizes.n_inputs, t1, real), (hidden, t2, spikes)):
        pos = _positions((c,), D, gen)
        x = x_of(t, c)
        for sig in sigs:
            cases.append(OpCase("channel_delay", f"({t}, {B}, {c})",
                                lambda ops, x, p, sig=sig: ops.channel_delay(x, p, sig, D, pl, pr),
                                dev(x, pos), f"sig {sig:g}", ("x", "pos"), timed=sig == sigs[0]))
        delays = _delays(pos, D).to(device)
        cases.append(OpCase("channel_delay_hard", f"({t}, {B}, {c})",
                            lambda ops, x, d=delays: ops.channel_delay_hard(x, d, D, pl, pr), dev(x)))
    for n_in, n_out, t, x_of in ((sizes.n_inputs, hidden, t1, real), (hidden, hidden, t2, spikes),
                                 (hidden, sizes.n_outputs, t_last, spikes)):
        pos = _positions((n_out, n_in), D, gen)
        w = _weight(n_out, n_in, gen)
        x = x_of(t, n_in)
        shape = f"({t}, {B}, {n_in}) -> {n_out}"
        for sig in sigs:
            cases.append(OpCase("synaptic_delay", shape,
                                lambda ops, x, w, p, sig=sig: ops.synaptic_delay(x, w, p, sig, D, pl, pr),
                                dev(x, w, pos), f"sig {sig:g}", ("x", "weight", "pos"), timed=sig == sigs[0]))
        delays = _delays(pos, D).to(device)
        cases.append(OpCase("synaptic_delay_hard", shape,
                            lambda ops, x, w, d=delays: ops.synaptic_delay_hard(x, w, d, D, pl, pr), dev(x, w),
                            grad_names=("x", "weight")))
    return cases


# ---------------------------------------------------------------------------------------------------------- parity
def _run_case(ops: ModuleType, case: OpCase, grad_out: torch.Tensor | None
              ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    inputs = [t.detach().clone().requires_grad_(case.grad) for t in case.inputs]
    y = case.call(ops, *inputs)
    if not case.grad or grad_out is None:
        return y.detach(), []
    return y.detach(), [g.detach() for g in torch.autograd.grad(y, inputs, grad_out)]


def _max_abs(a: torch.Tensor) -> float:
    return float(a.abs().max()) if a.numel() else 0.0


def compare_case(case: OpCase, reference: ModuleType, candidate: ModuleType, tol: Tolerance, seed: int = 1
                 ) -> ParityRow:
    """Forward and every input gradient of ``candidate`` against ``reference`` for one case."""
    y_ref, _ = _run_case(reference, case, None)
    gen = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(y_ref.shape, generator=gen).to(y_ref.device)
    y_ref, g_ref = _run_case(reference, case, grad_out)
    y_new, g_new = _run_case(candidate, case, grad_out)
    if y_new.shape != y_ref.shape:
        return ParityRow(case.op, case.shape, case.note, math.inf, {}, False,
                         f"shape {tuple(y_new.shape)} != {tuple(y_ref.shape)}")
    detail = ""
    keep = None
    if case.spiking:  # compare gradients on neurons whose spike trains agree at every step
        same = (y_new == y_ref).all(dim=0)
        mismatched = int((~same).sum())
        keep = same.unsqueeze(0)
        detail = f"{mismatched} of {same.numel()} neurons differ in some spike"
        if mismatched > tol.spike_mismatch_fraction * same.numel():
            return ParityRow(case.op, case.shape, case.note, _max_abs(y_new - y_ref), {}, False, detail)
        forward = 0.0 if mismatched == 0 else _max_abs((y_new - y_ref) * keep)
    else:
        forward = _max_abs(y_new - y_ref)
    grad_rel: dict[str, float] = {}
    for name, a, b in zip(case.grad_names, g_new, g_ref, strict=True):
        diff = a - b if keep is None else (a - b) * keep
        scale = _max_abs(b if keep is None else b * keep)
        grad_rel[name] = _max_abs(diff) / scale if scale > 0 else _max_abs(diff)
    passed = forward <= tol.forward_abs * max(1.0, _max_abs(y_ref)) and all(
        err <= tol.grad_rel for err in grad_rel.values())
    return ParityRow(case.op, case.shape, case.note, forward, grad_rel, passed, detail)


# ---------------------------------------------------------------------------------------------------------- timing
def time_ms(fn: Callable[[], Any], device: torch.device, warmup: int, reps: int) -> float:
    """Median wall time of ``fn`` in ms, with the device synchronised before and after every call."""
    return 1e3 * time_callable(fn, device, warmup, reps)["median_s"]


def _op_timer(ops: ModuleType, case: OpCase) -> Callable[[], None]:
    inputs = [t.detach().clone().requires_grad_(case.grad) for t in case.inputs]

    def step() -> None:
        y = case.call(ops, *inputs)
        if case.grad:
            torch.autograd.grad(y, inputs, torch.ones_like(y))

    return step


def _train_step(variant_name: str, defaults: dict[str, Any], sizes: Sizes, backend: str, device: torch.device,
                seed: int) -> Callable[[], float]:
    """One training step (suite.training) with the paper's optimisers, as a run's first step takes it."""
    from suite.models.network import DelayNetwork
    from suite.specs import ModelSpec
    from suite.training import make_train_step

    torch.manual_seed(seed)
    spec = ModelSpec(**{**defaults, "variant": variant_name, "n_inputs": sizes.n_inputs, "n_hidden": sizes.n_hidden,
                        "n_outputs": sizes.n_outputs, "kernel_size": sizes.kernel_size})
    model = DelayNetwork(spec, backend).to(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((sizes.steps, sizes.batch, sizes.n_inputs), generator=gen).to(device)
    labels = torch.randint(0, sizes.n_outputs, (sizes.batch,), generator=gen).to(device)
    return make_train_step(model, x, labels)


def _timing_cases(cases: list[OpCase]) -> list[tuple[str, OpCase]]:
    """LIF, readout and soft delays (init SIG) forward + backward; hard delays forward only, as evaluation runs them."""
    picked: list[tuple[str, OpCase]] = []
    for case in cases:
        if not case.timed:
            continue
        label = f"{case.op} {case.shape}" + (f" {case.note}" if case.note.startswith("sig") else "")
        if case.op.endswith("_hard"):
            picked.append((f"{label}, forward (eval)", OpCase(case.op, case.shape, case.call, case.inputs, grad=False)))
        else:
            picked.append((f"{label}, forward + backward", case))
    return picked


# ---------------------------------------------------------------------------------------------------------- report
def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2e}"


def render(report: Report) -> str:
    """The Markdown report."""
    lines = [f"# numba-cuda doctor ({report.mode})", ""]
    lines += [f"- {key}: {value}" for key, value in report.environment.items()]
    lines += [f"- sizes: {report.sizes.describe()}", ""]
    verdict = "all parity checks passed" if report.passed else "SOME PARITY CHECKS FAILED"
    lines += ["## Parity: numba-cuda against torch", "", f"Result: **{verdict}**.", ""]
    lines += ["| op | shape | setting | forward max abs | gradient max rel (per input) | result | detail |",
              "|---|---|---|---|---|---|---|"]
    for row in report.parity:
        grads = ", ".join(f"{name} {_fmt(err)}" for name, err in row.grad_rel.items()) or "-"
        lines.append(f"| {row.op} | {row.shape} | {row.note or '-'} | {_fmt(row.forward_abs)} | {grads} | "
                     f"{'PASS' if row.passed else 'FAIL'} | {row.detail or '-'} |")
    lines += ["", "## Timing (median ms)", ""]
    lines += ["| what | " + " | ".join(BACKENDS) + " | numba-cuda / torch |", "|---|" + "---|" * (len(BACKENDS) + 1)]
    for what, ms in report.timing:
        ratio = ms["numba-cuda"] / ms["torch"] if ms.get("torch") else math.nan
        lines.append(f"| {what} | " + " | ".join(f"{ms[b]:.3f}" for b in BACKENDS) + f" | {ratio:.2f} |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def run_doctor(gpu: bool, out: Path | None, small: bool) -> int:
    """Parity and timing of numba-cuda against torch; prints the Markdown report (and writes it to ``out``).

    Without ``gpu`` the kernels run in Numba's CUDA simulator and ``small`` is forced on. Returns 0 when all parity
    rows pass, 1 otherwise.
    """
    from suite.ops.registry import get_ops
    from suite.registry import variants

    candidate = _numba_backend(gpu)
    reference = get_ops("torch")
    small = small or not gpu
    sizes, tol = (SMALL_SIZES, SMALL_TOLERANCE) if small else (PAPER_SIZES, PAPER_TOLERANCE)
    device = torch.device("cuda" if gpu else "cpu")
    mode = ("GPU" if gpu else "Numba CUDA simulator on CPU") + (", small sizes" if small else ", paper sizes")
    report = Report(mode, sizes, _environment(gpu))
    warmup, reps = (2, 5) if gpu else (0, 1)

    cases = op_cases(sizes, device)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        for case in cases:
            report.parity.append(compare_case(case, reference, candidate, tol))
            _progress(f"parity {case.op} {case.shape} {case.note}: {'PASS' if report.parity[-1].passed else 'FAIL'}")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32

    for label, case in _timing_cases(cases):
        ms = {b: time_ms(_op_timer(get_ops(b), case), device, warmup, reps) for b in BACKENDS}
        report.timing.append((label, ms))
        _progress(f"timed {label}")
    for name, found in variants().items():
        if found.builder is not None:  # a plug-in's own model: not the DelayNetwork these ops were checked for
            report.notes.append(f"variant {name!r} has its own builder and was not timed")
            continue
        ms = {b: time_ms(_train_step(name, dict(found.defaults), sizes, b, device, seed=0), device, warmup, reps)
              for b in BACKENDS}
        report.timing.append((f"training step, variant {name} (batch {sizes.batch}, Adam)", ms))
        _progress(f"timed training step {name}")

    report.notes.append(f"tolerances: forward max abs <= {tol.forward_abs:g} x max(1, max |torch|); gradients max "
                        f"|diff| / max |torch| <= {tol.grad_rel:g}")
    report.notes.append("parity runs with TF32 off on both backends; timings use torch's defaults")
    if gpu:
        report.notes.append(f"timings: {warmup} warm-up calls (Numba compiles on the first), median of {reps}, "
                            f"torch.cuda.synchronize() around each call")
    else:
        report.notes.append("simulator mode: timings measure Python threads emulating the GPU and say nothing about "
                            "GPU speed; the parity rows check the kernels' logic only")
    text = render(report)
    print(text)
    if out is not None:
        atomic_write_text(out, text)
        print(f"report written to {out}")
    return 0 if report.passed else 1


def _progress(message: str) -> None:
    print(f"[doctor] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------- CLI
def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", action="store_true", help="run on the CUDA GPU at the paper's sizes")
    parser.add_argument("--small", action="store_true", help="tiny sizes on the GPU too (a quick check)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the report to FILE")
    parser.set_defaults(func=doctor_command)


_DESCRIPTION = ("Parity of every numba-cuda op (forward and gradients) against the torch backend, plus a short timing "
                "table, as a Markdown report. Without --gpu the kernels run in Numba's CPU simulator at tiny sizes.")


def add_doctor_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``doctor`` on an argparse sub-parser set; the handler is ``args.func(args) -> int``."""
    parser = subparsers.add_parser(
        "doctor", help="check the numba-cuda backend against torch: parity of every op, and timings",
        description=_DESCRIPTION)
    _add_arguments(parser)
    return parser


def doctor_command(args: argparse.Namespace) -> int:
    return run_doctor(gpu=args.gpu, out=args.out, small=args.small)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m suite.doctor``: the same command without the suite's CLI."""
    parser = argparse.ArgumentParser(prog="python -m suite.doctor", description=_DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
