"""Load a whole config root: settings, connectors, mappings and tests, with every finding located.

`load_project` never raises for bad config: it returns a `Project` whose `diagnostics` list every
problem of every file, then the cross-file checks (`engine.config.references`) run on what loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine import env
from engine.config.diagnostic import Diagnostic
from engine.config.settings import (
    SETTINGS_FILE,
    Settings,
    environment_finding,
    environment_overrides,
    override_findings,
    with_overrides,
)
from engine.config.validation import validate_model
from engine.config.yamlsource import LoadedYaml, load_yaml
from engine.connectors.models import ConnectorConfig
from engine.errors import MissingVariableError, SchemaFileError
from engine.pipeline.models import MappingFile, Pipeline, TestCase
from engine.pipeline.payload import PayloadSchema, load_payload_schema
from engine.redaction import MASK, is_secret_name
from engine.suggest import did_you_mean


@dataclass
class PipelineEntry:
    """A pipeline with where it came from."""

    pipeline: Pipeline
    binding: str
    source: LoadedYaml
    loc: tuple[Any, ...]


@dataclass
class TestEntry:
    """A test case with where it came from."""

    __test__ = False

    case: TestCase
    binding: str
    source: LoadedYaml
    loc: tuple[Any, ...]

    def event(self) -> Any:
        """The case's event, inline or from its `event_file` (JSON, relative to the case's file)."""
        if self.case.event_file is None:
            return self.case.event
        return json.loads((self.source.path.parent / self.case.event_file).read_text(encoding="utf-8"))


@dataclass
class ConnectorEntry:
    """A connector with where it came from."""

    config: ConnectorConfig
    source: LoadedYaml


@dataclass
class Project:
    """Everything a config root holds, validated."""

    root: Path
    settings: Settings = field(default_factory=Settings)
    connectors: dict[str, ConnectorEntry] = field(default_factory=dict)
    pipelines: dict[str, PipelineEntry] = field(default_factory=dict)
    tests: list[TestEntry] = field(default_factory=list)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    variable_files: dict[str, dict[str, LoadedYaml]] = field(default_factory=dict)
    """The file each binding's var is defined in (`vars:` of a mapping file, or its vars.yaml)."""
    payload_schemas: dict[str, PayloadSchema] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    version: str = ""
    """A digest of everything in the root that decides behaviour: settings, connectors, pipelines, vars
    and payload schemas, of every binding, whichever ones `MESBRIDGE_BINDINGS` selects (test cases
    and descriptions are not part of it)."""
    unloaded_connectors: set[str] = field(default_factory=set)
    """Connectors whose file did not load (reported once); references to them are not reported again."""
    unloaded_pipelines: set[str] = field(default_factory=set)
    """Pipelines named in a mapping file that did not validate."""
    unloaded_bindings: set[str] = field(default_factory=set)
    """Bindings with a mapping file that could not be read, or holding a pipeline whose name could not
    be read: references to their pipelines are not reported again."""

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def connector_configs(self) -> dict[str, ConnectorConfig]:
        """The connectors' configs by name."""
        return {name: entry.config for name, entry in self.connectors.items()}

    def variables_for(self, pipeline: str) -> dict[str, Any]:
        """The `vars` of the binding a pipeline belongs to."""
        return self.variables.get(self.pipelines[pipeline].binding, {})


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_project(root: Path | str, *, environ: dict[str, str] | None = None) -> Project:
    """Load and validate the config root at `root`."""
    root = Path(root)
    project = Project(root=root)
    digest = hashlib.sha256()
    if not root.is_dir():
        project.diagnostics.append(Diagnostic(str(root), 1, 1, "config root is not a folder"))
        return project

    settings_data: dict[str, Any] = {}
    settings_path = root / SETTINGS_FILE
    settings_file = None
    if settings_path.is_file():
        settings_file = loaded = _load(root, settings_path, project, digest)
        if loaded is not None and loaded.data is not None:
            settings, diags = _validate(Settings, loaded)
            project.diagnostics.extend(diags)
            if settings is not None:
                settings_data = settings.model_dump(exclude_unset=True)
    elif settings_path.exists():  # a container's bind mount of a file that was missing makes a folder
        message = "is not a file: the settings cannot be read (a folder, say)"
        project.diagnostics.append(Diagnostic(SETTINGS_FILE, 0, 0, message))
    try:
        project.settings = Settings.model_validate(with_overrides(settings_data, environ))
    except ValidationError as exc:
        project.diagnostics.extend(override_findings(exc))

    connectors_dir, mappings_dir = root / "connectors", root / "mappings"
    if not connectors_dir.is_dir() and not mappings_dir.is_dir():
        project.diagnostics.append(
            Diagnostic(str(root), 1, 1, "not a config root: it has neither connectors/ nor mappings/")
        )
    elif not mappings_dir.is_dir():  # a misspelt folder: nothing would be served or tested
        folders = [p.name + "/" for p in root.iterdir() if p.is_dir()]
        hint = did_you_mean("mappings/", folders)
        message = "no mappings/ folder: no pipeline to serve or test"
        project.diagnostics.append(Diagnostic(str(root), 1, 1, message, hint=hint))
    for path in _yaml_files(connectors_dir):
        before = len(project.diagnostics)
        loaded = _load(root, path, project, digest)
        if loaded is None:
            if len(project.diagnostics) > before:
                project.unloaded_connectors.add(path.stem)
            continue
        data = loaded.data
        if isinstance(data, dict) and "name" not in data:
            data = {"name": path.stem, **data}
            loaded.data = data
        config, diags = _validate(ConnectorConfig, loaded)
        project.diagnostics.extend(diags)
        if config is None:
            name = data.get("name") if isinstance(data, dict) else None
            project.unloaded_connectors.add(name if isinstance(name, str) else path.stem)
            continue
        if config.name in project.connectors:
            first = project.connectors[config.name].source.file
            project.diagnostics.append(
                loaded.diagnostic(("name",), f"connector '{config.name}' is already defined in {first}")
            )
            continue
        project.connectors[config.name] = ConnectorEntry(config, loaded)

    selected = project.settings.bindings
    unselected_schemas: set[str] = set()
    """The payload schemas that the bindings not selected refer to: part of the version too."""
    present: set[str] = set()
    for path in _yaml_files(mappings_dir):
        relative = path.relative_to(mappings_dir)
        if len(relative.parts) < 2:
            project.diagnostics.append(
                Diagnostic(
                    _relative(root, path),
                    1,
                    1,
                    "mapping files belong in a binding folder: mappings/<binding>/",
                )
            )
            continue
        binding = relative.parts[0]
        present.add(binding)
        if selected is not None and binding not in selected:
            # not run here, but part of the version: selecting bindings (MESBRIDGE_BINDINGS) changes
            # what runs, not the root's version, which traces record and `mesbridge test` compares
            unselected = load_yaml(path, file=_relative(root, path))
            _add_to_version(unselected, digest, tests_aside=True)
            unselected_schemas.update(_schema_references(unselected.data))
            continue
        before = len(project.diagnostics)
        loaded = _load(root, path, project, digest, tests_aside=True)
        if loaded is None:
            if len(project.diagnostics) > before:
                project.unloaded_bindings.add(binding)
            continue
        mapping, diags = _validate(MappingFile, loaded)
        project.diagnostics.extend(diags)
        if mapping is None:
            names, all_named = _pipeline_names(loaded.data)
            project.unloaded_pipelines.update(names)
            if not all_named:  # a pipeline whose name is unknown: the binding's references are unsure
                project.unloaded_bindings.add(binding)
            continue
        _add_mapping(project, binding, mapping, loaded)

    if selected is not None:
        project.diagnostics.extend(_absent_bindings(selected, present, settings_file, environ))
    _load_payload_schemas(project, digest, unselected_schemas)
    _resolve_deadlines(project, env.current() if environ is None else environ)
    project.version = digest.hexdigest()[:12]
    from engine.config.references import check_references

    project.diagnostics.extend(check_references(project))
    project.diagnostics.sort(key=lambda d: (d.file, d.line, d.col))
    return project


