"""A finished run made into its trace: plain JSON, every secret masked, every body capped in size.

The document is what the store keeps, `mesbridge traces show` renders and `traces export` turns into
a test case:

    id, pipeline, binding, version, source (webhook | queue | poll | replay), event_id, received,
    duration, outcome (ok | skipped | failed | uncertain), status, reply, error, attempt, then,
    now (what the run's `now()` read, when it read it), verify_first, refuse_unprotected, event,
    steps: [{id, type, name, start, duration, status, error}],
    calls: [{step, connector, method, path, query, request, status, reply, latency, attempt,
             failure, error, login, token_rejected, end}]

`verify_first` marks a cautious run, whose writes with a `verify` looked before they sent (a reclaimed
delivery, a replayed uncertain dead letter), `refuse_unprotected` one that did not send a write nothing
protects (a reclaimed delivery); both are present only when true. `login` marks an auth kind's login
call, `token_rejected` an attempt the system refused for its token (the connector logged in again and
sent it once more); both are present only when true.

Times are seconds (`start`, `end`: since the run began). A body whose JSON is larger than the cap is
replaced by `{"$truncated": <its JSON's size in bytes>, "head": <the start of its text or JSON>}`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from engine.connectors.urls import split_call
from engine.errors import PipelineError
from engine.helpers import iso8601
from engine.recorder import Recorder
from engine.redaction import Redactor, distinct, forms
from engine.store.base import StoredTrace

__all__ = [
    "OUTCOMES",
    "SOURCES",
    "TRUNCATED",
    "Finished",
    "Masker",
    "build",
    "encode",
    "new_id",
    "outcome_of",
    "pack",
    "raw",
    "seal",
    "search_text",
    "stored",
    "stored_rows",
    "unpack",
]

log = logging.getLogger("mesbridge.traces")

OUTCOMES = ("ok", "skipped", "failed", "uncertain")
SOURCES = ("webhook", "queue", "poll", "replay")
TRUNCATED = "$truncated"
_NAMES_ONLY = Redactor()
"""Masks entries named like secrets (`password`, `token`, ...) when no secret value is known."""


def new_id() -> str:
    """A trace id: 24 hex digits, the milliseconds since 1970 (11) then 52 random bits (13).

    Ids that grow with time are appended to the store's index instead of landing anywhere in it, and
    52 random bits keep two replicas' traces of one millisecond apart. `random`'s generator is seeded
    from the OS (again in a forked child) and costs no system call per trace."""
    return f"{time.time_ns() // 1_000_000:011x}{random.getrandbits(52):013x}"


def outcome_of(error: PipelineError | None, skipped: bool) -> str:
    """`ok`, `skipped`, `failed`, or `uncertain` (the external system may have applied a write)."""
    if error is None:
        return "skipped" if skipped else "ok"
    return "uncertain" if error.kind == "uncertain" else "failed"


@dataclass(slots=True)
class Finished:
    """A traced run as it ended, before it becomes a document (which happens off the event's path)."""

    id: str
    pipeline: str
    binding: str
    version: str
    source: str
    event_id: str
    received: datetime
    event: Any
    status: int
    reply: Any
    error: PipelineError | None
    skipped: bool
    duration: float
    recorder: Recorder
    attempt: int | None = None
    then: str | None = None
    """What the queue does next with a failed delivery: `retry` or `dead`."""
    now: datetime | None = None
    """The time the run's templates read with `now()`, when they read it."""
    verify_first: bool = False
    """The run's writes with a `verify` looked before they sent."""
    refuse_unprotected: bool = False
    """The run did not send a write nothing protects (an earlier run of the event may have stopped)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return outcome_of(self.error, self.skipped)


_NAMED = (b"secret", b"password", b"token", b"authorization", b"cookie")
"""Text holding one of these (any case) may hold an entry named like a secret, which a Redactor
masks whole (the names it masks, and more)."""


class Masker:
    """Redaction and size caps for one batch of traces.

    A body is serialized once; only when its JSON holds a secret's value (as JSON writes it) or a
    name like a secret's is it walked and masked. Otherwise nothing in it needs masking, and the walk,
    the costliest part of a trace, is skipped.
    """

    def __init__(self, redactors: Iterable[Redactor]) -> None:
        self.redactors = [redactor for redactor in redactors if redactor.secrets]
        known = set().union(*(redactor.secrets for redactor in self.redactors))
        self._forms = tuple({text for secret in known for form in forms(secret) for text in _written(form)})

    def mask(self, value: Any) -> Any:
        """`value` with every secret masked (and entries named like secrets)."""
        if not self.redactors:
            return _NAMES_ONLY.redact(value)
        for redactor in self.redactors:
            value = redactor.redact(value)
        return value

    def suspect(self, data: bytes) -> bool:
        """Whether JSON text may hold a secret, or an entry named like one: then it is walked."""
        lowered = data.lower()  # a case-insensitive regex is many times slower than these finds
        for name in _NAMED:
            if name in lowered:
                return True
        return any(form in data for form in self._forms)

    def body(self, value: Any, limit: int) -> Any:
        """`value` masked; over `limit` bytes of JSON, a marker with that size and the start of its text."""
        if value is None or isinstance(value, bool | int | float):
            return value
        data = dumps(value)
        if self.suspect(data):
            value = self.mask(value)
            data = dumps(value)
        if len(data) <= limit:
            return value
        text = value if isinstance(value, str) else data.decode("utf-8")
        head = text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")
        return {TRUNCATED: len(data), "head": head}


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (orjson: the document of every trace is written so); what orjson
    refuses (a lone surrogate, an integer over 64 bits) is written by the standard library, escaped."""
    try:
        return orjson.dumps(value, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, default=str, separators=(",", ":")).encode("ascii")


def pack(finished: Finished) -> bytes | tuple[Any, ...]:
    """A finished run as it waits to be written, at the least cost to the event: its fields as
    recorded, in a tuple (`unpack` makes the document of it), as JSON when orjson writes it (and so
    reads it back exactly), else the tuple itself (a lone surrogate, an integer over 64 bits)."""
    row = _row(finished)
    try:
        return orjson.dumps(row, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return row


def _row(finished: Finished) -> tuple[Any, ...]:
    error = finished.error
    recorder = finished.recorder
    return (
        finished.id,
        finished.pipeline,
        finished.binding,
        finished.version,
        finished.source,
        finished.event_id,
        finished.received.isoformat(),
        finished.duration,
        finished.outcome,
        finished.status,
        finished.reply,
        None if error is None else _error(error),
        finished.event,
        [(m.id, m.kind, m.start, m.duration, m.status, m.name, m.error) for m in recorder.steps],
        [
            (
                step,
                end,
                r.connector,
                r.method,
                r.raw_url,
                r.base_url,
                r.raw_request,
                r.status,
                r.raw_reply,
                r.latency,
                r.attempt,
                r.failure,
                r.error,
                r.token_rejected,
            )
            for step, end, r in recorder.calls
        ],
        finished.attempt,
        finished.then,
        None if finished.now is None else iso8601(finished.now),
        finished.verify_first,
        finished.refuse_unprotected,
        finished.extra,
    )


def raw(finished: Finished) -> dict[str, Any]:
    """The document of a finished run as recorded: nothing masked, nothing capped (see `seal`)."""
    return unpack(_row(finished))


def _written(secret: str) -> tuple[bytes, ...]:
    """The bytes a secret is in a trace's JSON: as text (a bare string body) and as JSON writes it."""
    found = [secret.encode("utf-8", "surrogatepass"), json.dumps(secret)[1:-1].encode("ascii")]
    try:
        found.append(orjson.dumps(secret)[1:-1])
    except orjson.JSONEncodeError:
        pass
    return tuple(found)


def _seconds(value: float) -> float:
    return round(value, 6)


def _error(error: PipelineError) -> dict[str, Any]:
    found: dict[str, Any] = {"message": error.message, "kind": error.kind}
    for name in ("connector", "http_status"):
        value = getattr(error, name, None)
        if value:
            found[name] = value
    return found


def _call(row: Sequence[Any]) -> dict[str, Any]:
    (
        step,
        end,
        connector,
        method,
        raw_url,
        base_url,
        request,
        status,
        reply,
        latency,
        attempt,
        failure,
        error,
        token_rejected,
    ) = row
    path, query = split_call(raw_url, base_url)
    call: dict[str, Any] = {
        "step": step,
        "connector": connector,
        "method": method,
        "path": path,
        "query": query,
        "request": request,
        "status": status,
        "reply": reply,
        "latency": _seconds(latency),
        "attempt": attempt,
        "end": _seconds(end),
    }
    if failure is not None:
        call["failure"] = failure
    if error:
        call["error"] = error
    if attempt == 0:
        call["login"] = True  # an auth kind's login call, not one the pipeline asked for
    if token_rejected:
        call["token_rejected"] = True  # answered to the auth: sent again after a new login
    return call


def unpack(row: Sequence[Any]) -> dict[str, Any]:
    """The raw document of a packed run (the tuple `pack` made, or its JSON read back)."""
    (id, pipeline, binding, version, source, event_id, received, duration, outcome, status, reply) = row[:11]
    error, event, marks, calls, attempt, then, now, verify_first, refuse_unprotected, extra = row[11:]
    steps = []
    for mark_id, kind, start, took, mark_status, name, mark_error in marks:
        step: dict[str, Any] = {
            "id": mark_id,
            "type": kind,
            "start": _seconds(start),
            "duration": _seconds(took),
            "status": mark_status,
        }
        if name:
            step["name"] = name
        if mark_error is not None:
            step["error"] = mark_error
        steps.append(step)
    document: dict[str, Any] = {
        "id": id,
        "pipeline": pipeline,
        "binding": binding,
        "version": version,
        "source": source,
        "event_id": event_id,
        "received": received,
        "duration": _seconds(duration),
        "outcome": outcome,
        "status": status,
        "reply": reply,
        "error": error,
        "event": event,
        "steps": steps,
        "calls": [_call(call) for call in calls],
    }
    if attempt is not None:
        document["attempt"] = attempt
    if then is not None:
        document["then"] = then
    if now is not None:
        document["now"] = now
    if verify_first:  # a cautious run: each write with a `verify` looked first
        document["verify_first"] = True
    if refuse_unprotected:
        document["refuse_unprotected"] = True
    document.update(extra)
    return document


def _masked(document: dict[str, Any], masker: Masker, limit: int) -> dict[str, Any]:
    """A raw document (as `raw` made it, or as its JSON reads back) with every body masked and capped
    and every message, path and query masked."""
    body, mask = masker.body, masker.mask
    found = dict(document)
    found["reply"] = body(document["reply"], limit)
    found["event"] = body(document["event"], limit)
    if document["error"] is not None:
        found["error"] = {**document["error"], "message": mask(document["error"]["message"])}
    found["steps"] = [
        {**step, "error": mask(step["error"])} if "error" in step else step for step in document["steps"]
    ]
    calls = []
    for call in document["calls"]:
        call = dict(call)
        call["path"] = mask(call["path"])
        # by value only, as the URL was: a parameter named like a secret (`page_token`) is a cursor
        query: dict[str, Any] = {}
        for name, value in call["query"].items():
            query[distinct(mask(name), query)] = mask(value)
        call["query"] = query
        call["request"] = body(call["request"], limit)
        call["reply"] = body(call["reply"], limit)
        if "error" in call:
            call["error"] = body(call["error"], limit)
        calls.append(call)
    found["calls"] = calls
    return found


def seal(
    document: dict[str, Any], data: bytes, masker: Masker, max_body_bytes: int
) -> tuple[dict[str, Any], bytes]:
    """A raw document and its JSON (`data`) made fit to keep: redacted by `masker`, bodies capped.

    Most runs need neither: when the JSON holds no secret (nor a name like one) and is within the cap
    as a whole, so is every body in it, and that is the document. Otherwise each body is masked and
    capped on its own.
    """
    if len(data) <= max_body_bytes and not masker.suspect(data):
        return document, data
    document = _masked(document, masker, max_body_bytes)
    return document, dumps(document)


def encode(finished: Finished, masker: Masker, max_body_bytes: int) -> tuple[dict[str, Any], bytes]:
    """The trace document of a finished run, redacted by `masker` and with bodies capped, and its JSON."""
    document = raw(finished)
    return seal(document, dumps(document), masker, max_body_bytes)


def build(finished: Finished, masker: Masker, max_body_bytes: int) -> dict[str, Any]:
    """The trace document of a finished run, redacted by `masker` and with bodies capped."""
    return encode(finished, masker, max_body_bytes)[0]


def stored(document: dict[str, Any], data: bytes | None = None) -> StoredTrace:
    """A trace document as the store keeps it (also to copy traces from one store to another);
    `data` is its JSON when it is at hand."""
    return StoredTrace(
        id=document["id"],
        received=datetime.fromisoformat(document["received"]),
        pipeline=document["pipeline"],
        event_id=document["event_id"],
        source=document["source"],
        outcome=document["outcome"],
        status=document.get("status"),
        duration=document["duration"],
        version=document["version"],
        search=search_text(document),
        document=(dumps(document) if data is None else data).decode("utf-8"),
    )


def stored_rows(
    max_body_bytes: int, secrets: list[str], packed: list[bytes | tuple[Any, ...]]
) -> tuple[list[StoredTrace], int]:
    """Runs, as `pack` left them, made into store rows: `secrets` masked, bodies capped to
    `max_body_bytes`; and how many could not be read (logged and left out)."""
    masker = Masker([Redactor(secrets)])
    rows, dropped = [], 0
    for item in packed:
        try:
            document = unpack(orjson.loads(item) if isinstance(item, bytes) else item)
            rows.append(stored(*seal(document, dumps(document), masker, max_body_bytes)))
        except Exception:  # noqa: BLE001 - one odd trace must not lose the batch
            log.exception("cannot record a trace")
            dropped += 1
    return rows, dropped


def search_text(document: dict[str, Any]) -> str:
    """What free-text search looks in: the event, the event id, the reply and the error, lowercased
    (the id and the error as written, so that a quote in an ERP's message is found as typed)."""
    error = (document.get("error") or {}).get("message", "")
    bodies = dumps([document.get("event"), document.get("reply")]).decode("utf-8", "replace")
    return "\n".join((document.get("event_id") or "", bodies, error)).lower()
