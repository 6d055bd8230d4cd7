"""Stored reference results (``suite/reference_results/*.yaml``): published numbers, derived counts and measured bands.

Every number carries its source, a status saying how we know it, and (where a run of ours can be compared with it) a
tolerance, so ``suite verify`` can say PASS / FAIL / NOT COMPARABLE without guessing. The schema is documented in
``suite/reference_results/README.md``; the loader rejects anything else with a one-line error naming the file, the
entry index and the key, because a silently ignored typo in a reference file would turn a failing check into a
skipped one.

Units: accuracy metrics (any metric whose name contains ``acc``) are stored in percent, as papers print them, with
``std`` and ``tolerance.abs`` in percentage points; run records hold fractions and are converted on comparison. All
other metrics are stored in the record's own unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.errors import SuiteError
from suite.records import read_regular_file
from suite.specs import load_yaml

REFERENCES_DIR = Path(__file__).resolve().parent / "reference_results"  # shipped inside the package
STATUSES = ("quoted", "derived", "secondary", "measured")
SELECTIONS = ("mean", "best")
ENTRY_KEYS = ("protocol", "protocol_version", "method", "variant", "metric", "value", "std", "seeds", "kernel_size",
              "source", "status", "tolerance", "comparable", "select", "selection", "note")
# How the source picked the model its test number belongs to; the leaderboard labels the ones that leak the test set.
MODEL_SELECTIONS = {
    "best-valid": "checkpoint of the best validation epoch, test scored once",
    "last-epoch": "model after the last epoch",
    "best-test-epoch": "best test accuracy over epochs (leaks the test set)",
    "valid-is-test": "selected on a validation split that is the test split (leaks the test set)",
    "official-max": "max(test now, test at best valid), the released code's metric (leaks the test set)",
    "unstated": "the source does not say",
}
LEAKING_SELECTIONS = ("best-test-epoch", "valid-is-test", "official-max")
REQUIRED_KEYS = ("protocol", "method", "metric", "value", "source", "status")
FILE_KEYS = ("entries", "description", "protocols")
MAX_REFERENCE_BYTES = 8 * 1024 * 1024
CLAIMS_FILE = "claims.yaml"  # relations between methods (suite/claims.py), not reference entries


def is_accuracy(metric: str) -> bool:
    """Accuracy metrics are fractions in records and percent in reference files (the one rule for units)."""
    return "acc" in metric


@dataclass(frozen=True)
class Reference:
    """One stored number about one method on one protocol."""

    protocol: str
    method: str
    variant: tuple[str, ...] | None
    metric: str
    value: float
    source: str
    status: str
    std: float | None = None
    seeds: int | tuple[int, ...] | None = None
    kernel_size: int | None = None
    tolerance_abs: float | None = None
    tolerance_rel: float | None = None
    comparable: bool = True
    select: str = "mean"
    selection: str | None = None
    protocol_version: int | None = None
    note: str = ""
    file: str = ""
    index: int = -1

    @property
    def where(self) -> str:
        return f"{self.file}: entries[{self.index}]"

    @property
    def n_seeds(self) -> int | None:
        if self.seeds is None:
            return None
        return self.seeds if isinstance(self.seeds, int) else len(self.seeds)

    @property
    def percent(self) -> bool:
        return is_accuracy(self.metric)

    @property
    def leaks_test(self) -> bool:
        """The source selected its model with the test set: not comparable with a clean number."""
        return self.selection in LEAKING_SELECTIONS

    @property
    def checkable(self) -> bool:
        """Ours (a registry variant) and comparable: verify compares runs with it."""
        return self.variant is not None and self.comparable

    def tolerance(self) -> float:
        """Allowed absolute difference, in the reference's unit (points for accuracies)."""
        if self.tolerance_abs is not None:
            return self.tolerance_abs
        if self.tolerance_rel is not None:
            return self.tolerance_rel * abs(self.value)
        raise SuiteError(f"{self.where}: no tolerance")

    def tolerance_text(self) -> str:
        if self.tolerance_abs is not None:
            unit = " points" if self.percent else ""
            return f"±{_number(self.tolerance_abs, self.percent)}{unit}"
        if self.tolerance_rel is not None:
            return f"±{100 * self.tolerance_rel:g}% of the value"
        return "none"

    def value_text(self) -> str:
        text = _number(self.value, self.percent) + ("%" if self.percent else "")
        if self.std is not None:
            text += f" ± {_number(self.std, self.percent)}"
        return text


