"""The protocol's optimisation set-up and the one training step (docs/protocols.md 'Optimisation').

A protocol's ``optim.groups`` names, for every parameter group a model returns from ``param_groups()`` (built-in
networks: ``weights``, ``norm``, ``positions``; plug-ins may add their own), an optimiser with its learning rate and
weight decay and a per-epoch scheduler with its settings. This module checks that section (:func:`resolve_optim`,
which also fills the documented defaults so the protocol hash covers every number), applies ``--set`` overrides to it
(:func:`override_groups`), builds one optimiser and one scheduler per group (:func:`build_optimisation`) and runs the
training step (:func:`train_step`) that the runner, ``suite bench``, ``suite doctor``, the latency and memory
metrics and the asv benchmarks all time or use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from suite.errors import SuiteError
from suite.specs import MAX_EPOCHS, OPTIM_DEFAULTS, check_bool, check_int, check_real

REQUIRED = object()
"""Default of a setting that the protocol must state."""


@dataclass(frozen=True)
class Setting:
    """One key of a group: its default (or REQUIRED) and a check that returns the normalised value (floats as float,
    so ``25`` and ``25.0`` hash alike) or raises SuiteError naming ``where``."""

    default: Any
    check: Callable[[Any, str], Any]


def _positive(value: Any, where: str) -> float:
    check_real(value, where, 0.0)
    return float(value)


def _non_negative(value: Any, where: str) -> float:
    check_real(value, where, 0.0, strict=False)
    return float(value)


def _fraction(value: Any, where: str) -> float:
    """A number in [0, 1)."""
    check_real(value, where, 0.0, strict=False)
    if value >= 1.0:
        raise SuiteError(f"{where}: must be below 1, got {value!r}")
    return float(value)


def _open_fraction(value: Any, where: str) -> float:
    """A number in (0, 1)."""
    check_real(value, where, 0.0, high=1.0)
    if value == 1.0:
        raise SuiteError(f"{where}: must be below 1, got {value!r}")
    return float(value)


def _flag(value: Any, where: str) -> bool:
    check_bool(value, where)
    return value


def _betas(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SuiteError(f"{where}: must be a list of two numbers in [0, 1), got {value!r}")
    return _fraction(value[0], f"{where}[0]"), _fraction(value[1], f"{where}[1]")


def _t_max(value: Any, where: str) -> int | str:
    """Steps of the cosine half-period: ``epochs`` (the protocol's epochs, the official ``t_max = epochs``) or an
    integer; the string follows ``--set epochs=N``, a number does not."""
    if value == "epochs":
        return value
    check_int(value, where, 1, MAX_EPOCHS)
    return value


def _anneal(value: Any, where: str) -> str:
    if value not in ("cos", "linear"):
        raise SuiteError(f"{where}: {value!r} is not one of ('cos', 'linear')")
    return value


#: Keys every group has, whatever its optimiser and scheduler.
COMMON_SETTINGS: dict[str, Setting] = {"lr": Setting(REQUIRED, _positive), "weight_decay": Setting(0.0, _non_negative)}


@dataclass(frozen=True)
class OptimiserKind:
    """An optimiser a protocol can name: its own settings (beyond lr and weight_decay) and its torch class, always
    built with ``fused=True``: one kernel per parameter group instead of ~14 list-wide ops, the same algorithm (on the
    paper's axonal GSC network, 2 threads, the optimiser steps took 0.78 ms instead of 2.24 ms)."""

    settings: dict[str, Setting]
    build: Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class SchedulerKind:
    """A per-epoch learning-rate schedule: its settings, whether it sets the learning rate itself (then the group has
    no ``lr``), and a builder taking (optimiser, resolved group, epochs)."""

    settings: dict[str, Setting]
    build: Callable[[torch.optim.Optimizer, Mapping[str, Any], int], Any]
    sets_lr: bool = False


_ADAM_SETTINGS = {"betas": Setting((0.9, 0.999), _betas), "eps": Setting(1e-8, _positive)}

OPTIMISERS: dict[str, OptimiserKind] = {
    "adam": OptimiserKind(_ADAM_SETTINGS, torch.optim.Adam),  # coupled L2 decay, as the official code
    "adamw": OptimiserKind(_ADAM_SETTINGS, torch.optim.AdamW),  # decoupled decay
    "sgd": OptimiserKind({"momentum": Setting(0.0, _fraction), "nesterov": Setting(False, _flag)}, torch.optim.SGD),
}

SCHEDULERS: dict[str, SchedulerKind] = {
    "constant": SchedulerKind({}, lambda opt, g, epochs: torch.optim.lr_scheduler.ConstantLR(opt, 1.0, 0)),
    "cosine": SchedulerKind(
        {"t_max": Setting("epochs", _t_max), "eta_min": Setting(0.0, _non_negative)},
        lambda opt, g, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=epochs if g["t_max"] == "epochs" else g["t_max"], eta_min=g["eta_min"])),
    "one_cycle": SchedulerKind(
        {"max_lr": Setting(REQUIRED, _positive), "pct_start": Setting(0.3, _open_fraction),
         "div_factor": Setting(25.0, _positive), "final_div_factor": Setting(1e4, _positive),
         "anneal_strategy": Setting("cos", _anneal), "cycle_momentum": Setting(True, _flag),
         "base_momentum": Setting(0.85, _fraction), "max_momentum": Setting(0.95, _fraction),
         "three_phase": Setting(False, _flag)},
        lambda opt, g, epochs: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=g["max_lr"], total_steps=epochs, pct_start=g["pct_start"], anneal_strategy=g["anneal_strategy"],
            cycle_momentum=g["cycle_momentum"], base_momentum=g["base_momentum"], max_momentum=g["max_momentum"],
            div_factor=g["div_factor"], final_div_factor=g["final_div_factor"], three_phase=g["three_phase"]),
        sets_lr=True),
}

