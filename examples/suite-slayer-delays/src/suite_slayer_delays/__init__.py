"""Integer axonal delays learned with SLAYER's gradient, under an adaptive cap (Shrestha & Orchard 2018; Sun et al.
2023): an out-of-tree delay kind for the delay-SNN suite.

``pip install examples/suite-slayer-delays`` makes the ``axonal-slayer`` variant appear in ``python -m suite list``.
"""

from __future__ import annotations

from suite_slayer_delays.kind import SlayerAxonalKind, SlayerAxonalLayer
from suite_slayer_delays.shift import delay_shift

__all__ = ["SlayerAxonalKind", "SlayerAxonalLayer", "delay_shift", "register"]


def register() -> None:
    """Entry-point target: register the kind, then the variant built from it."""
    from suite.kinds import register_kind
    from suite.registry import register_variant

    register_kind(SlayerAxonalKind())
    register_variant(
        "axonal-slayer",
        description="integer axonal delays, SLAYER shift gradient, adaptive per-layer cap (Sun et al. 2023)",
        delay_type=SlayerAxonalKind.name,
        backends=("torch",),
        origin="suite-slayer-delays",
    )
