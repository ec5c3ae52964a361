"""The events `mesbridge diff` replays, with their mocked responses, gathered from three sources:

- the YAML test cases of both config roots (`samples_from_tests`), once per (file, case name);
- a folder of JSON events (`samples_from_events`): ``DIR/<pipeline>/<name>.json`` is one event of that
  pipeline, with its responses in ``<name>.responses.yaml`` (or ``.yml``, ``.json``) beside it if any;
  ``DIR/<name>.json`` holds ``{"pipeline", "event", "responses", "vars", "cursor", "real_auth"}``;
- a YAML file of test cases in the format of ``mappings/<binding>/tests/*.yaml`` (`samples_from_cases`).

Every loader returns the samples and the diagnostics of what it could not read, located like the
findings of `mesbridge check`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, RootModel

from engine.config.diagnostic import Diagnostic
from engine.config.root import Project, TestEntry
from engine.config.validation import validate_model
from engine.config.yamlsource import LoadedYaml, Mark, load_yaml
from engine.pipeline.models import MappingFile, MockResponse, Model
from engine.suggest import did_you_mean

__all__ = [
    "EventFile",
    "Sample",
    "load_responses",
    "samples_from_cases",
    "samples_from_events",
    "samples_from_tests",
]

RESPONSES_SUFFIXES = (".responses.yaml", ".responses.yml", ".responses.json")


@dataclass
class Sample:
    """One event to run through both roots, with the responses to mock (the same on both sides).

    `origin` says where it came from: `base`, `head` or `both` for test cases, `events` or `cases`.
    Without an `event` (`poll`), a poll pipeline runs a whole round from `cursor`.
    """

    pipeline: str
    name: str
    where: str
    origin: str
    event: Any = None
    poll: bool = False
    cursor: Any = None
    responses: list[MockResponse] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    real_auth: bool = False
    verify_first: bool = False
    refuse_unprotected: bool = False
    line: int = 0
    note: str | None = None

    @property
    def event_id(self) -> str:
        """The id both runs give the event (idempotency keys are made from it)."""
        return hashlib.sha256(f"{self.where}\0{self.name}".encode()).hexdigest()[:32]


class EventFile(Model):
    """A JSON file at the top of an events folder: one event, the pipeline it is for, its responses."""

    pipeline: str
    event: Any = None
    cursor: Any = Field(None, description="Poll pipelines without an event: the cursor the round starts from")
    responses: list[MockResponse] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict, description="Overrides the binding's vars")
    real_auth: bool = False


_Responses = RootModel[list[MockResponse]]


def _from_entry(entry: TestEntry, origin: str, note: str | None = None) -> Sample | Diagnostic:
    case = entry.case
    try:
        event = entry.event()
    except (OSError, ValueError) as exc:
        return entry.source.diagnostic(entry.loc + ("event_file",), f"cannot read event_file: {exc}")
    _, mark = entry.source.locate(entry.loc)
    return Sample(
        pipeline=case.pipeline,
        name=case.name,
        where=entry.source.file,
        origin=origin,
        event=event,
        poll=case.event is None and case.event_file is None,
        cursor=case.cursor,
        responses=list(case.responses),
        variables=dict(case.vars),
        real_auth=case.real_auth,
        verify_first=case.verify_first,
        refuse_unprotected=case.refuse_unprotected,
        line=mark.line,
        note=note,
    )


def _inputs(entry: TestEntry) -> Any:
    """What a case feeds the run (not what it expects)."""
    return entry.case.model_dump(mode="json", exclude={"name", "expect"})


def _keyed(tests: list[TestEntry]) -> dict[tuple[str, str, int], TestEntry]:
    """Cases by (file, name, occurrence): a name repeated in one file stays two cases."""
    keyed: dict[tuple[str, str, int], TestEntry] = {}
    for entry in tests:
        number = 0
        while (entry.source.file, entry.case.name, number) in keyed:
            number += 1
        keyed[(entry.source.file, entry.case.name, number)] = entry
    return keyed


def samples_from_tests(base: Project, head: Project) -> tuple[list[Sample], list[Diagnostic]]:
    """Every test case of either root, once: head's version when both have it, run through both."""
    old, new = _keyed(base.tests), _keyed(head.tests)
    samples: list[Sample] = []
    problems: list[Diagnostic] = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k[0], *_order(k, old, new))):
        if key in new and key in old:
            note = None
            if _inputs(new[key]) != _inputs(old[key]):
                note = "the case's inputs differ between the roots: head's event and responses are used"
            found = _from_entry(new[key], "both", note)
        else:
            found = _from_entry(new[key], "head") if key in new else _from_entry(old[key], "base")
        _collect(found, samples, problems)
    return samples, problems


def _collect(found: Sample | Diagnostic, samples: list[Sample], problems: list[Diagnostic]) -> None:
    if isinstance(found, Diagnostic):
        problems.append(found)
    else:
        samples.append(found)


def _order(
    key: tuple[str, str, int], old: dict[Any, TestEntry], new: dict[Any, TestEntry]
) -> tuple[int, int]:
    """Head's cases in their file order, then the cases only base has, in theirs."""
    if key in new:
        return (0, new[key].loc[1])
    return (1, old[key].loc[1])