#: The paper's set-up (official train.py @a75ae78 lines 73-117, configs/GSC.yaml lines 134-148, utils.py lines
#: 198-220): weights Adam with L2 1e-5 and BatchNorm without, both under OneCycleLR(max_lr 5e-3, per epoch);
#: positions Adam at lr 0.1 under CosineAnnealingLR(T_max = epochs). A protocol without ``groups`` gets this.
PAPER_GROUPS: dict[str, dict[str, Any]] = {
    "weights": {"optimizer": "adam", "weight_decay": 1e-5, "scheduler": "one_cycle", "max_lr": 5e-3},
    "norm": {"optimizer": "adam", "weight_decay": 0.0, "scheduler": "one_cycle", "max_lr": 5e-3},
    "positions": {"optimizer": "adam", "lr": 0.1, "weight_decay": 0.0, "scheduler": "cosine", "t_max": "epochs"},
}

#: Flat keys of the former optim section: refused in protocol files with where the setting lives now.
MOVED_KEYS = {
    "lr_w": "has no effect: OneCycleLR sets the weights' learning rate (it starts at max_lr / div_factor and peaks at "
            "max_lr); set optim.groups.weights.max_lr and optim.groups.norm.max_lr",
    "max_lr_w": "moved: set optim.groups.weights.max_lr and optim.groups.norm.max_lr (OneCycleLR's peak)",
    "lr_pos": "moved: set optim.groups.positions.lr",
    "weight_decay": "moved: set optim.groups.weights.weight_decay (every group has its own)",
}

#: ``--set`` shorthands with the official config's names (max_lr_w, lr_pos, weight_decay) -> the group keys they set.
SHORTHANDS: dict[str, tuple[tuple[str, str], ...]] = {
    "max_lr_w": (("weights", "max_lr"), ("norm", "max_lr")),
    "lr_pos": (("positions", "lr"),),
    "weight_decay": (("weights", "weight_decay"),),
}


def group_settings(optimizer: str, scheduler: str) -> dict[str, Setting]:
    """Every key a group with this optimiser and scheduler may have, with defaults (``lr`` gone if the scheduler
    sets it)."""
    settings = {**COMMON_SETTINGS, **OPTIMISERS[optimizer].settings, **SCHEDULERS[scheduler].settings}
    if SCHEDULERS[scheduler].sets_lr:
        del settings["lr"]
    return settings


