"""The optimisation set-up read from the protocol (optim.groups) and the one training step (suite/training.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from records_schema import validate_against_schema

import suite.train
from suite.cli import main
from suite.errors import SuiteError
from suite.identity import resolve_run
from suite.models.network import DelayNetwork
from suite.registry import create_model, get_protocol, protocol_names
from suite.specs import ModelSpec, RunSpec, content_hash
from suite.train import run_training
from suite.training import Optimisation, build_optimisation, legacy_optim, make_train_step, train_step

#: The official set-up of each built-in protocol, read from the sources docs/protocols.md cites (OneCycleLR peak of
#: the weights' Adam, the positions' Adam learning rate, the weights' L2 decay).
OFFICIAL = {"gsc": (5e-3, 0.1, 1e-5), "ssc": (5e-3, 0.1, 1e-5), "gsc-sparsity": (5e-3, 0.1, 1e-5),
            "ssc-sparsity": (5e-3, 0.1, 1e-5), "gsc-mini": (5e-3, 0.1, 1e-5), "ssc-mini": (5e-3, 0.1, 1e-5),
            "shd": (2e-3, 0.15, 1e-5), "shd-dcls": (2e-3, 0.15, 1e-5)}


def official_optimisation(model: torch.nn.Module, max_lr_w: float, lr_pos: float, weight_decay: float,
                          epochs: int) -> Optimisation:
    """The official structure written out (train.py @a75ae78 lines 73-117): ONE Adam for weights (L2) and BatchNorm
    (no decay) under one OneCycleLR, one Adam for positions under CosineAnnealingLR (fused, as the suite runs Adam)."""
    groups = model.param_groups()
    opt_w = torch.optim.Adam([{"params": groups["weights"], "weight_decay": weight_decay},
                              {"params": groups["norm"], "weight_decay": 0.0}], fused=True)
    optimisers = {"w": opt_w}
    schedulers = {"w": torch.optim.lr_scheduler.OneCycleLR(opt_w, max_lr=max_lr_w, total_steps=epochs)}
    members = {"w": ("weights", "norm")}
    if groups["positions"]:
        opt_pos = torch.optim.Adam(groups["positions"], lr=lr_pos, weight_decay=0.0, fused=True)
        optimisers["p"] = opt_pos
        schedulers["p"] = torch.optim.lr_scheduler.CosineAnnealingLR(opt_pos, T_max=epochs)
        members["p"] = ("positions",)
    return Optimisation(optimisers, schedulers, members)


def _train(model: torch.nn.Module, optimisation: Optimisation, epochs: int) -> tuple[list[float], list[dict]]:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(10, 4, model.spec.n_inputs, generator=gen) * 2
    labels = torch.randint(0, model.spec.n_outputs, (4,), generator=gen)
    losses, lrs = [], []
    model.train()
    for epoch in range(epochs):
        for _ in range(2):
            losses.append(float(train_step(model, optimisation, x, labels)[0]))
        lrs.append(optimisation.learning_rates())
        optimisation.end_epoch()
        model.end_epoch(epoch, epochs)
    return losses, lrs


@pytest.mark.parametrize("name", sorted(OFFICIAL))
@pytest.mark.parametrize("variant", ["axonal", "synaptic"])
def test_every_protocol_states_the_official_setup_bit_for_bit(name: str, variant: str) -> None:
    """One optimiser per group from the protocol file trains exactly as the official two optimisers: same losses,
    learning rates and parameters to the bit over 3 epochs (a small network: the set-up is what is compared)."""
    assert set(protocol_names()) >= set(OFFICIAL)
    protocol = get_protocol(name)
    optim = protocol.with_overrides({"epochs": 3}).optim
    spec = ModelSpec(variant=variant, delay_type=variant, n_inputs=6, n_hidden=(5,), n_outputs=3, kernel_size=5)
    results = []
    for build in (lambda m: build_optimisation(m, optim), lambda m: official_optimisation(m, *OFFICIAL[name], 3)):
        torch.manual_seed(0)
        model = DelayNetwork(spec)
        losses, lrs = _train(model, build(model), 3)
        results.append((losses, [(r["weights"], r["positions"]) for r in lrs], model.state_dict()))
    (loss_a, lr_a, state_a), (loss_b, lr_b, state_b) = results
    assert loss_a == loss_b and lr_a == lr_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_b)
    assert lr_a[0][1] == OFFICIAL[name][1]


def test_a_run_trains_bit_for_bit_as_with_the_official_optimisers(tiny_protocol_path: Path, data_cache: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner with the protocol's groups and the runner with the official two optimisers swapped in: equal
    history (losses, accuracies, learning rates), metrics and selected weights for a 1-epoch tiny run."""
    protocol = get_protocol(str(tiny_protocol_path)).with_overrides({"epochs": 1})
    spec = resolve_run(RunSpec("synaptic", "tiny", seed=2), protocol, None)

    def run(out: Path) -> tuple[Any, Any, dict[str, torch.Tensor]]:
        record = run_training(spec, out, cache_dir=data_cache, protocol=protocol)
        history = [{k: v for k, v in row.items() if "seconds" not in k} for row in record["history"]]
        metrics = {k: v for k, v in record["metrics"].items() if not any(t in k for t in ("seconds", "latency"))}
        return history, metrics, torch.load(out / "models" / f"{spec.run_id}.pt", weights_only=True)

    ours = run(tmp_path / "ours")
    monkeypatch.setattr(suite.train, "build_optimisation",
                        lambda model, optim, where: official_optimisation(model, 5e-3, 0.1, 1e-5, optim["epochs"]))
    official = run(tmp_path / "official")
    assert ours[0] == official[0] and ours[1] == official[1]
    assert ours[0][0]["lr_w"] == pytest.approx(5e-3 / 25 / 1e4) and ours[0][0]["lr_pos"] == 0.1
    assert all(torch.equal(ours[2][k], official[2][k]) for k in official[2])


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_each_optimiser_and_scheduler_is_what_the_group_names() -> None:
    protocol = get_protocol("gsc-mini").with_overrides({"epochs": 4, "optim.groups": {
        "weights": {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
                    "scheduler": "cosine", "t_max": 2, "eta_min": 0.01},
        "norm": {"optimizer": "adamw", "lr": 0.02, "weight_decay": 0.05, "scheduler": "constant"},
        "positions": {"optimizer": "adam", "scheduler": "one_cycle", "max_lr": 1.0, "div_factor": 10}}})
    model, _ = create_model("axonal", protocol)
    opt = build_optimisation(model, protocol.optim)
    kinds = {name: type(o) for name, o in opt.optimisers.items()}
    assert kinds == {"weights": torch.optim.SGD, "norm": torch.optim.AdamW, "positions": torch.optim.Adam}
    sgd = opt.optimisers["weights"].param_groups[0]
    assert (sgd["momentum"], sgd["nesterov"], sgd["weight_decay"], sgd["fused"]) == (0.9, True, 1e-4, True)
    assert opt.optimisers["norm"].param_groups[0]["weight_decay"] == 0.05
    rates = []
    for _ in range(3):
        rates.append(opt.learning_rates())
        opt.end_epoch()
    assert [r["weights"] for r in rates] == pytest.approx([0.5, 0.255, 0.01])  # cosine over t_max = 2 to eta_min
    assert [r["norm"] for r in rates] == [0.02] * 3
    assert rates[0]["positions"] == pytest.approx(0.1)  # one_cycle starts at max_lr / div_factor
    assert opt.optimisers["positions"].param_groups[0]["betas"][0] == pytest.approx(0.95)  # cycled momentum


