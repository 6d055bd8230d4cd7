"""suite.runtime: the process settings are applied and reported. (Their effect, page faults per training step, is
measured by ``suite bench`` and recorded in its JSON: ``minor_faults_median`` per timed callable.)"""

from __future__ import annotations

import sys

import pytest
import torch

from suite import runtime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_retain_freed_memory_is_accepted_by_glibc() -> None:
    assert runtime.retain_freed_memory() is True  # every mallopt call returned 1


def test_configure_cpu_process_reports_what_it_set() -> None:
    settings = runtime.configure_cpu_process(retain_memory=False)
    assert settings == {"flush_denormal": True, "retain_freed_memory": False}
    assert torch.tensor(1e-40, dtype=torch.float32).item() == 0.0  # subnormals are flushed
