"""The run-record JSON Schema as a reader without our code uses it (jsonschema, draft 2020-12)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@cache
def validator() -> jsonschema.Draft202012Validator:
    text = resources.files("suite").joinpath("schemas/run-record.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_against_schema(record: Any) -> None:
    """Raise jsonschema.ValidationError (naming the field path) if ``record`` does not match the schema."""
    validator().validate(json.loads(json.dumps(record, allow_nan=False)))