def resolve_group(group: Any, where: str) -> dict[str, Any]:
    """A group's mapping checked and completed with its defaults; errors name ``where`` and the key."""
    if not isinstance(group, Mapping):
        raise SuiteError(f"{where}: expected a mapping (optimizer, lr, weight_decay, scheduler, ...), got {group!r}")
    names = {}
    for key, known in (("optimizer", OPTIMISERS), ("scheduler", SCHEDULERS)):
        if key not in group:
            raise SuiteError(f"{where}: missing key {key!r} (one of {', '.join(known)})")
        if not isinstance(group[key], str) or group[key] not in known:
            raise SuiteError(f"{where}.{key}: {group[key]!r} is not one of {', '.join(known)}")
        names[key] = group[key]
    if "lr" in group and SCHEDULERS[names["scheduler"]].sets_lr:
        raise SuiteError(f"{where}.lr: has no effect: scheduler {names['scheduler']} sets the learning rate (it "
                         "starts at max_lr / div_factor); remove lr and set max_lr")
    settings = group_settings(names["optimizer"], names["scheduler"])
    unknown = sorted(set(group) - set(settings) - set(names))
    if unknown:
        raise SuiteError(f"{where}: unknown keys {unknown} for optimizer {names['optimizer']} with scheduler "
                         f"{names['scheduler']}; known: {sorted(settings)}")
    resolved: dict[str, Any] = dict(names)
    for key, setting in settings.items():
        if key not in group and setting.default is REQUIRED:
            raise SuiteError(f"{where}: missing key {key!r} (required by {names['scheduler']}"
                             f"{'' if key == 'max_lr' else ' and ' + names['optimizer']})")
        resolved[key] = setting.check(group.get(key, setting.default), f"{where}.{key}")
    if resolved.get("nesterov") and resolved["momentum"] == 0.0:
        raise SuiteError(f"{where}.nesterov: needs momentum > 0")
    return resolved


def resolve_optim(optim: Any, where: str) -> dict[str, Any]:
    """A protocol's ``optim`` section checked and completed: epochs, batch_size and every group's full settings."""
    if not isinstance(optim, Mapping):
        raise SuiteError(f"{where}: expected a mapping, got {type(optim).__name__}")
    for key, reason in MOVED_KEYS.items():
        if key in optim:
            raise SuiteError(f"{where}.{key}: {reason}")
    known = {*OPTIM_DEFAULTS, "groups"}
    unknown = sorted(set(optim) - known)
    if unknown:
        raise SuiteError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    values = {**OPTIM_DEFAULTS, "groups": PAPER_GROUPS, **optim}
    check_int(values["epochs"], f"{where}.epochs", 1, MAX_EPOCHS)
    check_int(values["batch_size"], f"{where}.batch_size", 1)
    groups = values["groups"]
    if not isinstance(groups, Mapping) or not groups:
        raise SuiteError(f"{where}.groups: expected a mapping from parameter-group names to their optimiser, "
                         f"got {groups!r}")
    for name in groups:  # names are --set path parts (groups.NAME.KEY) and join into optimiser keys (weights+norm)
        if not isinstance(name, str) or not name.isidentifier():
            raise SuiteError(f"{where}.groups: group name {name!r} must be a Python identifier (letters, digits, _)")
    return {**values, "groups": {name: resolve_group(group, f"{where}.groups.{name}")
                                 for name, group in groups.items()}}


def legacy_optim(optim: Mapping[str, Any]) -> Mapping[str, Any]:
    """An ``optim`` section of a record written before ``groups`` (flat ``max_lr_w``, ``lr_pos``, ``weight_decay``;
    ``lr_w`` had no effect) in today's form: the same paper set-up, which trains bit for bit alike. Others as given."""
    if "groups" in optim or not {"max_lr_w", "lr_pos", "weight_decay"} & set(optim):
        return optim
    flat = {"max_lr_w": 5e-3, "lr_pos": 0.1, "weight_decay": 1e-5, **optim}  # the former defaults
    groups = {name: dict(group) for name, group in PAPER_GROUPS.items()}
    groups["weights"].update(max_lr=flat["max_lr_w"], weight_decay=flat["weight_decay"])
    groups["norm"]["max_lr"] = flat["max_lr_w"]
    groups["positions"]["lr"] = flat["lr_pos"]
    try:
        return resolve_optim({key: flat[key] for key in OPTIM_DEFAULTS if key in flat} | {"groups": groups}, "optim")
    except SuiteError:
        return optim  # values no protocol could hold: shown as they are


