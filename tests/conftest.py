"""Shared test set-up: one intra-op thread (CI machines have 2 cores and tests run beside each other) and a
deterministic default seed."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
