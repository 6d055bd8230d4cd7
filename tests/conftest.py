"""Shared test set-up: one intra-op thread (CI machines have 2 cores and tests run beside each other) and a
deterministic default seed."""


import pytest
import torch
from tiny import TINY_PROTOCOL

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    """A fixed seed before each test, and afterwards subnormals back on: commands under test (run, bench) flush them
    process-wide (suite.runtime). glibc's malloc setting, also process-wide, cannot be undone; no test depends on it."""
    torch.manual_seed(0)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def tiny_protocol_path(tmp_path_factory: pytest.TempPathFactory):
    """A protocol file small enough to train every variant in about a second."""
    path = tmp_path_factory.mktemp("protocols") / "tiny.yaml"
    path.write_text(TINY_PROTOCOL)
    return path


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory):
    """One synthetic-data cache for the whole session (generation is deterministic, so sharing is safe)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _records_match_schema(monkeypatch: pytest.MonkeyPatch):
    """Every record the runner writes in a test is checked, as written to disk, against the published JSON Schema
    (suite/schemas/run-record.schema.json), so the schema cannot drift from train.py."""
    import json

    from records_schema import validate_against_schema

    import suite.train

    write = suite.train.write_record

    def checked(path, record):
        written = write(path, record)
        validate_against_schema(json.loads(path.read_text()))
        return written

    monkeypatch.setattr(suite.train, "write_record", checked)
