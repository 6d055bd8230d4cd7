"""Trainable parameter counts of the suite's DelayNetwork and of the rebuilt official model equal the published ones
(docs/protocol-facts.md 'Parameter counts of the official models'). Builds only; no forward pass."""

from __future__ import annotations

import pytest

pytest.importorskip("DCLS")
pytest.importorskip("spikingjelly")

from suite.baselines.official import OfficialDelaySNN
from suite.models.network import DelayNetwork
from suite.specs import ModelSpec

N_INPUTS = {"gsc": 40, "ssc": 140}
EXPECTED = {
    ("synaptic", "gsc"): 1_128_448,
    ("synaptic", "ssc"): 1_230_848,
    ("axonal", "gsc"): 567_336,
    ("axonal", "ssc"): 618_636,
    ("dendritic", "gsc"): 567_331,
    ("dendritic", "ssc"): 618_531,
}


def _trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("kernel_size", [15, 31])
@pytest.mark.parametrize(("delay_type", "dataset"), list(EXPECTED))
def test_trainable_parameter_counts(delay_type: str, dataset: str, kernel_size: int) -> None:
    n_inputs = N_INPUTS[dataset]
    spec = ModelSpec(variant=delay_type, delay_type=delay_type, n_inputs=n_inputs, n_hidden=(512,) * 3,
                     n_outputs=35, kernel_size=kernel_size)
    ours = _trainable(DelayNetwork(spec))
    official = OfficialDelaySNN(n_inputs, (512,) * 3, 35, delay_type=delay_type,
                                kernel_size=kernel_size).trainable_parameter_count()
    assert ours == official == EXPECTED[(delay_type, dataset)]


@pytest.mark.parametrize("dataset", ["gsc", "ssc"])
def test_sparse_axonal_count_matches_official(dataset: str) -> None:
    """Delay sparsity masks do not change what is trainable (every P stays a parameter in both stacks)."""
    spec = ModelSpec(variant="axonal-sparse", delay_type="axonal", n_inputs=N_INPUTS[dataset], delay_sparsity=0.8,
                     kernel_size=15)
    official = OfficialDelaySNN(N_INPUTS[dataset], delay_type="axonal", kernel_size=15, sparsity_p_delay=0.8)
    assert _trainable(DelayNetwork(spec)) == official.trainable_parameter_count() == EXPECTED[("axonal", dataset)]


@pytest.mark.parametrize(("variant", "dataset"), [("synaptic", "gsc"), ("axonal", "ssc"), ("dendritic", "gsc")])
def test_registry_models_match_published_counts(variant: str, dataset: str) -> None:
    """The same counts through ``create_model`` on the paper protocols, once the protocol and data code exist."""
    from suite import registry

    if dataset not in registry.protocol_names():
        pytest.skip(f"protocol {dataset!r} not defined yet")
    pytest.importorskip("suite.data")
    model, spec = registry.create_model(variant, registry.get_protocol(dataset))
    assert spec.n_inputs == N_INPUTS[dataset]
    assert _trainable(model) == EXPECTED[(variant, dataset)]