def test_groups_with_one_schedule_share_an_optimiser_as_in_the_official_code() -> None:
    """weights and norm: one Adam (two parameter groups, L2 1e-5 and 0) under one OneCycleLR, as official train.py;
    a group whose schedule differs gets its own."""
    model, _ = create_model("axonal", get_protocol("gsc"))
    paper = build_optimisation(model, get_protocol("gsc").optim)
    assert paper.members == {"weights+norm": ("weights", "norm"), "positions": ("positions",)}
    assert [g["weight_decay"] for g in paper.optimisers["weights+norm"].param_groups] == [1e-5, 0.0]
    assert len(paper.schedulers) == 2
    split = build_optimisation(model, get_protocol("gsc").with_overrides({"groups.norm.max_lr": 1e-3}).optim)
    assert split.members == {"weights": ("weights",), "norm": ("norm",), "positions": ("positions",)}
    rates = split.learning_rates()
    assert (rates["weights"], rates["norm"]) == (pytest.approx(5e-3 / 25), pytest.approx(1e-3 / 25))


def _protocol_file(tmp_path: Path, optim: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\nversion: 1\ndata: {{kind: ssc, synthetic: {{n_classes: 3}}}}\nmodel: {{}}\n"
                    f"optim: {optim}\n")
    return path


