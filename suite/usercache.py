"""The per-user cache: synthetic datasets, extracted features and compiled kernels, shared by every results directory.

Entries are keyed by everything they depend on (settings, file fingerprints, sources), so one cache serves any number of
``--out`` directories and concurrent runs (each entry is written to a temporary name, then renamed).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SUITE_CACHE_DIR"


def user_cache_root() -> Path:
    """``$XDG_CACHE_HOME/delay-snn-suite``, else ``~/.cache/delay-snn-suite`` (the XDG base-directory default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "delay-snn-suite"


def data_cache_dir(explicit: Path | None = None) -> Path:
    """Where data and features are cached: ``explicit`` (``run --cache-dir``), else ``$SUITE_CACHE_DIR``, else
    :func:`user_cache_root`."""
    if explicit is not None:
        return Path(explicit)
    from_env = os.environ.get(CACHE_ENV)
    return Path(from_env) if from_env else user_cache_root()
