"""The protocol runner: fit with the protocol's optimisation (suite/training.py), select on validation with a
hard-delay copy, score test once on the selected checkpoint, measure, and write one run record (docs/protocol-facts.md
'Optimisation', hazards 1-3).

Resumable: a checkpoint is written atomically after every epoch (model, optimisers, schedulers, RNG state, history),
and a rerun of the same RunSpec continues from it, so an interrupted run ends with the same metrics as an
uninterrupted one.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import random
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from suite import metrics as suite_metrics
from suite.data import Batch, build_datasets, make_loader
from suite.environment import record_environment
from suite.errors import SuiteError
from suite.identity import check_resume, protocol_block, resolve_run, run_identity
from suite.models.network import summed_softmax, summed_softmax_loss
from suite.records import (
    CHECKPOINTS_DIR,
    SCHEMA,
    SCHEMA_VERSION,
    Record,
    atomic_write_bytes,
    record_path,
    write_record,
)
from suite.registry import create_model, get_protocol, resolve_model_spec
from suite.runtime import configure_cpu_process, resolve_device
from suite.specs import ProtocolSpec, RunSpec
from suite.training import build_optimisation, train_step
from suite.usercache import data_cache_dir


class Progress:
    """Callbacks the runner calls while it works; the CLI renders them with rich, tests use them to interrupt."""

    def run_started(self, spec: RunSpec, epochs: int, batches: int, start_epoch: int) -> None: ...

    def batch_done(self, epoch: int, batch: int, loss: float) -> None: ...

    def epoch_done(self, epoch: int, row: dict[str, Any]) -> None: ...

    def run_done(self, record: Record) -> None: ...


@dataclass(frozen=True)
class EvalResult:
    """Scores of one pass over a split: per-sample accuracy (what we report) and the official per-batch mean."""

    loss: float
    accuracy: float
    batch_mean_accuracy: float
    samples: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(loader: Iterable[Batch], device: torch.device) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    for batch in loader:
        yield batch.x.to(device, non_blocking=True), batch.labels.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Batch], device: torch.device) -> EvalResult:
    """Score ``model`` (already a hard-delay eval copy) on a split."""
    correct = total = 0
    loss_sum = 0.0
    batch_accs: list[float] = []
    for x, labels in _batches(loader, device):
        output = model(x)
        loss_sum += float(summed_softmax_loss(output, labels)) * labels.numel()
        hits = int((summed_softmax(output).argmax(1) == labels).sum())
        correct += hits
        total += labels.numel()
        batch_accs.append(hits / labels.numel())
    if total == 0:
        raise SuiteError("evaluation split is empty")
    return EvalResult(loss_sum / total, correct / total, float(np.mean(batch_accs)), total)


def _sig(model: nn.Module) -> float | None:
    delays = model.delay_modules()
    return float(delays[-1].sig) if delays else None


CHECKPOINT_KEYS = frozenset({"epoch", "model", "optimisers", "schedulers", "history", "best", "train_seconds", "rng"})


def _checkpoint_path(out_dir: Path, spec: RunSpec) -> Path:
    return out_dir / CHECKPOINTS_DIR / f"{spec.run_id}.pt"


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The resume state at ``path``, loaded with ``weights_only=True``: tensors and plain data only, so a checkpoint
    planted in a shared results folder cannot run code (docs/security.md)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        needs = re.search(r"GLOBAL ([\w.]{1,200}) was not an allowed global", str(err))
        if needs is None:  # not a refused type: a torn or foreign file
            raise SuiteError(f"{path}: unreadable checkpoint (UnpicklingError); delete it to restart the run") from None
        raise SuiteError(f"{path}: checkpoint refused: it needs {needs.group(1)}, not only tensors and plain data "
                         "(nothing in it was run); delete it to restart the run") from None
    except Exception as err:  # a torn or foreign file: say which, do not guess
        raise SuiteError(f"{path}: unreadable checkpoint ({type(err).__name__}); delete it to restart the run"
                         ) from None
    if not isinstance(state, dict) or CHECKPOINT_KEYS - set(state):
        raise SuiteError(f"{path}: not a checkpoint of this suite (expected keys {sorted(CHECKPOINT_KEYS)}); "
                         "delete it to restart the run")
    return state


def run_training(
    spec: RunSpec,
    out_dir: Path,
    data_root: Path | None = None,
    cache_dir: Path | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
    protocol: ProtocolSpec | None = None,
    resume: bool = True,
) -> Record:
    """Train and score one RunSpec; returns the record (also written under ``out_dir/records``).

    The spec is first resolved against ``protocol`` and the data (:func:`suite.identity.resolve_run`), so its run id,
    checkpoint and record name what really runs.
    ``resume=False`` starts from epoch 0 even when a checkpoint exists; the old checkpoint stays until this run saves
    its first epoch over it.
    """
    progress = progress or Progress()
    protocol = protocol or get_protocol(spec.protocol)
    spec = resolve_run(spec, protocol, data_root)
    identity = run_identity(spec, data_root)
    optim = dict(protocol.optim)
    epochs, batch_size = int(optim["epochs"]), int(optim["batch_size"])
    dev = resolve_device(device, "run --device")
    cache_dir = data_cache_dir(cache_dir)
    resolve_model_spec(spec.variant, protocol, dict(spec.overrides))  # a bad value fails before the data are built

    datasets = build_datasets(dict(protocol.data), data_root, cache_dir)
    configure_cpu_process()
    seed_everything(spec.seed)
    model, model_spec = create_model(spec.variant, protocol, spec.backend, dict(spec.overrides))
    model.to(dev)
    optimisation = build_optimisation(model, optim, f"protocol {protocol.name}, variant {spec.variant}")

    ckpt_path = _checkpoint_path(out_dir, spec)
    state = _load_checkpoint(ckpt_path) if resume else None
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"valid_acc": -1.0, "epoch": -1, "state": None, "test_acc": None}
    start_epoch, train_seconds = 0, 0.0
    if state is not None:
        try:
            note = check_resume(ckpt_path, state.get("identity"), identity)
            if note:
                print(f"{spec.label}: {note}", file=sys.stderr)
                identity["resumed_from_torch_threads"] = state["identity"]["torch_threads"]
            model.load_state_dict(state["model"])
            optimisation.load_state_dict(state)
            history, best, train_seconds = state["history"], state["best"], state["train_seconds"]
            start_epoch = state["epoch"]
            torch.set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise SuiteError(f"{ckpt_path}: checkpoint does not fit this run ({type(err).__name__}); delete it to "
                             "restart the run") from None

    train_set = datasets["train"]
    n_batches = math.ceil(len(train_set) / batch_size)
    progress.run_started(spec, epochs, n_batches, start_epoch)
    valid_loader = make_loader(datasets["valid"], batch_size, shuffle=False, seed=0)
    test_loader = make_loader(datasets["test"], batch_size, shuffle=False, seed=0)

    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        loader = make_loader(train_set, batch_size, shuffle=True, seed=spec.seed * 100_003 + epoch)
        for i, (x, labels) in enumerate(_batches(loader, dev)):
            loss, output = train_step(model, optimisation, x, labels)
            batch_loss = float(loss)
            loss_sum += batch_loss * labels.numel()
            correct += int((summed_softmax(output).argmax(1) == labels).sum())
            seen += labels.numel()
            progress.batch_done(epoch, i, batch_loss)
        lrs = optimisation.learning_rates()
        optimisation.end_epoch()
        model.end_epoch(epoch, epochs)
        train_seconds += time.perf_counter() - t0

        hard = model.hard_copy()
        valid = evaluate(hard, valid_loader, dev)
        row: dict[str, Any] = {
            "epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen, "valid_loss": valid.loss,
            "valid_acc": valid.accuracy, "valid_batch_mean_acc": valid.batch_mean_accuracy, "lr_w": lrs.get("weights"),
            "lr_pos": lrs.get("positions"), "sig": _sig(model), "epoch_seconds": time.perf_counter() - t0,
        }
        if spec.official_metric:
            row["test_batch_mean_acc"] = evaluate(hard, test_loader, dev).batch_mean_accuracy
        if valid.accuracy > best["valid_acc"]:
            best = {"valid_acc": valid.accuracy, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        history.append(row)
        _save_checkpoint(ckpt_path, {
            "epoch": epoch + 1, "model": model.state_dict(), **optimisation.state_dict(), "history": history,
            "best": best, "train_seconds": train_seconds, "rng": torch.get_rng_state(), "identity": identity,
        })
        progress.epoch_done(epoch, row)

    last_test = evaluate(model.hard_copy(), test_loader, dev)
    final_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best["state"])
    selected = model.hard_copy()
    best_test = evaluate(selected, test_loader, dev)
    model.load_state_dict(final_state)

    metrics: dict[str, Any] = {
        "test_acc_at_best_valid": best_test.accuracy,
        "test_acc_last_epoch": last_test.accuracy,
        "best_valid_acc": best["valid_acc"],
        "best_epoch": best["epoch"],
        "test_loss_at_best_valid": best_test.loss,
        "train_seconds": train_seconds,
        "epochs": epochs,
    }
    if spec.official_metric:
        metrics["official_best_test_acc"] = official_best_test(history)
    sample = next(iter(test_loader))
    metrics.update(suite_metrics.static_metrics(selected))
    measure = protocol.measure
    metrics.update(suite_metrics.runtime_metrics(
        selected, sample.x.to(dev), sample.lengths, dev, labels=sample.labels,
        measure_training=measure["training_latency"], measure_memory=measure["memory"], warmup=measure["warmup"],
        repeats=measure["repeats"], optim=optim))

    models_dir = out_dir / "models"
    buffer = io.BytesIO()
    torch.save(best["state"], buffer)
    atomic_write_bytes(models_dir / f"{spec.run_id}.pt", buffer.getvalue())
    record = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "spec": spec.to_dict(),
        "label": spec.label,
        "protocol": protocol_block(protocol),
        "model_spec": _jsonable(model_spec.__dict__), "environment": record_environment(device),
        "identity": identity,
        "history": history, "metrics": metrics, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    written = write_record(record_path(out_dir, spec.protocol, spec.variant, spec.seed, spec.run_id), record)
    ckpt_path.unlink(missing_ok=True)
    progress.run_done(written)
    return written


def official_best_test(history: list[dict[str, Any]]) -> float:
    """The official code's reported number, ``best_acc_test`` at the last epoch (hazards 1 and 2).

    Official train.py @a75ae78: the best epoch is the first with a strictly higher per-batch-mean validation accuracy
    than every earlier one, starting from 0 (lines 274, 473-483: ``if metric_valid > best_metric_val``, which stores
    ``best_metric_test = metric_test``); the logged value is ``max(metric_epochs['test'][-1], best_metric_test)``
    (line 534). Every accuracy there is the mean of per-batch accuracies (``calc_metric``, ``np.mean`` in
    ``eval_model``), over unshuffled batches of the protocol's batch size, as our ``*_batch_mean_acc`` columns.
    """
    best_valid, test_at_best = 0.0, 0.0
    for row in history:
        if row["valid_batch_mean_acc"] > best_valid:
            best_valid, test_at_best = row["valid_batch_mean_acc"], row["test_batch_mean_acc"]
    return max(history[-1]["test_batch_mean_acc"], test_at_best)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