def _absent_bindings(
    selected: list[str],
    present: set[str],
    settings_file: LoadedYaml | None,
    environ: Mapping[str, str] | None,
) -> list[Diagnostic]:
    """A selected binding without a folder under mappings/ (misspelt, say) would serve nothing."""
    from_environment = "bindings" in environment_overrides(environ)
    if not selected:  # `MESBRIDGE_BINDINGS=" "`, say: not one pipeline would be served
        message = "names no binding: nothing would be served (leave it out to serve every binding)"
        if from_environment or settings_file is None:
            return [environment_finding("MESBRIDGE_BINDINGS", message)]
        return [settings_file.diagnostic(("bindings",), f"bindings {message}")]
    found = []
    for index, name in enumerate(selected):
        if name in present:
            continue
        hint = did_you_mean(name, present) or (f"bindings: {', '.join(sorted(present))}" if present else None)
        if from_environment or settings_file is None:
            message = f"names binding '{name}', which has no folder mappings/{name}/"
            found.append(environment_finding("MESBRIDGE_BINDINGS", message, hint=hint))
        else:
            message = f"binding '{name}' has no folder mappings/{name}/"
            found.append(settings_file.diagnostic(("bindings", index), message, hint=hint))
    return found


def _pipeline_names(data: Any) -> tuple[set[str], bool]:
    """The pipeline names a mapping file's raw data declares (it did not validate), and whether every
    pipeline entry had one."""
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    if not isinstance(pipelines, list):
        return set(), pipelines is None
    named = [p["name"] for p in pipelines if isinstance(p, dict) and isinstance(p.get("name"), str)]
    return set(named), len(named) == len(pipelines)  # counted as written: a name may be there twice