def is_group_override(name: str) -> bool:
    """Whether a ``--set`` key (``optim.`` removed) addresses the groups: ``groups``, ``groups.G``, ``groups.G.KEY``
    or a shorthand."""
    return name == "groups" or name.startswith("groups.") or name in SHORTHANDS


def override_groups(groups: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``groups`` with ``--set`` pairs applied (keys as typed, ``optim.`` optional); not yet resolved.

    Order: whole mappings (``groups``, ``groups.G``) first, then a new ``optimizer``/``scheduler`` (which drops the
    old one's own settings, and ``lr`` where the new scheduler sets it), then single settings, so one command line can
    switch a scheduler and give its settings.
    """
    result = {name: dict(group) for name, group in groups.items()}
    singles: list[tuple[str, str, str, Any]] = []  # (key as typed, group, setting, value)
    touched: dict[str, str] = {}  # group -> the first --set key that changed it, for error messages
    for key, value in overrides.items():
        name = key.removeprefix("optim.")
        parts = name.split(".")
        if name == "groups":
            if not isinstance(value, Mapping):
                raise SuiteError(f"--set {key}: expected a mapping of groups, got {value!r}")
            result = {str(g): dict(v) if isinstance(v, Mapping) else v for g, v in value.items()}
            touched.update(dict.fromkeys(result, key))
        elif name in SHORTHANDS:
            singles += [(key, group, setting, value) for group, setting in SHORTHANDS[name]]
        elif len(parts) == 2:
            result[parts[1]] = dict(value) if isinstance(value, Mapping) else value
            touched.setdefault(parts[1], key)
        elif len(parts) == 3:
            singles.append((key, parts[1], parts[2], value))
        else:
            raise SuiteError(f"--set {key}: expected optim.groups.GROUP or optim.groups.GROUP.SETTING")
    for key, group, setting, value in sorted(singles, key=lambda s: s[2] not in ("optimizer", "scheduler")):
        if group not in result:
            raise SuiteError(f"--set {key}: {where} has no group {group!r} (groups: {', '.join(result)}); give a "
                             f"whole one with --set 'optim.groups.{group}={{optimizer: adam, lr: 0.1, scheduler: "
                             "constant}'")
        touched.setdefault(group, key)
        entry = result[group]
        if not isinstance(entry, dict):
            continue  # resolve_group names the bad value
        if setting in ("optimizer", "scheduler") and value != entry.get(setting):
            kinds = OPTIMISERS if setting == "optimizer" else SCHEDULERS
            old = kinds.get(entry.get(setting))
            for dropped in old.settings if old is not None else ():
                entry.pop(dropped, None)
            if setting == "scheduler" and value in SCHEDULERS and SCHEDULERS[value].sets_lr:
                entry.pop("lr", None)
        entry[setting] = value
    for group, key in touched.items():
        try:
            resolve_group(result[group], f"optim.groups.{group}")
        except SuiteError as err:
            raise SuiteError(f"--set {key}: {err}") from None
    return result


@dataclass
class Optimisation:
    """The optimisers and per-epoch schedulers of one model, as the protocol's groups say.

    Groups with the same optimiser and the same schedule share one torch optimiser (one parameter group each, with
    its own learning rate, weight decay and optimiser settings) and one scheduler, as the official code shares one
    Adam and one OneCycleLR between weights and BatchNorm: one fused kernel and one scheduler per step fewer than an
    optimiser per group. ``members`` names the groups each optimiser holds, in its ``param_groups`` order.
    """

    optimisers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    members: dict[str, tuple[str, ...]]

    def zero_grad(self) -> None:
        for opt in self.optimisers.values():
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for opt in self.optimisers.values():
            opt.step()

    def end_epoch(self) -> None:
        """Step every scheduler (they are per epoch, as in the official code)."""
        for sched in self.schedulers.values():
            sched.step()

    def learning_rates(self) -> dict[str, float]:
        """The learning rate each parameter group is trained with now."""
        return {group: lr for key, sched in self.schedulers.items()
                for group, lr in zip(self.members[key], sched.get_last_lr(), strict=True)}

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {"optimisers": {n: o.state_dict() for n, o in self.optimisers.items()},
                "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()}}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore a :meth:`state_dict`; a KeyError or ValueError when it was written for other groups."""
        for part, objects in (("optimisers", self.optimisers), ("schedulers", self.schedulers)):
            if set(state[part]) != set(objects):
                raise KeyError(f"{part} for {sorted(state[part])}, this run has {sorted(objects)}")
            for name, obj in objects.items():
                obj.load_state_dict(state[part][name])


def build_optimisation(model: nn.Module, optim: Mapping[str, Any], where: str = "protocol") -> Optimisation:
    """Optimisers and schedulers for ``model.param_groups()`` from a resolved ``optim`` section.

    Parameters with ``requires_grad=False`` are skipped; a group left empty gets nothing. A model group with trainable
    parameters that the protocol does not name is a SuiteError naming it: it would otherwise stay untrained.
    """
    shared: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # optimiser and schedule -> (group, its torch group)
    for name, params in model.param_groups().items():
        trainable = [p for p in params if p.requires_grad]
        if not trainable:
            continue
        group = optim["groups"].get(name)
        if group is None:
            raise SuiteError(f"{where}: the model's parameter group {name!r} has no optimiser in optim.groups "
                             f"({', '.join(optim['groups'])}); add optim.groups.{name} to the protocol or --set "
                             f"'optim.groups.{name}={{optimizer: adam, lr: 0.1, scheduler: constant}}'")
        scheduler = group["scheduler"]
        schedule = [group["optimizer"], scheduler, {k: group[k] for k in SCHEDULERS[scheduler].settings}]
        options = {key: group[key] for key in ("lr", "weight_decay", *OPTIMISERS[group["optimizer"]].settings)
                   if key in group}
        shared.setdefault(json.dumps(schedule, sort_keys=True), []).append((name, {"params": trainable, **options}))
    optimisers: dict[str, torch.optim.Optimizer] = {}
    schedulers: dict[str, Any] = {}
    members: dict[str, tuple[str, ...]] = {}
    for entries in shared.values():
        names = tuple(name for name, _ in entries)
        key = "+".join(names)
        group = optim["groups"][names[0]]
        # a scheduler that sets the learning rate (one_cycle) overwrites this 0.0 when it is built
        optimisers[key] = OPTIMISERS[group["optimizer"]].build([g for _, g in entries], lr=0.0, fused=True)
        schedulers[key] = SCHEDULERS[group["scheduler"]].build(optimisers[key], group, optim["epochs"])
        members[key] = names
    return Optimisation(optimisers, schedulers, members)


def train_step(model: nn.Module, optimisation: Optimisation, x: torch.Tensor,
               labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, summed-softmax cross-entropy, backward, every group's optimiser step, ``model.after_step()`` (masks,
    position clamp). Returns the detached loss and output."""
    from suite.models.network import summed_softmax_loss

    optimisation.zero_grad()
    output = model(x)
    loss = summed_softmax_loss(output, labels)
    loss.backward()
    optimisation.step()
    model.after_step()
    return loss.detach(), output.detach()


def paper_optim() -> Mapping[str, Any]:
    """The ``optim`` section of protocol ``gsc`` (the paper's set-up), for steps timed outside a run."""
    from suite.registry import get_protocol

    return get_protocol("gsc").optim


def make_train_step(net: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                    optim: Mapping[str, Any] | None = None) -> Callable[[], float]:
    """The protocol's training step on one fixed batch, as a closure for timing and memory (``optim`` defaults to
    :func:`paper_optim`); the optimisers are built at epoch 0 of the schedules. It trains ``net`` in place, so pass a
    copy of a model that must stay untouched."""
    net.train()
    optimisation = build_optimisation(net, optim if optim is not None else paper_optim(), "training step")

    def step() -> float:
        return float(train_step(net, optimisation, x, labels)[0])

    step.optimisers = list(optimisation.optimisers.values())  # type: ignore[attr-defined]  # memory.py's persistent
    return step
