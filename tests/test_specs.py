"""Specs: validation errors name the key, YAML round trips, stable run ids, protocol file errors."""

from pathlib import Path

import pytest

from suite.errors import SuiteError
from suite.registry import get_protocol, protocol_names
from suite.specs import (
    ModelSpec,
    RunSpec,
    load_protocol_file,
    model_spec_from_yaml,
    run_spec_from_yaml,
    spec_to_yaml,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernel_size": 4}, "model.kernel_size: must be a positive odd number of steps, got 4"),
        ({"delay_sparsity": 1.0}, "model.delay_sparsity: must be in [0, 1), got 1.0"),
        ({"weight_sparsity": -0.1}, "model.weight_sparsity: must be in [0, 1), got -0.1"),
        ({"n_hidden": (64, 0)}, "model.n_hidden: must be a non-empty list of positive sizes, got [64, 0]"),
        ({"n_inputs": 0}, "model.n_inputs: must be a positive size, got 0"),
        ({"delay_type": "somatic"}, "model.delay_type: 'somatic' is not one of"),
        ({"passthrough": "skip"}, "model.passthrough: 'skip' is not one of"),
        ({"delay_type": "synaptic", "delay_sparsity": 0.5}, "delay sparsity needs axonal or dendritic delays"),
        ({"tau": 1.0}, "model.tau: must exceed 1 step"),
    ],
)
def test_model_spec_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(SuiteError) as err:
        ModelSpec(**kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_model_spec_yaml_round_trip() -> None:
    spec = ModelSpec(variant="axonal-sparse", delay_sparsity=0.8, passthrough="zero", n_hidden=(64, 32), kernel_size=15)
    assert model_spec_from_yaml(spec_to_yaml(spec)) == spec


def test_run_spec_yaml_round_trip_and_stable_id() -> None:
    spec = RunSpec("axonal", "gsc-mini", "torch", 3, {"kernel_size": 15, "delay_sparsity": 0.2})
    again = run_spec_from_yaml(spec_to_yaml(spec))
    assert again == spec
    assert again.run_id == spec.run_id
    # The id is a pure function of the spec: pinned so that an accidental change of the hash breaks resumption loudly.
    assert RunSpec("axonal", "gsc-mini", "torch", 0).run_id == "ed7ef335c9"
    resolved = RunSpec("axonal", "gsc-mini", protocol_hash="b835bd0d7094", data_fingerprint="synthetic-x")
    assert run_spec_from_yaml(spec_to_yaml(resolved)) == resolved
    assert len({resolved.run_id, RunSpec("axonal", "gsc-mini").run_id,
                RunSpec("axonal", "gsc-mini", protocol_hash="b835bd0d7094").run_id}) == 3
    assert RunSpec("axonal", "gsc-mini", "torch", 1).run_id != RunSpec("axonal", "gsc-mini", "torch", 0).run_id


def test_run_spec_rejects_unknown_keys_and_bad_yaml() -> None:
    with pytest.raises(SuiteError, match=r"run spec: unknown keys \['epochs'\]"):
        run_spec_from_yaml("variant: axonal\nprotocol: gsc\nepochs: 3\n")
    with pytest.raises(SuiteError, match="run spec: line 3 malformed YAML"):
        run_spec_from_yaml("variant: axonal\nprotocol: [gsc\n")
    with pytest.raises(SuiteError, match=r"run\.seed: must be a non-negative int"):
        RunSpec("axonal", "gsc", seed=-1)


def test_builtin_protocols_load() -> None:
    assert {"gsc", "ssc", "shd", "gsc-mini", "ssc-mini"} <= set(protocol_names())
    gsc = get_protocol("gsc")
    assert gsc.optim["epochs"] == 100 and gsc.optim["batch_size"] == 128 and gsc.seeds == (0, 1, 2, 3, 4)
    assert get_protocol("ssc").optim["epochs"] == 60
    assert get_protocol("gsc-mini").embedded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nversion: 1\ndata: {}\nmodel: {}\n", "missing key 'optim'"),
        ("name: x\nversion: 1\ndata: {}\nmodel: {}\noptim: {epochz: 3}\n", "optim: unknown keys ['epochz']"),
        ("name: x\nversion: 1\ndata: {}\nmodel: {kernel: 3}\noptim: {}\n", "model: unknown keys ['kernel']"),
        ("name: x\nversion: one\ndata: {}\nmodel: {}\noptim: {}\n", "version: must be an integer"),
        ("name: x\nversion: 1\ndata: {}\nmodel: {}\noptim: {}\nseeds: [-1]\n", "seeds: must be a non-empty list"),
        ("name: x\nversion: 1\nfoo: 2\ndata: {}\nmodel: {}\noptim: {}\n", "unknown keys ['foo']"),
        ("name: [x\n", "malformed YAML"),
    ],
)
def test_protocol_file_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as err:
        load_protocol_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_protocol_data_key_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nversion: 1\ndata: {kind: gsc, n_melz: 40}\nmodel: {}\noptim: {}\n")
    with pytest.raises(SuiteError, match="n_melz"):
        get_protocol(str(path))
