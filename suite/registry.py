"""Registries of model variants, backends and protocols (timm-style ``register_variant`` + ``create_model``).

Third-party packages add variants without editing the suite: they declare an entry point in the group
``suite.variants`` whose target is a module (imported for its ``register_variant`` calls) or a callable (called once);
a package with a new kind of delay calls ``suite.kinds.register_kind`` there first. A plug-in that fails (import
error, registration error, a name already taken, a model that breaks the contract of suite/models/contract.py) costs
one warning line on stderr naming its distribution and entry point; its partial registrations (variants and kinds)
are undone and everything else keeps working.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from torch import nn

from suite import kinds
from suite.errors import SuiteError
from suite.models.contract import MEMBERS, missing_members
from suite.ops.registry import BACKENDS
from suite.specs import ModelSpec, ProtocolSpec, load_protocol_file, protocol_differences

ENTRY_POINT_GROUP = "suite.variants"
PROTOCOL_DIR = Path(__file__).parent / "protocols"

Builder = Callable[[ModelSpec, str], nn.Module]
#: The spec a variant is built with once when it is registered, to check its model against the contract (cheap).
CONTRACT_CHECK_SPEC = {"n_inputs": 3, "n_hidden": (4,), "n_outputs": 2, "kernel_size": 3}


@dataclass(frozen=True)
class Variant:
    """A named model variant: ModelSpec defaults plus a builder (default: the paper's DelayNetwork)."""

    name: str
    description: str
    delay_type: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    builder: Builder | None = None
    backends: tuple[str, ...] | None = None
    origin: str = "suite"

    def supported_backends(self) -> tuple[str, ...]:
        return self.backends if self.backends is not None else tuple(BACKENDS)

    def build(self, spec: ModelSpec, backend: str) -> nn.Module:
        if backend not in self.supported_backends():
            raise SuiteError(f"variant {self.name!r} does not support backend {backend!r} "
                             f"(supported: {', '.join(self.supported_backends())})")
        if self.builder is not None:
            return self._checked_build(spec, backend)
        from suite.models.network import DelayNetwork

        return DelayNetwork(spec, backend)


    def _checked_build(self, spec: ModelSpec, backend: str) -> nn.Module:
        """A plug-in builder's failure or wrong return type is a one-line error naming the variant and its owner."""
        assert self.builder is not None
        try:
            model = self.builder(spec, backend)
        except SuiteError:
            raise
        except Exception as err:
            raise SuiteError(f"variant {self.name!r} (from {self.origin}): its builder failed: "
                             f"{type(err).__name__}: {_one_line(err)}") from None
        missing = missing_members(model)
        if missing:
            raise SuiteError(f"variant {self.name!r} (from {self.origin}): its builder returned "
                             f"{type(model).__name__} lacking {', '.join(missing)}, expected a torch.nn.Module with "
                             f"{', '.join(MEMBERS)} (the model contract: suite/models/contract.py)")
        return model

    def check_contract(self) -> None:
        """Build the variant once on a tiny spec (``CONTRACT_CHECK_SPEC`` over its defaults) on the "torch" backend
        and check the model contract: a broken plug-in fails at registration, naming the missing member."""
        if self.builder is None or "torch" not in self.supported_backends():
            return
        try:
            spec = ModelSpec(**{**self.defaults, "variant": self.name, **CONTRACT_CHECK_SPEC})
        except SuiteError as err:
            raise SuiteError(f"variant {self.name!r} (from {self.origin}): its defaults are not a valid model: "
                             f"{err}") from None
        self._checked_build(spec, "torch")


_VARIANTS: dict[str, Variant] = {}
_entry_points_loaded = False
#: The distribution whose entry point is being loaded: the default origin of the variants it registers.
_loading_origin: str | None = None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def register_variant(name: str, *, description: str, delay_type: str, backends: tuple[str, ...] | None = None,
                     builder: Builder | None = None, origin: str | None = None, model_delay_type: str | None = None,
                     **defaults: Any) -> Variant:
    """Register a variant. ``delay_type`` is the label shown in listings; ``model_delay_type`` is the ModelSpec
    delay type its builder receives (default: ``delay_type`` when it is a standard one, else 'none').
    ``origin`` defaults to the plug-in's distribution name while its entry point loads, else 'suite'.
    ``defaults`` are further ModelSpec fields (e.g. ``delay_sparsity=0.8``)."""
    origin = origin or _loading_origin or "suite"
    if name in _VARIANTS:
        raise SuiteError(f"variant {name!r} from {origin} is already registered by {_VARIANTS[name].origin}")
    if model_delay_type is None:
        model_delay_type = delay_type if delay_type in kinds.registered_kinds() else "none"
    variant = Variant(name, description, delay_type, {"delay_type": model_delay_type, **defaults}, builder, backends,
                      origin)
    variant.check_contract()
    _VARIANTS[name] = variant
    return variant


def variant(name: str, **kwargs: Any) -> Callable[[Builder], Builder]:
    """Decorator form: ``@variant("my-delays", description=..., delay_type=...)`` over a builder function."""

    def wrap(builder: Builder) -> Builder:
        register_variant(name, builder=builder, **kwargs)
        return builder

    return wrap


def _load_entry_points() -> None:
    global _entry_points_loaded, _loading_origin
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        before = dict(_VARIANTS)
        kinds_before = set(kinds.registered_kinds())
        _loading_origin = dist
        try:
            target = ep.load()
            if callable(target):
                target()
        except Exception as err:  # a broken plug-in must not take the suite down: one line, then carry on
            _VARIANTS.clear()
            _VARIANTS.update(before)
            for added in set(kinds.registered_kinds()) - kinds_before:
                kinds.unregister_kind(added)
            print(f"warning: plug-in {dist} (entry point {ep.name} = {ep.value} in group {ENTRY_POINT_GROUP}) "
                  f"skipped: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        finally:
            _loading_origin = None


def variants() -> dict[str, Variant]:
    """All registered variants, built-in first, then plug-ins, in registration order."""
    _load_entry_points()
    return dict(_VARIANTS)


def get_variant(name: str) -> Variant:
    found = variants().get(name)
    if found is None:
        raise SuiteError(f"unknown variant {name!r}; registered: {', '.join(variants())}")
    return found


def protocol_names() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


def get_protocol(name: str) -> ProtocolSpec:
    """Load ``suite/protocols/NAME.yaml`` (or a path to a YAML file)."""
    path = Path(name)
    from suite.data import validate_data_config

    if path.suffix in (".yaml", ".yml") and path.exists():
        protocol = load_protocol_file(path)
        validate_data_config(protocol.data, f"{path}: data")
        if protocol.name in protocol_names() and path.resolve() != (PROTOCOL_DIR / f"{protocol.name}.yaml").resolve():
            registered = get_protocol(protocol.name)
            if protocol.protocol_hash != registered.protocol_hash:
                diffs = ", ".join(protocol_differences(protocol.content(), registered.content()))
                raise SuiteError(f"{path}: name {protocol.name!r} is a registered protocol with other content "
                                 f"({diffs}); rename it, or run --protocol {protocol.name} --set KEY=VALUE")
        return protocol
    path = PROTOCOL_DIR / f"{name}.yaml"
    if not path.exists():
        raise SuiteError(f"unknown protocol {name!r}; available: {', '.join(protocol_names())}")
    protocol = load_protocol_file(path)
    validate_data_config(protocol.data, f"{path}: data")
    if protocol.name != name:
        raise SuiteError(f"{path}: name is {protocol.name!r} but the file is named {name!r}")
    return protocol


def resolve_model_spec(variant_name: str, protocol: ProtocolSpec,
                       overrides: Mapping[str, Any] | None = None) -> ModelSpec:
    """The validated ModelSpec of a variant on a protocol (cheap: callers check it before any data or training)."""
    from suite.data import n_classes, n_inputs

    return protocol.model_spec(get_variant(variant_name).defaults, variant_name, n_inputs(protocol.data),
                               n_classes(protocol.data), overrides or {})


def create_model(variant_name: str, protocol: ProtocolSpec, backend: str = "torch",
                 overrides: Mapping[str, Any] | None = None) -> tuple[nn.Module, ModelSpec]:
    """Resolve a variant on a protocol into a ModelSpec and build it on ``backend``."""
    spec = resolve_model_spec(variant_name, protocol, overrides)
    return get_variant(variant_name).build(spec, backend), spec


def _register_builtin() -> None:
    register_variant("no-delay", description="LIF baseline without delays: Linear -> BN -> LIF", delay_type="none")
    register_variant("synaptic", description="one learnable delay per synapse (DCLS-delays)", delay_type="synaptic")
    register_variant("axonal", description="one learnable delay per presynaptic neuron, before the weights",
                     delay_type="axonal")
    register_variant("dendritic", description="one learnable delay per postsynaptic neuron, after the weights",
                     delay_type="dendritic")
    register_variant("axonal-sparse", description="axonal delays on ~20% of presynaptic neurons (delay sparsity 0.8)",
                     delay_type="axonal", delay_sparsity=0.8, passthrough="official")
    register_variant("dendritic-sparse", description="dendritic delays on ~20% of postsynaptic neurons (sparsity 0.8)",
                     delay_type="dendritic", delay_sparsity=0.8, passthrough="official")


_register_builtin()
