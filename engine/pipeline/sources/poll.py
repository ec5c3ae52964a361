"""`kind: poll`: a schedule that reads new and changed records from a connector, since a cursor.

The poller in the service decides when to poll and where the records go; this module knows the
source's config, how to ask the connector, and how to read a record's key, version and cursor value.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from croniter import CroniterBadDateError, croniter
from pydantic import Field, NonNegativeFloat, NonNegativeInt, field_validator, model_validator

from engine.connectors.models import Method
from engine.errors import ExpressionError
from engine.expressions import PathTemplateField, SelectionField, TemplateField
from engine.expressions.variables import Variables
from engine.helpers import Clock, RunInstant, parse_datetime

from ._base import SOURCES, SourceModel, fingerprint

if TYPE_CHECKING:
    from engine.pipeline.steps import Step


class Schedule(SourceModel):
    """When a poller runs: every N seconds, or a cron expression."""

    every: float | None = Field(None, gt=0, description="Seconds between polls")
    cron: str | None = Field(None, description="Cron expression, e.g. '*/5 * * * *'")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        """A cron expression the poller can compute its next run from, as it does after each round."""
        if value is None:
            return value
        if len(value.split()) not in (5, 6):
            raise ValueError(f"invalid cron expression {value!r}: expected 5 fields")
        try:
            croniter(value, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"cron expression {value!r} never runs: no such date") from None
        except ValueError as exc:
            reason = str(exc).removeprefix(f"[{value}] ").removeprefix("is not acceptable, ")
            raise ValueError(f"invalid cron expression {value!r}: {reason}") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        """Both would leave unsaid which one the poller follows."""
        if self.every is not None and self.cron is not None:
            raise ValueError("give `every` or `cron`, not both")
        return self


class Cursor(SourceModel):
    """The incremental cursor of a poll: which record field, and its value before the first poll."""

    field: SelectionField = Field(description="JMESPath over a record giving its cursor value")
    initial: Any = Field(description="Cursor before the first poll")
    format: str | None = Field(
        None,
        description="strftime format the cursor is sent in (e.g. '%Y-%m-%d %H:%M:%S'); default: the "
        "stored value's own form, kept through `overlap`",
    )


@SOURCES.register()
class PollSource(SourceModel):
    """A schedule that reads new and changed records from a connector."""

    kind: Literal["poll"]
    connector: str
    operation: str | None = None
    method: Method = "GET"
    path: PathTemplateField | None = Field(
        default=None, description="Path template (each {{ value }} one segment's data); `cursor` is in scope"
    )
    query: TemplateField | None = Field(default=None, description="Query template; `cursor` is in scope")
    body: TemplateField | None = Field(default=None, description="Body template; `cursor` is in scope")
    args: TemplateField | None = Field(default=None, description="Arguments for a named operation")
    items: SelectionField | None = Field(None, description="Where the records are in the result")
    schedule: Schedule = Field(default_factory=lambda: Schedule(every=60))
    cursor: Cursor | None = None
    key: SelectionField = Field(description="JMESPath giving a record's identity")
    version: SelectionField | None = Field(
        None, description="JMESPath giving a record's version; a changed version is delivered again"
    )
    overlap: NonNegativeFloat | NonNegativeInt | None = Field(
        None, description="Re-read the edge: the cursor sent is moved back by this (seconds, or a number)"
    )
    steps: list[Step] = Field(
        default_factory=list,
        description="Steps run before each listing (a login, a lookup); the request's templates see "
        "their results as they see `cursor` and `vars`",
    )


@dataclass(frozen=True)
class PolledRecord:
    """One record read by a poll, with its identity and where it puts the cursor."""

    key: str
    version: str
    cursor: Any
    record: Any


def effective_cursor(source: PollSource, cursor: Any) -> Any:
    """The cursor sent to the system: the stored one moved back by `overlap` to re-read the edge, in
    the stored value's own form (`2026-11-20 10:00:00` stays that form) or the source's `format`."""
    if cursor is None:
        cursor = source.cursor.initial if source.cursor is not None else None
    overlap = source.overlap
    written = source.cursor.format if source.cursor is not None else None
    if cursor is None or (not overlap and written is None):
        return cursor
    if isinstance(cursor, int | float) and not isinstance(cursor, bool):
        return cursor - (overlap or 0)
    try:
        moment = parse_datetime(cursor) - timedelta(seconds=float(overlap or 0))
    except (TypeError, ValueError):
        return cursor
    if written is not None:
        return moment.strftime(written)
    return like(moment, str(cursor).strip())


def like(moment: datetime, original: str) -> str:
    """`moment` written the way `original` is: date only or date and time, `T` or a space, the same
    number of second fractions, and `Z`, the same offset, or none."""
    if len(original) == 10:
        return moment.date().isoformat()
    offset = original[19:].lstrip(".0123456789")
    fraction = len(original[19:]) - len(offset) - 1 if original[19:20] == "." else 0
    if offset in ("Z", "z"):
        moment, suffix = moment.astimezone(UTC), offset
    elif offset:
        stated = parse_datetime(original).utcoffset() or timedelta(0)
        moment = moment.astimezone(timezone(stated))
        suffix = offset
    else:
        suffix = ""
    text = moment.strftime(f"%Y-%m-%d{original[10]}%H:%M:%S")
    if fraction:
        text += "." + f"{moment.microsecond:06d}"[:fraction].ljust(fraction, "0")
    return text + suffix


def later(a: Any, b: Any) -> Any:
    """The later of two cursor values (None loses); dates compare as moments, numbers as numbers."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, int | float) and isinstance(b, int | float):
        return max(a, b)
    try:
        return a if parse_datetime(a) >= parse_datetime(b) else b
    except ValueError:
        return max(str(a), str(b))


