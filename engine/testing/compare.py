"""Structural comparison with readable differences, for test expectations.

Types are compared strictly (the string "3" is not the number 3; `true` is not 1) because a mapping
that changes a type is a bug the ERP would reject.
"""

from __future__ import annotations

import difflib
import json
from typing import Any


def _same_scalar(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    return type(expected) is type(actual) and expected == actual


def differences(expected: Any, actual: Any, *, subset: bool, path: str = "") -> list[str]:
    """Where `actual` departs from `expected`; with `subset`, extra object keys are allowed."""
    where = path or "(root)"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {_show(actual)}"]
        found: list[str] = []
        for key, value in expected.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append(f"{child}: missing (expected {_show(value)})")
            else:
                found.extend(differences(value, actual[key], subset=subset, path=child))
        if not subset:
            for key in actual.keys() - expected.keys():
                child = f"{path}.{key}" if path else str(key)
                found.append(f"{child}: unexpected {_show(actual[key])}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {_show(actual)}"]
        found = []
        if len(expected) != len(actual):
            found.append(f"{where}: expected {len(expected)} item(s), got {len(actual)}")
        for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
            found.extend(differences(want, got, subset=subset, path=f"{path}[{index}]"))
        return found
    if not _same_scalar(expected, actual):
        return [f"{where}: expected {_show(expected)}, got {_show(actual)}"]
    return []


def unified(expected: Any, actual: Any) -> str:
    """A unified diff of two JSON values, keys sorted, for the eye."""
    left = json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    right = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(difflib.unified_diff(left, right, "expected", "actual", lineterm=""))


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
