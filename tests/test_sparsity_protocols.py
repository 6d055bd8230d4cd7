"""The official sparsity protocols (configs/GSC_sparsity.yaml, SSC_sparsity.yaml @a75ae78, docs/protocols.md) and
what each variant means on them."""

from __future__ import annotations

import dataclasses

import pytest

from suite.cli import main
from suite.registry import get_protocol, resolve_model_spec


@pytest.mark.parametrize(("sparse", "dense", "epochs"), [("gsc-sparsity", "gsc", 100), ("ssc-sparsity", "ssc", 100)])
def test_sparsity_protocol_is_the_dense_one_plus_the_official_sparsity(sparse: str, dense: str, epochs: int) -> None:
    s, d = get_protocol(sparse), get_protocol(dense)
    assert dict(s.model) == {**d.model, "delay_sparsity": 0.8, "weight_sparsity": 0.6}  # sparsity_p_delay, sparsity_p
    assert dict(s.optim) == {**d.optim, "epochs": epochs} and dict(s.data) == dict(d.data) and s.seeds == d.seeds
    assert s.model["kernel_size"] == 31  # max_delay_ms 300 at 10 ms -> 30 -> odd 31 (the sweep passes max_delay 15)


@pytest.mark.parametrize("protocol", ["gsc-sparsity", "ssc-sparsity"])
def test_variants_on_the_sparsity_protocols(protocol: str, capsys: pytest.CaptureFixture) -> None:
    p = get_protocol(protocol)
    axonal = resolve_model_spec("axonal", p)
    assert (axonal.delay_sparsity, axonal.weight_sparsity, axonal.passthrough) == (0.8, 0.6, "official")
    assert dataclasses.replace(resolve_model_spec("axonal-sparse", p), variant="axonal") == axonal
    assert resolve_model_spec("dendritic", p).delay_sparsity == 0.8  # this suite's extension (official: assert)
    swept = resolve_model_spec("axonal", p, {"kernel_size": 15, "delay_sparsity": 0.2, "weight_sparsity": 0.9})
    assert (swept.kernel_size, swept.delay_sparsity, swept.weight_sparsity) == (15, 0.2, 0.9)
    for variant, delay_type in (("synaptic", "synaptic"), ("no-delay", "none")):
        assert main(["describe", variant, "--protocol", protocol]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"protocol {protocol}, variant {variant}: the protocol's delay_sparsity 0.8 " \
            f"needs axonal (official) or dendritic delays, not {delay_type!r}" in err and "delay_sparsity=0" in err
        weights_only = resolve_model_spec(variant, p, {"delay_sparsity": 0.0})
        assert (weights_only.delay_sparsity, weights_only.weight_sparsity) == (0.0, 0.6)
