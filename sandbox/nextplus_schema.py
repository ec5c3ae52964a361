"""The Next Plus work-order payload (seed 000) as a type table, and its LoopBack-style validation."""

from __future__ import annotations

from typing import Any

from sandbox.loopback import ISO_8601, ValidationFailure

__all__ = ["REQUIRED", "WORKORDER", "validate_workorder"]

S, N, B, D = "string", "number", "boolean", "date"

KIT_ITEM: dict[str, Any] = {
    "sku": S,
    "quantity": N,
    "rev": S,
    "unit": S,
    "act": S,
    "issuedToKit": B,
    "manualIssue": B,
    "issuedQuantity": N,
    "serials": [{"sku": S, "serial": S}],
    "lotNumbers": [{"sku": S, "lotNumber": S, "quantity": N}],
}
ACTION: dict[str, Any] = {
    "actCode": S,
    "actDesc": S,
    "workCenter": S,
    "workCenterCode": S,
    "position": N,
    "otherId": N,
}

# Every root key of the seed 000 payload with the type its example shows.
WORKORDER: dict[str, Any] = {
    "sku": S,
    "quantity": N,
    "productRev": S,
    "workorderTypeId": S,
    "workorderNumber": S,
    "source": S,
    "name": S,
    "partDesc": S,
    "kitItems": [KIT_ITEM],
    "assignedUsers": [S],
    "groups": [S],
    "generatedSerials": [{"serial": S, "otherId": S}],
    "releasedAt": D,
    "expectedDate": D,
    "parentWorkorderNumber": S,
    "erpStatus": S,
    "erpClosed": B,
    "rmaNumber": S,
    "serviceType": S,
    "callType": S,
    "orderNumber": S,
    "orderNumberLine": S,
    "orderLine": S,
    "customer": {"accountNumber": S, "accountName": S},
    "supplier": {"name": S, "description": S},
    "project": {"description": S, "projectNumber": S},
    "purchaseOrderNumber": S,
    "purchaseOrderLine": S,
    "erpProductionStartDate": D,
    "erpProductionEndDate": D,
    "externalType": S,
    "customerDiagnosis": S,
    "description": S,
    "faultDescription": S,
    "fixDescription": S,
    "malfunctionCode": S,
    "externalId": S,
    "priority": N,
    "_actions": [ACTION],
}

# ASSUMPTION: the vendor documents no required fields; a work order without a part, a quantity or a
# number makes no sense in the MES, so these three are required ("can't be blank", code "presence").
REQUIRED = ("sku", "quantity", "workorderNumber")

# Keys the server owns: accepted in a PATCH body and ignored.
SERVER_KEYS = ("id", "createdAt", "updatedAt")


def _type_ok(kind: str, value: Any) -> bool:
    if kind == S:
        return isinstance(value, str)
    if kind == N:
        # ASSUMPTION: numbers must be JSON numbers; "1" is refused rather than coerced.
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == B:
        return isinstance(value, bool)
    return isinstance(value, str) and ISO_8601.match(value) is not None


def _check(spec: Any, value: Any, path: str, errors: ValidationFailure) -> None:
    # ASSUMPTION: null is accepted for any optional property, as LoopBack 3 does.
    if value is None:
        return
    if isinstance(spec, str):
        if not _type_ok(spec, value):
            what = "is not a valid ISO 8601 date" if spec == D else f"is not a {spec}"
            errors.add(path, what, "type" if spec != D else "date", value)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            errors.add(path, "is not an array", "type", value)
            return
        for i, item in enumerate(value):
            _check(spec[0], item, f"{path}[{i}]", errors)
    else:
        if not isinstance(value, dict):
            errors.add(path, "is not an object", "type", value)
            return
        for key, item in value.items():
            if key not in spec:
                # ASSUMPTION: embedded objects are strict like the root (LoopBack `strict: true`).
                errors.add(f"{path}.{key}", "is not defined in the model", "unknown-property", item)
            else:
                _check(spec[key], item, f"{path}.{key}", errors)


def validate_workorder(body: Any, errors: ValidationFailure) -> None:
    """Adds to `errors` every problem of a full work-order record (root strictness, types, required)."""
    if not isinstance(body, dict):
        errors.add("body", "is not an object", "type", body)
        return
    for key, value in body.items():
        if key in SERVER_KEYS:
            continue
        if key.startswith("C_"):
            continue  # custom fields are root keys C_<Name> (seed 000), any JSON value
        if key not in WORKORDER:
            # ASSUMPTION: the model is strict; an unknown root key that is not C_* is refused with
            # LoopBack 3's strict-mode message.
            errors.add(key, "is not defined in the model", "unknown-property", value)
            continue
        _check(WORKORDER[key], value, key, errors)
    for key in REQUIRED:
        if body.get(key) in (None, ""):
            errors.add(key, "can't be blank", "presence", body.get(key))
    quantity = body.get("quantity")
    if _type_ok(N, quantity) and quantity is not None and quantity <= 0:
        # ASSUMPTION: a work order for zero or fewer units is refused.
        errors.add("quantity", "must be greater than 0", "numericality", quantity)
