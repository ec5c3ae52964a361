"""The pipeline language: sources, steps, replies and tests, as pydantic models.

These models are the single source of truth: the loader validates mapping files with them and
`mesbridge schema` generates the editors' JSON Schema from them. A step is recognised by the key that
names it (`set`, `call`, `switch`, `if`, `for_each`, `fail`); every other field is optional.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from engine.expressions import SelectionField, TemplateField
from engine.suggest import closest

_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
RESERVED_NAMES = frozenset({"event", "vars", "error", "loop", "args", "now", "lookup"})


class Model(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


# --- sources -------------------------------------------------------------------------------------


class SharedSecretAuth(Model):
    """The caller sends a shared secret in a header, or in the query when it can only be given a URL."""

    kind: Literal["shared_secret"]
    in_: Literal["header", "query"] = Field("header", alias="in", description="Where the secret travels")
    name: str = Field("X-Mesbridge-Token", description="Header or query parameter carrying the secret")
    secret: str = Field(description="The expected secret; use ${VAR}")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BasicCallerAuth(Model):
    """The caller authenticates with HTTP Basic."""

    kind: Literal["basic"]
    username: str
    password: str = Field(description="Use ${VAR}")


class HmacCallerAuth(Model):
    """The caller signs the raw body with HMAC; the hex (or `sha256=`-prefixed) digest is in a header."""

    kind: Literal["hmac"]
    header: str = Field("X-Signature", description="Header carrying the signature")
    secret: str = Field(description="The signing key; use ${VAR}")
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"


class NoCallerAuth(Model):
    """No caller authentication (only behind a trusted network)."""

    kind: Literal["none"]


CallerAuth = Annotated[
    SharedSecretAuth | BasicCallerAuth | HmacCallerAuth | NoCallerAuth, Field(discriminator="kind")
]


class WebhookSource(Model):
    """An HTTP route the MES calls (Integration Builder)."""

    kind: Literal["webhook"]
    path: str = Field(pattern=r"^/", description="Route path, e.g. /erp/operation")
    mode: Literal["sync", "queue"] = Field(
        "sync", description="sync: the caller waits for the reply; queue: accepted, delivered by workers"
    )
    deadline: float = Field(25.0, gt=0, description="Seconds before a sync caller is answered 504")
    auth: CallerAuth | None = Field(None, description="How callers authenticate; settings give a default")
    idempotency_key: SelectionField | None = Field(
        None, description="JMESPath over the event: a repeated key gets the stored reply"
    )
    order_key: SelectionField | None = Field(
        None, description="JMESPath over the event: events with the same key are applied in order"
    )
    schema_: str | None = Field(
        None,
        alias="schema",
        description="JSON Schema file (relative to the config root) every event must satisfy, else 422",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)


class Schedule(Model):
    """When a poller runs: every N seconds, or a cron expression."""

    every: float | None = Field(None, gt=0, description="Seconds between polls")
    cron: str | None = Field(None, description="Cron expression, e.g. '*/5 * * * *'")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) not in (5, 6):
            raise ValueError(f"invalid cron expression {value!r}: expected 5 fields")
        return value


class Cursor(Model):
    """The incremental cursor of a poll: which record field, its start, and how it reaches the query."""

    field: SelectionField = Field(description="JMESPath over a record giving its cursor value")
    initial: Any = Field(description="Cursor before the first poll")


class PollSource(Model):
    """A schedule that reads new and changed records from a connector."""

    kind: Literal["poll"]
    connector: str
    operation: str | None = None
    method: str = "GET"
    path: TemplateField | None = Field(default=None, description="Path template; `cursor` is in scope")
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
    overlap: Any = Field(None, description="Re-read the edge: the cursor sent is moved back by this")


Source = Annotated[WebhookSource | PollSource, Field(discriminator="kind")]


# --- steps ---------------------------------------------------------------------------------------


class StepBase(Model):
    """Fields every step may carry."""

    name: str | None = Field(None, pattern=_NAME_PATTERN, description="Keeps the step's result")
    when: SelectionField | None = Field(None, description="JMESPath; the step is skipped when false")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value in RESERVED_NAMES:
            raise ValueError(f"'{value}' is a reserved name")
        return value


class SetStep(StepBase):
    """Computes named values."""

    set: dict[str, TemplateField]

    @field_validator("set")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in RESERVED_NAMES:
                raise ValueError(f"'{key}' is a reserved name")
        return value


class Missing(Model):
    """What a call does when the record is not there (404, or an empty/null result)."""

    fail: TemplateField | None = Field(default=None, description="Fail with this message")
    status: int = Field(404, ge=400, le=599)
    default: TemplateField | None = Field(default=None, description="Use this value instead")


class CallStep(StepBase):
    """Calls a connector (directly, or through one of its named operations)."""

    call: str = Field(description="Connector name, or connector.operation")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None = None
    path: TemplateField | None = None
    query: TemplateField | None = None
    headers: TemplateField | None = None
    body: TemplateField | None = None
    args: TemplateField | None = Field(default=None, description="Arguments of a named operation")
    result: SelectionField | None = Field(None, description="JMESPath into the response result")
    paginate: bool | None = None
    missing: Missing | None = None


class SwitchStep(StepBase):
    """Branches on a value."""

    switch: SelectionField
    cases: dict[str, list[Step]]
    default: list[Step] | None = None


class IfStep(StepBase):
    """Runs one branch or the other."""

    if_: SelectionField = Field(alias="if")
    then: list[Step]
    else_: list[Step] | None = Field(None, alias="else")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ForEachStep(StepBase):
    """Runs steps once per element of a list."""

    for_each: SelectionField
    as_: str = Field("item", alias="as", pattern=_NAME_PATTERN)
    steps: list[Step]
    collect: TemplateField | None = Field(default=None, description="Per element; `name` keeps the list")
    limit: int = Field(1000, gt=0, description="Refuse lists longer than this")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FailStep(StepBase):
    """Stops the pipeline with a message."""

    fail: TemplateField
    status: int = Field(422, ge=400, le=599)


_STEP_KINDS = ("set", "call", "switch", "if", "for_each", "fail")


def _step_kind(value: Any) -> str | None:
    """Recognise a step by its key; a misspelt key picks the closest kind so its error reads well."""
    if isinstance(value, BaseModel):
        for kind, cls in _STEP_CLASSES.items():
            if isinstance(value, cls):
                return kind
        return None
    if not isinstance(value, dict):
        return None
    for kind in _STEP_KINDS:
        if kind in value:
            return kind
    for key in value:
        close = closest(key, _STEP_KINDS)
        if close:
            return close
    return None


Step = Annotated[
    Annotated[SetStep, Tag("set")]
    | Annotated[CallStep, Tag("call")]
    | Annotated[SwitchStep, Tag("switch")]
    | Annotated[IfStep, Tag("if")]
    | Annotated[ForEachStep, Tag("for_each")]
    | Annotated[FailStep, Tag("fail")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message="a step needs one of the keys: set, call, switch, if, for_each, fail",
    ),
]

_STEP_CLASSES: dict[str, type[BaseModel]] = {
    "set": SetStep,
    "call": CallStep,
    "switch": SwitchStep,
    "if": IfStep,
    "for_each": ForEachStep,
    "fail": FailStep,
}


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


# --- tests ---------------------------------------------------------------------------------------


class MockResponse(Model):
    """A canned connector response, matched by connector, method and path, used in order."""

    connector: str
    method: str = "GET"
    path: str
    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    raw: str | None = Field(None, description="Raw response text instead of a JSON body")


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


class TestCase(Model):
    """An inbound event, the responses to mock, and what must happen."""

    __test__ = False  # not a pytest class

    name: str
    pipeline: str
    event: Any = None
    event_file: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict, description="Overrides the binding's vars")
    responses: list[MockResponse] = Field(default_factory=list)
    expect: Expect


class MappingFile(Model):
    """A file under mappings/<binding>/: constants, pipelines and tests."""

    description: str = ""
    vars: dict[str, Any] = Field(default_factory=dict)
    pipelines: list[Pipeline] = Field(default_factory=list)
    tests: list[TestCase] = Field(default_factory=list)


for _model in (SwitchStep, IfStep, ForEachStep):
    _model.model_rebuild()