def _load_payload_schemas(project: Project, digest: Any, unselected: set[str]) -> None:
    """Each webhook's `schema:` file, loaded once. The content of each, and of each that `unselected`
    bindings refer to, is part of the config version, in the order of their paths."""
    loaded: dict[str, PayloadSchema | SchemaFileError] = {}
    for name, entry in project.pipelines.items():
        source = entry.pipeline.source
        relative = getattr(source, "schema_", None)
        if relative is None:
            continue
        if relative not in loaded:
            try:
                loaded[relative] = load_payload_schema(project.root, relative)
            except SchemaFileError as exc:
                loaded[relative] = exc
        result = loaded[relative]
        if isinstance(result, SchemaFileError):
            project.diagnostics.append(entry.source.diagnostic(entry.loc + ("source", "schema"), str(result)))
        else:
            project.payload_schemas[name] = result
    for relative in sorted(loaded.keys() | unselected):
        schema = loaded.get(relative)
        if schema is None:
            try:
                schema = load_payload_schema(project.root, relative)
            except SchemaFileError:
                continue  # the binding that refers to it is not loaded: nothing reports it here
        if isinstance(schema, PayloadSchema):
            digest.update(relative.encode())
            digest.update(json.dumps(schema.schema, sort_keys=True).encode())


def _schema_references(data: Any) -> set[str]:
    """The `source.schema` paths of the pipelines in a mapping file's data, as far as it is well formed."""
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    found: set[str] = set()
    for pipeline in pipelines if isinstance(pipelines, list) else []:
        source = pipeline.get("source") if isinstance(pipeline, dict) else None
        schema = source.get("schema") if isinstance(source, dict) else None
        if isinstance(schema, str):
            found.add(schema)
    return found


