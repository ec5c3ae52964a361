"""What changes between two offline runs of one event: the calls, field by field, and the result.

Values are compared strictly, as the ERP reads them: `"3"` is not `3`, `true` is not `1`, `1` is not
`1.0`. Objects are compared key by key and lists index by index; a key or an element present on one
side only is *added* or *removed*. Calls are aligned on (connector, method, path) with
`difflib.SequenceMatcher`; inside a stretch that differs, a call is paired with the next one to the same
connector with the same method whose path and content look alike (its path changed), and the others are
added or removed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.testing.mock import RecordedCall

__all__ = [
    "MISSING",
    "CallChange",
    "Change",
    "Recorded",
    "RunDiff",
    "align_calls",
    "compare_runs",
    "field_changes",
    "json_path",
]

Key = str | int


class _Missing:
    """The side of a change where the field is absent."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Change:
    """One field that differs: where it is, and its value before and after (`MISSING` when absent)."""

    keys: tuple[Key, ...]
    before: Any = MISSING
    after: Any = MISSING

    @property
    def kind(self) -> Literal["added", "removed", "changed"]:
        if self.before is MISSING:
            return "added"
        return "removed" if self.after is MISSING else "changed"

    @property
    def path(self) -> str:
        return json_path(self.keys)


_PLAIN = re.compile(r"^[$@]?[^\W\d][\w$@-]*$")


def json_path(keys: Sequence[Key]) -> str:
    """`body.Lines[0].QTY`; a key that is not a plain name is quoted: `body["unit price"]`."""
    text = ""
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _PLAIN.match(key):
            text += f".{key}" if text else key
        else:
            text += f"[{json.dumps(key, ensure_ascii=False)}]"
    return text


def _same(before: Any, after: Any) -> bool:
    if type(before) is not type(after):
        return False
    if isinstance(before, float) and before != before:  # NaN: the same value on both sides
        return after != after
    return bool(before == after)


def field_changes(before: Any, after: Any, keys: tuple[Key, ...] = ()) -> list[Change]:
    """Every field where `after` departs from `before`, deepest first; none when they are equal."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[Change] = []
        for key, value in before.items():
            if key in after:
                found.extend(field_changes(value, after[key], keys + (key,)))
            else:
                found.append(Change(keys + (key,), value, MISSING))
        found.extend(
            Change(keys + (key,), MISSING, value) for key, value in after.items() if key not in before
        )
        return found
    if isinstance(before, list) and isinstance(after, list):
        found = []
        for index, (old, new) in enumerate(zip(before, after, strict=False)):
            found.extend(field_changes(old, new, keys + (index,)))
        found.extend(Change(keys + (i,), before[i], MISSING) for i in range(len(after), len(before)))
        found.extend(Change(keys + (i,), MISSING, after[i]) for i in range(len(before), len(after)))
        return found
    return [] if _same(before, after) else [Change(keys, before, after)]


@dataclass(frozen=True)
class CallChange:
    """One call of the two aligned runs: made by both (`same` or `changed`), or by one only.

    `number_before` and `number_after` are its 1-based positions among the calls of each run.
    """

    kind: Literal["same", "changed", "added", "removed"]
    before: RecordedCall | None
    after: RecordedCall | None
    number_before: int | None = None
    number_after: int | None = None
    fields: tuple[Change, ...] = ()

    @property
    def call(self) -> RecordedCall:
        """The call as made after, else before."""
        found = self.after or self.before
        assert found is not None
        return found


def _content(call: RecordedCall, ignore_headers: Collection[str]) -> dict[str, Any]:
    ignored = {name.lower() for name in ignore_headers}
    headers = {name: value for name, value in call.headers.items() if name.lower() not in ignored}
    return {"path": call.path, "query": call.query or {}, "headers": headers, "body": call.body}


def _pair(
    before: RecordedCall, after: RecordedCall, numbers: tuple[int, int], ignore_headers: Collection[str]
) -> CallChange:
    changes = field_changes(_content(before, ignore_headers), _content(after, ignore_headers))
    kind: Literal["same", "changed"] = "changed" if changes else "same"
    return CallChange(kind, before, after, numbers[0] + 1, numbers[1] + 1, tuple(changes))


def _leaves(value: Any, keys: tuple[Key, ...] = ()) -> set[tuple[str, str]]:
    if isinstance(value, dict) and value:
        return {leaf for key, item in value.items() for leaf in _leaves(item, keys + (key,))}
    if isinstance(value, list) and value:
        return {leaf for index, item in enumerate(value) for leaf in _leaves(item, keys + (index,))}
    return {(json_path(keys), json.dumps(value, sort_keys=True, default=str))}


def _similar(before: RecordedCall, after: RecordedCall) -> bool:
    """Whether two calls to one connector with one method, at different paths, are one call whose path
    changed: their paths look alike and so do their query and body, on average."""
    paths = difflib.SequenceMatcher(None, before.path, after.path, autojunk=False).ratio()
    old, new = _leaves([before.query, before.body]), _leaves([after.query, after.body])
    content = len(old & new) / len(old | new)
    return (paths + content) / 2 >= 0.5


def align_calls(
    before: Sequence[RecordedCall], after: Sequence[RecordedCall], *, ignore_headers: Collection[str] = ()
) -> list[CallChange]:
    """The two runs' calls side by side, in order; `ignore_headers` are not compared (volatile ones)."""
    keys_before = [(c.connector, c.method.upper(), c.path) for c in before]
    keys_after = [(c.connector, c.method.upper(), c.path) for c in after]
    matcher = difflib.SequenceMatcher(None, keys_before, keys_after, autojunk=False)
    aligned: list[CallChange] = []

    def removed(i: int) -> CallChange:
        return CallChange("removed", before[i], None, number_before=i + 1)

    def added(j: int) -> CallChange:
        return CallChange("added", None, after[j], number_after=j + 1)

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            aligned.extend(
                _pair(before[i], after[j], (i, j), ignore_headers)
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        position = j1
        for i in range(i1, i2):
            target = keys_before[i][:2]
            match = next(
                (
                    j
                    for j in range(position, j2)
                    if keys_after[j][:2] == target and _similar(before[i], after[j])
                ),
                None,
            )
            if match is None:
                aligned.append(removed(i))
                continue
            aligned.extend(added(j) for j in range(position, match))
            aligned.append(_pair(before[i], after[match], (i, match), ignore_headers))
            position = match + 1
        aligned.extend(added(j) for j in range(position, j2))
    return aligned


@dataclass(frozen=True)
class Recorded:
    """What one config root did with one event: the calls it made, and its result as plain data
    (the reply and the error; for a poll round the records delivered, the cursor and the errors)."""

    calls: list[RecordedCall]
    result: dict[str, Any]


@dataclass
class RunDiff:
    """The two runs of one event compared: every call aligned, and the result's changed fields."""

    calls: list[CallChange] = field(default_factory=list)
    result: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.result) or any(call.kind != "same" for call in self.calls)

    @property
    def changed_calls(self) -> list[CallChange]:
        return [call for call in self.calls if call.kind != "same"]


def compare_runs(before: Recorded, after: Recorded, *, ignore_headers: Collection[str] = ()) -> RunDiff:
    """How `after` departs from `before`: calls aligned and compared, then the results."""
    return RunDiff(
        align_calls(before.calls, after.calls, ignore_headers=ignore_headers),
        field_changes(before.result, after.result),
    )
