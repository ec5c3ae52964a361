"""The pipeline language: a pipeline, its reply, the mapping file, and the YAML test cases.

These models are the single source of truth: the loader validates mapping files with them and
`mesbridge schema` generates the editors' JSON Schema from them. Sources (`engine.pipeline.sources`)
and steps (`engine.pipeline.steps`) are registries of kinds, one module each; their unions are built
from the registries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.expressions import SelectionField, TemplateField
from engine.pipeline.sources import Source
from engine.pipeline.sources.poll import PollSource
from engine.pipeline.steps import Step

PollSource.model_rebuild(_types_namespace={"Step": Step})  # a poll source's steps are steps too


class Model(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


# --- replies and pipelines -----------------------------------------------------------------------


class Reply(Model):
    """What the caller is answered."""

    status: int = Field(200, ge=100, le=599)
    body: TemplateField | None = None


class Pipeline(Model):
    """One flow: a source, an optional condition, steps, a reply and error handling."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    source: Source
    when: SelectionField | None = Field(None, description="JMESPath; false answers 200 'skipped'")
    steps: list[Step] = Field(default_factory=list)
    reply: Reply = Field(default_factory=Reply)
    on_error: Reply | None = Field(
        None, description="Reply on failure; `error` is in scope. Default: {message: error.message}"
    )
    trace: bool = Field(True, description="Keep a trace of each event (false: events too sensitive to keep)")


# --- tests ---------------------------------------------------------------------------------------


class MockResponse(Model):
    """A canned connector response, matched by connector, method and path, used in order."""

    connector: str
    method: str = "GET"
    path: str
    status: int = 200
    headers: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Reply headers; a list sends the header once per value (a login's two Set-Cookie)",
    )
    body: Any = None
    raw: str | None = Field(None, description="Raw response text instead of a JSON body")
    no_reply: str | None = Field(
        None,
        description="No reply at all: the request was sent and this is why none came (`the connection was "
        "lost`, a read timeout), so the outcome is unknown, as a trace of such an attempt records it",
    )
    not_sent: str | None = Field(
        None, description="The request never reached the system, for this reason (connection refused)"
    )

    def header_lines(self) -> list[tuple[str, str]]:
        """The headers as (name, value) lines, a listed header once per value."""
        return [
            (name, value)
            for name, values in self.headers.items()
            for value in (values if isinstance(values, list) else [values])
        ]


class ExpectedCall(Model):
    """An outgoing call the pipeline must make."""

    connector: str
    method: str | None = None
    path: str | None = None
    query: dict[str, Any] | None = None
    body: Any = None
    match: Literal["subset", "exact"] = "subset"


class ExpectedReply(Model):
    """The reply the caller must get."""

    status: int | None = None
    body: Any = None
    match: Literal["subset", "exact"] = "exact"


class Expect(Model):
    """What a test case asserts."""

    calls: list[ExpectedCall] | None = None
    calls_exact: bool = Field(False, description="Also require the same number of calls")
    reply: ExpectedReply | None = None
    error: str | None = Field(None, description="A substring of the error message")
    records: list[str] | None = Field(
        None, description="Poll pipelines: the keys of the records the poll delivers, in order"
    )
    cursor: Any = Field(None, description="Poll pipelines: the stored cursor after the poll")


class TestCase(Model):
    """An inbound event, the responses to mock, and what must happen."""

    __test__ = False  # not a pytest class

    name: str
    pipeline: str
    event: Any = None
    event_file: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict, description="Overrides the binding's vars")
    real_auth: bool = Field(
        False,
        description="Run the connectors' own auth kinds: their login calls are mocked like any other "
        "(by default auth is left out: a case describes a mapping, not a login)",
    )
    cursor: Any = Field(
        None,
        description="Poll pipelines without an `event`: the case is a whole poll round from this stored "
        "cursor (default: the source's initial), its listing answered by the mocked pages",
    )
    now: datetime | None = Field(
        None, description="The moment `now()` reads in this case, ISO 8601 (default: the system clock)"
    )
    verify_first: bool = Field(
        False,
        description="Run cautiously, as a reclaimed delivery or a replayed uncertain dead letter runs: "
        "each write with a `verify` looks before it sends",
    )
    refuse_unprotected: bool = Field(
        False,
        description="As a reclaimed delivery runs: a write that nothing protects (no `verify`, not "
        "idempotent) is not sent, and the run fails as uncertain",
    )
    responses: list[MockResponse] = Field(default_factory=list)
    expect: Expect


class MappingFile(Model):
    """A file under mappings/<binding>/: constants, pipelines and tests."""

    description: str = ""
    vars: dict[str, Any] = Field(default_factory=dict)
    pipelines: list[Pipeline] = Field(default_factory=list)
    tests: list[TestCase] = Field(default_factory=list)
