"""Run identity: what a run ran (the resolved protocol's content and the data), and which records are comparable.

A run id hashes the RunSpec together with the protocol content hash (after every ``--set``) and the data
fingerprint, so a one-epoch smoke test of ``gsc`` or a run on another dataset never passes for the paper run: it gets
another id, another checkpoint, another record. Leaderboards, ``verify`` and the reference bands compare a record
with published numbers only when its protocol content equals the registered protocol's; any other record is shown
under a label naming the differing keys (``gsc, epochs=1``) and is NOT COMPARABLE.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

import torch

from suite.data.identity import data_fingerprint
from suite.errors import SuiteError
from suite.specs import PROTOCOL_CONTENT_KEYS, ProtocolSpec, RunSpec, content_hash, protocol_differences


def resolve_run(spec: RunSpec, protocol: ProtocolSpec, data_root: Path | None) -> RunSpec:
    """``spec`` with its protocol hash and data fingerprint filled in; a spec resolved for other content is refused."""
    fingerprint = data_fingerprint(protocol.data, data_root)
    for key, actual in (("protocol_hash", protocol.protocol_hash), ("data_fingerprint", fingerprint)):
        given = getattr(spec, key)
        if given and given != actual:
            raise SuiteError(f"run {spec.label}: {key} {given} was resolved for other content than this run's "
                             f"({actual}); plan the run again")
    return dataclasses.replace(spec, protocol_hash=protocol.protocol_hash, data_fingerprint=fingerprint)


def run_identity(spec: RunSpec, data_root: Path | None) -> dict[str, Any]:
    """The record's and checkpoint's ``identity`` block (plain data, so checkpoints load with weights_only)."""
    return {"run_id": spec.run_id, "protocol_hash": spec.protocol_hash, "data_fingerprint": spec.data_fingerprint,
            "data_root": str(data_root) if data_root is not None else None,
            "torch_threads": torch.get_num_threads()}


def check_resume(path: Path, saved: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """Refuse a checkpoint of another identity; return a note when only the thread count differs.

    The run id already names the protocol content and data, so a mismatch means a copied or renamed file; resuming
    it would mix two runs in one record. Another thread count is allowed (the same machine after a reboot may
    differ) but changes float rounding, so the note is printed and kept in the record.
    """
    if saved is None:
        raise SuiteError(f"{path}: checkpoint has no identity (written by an older suite); delete it to start fresh")
    for key in ("run_id", "protocol_hash", "data_fingerprint"):
        if saved.get(key) != current[key]:
            raise SuiteError(f"{path}: checkpoint was written for {key} {saved.get(key)}, this run has "
                             f"{current[key]}; not resuming it, delete it to start fresh")
    if saved.get("torch_threads") != current["torch_threads"]:
        return (f"resuming with {current['torch_threads']} torch threads a checkpoint written with "
                f"{saved.get('torch_threads')}: results may differ in the last bits from an uninterrupted run")
    return None


@cache
def registered_protocol(name: str) -> ProtocolSpec | None:
    from suite.registry import get_protocol, protocol_names

    return get_protocol(name) if name in protocol_names() else None


def protocol_block(protocol: ProtocolSpec) -> dict[str, Any]:
    """The record's ``protocol`` object: name, embedded flag and the content the protocol hash is computed from."""
    content = json.loads(json.dumps(protocol.content(), default=list))
    return {"name": protocol.name, "embedded": protocol.embedded, **content}


def record_content(protocol_block: dict[str, Any]) -> dict[str, Any]:
    """The content part of a record's ``protocol`` block (the same keys :meth:`ProtocolSpec.content` hashes)."""
    return {key: protocol_block.get(key) for key in PROTOCOL_CONTENT_KEYS}


def comparability(name: str, protocol_block: dict[str, Any]) -> tuple[str, str | None]:
    """(label, reason it is NOT COMPARABLE or None) of a record's protocol against the registered one of ``name``.

    Protocols that are not registered (a user's own file) have no published numbers; they keep their name.
    """
    registered = registered_protocol(name)
    if registered is None:
        return name, None
    content = record_content(protocol_block)
    if content_hash(content) == registered.protocol_hash:
        return name, None
    diffs = protocol_differences(content, registered.content())
    return (f"{name}, {', '.join(diffs)}",
            f"protocol content differs from the registered {name} ({', '.join(diffs)})")
