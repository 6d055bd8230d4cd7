"""An out-of-tree delay method: axonal delays drawn at random and frozen (an ablation of *learning* delays).

Installing this package (``pip install -e examples/suite-fixed-delays``) makes ``axonal-fixed`` appear in
``python -m suite list`` and in ``run --all`` without any change to the suite.
"""

from __future__ import annotations

from torch import nn

from suite.models.network import DelayNetwork
from suite.registry import register_variant
from suite.specs import ModelSpec


def build_fixed_axonal(spec: ModelSpec, backend: str) -> nn.Module:
    """The paper's axonal network with positions frozen at their random initialisation (hard-rounded from the start)."""
    net = DelayNetwork(spec, backend)
    for delay in net.delay_modules():
        delay.P.requires_grad_(False)
    return net


def register() -> None:
    """Entry-point target: register the variants this package provides."""
    register_variant(
        "axonal-fixed",
        description="axonal delays drawn uniformly at random and never trained (example plug-in)",
        delay_type="axonal (fixed)",
        model_delay_type="axonal",
        builder=build_fixed_axonal,
        origin="suite-fixed-delays",
    )
