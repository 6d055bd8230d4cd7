"""One training step of every registered variant on numba-cuda (simulator) against torch: same initial state, same
data, the suite's training step with the paper's optimisers (suite.training). Parameters must agree to 1e-4."""

from __future__ import annotations

import pytest
import torch

from suite.models.network import DelayNetwork
from suite.registry import variants
from suite.specs import ModelSpec
from suite.training import build_optimisation, paper_optim, train_step

T, B = 8, 2


def _spec(name: str) -> ModelSpec:
    defaults = dict(variants()[name].defaults)
    return ModelSpec(**{**defaults, "variant": name, "n_inputs": 4, "n_hidden": (5,), "n_outputs": 3,
                        "kernel_size": 5, "dropout": 0.0})


def _step(model: DelayNetwork, x: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    loss, out = train_step(model, build_optimisation(model, paper_optim()), x, labels)
    return float(loss), out


@pytest.mark.parametrize("name", [n for n, v in variants().items() if v.builder is None])
def test_training_step_matches_torch(name: str) -> None:
    spec = _spec(name)
    torch.manual_seed(3)
    reference = DelayNetwork(spec, "torch").train()
    candidate = DelayNetwork(spec, "numba-cuda").train()
    candidate.load_state_dict(reference.state_dict())
    gen = torch.Generator().manual_seed(4)
    x = torch.randn((T, B, spec.n_inputs), generator=gen) * 2
    labels = torch.randint(0, spec.n_outputs, (B,), generator=gen)

    loss_ref, out_ref = _step(reference, x, labels)
    loss_nb, out_nb = _step(candidate, x, labels)

    assert abs(loss_nb - loss_ref) <= 1e-5
    assert (out_nb - out_ref).abs().max() <= 1e-5
    for (key, p_ref), (_, p_nb) in zip(reference.named_parameters(), candidate.named_parameters(), strict=True):
        assert p_ref.grad is not None and p_nb.grad is not None, key
        scale = float(p_ref.grad.abs().max())
        assert float((p_nb.grad - p_ref.grad).abs().max()) <= 1e-4 * max(scale, 1e-12), key
        assert float((p_nb - p_ref).detach().abs().max()) <= 1e-4, key
    spikes: list[torch.Tensor] = []
    with torch.no_grad():
        candidate(x, spikes)
    assert any(float(s.sum()) > 0 for s in spikes), "the hidden layer never spikes: the test would prove little"


@pytest.mark.parametrize("name", ["synaptic", "axonal"])
def test_hard_evaluation_matches_torch(name: str) -> None:
    """Evaluation copies use integer delays: the hard ops through the whole network."""
    spec = _spec(name)
    reference = DelayNetwork(spec, "torch")
    candidate = DelayNetwork(spec, "numba-cuda")
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn((T, B, spec.n_inputs), generator=torch.Generator().manual_seed(5)) * 2
    with torch.no_grad():
        assert (candidate.hard_copy()(x) - reference.hard_copy()(x)).abs().max() <= 1e-5