async def read_changes(
    source: PollSource,
    connectors: Mapping[str, Any],
    cursor: Any,
    variables: Mapping[str, Any],
    *,
    clock: Clock | None = None,
) -> AsyncIterator[PolledRecord]:
    """Every record the source yields from `cursor` on, as they are paged in (after its steps);
    `clock` is the time its templates read with `now()` (default: the system clock)."""
    connector = connectors[source.connector]
    context: dict[str, Any] = {
        "cursor": effective_cursor(source, cursor),
        "vars": Variables(variables, f"{source.connector} poll, vars").value(),
        "now": RunInstant(clock),
    }
    if source.steps:
        from engine.pipeline.executor import StepScope, run_steps  # the executor imports the sources

        scope = StepScope.of(f"{source.connector} poll", source.steps, connectors, "source.steps")
        context = await run_steps(scope, source.steps, context)
    operation = connector.config.operations.get(source.operation) if source.operation else None
    if operation is not None or source.args is not None:
        context["args"] = source.args.render(context) if source.args is not None else {}

    def pick(name: str) -> Any:
        own = getattr(source, name)
        template = own if own is not None else getattr(operation, name, None)
        return None if template is None else template.render(context)

    method = source.method
    if operation is not None and "method" not in source.model_fields_set:
        method = operation.method
    async for item in connector.iterate(
        method, str(pick("path") or ""), query=pick("query"), body=pick("body")
    ):
        records = source.items.search(item) if source.items is not None else item
        if records is None and source.items is not None:
            raise ExpressionError(
                f"the listing holds nothing at items ({source.items.source!r}): "
                f"{json.dumps(item, ensure_ascii=False)[:200]}"
            )
        for record in records if isinstance(records, list) else [records]:
            yield describe(source, record)


def describe(source: PollSource, record: Any) -> PolledRecord:
    """A record's key, version and cursor value, as the source's expressions read them."""
    key = source.key.search(record)
    if key is None or key == "":
        raise ExpressionError(f"record has no key ({source.key.source!r}): {json.dumps(record)[:200]}")
    version_value = source.version.search(record) if source.version is not None else None
    if version_value is None:
        version = fingerprint(record)
    else:
        version = str(version_value)
    cursor = source.cursor.field.search(record) if source.cursor is not None else None
    return PolledRecord(str(key), version, cursor, record)
