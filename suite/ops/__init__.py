"""Kernel backends. Each backend is a module exposing the functions in ``BACKEND_FUNCTIONS`` with the signatures of
:mod:`suite.ops.pytorch` (the ``torch`` reference); models look their backend up by name at call time
(:mod:`suite.ops.registry`), so a model can switch backend freely."""

from __future__ import annotations

BACKEND_FUNCTIONS = (
    "lif_spikes",
    "leaky_readout",
    "channel_delay",
    "channel_delay_hard",
    "synaptic_delay",
    "synaptic_delay_hard",
)
OPTIONAL_FUNCTIONS = (
    "batchnorm_lif",
    "batchnorm_lif_supported",
    "delay_batchnorm_lif",
    "delay_batchnorm_lif_supported",
    "batchnorm_lif_delay",
    "batchnorm_lif_delay_supported",
    "network_forward",
)
"""A backend may also fuse a hidden layer's training-mode BatchNorm -> LIF -> dropout, with a dendritic layer's soft
delay before it or with the next layer's soft axonal delay after it (``suite.ops.cpu_kernels`` does); models use each
where its ``*_supported`` says so and compose the steps otherwise. ``network_forward(layers, x, spikes)`` is the
training forward of a layer stack with those fusions (suite/ops/fused_stages.py); a backend without it composes."""
