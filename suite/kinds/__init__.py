"""The registry of delay kinds (docs/adding-a-method.md "A new kind of delay").

``ModelSpec.delay_type`` names a registered :class:`~suite.kinds.base.DelayKind`. The built-in kinds live one per
module (suite/kinds/none.py, axonal.py, dendritic.py, synaptic.py) and register on first use; a plug-in package
registers its own from its ``suite.variants`` entry point (``register_kind`` first, then ``register_variant``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

from suite.errors import SuiteError

if TYPE_CHECKING:  # the names stay importable without torch (specs.py, the CLI's light paths)
    from suite.kinds.base import DelayKind

KIND_NAMES = ("none", "synaptic", "axonal", "dendritic")
"""The built-in kinds, in listing order; each is the module ``suite.kinds.<name>`` defining ``KIND``."""
PUBLISHED_KINDS = KIND_NAMES[1:]
"""The kinds of the paper's official code (every built-in but 'none'): what bench, the published-stack baseline and
the checkpoint converter accept."""

_KINDS: dict[str, DelayKind] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for name in KIND_NAMES:
        register_kind(importlib.import_module(f"suite.kinds.{name}").KIND)


def _missing_members(kind: object) -> list[str]:
    """What keeps ``kind`` (an instance or a class) from being a complete DelayKind: the base class, unimplemented
    abstract methods, an unset name or label."""
    from suite.kinds.base import DelayKind

    cls = kind if inspect.isclass(kind) else type(kind)
    if not issubclass(cls, DelayKind):
        return ["the DelayKind base class"]
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    for attr in ("name", "label"):
        if not isinstance(getattr(kind, attr, None), str) or not getattr(kind, attr):
            missing.append(attr)
    return missing


def register_kind(kind: DelayKind | type[DelayKind]) -> DelayKind:
    """Register a kind (an instance, or a class with no constructor arguments); returns the instance.

    An incomplete kind or a name already taken is refused with a one-line SuiteError naming the member or name."""
    missing = _missing_members(kind)
    if missing:
        title = kind.__name__ if inspect.isclass(kind) else type(kind).__name__
        raise SuiteError(f"delay kind {title} is incomplete: missing {', '.join(missing)} (docs/adding-a-method.md)")
    if inspect.isclass(kind):
        kind = kind()
    if kind.name in _KINDS:
        raise SuiteError(f"delay kind {kind.name!r} is already registered ({type(_KINDS[kind.name]).__name__})")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (the plug-in loader undoes a broken plug-in's registrations with it)."""
    _KINDS.pop(name, None)


def registered_kinds() -> dict[str, DelayKind]:
    """The kinds registered so far (built-ins included), without loading plug-in entry points."""
    _load_builtins()
    return dict(_KINDS)


def kinds() -> dict[str, DelayKind]:
    """Every registered kind by name: the built-ins first, then plug-ins (their entry points are loaded here)."""
    _load_builtins()
    from suite.registry import variants

    variants()  # loads the plug-in entry points, which register their kinds
    return dict(_KINDS)


def get_kind(name: str) -> DelayKind:
    """The kind registered as ``name``; SuiteError naming the registered ones otherwise."""
    _load_builtins()
    found = _KINDS.get(name)
    if found is None:
        found = kinds().get(name)
    if found is None:
        raise SuiteError(f"unknown delay kind {name!r}; registered: {', '.join(_KINDS)}")
    return found


def uses_kernel_size(name: object) -> bool:
    """Whether records of delay kind ``name`` have a meaningful D (True for a kind not installed here)."""
    found = kinds().get(name) if isinstance(name, str) else None
    return found is None or found.uses_kernel_size


def kind_of(model: object) -> DelayKind:
    """The kind of a built model (``model.spec.delay_type``, the model contract)."""
    return get_kind(model.spec.delay_type)  # type: ignore[attr-defined]


__all__ = ["KIND_NAMES", "PUBLISHED_KINDS", "get_kind", "kind_of", "kinds", "register_kind", "registered_kinds",
           "unregister_kind", "uses_kernel_size"]