def _resolve_deadlines(project: Project, environ: Mapping[str, str]) -> None:
    """A webhook's `deadline: "{{ vars.NAME }}"` becomes the seconds its binding's var holds: a number,
    or a `${VAR}` reference (`${SYNC_DEADLINE:-8}`) whose value, read now from `environ`, is one."""
    for entry in project.pipelines.values():
        source = entry.pipeline.source
        name = getattr(source, "deadline_var", None)
        if name is None:
            continue
        variables = project.variables.get(entry.binding, {})
        loc = entry.loc + ("source", "deadline")
        if name not in variables:
            hint = did_you_mean(name, variables)
            message = f"deadline: vars.{name} is not defined in binding '{entry.binding}'"
            project.diagnostics.append(entry.source.diagnostic(loc, message, hint=hint))
            continue
        value = shown = variables[name]
        if isinstance(value, str) and env.REFERENCE.search(value):
            try:
                shown = env.resolve(value, environ, f"vars.{name}")
            except MissingVariableError as exc:
                project.diagnostics.append(entry.source.diagnostic(loc, f"deadline: vars.{name}: {exc}"))
                continue
            value = _seconds(shown)
            if any(is_secret_name(ref) for ref in env.find_references(variables[name])):
                shown = MASK  # a secret's value is never shown in a message
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            message = f"deadline: vars.{name} must be a number of seconds > 0, got {shown!r}"
            project.diagnostics.append(entry.source.diagnostic(loc, message))
            continue
        source.deadline = float(value)


def _seconds(text: str) -> float | str:
    """A number of seconds as an environment variable gives it (`8`, `2.5`); else the text itself."""
    try:
        seconds = float(text)
    except ValueError:
        return text
    return seconds if math.isfinite(seconds) else text


def _validate(model: type[Any], loaded: LoadedYaml) -> tuple[Any, list[Diagnostic]]:
    """Validate with the model; the load's own findings were reported already."""
    value, diags = validate_model(model, loaded, loaded.file)
    return value, [d for d in diags if d not in loaded.diagnostics]


def _load(
    root: Path, path: Path, project: Project, digest: Any, *, tests_aside: bool = False
) -> LoadedYaml | None:
    """Load one YAML file into the project and the version digest.

    With `tests_aside` (mapping files), the digest takes the file's data without its `tests`: adding
    or editing test cases (an exported trace, say) leaves the config version as it was."""
    loaded = load_yaml(path, file=_relative(root, path))
    project.diagnostics.extend(loaded.diagnostics)
    _add_to_version(loaded, digest, tests_aside=tests_aside)
    if not loaded.ok:
        return None
    if loaded.data is None:
        return None
    if not isinstance(loaded.data, dict):
        project.diagnostics.append(loaded.diagnostic((), "expected a mapping at the top of the file"))
        return None
    return loaded


def _add_to_version(loaded: LoadedYaml, digest: Any, *, tests_aside: bool) -> None:
    """Add one file to the version digest: whole, or with `tests_aside` its data less `tests` and
    `description` (a file of test cases only adds nothing)."""
    if not loaded.ok or not isinstance(loaded.data, dict) or not tests_aside:
        digest.update(loaded.file.encode())
        digest.update(loaded.text.encode())
        return
    behaviour = {key: value for key, value in loaded.data.items() if key not in ("tests", "description")}
    if behaviour:
        digest.update(loaded.file.encode())
        digest.update(json.dumps(behaviour, sort_keys=True, default=str).encode())


def _add_mapping(project: Project, binding: str, mapping: MappingFile, loaded: LoadedYaml) -> None:
    variables = project.variables.setdefault(binding, {})
    for key, value in mapping.vars.items():
        if key in variables:
            project.diagnostics.append(
                loaded.diagnostic(
                    ("vars", key), f"var '{key}' is already defined in binding '{binding}'", key=True
                )
            )
        variables[key] = value
        project.variable_files.setdefault(binding, {})[key] = loaded
    for index, pipeline in enumerate(mapping.pipelines):
        loc = ("pipelines", index)
        if pipeline.name in project.pipelines:
            first = project.pipelines[pipeline.name].source.file
            project.diagnostics.append(
                loaded.diagnostic(
                    loc + ("name",), f"pipeline '{pipeline.name}' is already defined in {first}"
                )
            )
            continue
        project.pipelines[pipeline.name] = PipelineEntry(pipeline, binding, loaded, loc)
    for index, case in enumerate(mapping.tests):
        project.tests.append(TestEntry(case, binding, loaded, ("tests", index)))
