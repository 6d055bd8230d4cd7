"""State-dict conversion between the official layout (``snn.{i}.delay_layer.P`` ...) and the suite's
(``layers.{i}.delay.P`` ...), and loading an official ``model.pt`` into a :class:`~suite.models.network.DelayNetwork`.

Official tensors (dcls 0.1.1 ``Dcls1d``, kernel_count 1): ``P`` and ``SIG`` have shape (1, C, 1, 1) for per-channel
delays (groups = C) and (1, N_out, N_in, 1) for synaptic delays; ``weight`` is (C, 1, 1) (fixed to 1, not converted)
or (N_out, N_in, 1) (synaptic). The suite keeps P as (C,) or (N_out, N_in), the synaptic weight as (N_out, N_in) and
SIG as one scalar buffer per layer. The official sparse-delay mask is not in its state dict: pass it explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from suite.errors import SuiteError
from suite.kinds import PUBLISHED_KINDS
from suite.models.network import DelayNetwork
from suite.specs import ModelSpec

_DELAY_TYPES = PUBLISHED_KINDS
_NORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_OFFICIAL_KEY = re.compile(r"^snn\.(\d+)\.(.+)$")
_SUITE_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")

StateDict = dict[str, torch.Tensor]
Masks = Sequence[torch.Tensor | None] | Mapping[int, torch.Tensor | None]


def _check_type(delay_type: str) -> None:
    if delay_type not in _DELAY_TYPES:
        raise SuiteError(f"delay_type {delay_type!r} has no official counterpart; expected one of {_DELAY_TYPES}")


def _scalar_sig(sig: torch.Tensor, where: str) -> torch.Tensor:
    """The single SIG value of an official SIG tensor; SuiteError if its entries differ."""
    flat = sig.detach().reshape(-1)
    if flat.numel() == 0 or not bool(torch.all(flat == flat[0])):
        raise SuiteError(f"{where}: SIG entries are not all equal (min {float(flat.min())}, max {float(flat.max())}); "
                         "the suite holds one SIG per layer")
    return flat[0].clone()


def _layer_indices(state_dict: Mapping[str, torch.Tensor], pattern: re.Pattern[str]) -> list[int]:
    return sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})


def _mask_for(masks: Masks | None, i: int) -> torch.Tensor | None:
    if masks is None:
        return None
    if isinstance(masks, Mapping):
        return masks.get(i)
    return masks[i] if i < len(masks) else None


def official_to_suite(state_dict: Mapping[str, torch.Tensor], delay_type: str,
                      delay_masks: Masks | None = None) -> StateDict:
    """Official ``SnnDelays`` state dict -> suite ``DelayNetwork`` state dict.

    ``delay_masks`` (per layer, ``None`` for dense layers) become ``layers.{i}.delay.delay_mask``. Raises SuiteError
    naming the key for an unknown key, a per-channel delay weight that is not all ones, or unequal SIG entries.
    """
    _check_type(delay_type)
    out: StateDict = {}
    for key, value in state_dict.items():
        m = _OFFICIAL_KEY.match(key)
        if m is None:
            raise SuiteError(f"unexpected key {key!r}: not an official 'snn.{{i}}.*' entry")
        i, rest = int(m.group(1)), m.group(2)
        prefix = f"layers.{i}"
        if rest == "delay_layer.P":
            out[f"{prefix}.delay.P"] = (value[0, :, :, 0] if delay_type == "synaptic" else value.reshape(-1)).clone()
        elif rest == "delay_layer.SIG":
            out[f"{prefix}.delay.sig"] = _scalar_sig(value, key)
        elif rest == "delay_layer.weight":
            if delay_type == "synaptic":
                out[f"{prefix}.delay.weight"] = value[:, :, 0].clone()
            elif value.dim() != 3 or tuple(value.shape[1:]) != (1, 1):
                raise SuiteError(f"{key}: shape {tuple(value.shape)} is not a per-channel delay weight (C, 1, 1) of "
                                 f"{delay_type} delays (a synaptic checkpoint?)")
            elif not bool(torch.all(value == 1)):
                raise SuiteError(f"{key}: {delay_type} delay weights are fixed to 1 in the official code, "
                                 "found other values")
        elif rest == "W.weight" and delay_type != "synaptic":
            out[f"{prefix}.linear.weight"] = value.clone()
        elif rest.startswith("norm.") and rest[5:] in _NORM_KEYS:
            out[f"{prefix}.{rest}"] = value.clone()
        else:
            raise SuiteError(f"unexpected key {key!r} for {delay_type} delays")
    for i in _layer_indices(state_dict, _OFFICIAL_KEY):
        mask = _mask_for(delay_masks, i)
        if mask is not None:
            out[f"layers.{i}.delay.delay_mask"] = mask.detach().clone().float()
    return out


def suite_to_official(state_dict: Mapping[str, torch.Tensor], delay_type: str) -> StateDict:
    """Suite ``DelayNetwork`` state dict -> official ``SnnDelays`` state dict (loadable with ``strict=True``).

    Per-channel delay weights are written as ones; SIG is broadcast to P's shape. Delay masks and weight masks are
    dropped (the official state dict has no place for them; see :func:`suite_delay_masks`).
    """
    _check_type(delay_type)
    out: StateDict = {}
    layers = _layer_indices(state_dict, _SUITE_KEY)
    for i in layers:
        src, dst = f"layers.{i}", f"snn.{i}"
        try:
            pos, sig = state_dict[f"{src}.delay.P"], state_dict[f"{src}.delay.sig"]
        except KeyError as err:
            raise SuiteError(f"suite state dict lacks key {err.args[0]!r}") from None
        if delay_type == "synaptic":
            weight = state_dict.get(f"{src}.delay.weight")
            if weight is None:
                raise SuiteError(f"suite state dict lacks key '{src}.delay.weight'")
            official_p = pos.reshape(1, *pos.shape, 1).clone()
            official_w = weight.unsqueeze(-1).clone()
        else:
            official_p = pos.reshape(1, -1, 1, 1).clone()
            official_w = torch.ones(pos.numel(), 1, 1, dtype=pos.dtype)
            linear = state_dict.get(f"{src}.linear.weight")
            if linear is None:
                raise SuiteError(f"suite state dict lacks key '{src}.linear.weight'")
        # Official construction order: dendritic W first, then delay_layer; axonal delay_layer first, then W.
        if delay_type == "dendritic":
            out[f"{dst}.W.weight"] = linear.clone()
        out[f"{dst}.delay_layer.weight"] = official_w
        out[f"{dst}.delay_layer.P"] = official_p
        out[f"{dst}.delay_layer.SIG"] = torch.full_like(official_p, float(sig))
        if delay_type == "axonal":
            out[f"{dst}.W.weight"] = linear.clone()
        for name in _NORM_KEYS:
            key = f"{src}.norm.{name}"
            if key in state_dict:
                out[f"{dst}.norm.{name}"] = state_dict[key].clone()
    return out


def suite_delay_masks(state_dict: Mapping[str, torch.Tensor]) -> dict[int, torch.Tensor]:
    """The suite's sparse-delay masks per layer index (what ``official_to_suite(..., delay_masks=)`` takes back)."""
    return {int(m.group(1)): v.clone() for k, v in state_dict.items()
            if (m := _SUITE_KEY.match(k)) and m.group(2) == "delay.delay_mask"}


