"""Learnable recurrent delays (DelRec, Maxadath et al., arXiv 2509.24852): an out-of-tree delay kind for the
delay-SNN suite.

``pip install examples/suite-delrec`` makes the ``delrec`` variant appear in ``python -m suite list``.
"""

from __future__ import annotations

from suite_delrec.kind import DelRecKind, DelRecLayer, DelRecReadout

__all__ = ["DelRecKind", "DelRecLayer", "DelRecReadout", "register"]


def register() -> None:
    """Entry-point target: register the kind, then the variant built from it."""
    from suite.kinds import register_kind
    from suite.registry import register_variant

    register_kind(DelRecKind())
    register_variant(
        "delrec",
        description="recurrent LIF layers whose recurrent synapses carry one learnable delay per source (DelRec)",
        delay_type=DelRecKind.name,
        backends=("torch",),
        origin="suite-delrec",
    )
