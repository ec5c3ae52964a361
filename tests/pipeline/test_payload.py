"""Webhook payload schemas: located load errors, field-naming violations, the shipped seed schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config.root import load_project
from engine.errors import SchemaFileError
from engine.pipeline.payload import PayloadSchema, load_payload_schema
from tests.service.conftest import write_root

REPO = Path(__file__).resolve().parents[2]


def test_missing_or_invalid_schema_is_a_located_check_error(tmp_path: Path) -> None:
    root = write_root(tmp_path)
    assert load_project(root, environ={}).ok
    (root / "schemas" / "wo.json").write_text(json.dumps({"type": "object", "oneOf": []}))
    diags = [d for d in load_project(root, environ={}).diagnostics if d.severity == "error"]
    assert len(diags) == 1 and "unsupported keyword(s) oneOf" in diags[0].message
    assert diags[0].file == "mappings/test/workorders.yaml" and diags[0].line > 1
    (root / "schemas" / "wo.json").unlink()
    diags = load_project(root, environ={}).diagnostics
    assert any("schema file not found: schemas/wo.json" in d.message for d in diags)


def test_violations_name_the_field() -> None:
    schema = PayloadSchema(
        {
            "type": "object",
            "required": ["a"],
            "additionalProperties": False,
            "properties": {
                "a": {"type": ["string", "null"], "enum": ["x", "y", None]},
                "list": {"type": "array", "items": {"type": "integer"}},
            },
        }
    )
    assert schema.errors({"a": None}) == []
    assert schema.errors({"a": "z", "list": [1, "2"], "b": 1}) == [
        'a must be one of "x", "y", null, got "z"',
        "list[1] must be integer, got string",
        "b is not an expected field",
    ]
    assert schema.errors({}) == ["a is required"]
    with pytest.raises(SchemaFileError):
        PayloadSchema({"type": "strin"})


@pytest.mark.parametrize("name", ["device", "item-attach", "operation"])
def test_shipped_integration_builder_schemas_accept_the_seed_examples(name: str) -> None:
    schema = load_payload_schema(REPO, f"schemas/integration-builder/{name}.json")
    ids = {
        "workorderId": "550e8400-e29b-41d4-a716-446655440000",
        "stockId": "550e8400-e29b-41d4-a716-446655440001",
        "sessionId": "550e8400-e29b-41d4-a716-446655440002",
        "workorderExternalId": None,
    }
    examples = {
        "device": {
            "type": "update",
            "workorderNumber": "WO-12345",
            "sku": "DEVICE-SKU",
            "serial": "SN12345",
            "oldSerial": "SN12344",
            "externalId": "ERP-ID-123",
        },
        "item-attach": {
            "type": "add",
            "workorderNumber": "WO-12345",
            "sku": "DEVICE-SKU",
            "serial": "SN12345",
            "externalId": "ERP-ID-123",
            "item": {"sku": "COMPONENT-SKU", "quantity": 5, "serial": "COMP-SN-123"},
        },
        "operation": {
            "type": "add",
            "sku": "DEVICE-SKU",
            "workorderNumber": "WO-12345",
            "externalId": None,
            "actCode": "ASSY",
            "workCenterCode": "WC-123",
            "position": 10,
            "validQty": 1,
            "invalidQty": 0,
            "operationExternalId": None,
        },
    }
    assert schema.errors({**examples[name], **ids}) == []
    assert schema.errors({**examples[name], "type": "explode"})
