"""Data identity: a short fingerprint of what a run trains on, computed before any feature is read or built.

Synthetic (embedded) data are named by their generator settings hash, so the fingerprint does not depend on where
the cache lives. A real dataset root is named by the same per-file (path, size, mtime) lists the feature cache keys
on (:func:`suite.data.cache.cache_key`): listing and stat only, seconds even for the full GSC tree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from suite.data import synthetic, validate_data_config
from suite.errors import SuiteError


def data_fingerprint(data_cfg: Mapping[str, Any], root: Path | None) -> str:
    """16-hex fingerprint of the data a protocol's ``data:`` mapping reads (``root`` is ignored for synthetic)."""
    kind = validate_data_config(data_cfg, "data")
    cfg = kind.resolved(data_cfg)
    if cfg["synthetic"] is not None:
        settings = synthetic.resolve_settings(cfg["synthetic"], kind.name)
        return f"synthetic-{synthetic.settings_hash(kind.name, settings)}"
    if root is None:
        raise SuiteError(f"protocol data {kind.name} needs --data-root pointing at {kind.root_hint}")
    sources = kind.sources(Path(root), cfg)
    payload = {split: {"fingerprint": src.fingerprint, "class_names": list(src.class_names)}
               for split, src in sorted(sources.items())}
    blob = json.dumps({"kind": kind.name, "splits": payload}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