@pytest.mark.parametrize(("optim", "needle"), [
    ("{max_lr_w: 0.005}", "optim.max_lr_w: moved: set optim.groups.weights.max_lr and optim.groups.norm.max_lr"),
    ("{lr_pos: 0.1}", "optim.lr_pos: moved: set optim.groups.positions.lr"),
    ("{groups: {}}", "optim.groups: expected a mapping from parameter-group names"),
    ("{groups: {weights: {optimizer: rmsprop, lr: 0.1, scheduler: constant}}}",
     "optim.groups.weights.optimizer: 'rmsprop' is not one of adam, adamw, sgd"),
    ("{groups: {weights: {optimizer: adam, lr: 0.1, scheduler: step}}}",
     "optim.groups.weights.scheduler: 'step' is not one of constant, cosine, one_cycle"),
    ("{groups: {weights: {optimizer: adam, lr: 0.1}}}", "optim.groups.weights: missing key 'scheduler'"),
    ("{groups: {weights: {optimizer: adam, scheduler: cosine}}}", "optim.groups.weights: missing key 'lr'"),
    ("{groups: {weights: {optimizer: adam, scheduler: one_cycle}}}", "optim.groups.weights: missing key 'max_lr'"),
    ("{groups: {weights: {optimizer: adam, lr: 0.001, scheduler: one_cycle, max_lr: 0.005}}}",
     "optim.groups.weights.lr: has no effect: scheduler one_cycle sets the learning rate"),
    ("{groups: {weights: {optimizer: adam, lr: 0.1, scheduler: constant, momentum: 0.9}}}",
     "optim.groups.weights: unknown keys ['momentum'] for optimizer adam with scheduler constant"),
    ("{groups: {weights: {optimizer: adam, lr: 0.1, scheduler: constant, betas: [0.9]}}}",
     "optim.groups.weights.betas: must be a list of two numbers in [0, 1)"),
    ("{groups: {weights: {optimizer: sgd, lr: 0.1, scheduler: constant, nesterov: true}}}",
     "optim.groups.weights.nesterov: needs momentum > 0"),
    ("{groups: {weights: {optimizer: adam, lr: 0.1, scheduler: cosine, t_max: 0}}}",
     "optim.groups.weights.t_max: must be an integer in 1..10000, got 0"),
    ("{groups: {weights: {optimizer: adam, scheduler: one_cycle, max_lr: 0.1, pct_start: 1}}}",
     "optim.groups.weights.pct_start: must be below 1"),
    ("{groups: {weights: {optimizer: adam, scheduler: one_cycle, max_lr: 0.1, anneal_strategy: exp}}}",
     "optim.groups.weights.anneal_strategy: 'exp' is not one of ('cos', 'linear')"),
    ("{groups: {weights: [adam]}}", "optim.groups.weights: expected a mapping"),
    ("{groups: {w.b: {optimizer: adam, lr: 0.1, scheduler: constant}}}",
     "optim.groups: group name 'w.b' must be a Python identifier"),
])
def test_bad_groups_are_one_line_errors_naming_file_and_key(tmp_path: Path, optim: str, needle: str) -> None:
    path = _protocol_file(tmp_path, optim)
    with pytest.raises(SuiteError) as err:
        get_protocol(str(path))
    assert str(path) in str(err.value) and needle in str(err.value) and "\n" not in str(err.value)


def test_a_file_without_groups_gets_the_paper_setup_and_floats_hash_alike(tmp_path: Path) -> None:
    default = get_protocol(str(_protocol_file(tmp_path, "{epochs: 100, batch_size: 128}")))
    assert default.optim == get_protocol("gsc").optim
    stated = get_protocol(str(_protocol_file(tmp_path, (
        "{groups: {weights: {optimizer: adam, lr: 1, scheduler: constant, weight_decay: 0}}}"))))
    as_floats = get_protocol(str(_protocol_file(tmp_path, (
        "{groups: {weights: {optimizer: adam, lr: 1.0, scheduler: constant, weight_decay: 0.0}}}"))))
    assert stated.protocol_hash == as_floats.protocol_hash