def _number(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.2f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _fail(where: str, message: str) -> SuiteError:
    return SuiteError(f"{where}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _declared_protocols(data: Mapping[str, Any], file: str, builtin: bool) -> set[str] | None:
    """The protocols a file says its entries are about (``protocols: [gsc, ssc]``), or None when it does not say.

    The suite's own files may only name registered protocols (suite/protocols/*.yaml): a typo is an error, and a new
    protocol needs only its YAML file and its entries here, no code.
    """
    from suite.registry import protocol_names

    declared = data.get("protocols")
    registered = set(protocol_names())
    if declared is None:
        return registered if builtin else None
    if not isinstance(declared, list) or not declared or not all(isinstance(p, str) and p for p in declared):
        raise SuiteError(f"{file}: protocols: must be a non-empty list of protocol names, got {declared!r}")
    for i, name in enumerate(declared):
        if builtin and name not in registered:
            raise SuiteError(f"{file}: protocols[{i}]: unknown protocol {name!r}; registered: "
                             f"{', '.join(sorted(registered))}")
    return set(declared)


def _entry(raw: Any, file: str, index: int, protocols: set[str] | None) -> Reference:
    where = f"{file}: entries[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, f"expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(ENTRY_KEYS))
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown key; known keys: {', '.join(ENTRY_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in raw or raw[key] is None or raw[key] == "":
            raise _fail(f"{where}.{key}", "missing (every entry needs " + ", ".join(REQUIRED_KEYS) + ")")
    for key in ("protocol", "method", "metric", "source", "status"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise _fail(f"{where}.{key}", f"must be a non-empty string, got {raw[key]!r}")
    protocol, metric = raw["protocol"], raw["metric"]
    if protocols is not None and protocol not in protocols:
        raise _fail(f"{where}.protocol", f"unknown protocol {protocol!r}; known: {', '.join(sorted(protocols))}")
    if raw["status"] not in STATUSES:
        raise _fail(f"{where}.status", f"{raw['status']!r} is not one of {', '.join(STATUSES)}")

    value = raw["value"]
    if not _is_number(value):
        raise _fail(f"{where}.value", f"must be a number, got {value!r}")
    if is_accuracy(metric) and not 1.0 < value <= 100.0:
        raise _fail(f"{where}.value", f"{metric} is stored in percent (1, 100], got {value!r}"
                    + (" (a fraction? write 95.58, not 0.9558)" if 0 <= value <= 1 else ""))
    std = raw.get("std")
    if std is not None and (not _is_number(std) or std < 0):
        raise _fail(f"{where}.std", f"must be a non-negative number, got {std!r}")

    variant = raw.get("variant")
    if variant is not None:
        names = [variant] if isinstance(variant, str) else variant
        if not isinstance(names, list) or not names or not all(isinstance(v, str) and v for v in names):
            raise _fail(f"{where}.variant", f"must be a variant name, a list of names, or null; got {variant!r}")
        variant = tuple(names)

    seeds = raw.get("seeds")
    if seeds is not None:
        ok = (isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0) or (
            isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds))
        if not ok:
            raise _fail(f"{where}.seeds", f"must be a positive count or a list of seeds, got {seeds!r}")
        seeds = seeds if isinstance(seeds, int) else tuple(seeds)

    kernel_size = raw.get("kernel_size")
    if kernel_size is not None and not (isinstance(kernel_size, int) and not isinstance(kernel_size, bool)
                                        and kernel_size > 0 and kernel_size % 2 == 1):
        raise _fail(f"{where}.kernel_size", f"must be a positive odd integer (D in steps), got {kernel_size!r}")
    version = raw.get("protocol_version")
    if version is not None and not (isinstance(version, int) and not isinstance(version, bool)):
        raise _fail(f"{where}.protocol_version", f"must be an integer, got {version!r}")

    comparable = raw.get("comparable", True)
    if not isinstance(comparable, bool):
        raise _fail(f"{where}.comparable", f"must be true or false, got {comparable!r}")
    note = raw.get("note") or ""
    if not isinstance(note, str):
        raise _fail(f"{where}.note", f"must be a string, got {note!r}")
    if not comparable and not note.strip():
        raise _fail(f"{where}.note", "comparable: false needs a note saying why (verify prints it as the reason)")
    select = raw.get("select", "mean")
    if select not in SELECTIONS:
        raise _fail(f"{where}.select", f"{select!r} is not one of {', '.join(SELECTIONS)}")

    selection = raw.get("selection")
    if selection is not None and selection not in MODEL_SELECTIONS:
        raise _fail(f"{where}.selection", f"{selection!r} is not one of {', '.join(MODEL_SELECTIONS)}")

    tol_abs = tol_rel = None
    tolerance = raw.get("tolerance")
    if tolerance is not None:
        if not isinstance(tolerance, Mapping) or len(tolerance) != 1 or next(iter(tolerance)) not in ("abs", "rel"):
            raise _fail(f"{where}.tolerance", f"must be {{abs: x}} or {{rel: x}}, got {tolerance!r}")
        kind, amount = next(iter(tolerance.items()))
        if not _is_number(amount) or amount < 0:
            raise _fail(f"{where}.tolerance.{kind}", f"must be a non-negative number, got {amount!r}")
        tol_abs, tol_rel = (amount, None) if kind == "abs" else (None, amount)
    elif variant is not None and comparable:
        raise _fail(f"{where}.tolerance", "missing: an entry for one of our variants needs {abs: x} or {rel: x} "
                    "(or comparable: false with a note)")

    return Reference(
        protocol=protocol, method=raw["method"].strip(), variant=variant, metric=metric, value=float(value),
        source=raw["source"].strip(), status=raw["status"], std=None if std is None else float(std), seeds=seeds,
        kernel_size=kernel_size, tolerance_abs=tol_abs, tolerance_rel=tol_rel, comparable=comparable, select=select,
        selection=selection, protocol_version=version, note=note.strip(), file=file, index=index,
    )


def load_reference_file(path: Path) -> list[Reference]:
    """Parse and validate one reference file; an empty ``entries: []`` is valid (bands not measured yet)."""
    file = str(path)
    try:
        text = read_regular_file(path, MAX_REFERENCE_BYTES, follow_links=True).decode("utf-8")
    except UnicodeDecodeError as err:
        raise SuiteError(f"{file}: not UTF-8 text (byte {err.start})") from None
    data = load_yaml(text, file)
    if not isinstance(data, Mapping):
        raise SuiteError(f"{file}: expected a mapping with an 'entries' list at the top level")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise SuiteError(f"{file}: unknown top-level key {unknown[0]!r}; known: {', '.join(FILE_KEYS)}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise SuiteError(f"{file}: 'entries' must be a list (possibly empty), got {type(entries).__name__}")
    # Entries may only name the protocols their file declares, and the suite's own files only registered protocols
    # (catches typos); a user's reference directory may describe protocols of their own, which then simply have no
    # runs until they are run.
    protocols = _declared_protocols(data, file, Path(file).resolve().parent == REFERENCES_DIR.resolve())
    return [_entry(raw, file, i, protocols) for i, raw in enumerate(entries)]


def load_references(references_dir: Path | None = None) -> list[Reference]:
    """Every entry of every ``*.yaml`` in ``references_dir`` (default: the ones shipped in suite/reference_results/)."""
    directory = Path(references_dir) if references_dir is not None else REFERENCES_DIR
    if not directory.is_dir():
        raise SuiteError(f"{directory}: reference results directory does not exist")
    refs: list[Reference] = []
    for path in sorted(p for p in directory.glob("*.yaml") if p.name != CLAIMS_FILE):
        refs.extend(load_reference_file(path))
    return refs


def references_for(protocol: str, references_dir: Path | None = None) -> list[Reference]:
    """The stored references about ``protocol``, in file order."""
    return [ref for ref in load_references(references_dir) if ref.protocol == protocol]