def load_official_checkpoint(path: str | Path, spec: ModelSpec, backend: str = "torch",
                             delay_masks: Masks | None = None) -> DelayNetwork:
    """Build a ``DelayNetwork`` for ``spec`` and load an official ``model.pt`` (a ``SnnDelays`` state dict) into it.

    The official code does not save its sparse-delay mask: for ``spec.delay_sparsity > 0`` pass ``delay_masks``.
    Weight-sparsity masks are recovered as the non-zero entries of the (masked) weights. Every failure is a one-line
    SuiteError naming the file and the key.
    """
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such checkpoint file") from None
    except Exception as err:
        raise SuiteError(f"{path}: cannot read an official checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if isinstance(data, Mapping) and "state_dict" in data and isinstance(data["state_dict"], Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SuiteError(f"{path}: expected a state dict of tensors (official torch.save(model.state_dict()))")
    if spec.delay_sparsity > 0 and delay_masks is None:
        raise SuiteError(f"{path}: the official code does not save its sparse-delay mask; pass delay_masks= for a "
                         f"spec with delay_sparsity {spec.delay_sparsity}")
    try:
        converted = official_to_suite(data, spec.delay_type, delay_masks)
    except SuiteError as err:
        raise SuiteError(f"{path}: {err}") from None
    model = DelayNetwork(spec, backend)
    target = model.state_dict()
    official_name = _official_names(spec.delay_type)
    for key, expected in target.items():
        if key.endswith(".weight_mask"):
            continue
        if key not in converted:
            raise SuiteError(f"{path}: missing key {official_name(key)!r} (needed for {key!r} of a "
                             f"{spec.delay_type} model with layer sizes {spec.layer_sizes})")
        got = converted[key]
        if tuple(got.shape) != tuple(expected.shape):
            raise SuiteError(f"{path}: key {official_name(key)!r} has shape {tuple(got.shape)} after conversion, "
                             f"expected {tuple(expected.shape)} for layer sizes {spec.layer_sizes}")
    extra = sorted(set(converted) - set(target))
    if extra:
        raise SuiteError(f"{path}: unexpected key {official_name(extra[0])!r} for a {spec.delay_type} model with "
                         f"layer sizes {spec.layer_sizes}")
    for i, block in enumerate(model.layers):
        if block.weight_mask is not None:
            weight_key = f"layers.{i}.delay.weight" if spec.delay_type == "synaptic" else f"layers.{i}.linear.weight"
            converted[f"layers.{i}.weight_mask"] = (converted[weight_key] != 0).float()
    model.load_state_dict(converted, strict=True)
    return model


def _official_names(delay_type: str):
    """Map a suite key to the official key it comes from (for error messages)."""

    def name(key: str) -> str:
        m = _SUITE_KEY.match(key)
        if m is None:
            return key
        i, rest = m.group(1), m.group(2)
        table = {"delay.P": "delay_layer.P", "delay.sig": "delay_layer.SIG", "delay.weight": "delay_layer.weight",
                 "linear.weight": "W.weight", "delay.delay_mask": "delay_layer.m (not saved by the official code)"}
        return f"snn.{i}.{table.get(rest, rest)}"

    return name