def test_set_reaches_group_keys_and_names_them_in_labels() -> None:
    base = get_protocol("gsc")
    changed = base.with_overrides({"groups.positions.scheduler": "constant", "optim.groups.norm.eps": 1e-6,
                                   "lr_pos": 0.3})
    positions = changed.optim["groups"]["positions"]
    assert positions["scheduler"] == "constant" and "t_max" not in positions and positions["lr"] == 0.3
    assert changed.protocol_hash != base.protocol_hash
    assert base.with_overrides({"groups.norm.eps": 1e-8}).protocol_hash == base.protocol_hash
    switched = base.with_overrides({"groups.weights.scheduler": "cosine", "groups.weights.lr": 1e-3})
    assert "max_lr" not in switched.optim["groups"]["weights"] and switched.optim["groups"]["weights"]["lr"] == 1e-3
    from suite.identity import comparability

    label, reason = comparability("gsc", json.loads(json.dumps(changed.content())))
    assert label == ("gsc, groups.norm.eps=1e-06, groups.positions.eta_min=unset, groups.positions.lr=0.3, "
                     "groups.positions.scheduler=constant, groups.positions.t_max=unset") and reason


@pytest.mark.parametrize(("override", "message"), [
    ("groups.positions.lr=-1", "--set groups.positions.lr: optim.groups.positions.lr: must be a finite number > 0.0"),
    ("optim.groups.recurrent.lr=0.1", "--set optim.groups.recurrent.lr: protocol tiny has no group 'recurrent'"),
    ("groups.weights.lr=0.1", "--set groups.weights.lr: optim.groups.weights.lr: has no effect: scheduler one_cycle"),
    ("groups.weights.scheduler=cosine", "--set groups.weights.scheduler: optim.groups.weights: missing key 'lr'"),
    ("groups.a.b.c=1", "--set groups.a.b.c: expected optim.groups.GROUP or optim.groups.GROUP.SETTING"),
    ("optim.groups=[1]", "--set optim.groups: expected a mapping of groups"),
    ("lr_w=0.001", "--set lr_w: unknown key; protocol keys: epochs, batch_size, groups.GROUP.SETTING, max_lr_w"),
    # the model has positions, the protocol now none: refused, never silently untrained
    ("optim.groups={weights: {optimizer: adam, lr: 0.1, scheduler: constant}, "
     "norm: {optimizer: adam, lr: 0.1, scheduler: constant}}",
     "protocol tiny, variant axonal: the model's parameter group 'positions' has no optimiser in optim.groups "
     "(weights, norm); add optim.groups.positions"),
])
def test_bad_group_overrides_exit_2_with_one_line(tiny_protocol_path: Path, data_cache: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture, override: str, message: str) -> None:
    argv = ["run", "--protocol", str(tiny_protocol_path), "--variant", "axonal", "--cache-dir", str(data_cache),
            "--out", str(tmp_path / "out"), "--set", override]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list((tmp_path / "out").glob("records/**/*.json"))


def test_a_group_the_model_lacks_or_leaves_empty_is_fine(tiny_protocol_path: Path, data_cache: Path,
                                                         tmp_path: Path) -> None:
    """No-delay networks have no positions: the protocol's positions group builds nothing; a protocol without one
    trains them."""
    no_positions = get_protocol(str(tiny_protocol_path)).with_overrides({"epochs": 1, "optim.groups": {
        "weights": {"optimizer": "adam", "lr": 0.01, "scheduler": "constant"},
        "norm": {"optimizer": "adam", "lr": 0.01, "scheduler": "constant"}}})
    record = run_training(RunSpec("no-delay", "tiny"), tmp_path, cache_dir=data_cache, protocol=no_positions)
    assert record["history"][0]["lr_w"] == 0.01 and record["history"][0]["lr_pos"] is None
    model, _ = create_model("no-delay", get_protocol("gsc-mini"))
    assert build_optimisation(model, get_protocol("gsc-mini").optim).members == {"weights+norm": ("weights", "norm")}