def _unknown(pipeline: str, known: set[str]) -> str:
    hint = did_you_mean(pipeline, known)
    return f"unknown pipeline '{pipeline}': neither root has it" + (f"; {hint}" if hint else "")


def samples_from_cases(path: Path, pipelines: set[str]) -> tuple[list[Sample], list[Diagnostic]]:
    """The test cases of one YAML file (a top-level `tests:` list), validated like mapping files."""
    loaded = load_yaml(path)
    if not loaded.ok:
        return [], list(loaded.diagnostics)
    if loaded.data is None:
        return [], []
    if not isinstance(loaded.data, dict):
        return [], [loaded.diagnostic((), "expected a mapping with a `tests:` list at the top of the file")]
    mapping, problems = validate_model(MappingFile, loaded)
    if mapping is None:
        return [], problems
    for key in ("pipelines", "vars"):
        if key in loaded.data:
            problems.append(
                loaded.diagnostic((key,), f"a file of test cases holds only `tests:`, not `{key}:`", key=True)
            )
    samples: list[Sample] = []
    for index, case in enumerate(mapping.tests):
        entry = TestEntry(case, "", loaded, ("tests", index))
        if case.pipeline not in pipelines:
            problems.append(loaded.diagnostic(entry.loc + ("pipeline",), _unknown(case.pipeline, pipelines)))
            continue
        _collect(_from_entry(entry, "cases"), samples, problems)
    return samples, problems


def _load_json(path: Path, file: str) -> LoadedYaml:
    """A JSON file as JSON reads it, located where YAML can place its nodes (JSON is YAML 1.2)."""
    loaded = LoadedYaml(path=path, file=file, text="")
    try:
        loaded.text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        loaded.diagnostics.append(loaded.diagnostic_at(Mark(0, 0), f"cannot read file: {exc}"))
        return loaded
    try:
        loaded.data = json.loads(loaded.text)
    except json.JSONDecodeError as exc:
        loaded.diagnostics.append(
            loaded.diagnostic_at(Mark(exc.lineno, exc.colno), f"invalid JSON: {exc.msg}")
        )
        return loaded
    shape = load_yaml(path, loaded.text, file=file)
    if shape.ok:
        loaded.positions, loaded.key_positions = shape.positions, shape.key_positions
    return loaded


def load_responses(path: Path, shown: str) -> tuple[list[MockResponse], list[Diagnostic]]:
    """A file of mocked responses (a JSON or YAML list, as test cases give them), each problem
    located at `shown`:line:col."""
    loaded = _load_json(path, shown) if path.suffix == ".json" else load_yaml(path, file=shown)
    if not loaded.ok:
        return [], list(loaded.diagnostics)
    responses, problems = validate_model(_Responses, loaded)
    return ([] if responses is None else list(responses.root)), problems


def _responses(event_path: Path, file: str) -> tuple[list[MockResponse], list[Diagnostic]]:
    stem = event_path.name[: -len(".json")]
    for suffix in RESPONSES_SUFFIXES:
        path = event_path.with_name(stem + suffix)
        if path.is_file():
            return load_responses(path, file[: -len(event_path.name)] + path.name)
    return [], []


def samples_from_events(folder: Path, pipelines: set[str]) -> tuple[list[Sample], list[Diagnostic]]:
    """The JSON events of a folder (see the module docstring for its layout)."""
    shown = folder.as_posix().rstrip("/")
    if not folder.is_dir():
        return [], [Diagnostic(shown, 0, 0, "the events folder does not exist or is not a folder")]
    files = sorted(
        p for p in folder.rglob("*.json") if p.is_file() and not p.name.endswith(RESPONSES_SUFFIXES)
    )
    if not files:
        return [], [
            Diagnostic(shown, 0, 0, "no events: expected <pipeline>/<name>.json or <name>.json files")
        ]
    samples: list[Sample] = []
    problems: list[Diagnostic] = []
    for path in files:
        relative = path.relative_to(folder)
        file = f"{shown}/{relative.as_posix()}"
        loaded = _load_json(path, file)
        if not loaded.ok:
            problems.extend(loaded.diagnostics)
            continue
        if len(relative.parts) == 1:
            envelope, found = validate_model(EventFile, loaded)
            problems.extend(found)
            if envelope is None:
                continue
            if envelope.pipeline not in pipelines:
                problems.append(loaded.diagnostic(("pipeline",), _unknown(envelope.pipeline, pipelines)))
                continue
            samples.append(
                Sample(
                    pipeline=envelope.pipeline,
                    name=relative.as_posix(),
                    where=file,
                    origin="events",
                    event=envelope.event,
                    poll="event" not in envelope.model_fields_set,
                    cursor=envelope.cursor,
                    responses=envelope.responses,
                    variables=envelope.vars,
                    real_auth=envelope.real_auth,
                )
            )
            continue
        pipeline = relative.parts[0]
        if pipeline not in pipelines:
            problems.append(Diagnostic(file, 0, 0, _unknown(pipeline, pipelines) + " (the folder names it)"))
            continue
        responses, found = _responses(path, file)
        problems.extend(found)
        samples.append(
            Sample(pipeline, relative.as_posix(), file, "events", event=loaded.data, responses=responses)
        )
    return samples, problems