def test_make_train_step_uses_the_given_protocol_and_defaults_to_the_papers() -> None:
    spec = ModelSpec(variant="axonal", delay_type="axonal", n_inputs=6, n_hidden=(5,), n_outputs=3, kernel_size=5)
    x, labels = torch.rand(8, 2, 6), torch.tensor([0, 2])
    paper = make_train_step(DelayNetwork(spec), x, labels)
    assert [g["lr"] for o in paper.optimisers for g in o.param_groups] == pytest.approx([2e-4, 2e-4, 0.1])
    sgd = get_protocol("gsc").with_overrides({"optim.groups": {
        name: {"optimizer": "sgd", "lr": 0.05, "scheduler": "constant"} for name in ("weights", "norm", "positions")}})
    model = DelayNetwork(spec)
    before = model.layers[0].weight.detach().clone()
    step = make_train_step(model, x, labels, sgd.optim)
    assert all(isinstance(o, torch.optim.SGD) for o in step.optimisers)
    assert step() > 0.0
    grad = model.layers[0].weight.grad
    assert grad.abs().max() > 0 and torch.allclose(model.layers[0].weight, before - 0.05 * grad, atol=1e-7, rtol=0)


def test_records_of_the_flat_optim_section_read_as_the_same_setup(tiny_protocol_path: Path, data_cache: Path,
                                                                  tmp_path: Path) -> None:
    """Records written before optim.groups hold flat max_lr_w / lr_pos / weight_decay (and the no-op lr_w): they mean
    today's paper groups, validate against the schema, and verify compares them by hand as equal."""
    flat = {"epochs": 100, "batch_size": 128, "max_lr_w": 0.005, "lr_pos": 0.1, "weight_decay": 1e-05, "lr_w": 0.001}
    assert content_hash({"o": legacy_optim(flat)}) == content_hash({"o": get_protocol("gsc").optim})
    shd = legacy_optim({**flat, "epochs": 50, "max_lr_w": 0.002, "lr_pos": 0.15})
    assert content_hash({"o": shd}) == content_hash({"o": get_protocol("shd").optim})
    current = get_protocol("gsc").optim
    assert legacy_optim(current) is current
    protocol = get_protocol(str(tiny_protocol_path)).with_overrides({"epochs": 1})
    record = run_training(RunSpec("axonal", "tiny"), tmp_path, cache_dir=data_cache, protocol=protocol)
    groups = record["protocol"]["optim"].pop("groups")
    assert groups["positions"] == {"optimizer": "adam", "lr": 0.1, "weight_decay": 0.0, "betas": [0.9, 0.999],
                                   "eps": 1e-08, "scheduler": "cosine", "t_max": "epochs", "eta_min": 0.0}
    record["protocol"]["optim"].update(max_lr_w=0.005, lr_pos=0.1, weight_decay=1e-5)
    validate_against_schema(record)
    record["protocol"]["optim"].pop("lr_pos")
    with pytest.raises(Exception, match="is not valid under any of the given schemas"):
        validate_against_schema(record)


def test_a_run_with_its_own_groups_resumes_to_identical_metrics(tiny_protocol_path: Path, data_cache: Path,
                                                               tmp_path: Path) -> None:
    """Optimiser and scheduler state (SGD momentum buffers, cosine and constant schedules) is checkpointed per
    optimiser: an interrupted run ends exactly as an uninterrupted one."""
    from test_train import Interrupt, _stable

    protocol = get_protocol(str(tiny_protocol_path)).with_overrides({"epochs": 3, "optim.groups": {
        "weights": {"optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "scheduler": "cosine"},
        "norm": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.01, "scheduler": "constant"},
        "positions": {"optimizer": "adam", "scheduler": "one_cycle", "max_lr": 0.5}}})
    spec = resolve_run(RunSpec("axonal", "tiny", seed=3), protocol, None)
    whole = run_training(spec, tmp_path / "whole", cache_dir=data_cache, protocol=protocol)
    with pytest.raises(KeyboardInterrupt):
        run_training(spec, tmp_path / "cut", cache_dir=data_cache, protocol=protocol, progress=Interrupt(1, 0))
    resumed = run_training(spec, tmp_path / "cut", cache_dir=data_cache, protocol=protocol)
    assert _stable(resumed) == _stable(whole)
    assert [row["lr_w"] for row in whole["history"]] == pytest.approx([0.2, 0.15, 0.05])  # cosine, T_max = epochs
