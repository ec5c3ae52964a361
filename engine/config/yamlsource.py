"""Load one YAML file into plain data while remembering where every value came from.

`load_yaml` composes the file with PyYAML (libyaml when available) so every node keeps its
`start_mark`, then builds plain Python data from the nodes itself, recording for each location path
(mapping keys and list indexes, e.g. ``("pipelines", 0, "steps", 2, "method")``) the position of the
value node and of the key node. It never raises for bad input: syntax errors, duplicate keys, unsupported
tags and extra documents become `Diagnostic` objects in `LoadedYaml.diagnostics`.

Scalar typing. A plain (unquoted) scalar becomes a boolean, number or null only where YAML 1.1 and the
YAML 1.2 core schema agree on it; everything else stays a string:

* booleans are ``true``/``false`` (also ``True``, ``TRUE``, ...); ``yes``, ``no``, ``on``, ``off``,
  ``NO`` (Norway) are strings;
* null is ``null``, ``Null``, ``NULL``, ``~`` or nothing;
* integers are decimal without leading zeros (``7``, ``-12``) or hexadecimal (``0x1F``); ``007``,
  ``010``, ``1_000`` and ``0o17`` are strings (YAML 1.1 and 1.2 read them differently);
* floats need a dot (``1.5``, ``1.``, ``.5``, ``1.5e+3``), or are ``.inf``, ``-.inf``, ``.nan``;
  ``1e3`` is a string;
* timestamps (``2025-01-01``) and sexagesimals (``1:30``) are strings.

Quoted scalars are always strings. The explicit core tags ``!!str``, ``!!int``, ``!!float``,
``!!bool``, ``!!null``, ``!!map``, ``!!seq`` are honoured; any other tag is an error.

Merge keys (``<<: *base`` or ``<<: [*a, *b]``) are supported: keys written in the mapping win over
merged ones, and earlier merge sources win over later ones. Keys come only from scalars; a complex key
(``? [a, b]``) is an error. A file holds one document; a second one is an error. An empty file (or one
with only comments) gives ``data=None`` and no diagnostic: the caller decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from engine.config.diagnostic import Diagnostic

__all__ = ["LoadedYaml", "Mark", "load_yaml", "locate_path"]

LocPath = tuple[Any, ...]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"

#: Alias expansion beyond this many nodes is refused (a "billion laughs" file).
MAX_NODES = 200_000


class Mark(NamedTuple):
    """A 1-based line and column in a file; ``Mark(0, 0)`` means "the whole file"."""

    line: int
    col: int


class _Resolver(BaseResolver):
    """Implicit typing where YAML 1.1 and 1.2 core agree (see the module docstring)."""


_Resolver.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Resolver.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Resolver.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?
            |\.[0-9]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_Resolver.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver(_MERGE, re.compile(r"^<<$"), ["<"])


class _PyComposer(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, _Resolver
):
    """Pure-Python composer: the fallback, and the source of the clearer syntax error messages."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Resolver.__init__(self)


try:
    from yaml._yaml import CParser

    class _CComposer(CParser, _Resolver):
        """libyaml composer with our resolver."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Resolver.__init__(self)

    _FAST: type = _CComposer
except ImportError:  # pragma: no cover - libyaml missing
    _FAST = _PyComposer


@dataclass
class LoadedYaml:
    """One YAML file: its plain `data`, where each value and key is, and the problems found loading it."""

    path: Path
    file: str
    text: str
    data: Any = None
    positions: dict[LocPath, Mark] = field(default_factory=dict)
    key_positions: dict[LocPath, Mark] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _lines: list[str] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when loading found no error (warnings allowed)."""
        return not any(d.severity == "error" for d in self.diagnostics)

    def source_line(self, line: int) -> str:
        """The text of 1-based `line`, without its line break ("" when out of range)."""
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines[line - 1] if 0 < line <= len(self._lines) else ""

    def locate(self, loc: LocPath, *, key: bool = False) -> tuple[LocPath, Mark]:
        """The longest YAML path matching `loc` (see `locate_path`) and its mark.

        With ``key=True`` the mark of the mapping key is preferred when the path ends at a key.
        """
        path = locate_path(self.data, loc)
        if key and path in self.key_positions:
            return path, self.key_positions[path]
        return path, self.mark(path)

    def mark(self, path: LocPath) -> Mark:
        """The mark of the value at `path`, walking up to the nearest recorded parent."""
        while path:
            found = self.positions.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.positions.get((), Mark(1, 1))

    def diagnostic(
        self,
        loc: LocPath,
        message: str,
        *,
        key: bool = False,
        hint: str | None = None,
        severity: str = "error",
    ) -> Diagnostic:
        """A `Diagnostic` for `message` at the node nearest to `loc` (a path of keys and indexes)."""
        _, mark = self.locate(loc, key=key)
        return self.diagnostic_at(mark, message, hint=hint, severity=severity)

    def diagnostic_at(
        self, mark: Mark, message: str, *, hint: str | None = None, severity: str = "error"
    ) -> Diagnostic:
        """A `Diagnostic` for `message` at `mark` in this file; its quoted line shows no URL's password."""
        return Diagnostic(
            file=self.file,
            line=mark.line,
            col=mark.col,
            message=message,
            severity=severity,
            source_line=_URL_PASSWORD.sub(r"\1***@", self.source_line(mark.line)),
            hint=hint,
        )


_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@")
"""The password of a URL's `user:password@` (a store URL written in mesbridge.yaml, say)."""


def locate_path(data: Any, loc: LocPath) -> LocPath:
    """The path of keys and indexes in `data` that best matches the pydantic-style `loc`.

    `loc` may hold elements that are not in the data (union tags, model names, ``function-after[...]``);
    they are skipped. When an element is both a key and a tag (``("steps", 0, "call", "method")`` where
    the step has a ``call:`` key) the reading that matches the latest element of `loc` wins, then the one
    matching more elements. Missing trailing elements are dropped, so the result is the nearest parent.
    """
    best: tuple[int, int, LocPath] = (-1, 0, ())

    def walk(node: Any, i: int, path: LocPath, last: int) -> None:
        nonlocal best
        if i == len(loc):
            score = (last, len(path), path)
            if score[:2] > best[:2]:
                best = score
            return
        element = loc[i]
        child = _child(node, element)
        if child is not _ABSENT:
            walk(child, i + 1, path + (element,), i)
        walk(node, i + 1, path, last)

    walk(data, 0, (), -1)
    return best[2]


_ABSENT = object()


def _child(node: Any, element: Any) -> Any:
    if isinstance(node, dict):
        try:
            return node.get(element, _ABSENT)
        except TypeError:
            return _ABSENT
    if isinstance(node, list) and type(element) is int and 0 <= element < len(node):
        return node[element]
    return _ABSENT


def load_yaml(path: Path, text: str | None = None, *, file: str | None = None) -> LoadedYaml:
    """Load `path` (or `text`, read as if it were `path`) into a `LoadedYaml`; never raises for bad input.

    `file` is the name diagnostics show (default: `path` as given, with forward slashes).
    """
    display = file if file is not None else path.as_posix()
    if text is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            loaded = LoadedYaml(path=path, file=display, text="")
            loaded.diagnostics.append(
                loaded.diagnostic_at(Mark(0, 0), f"cannot read file: {exc.strerror or exc}")
            )
            return loaded
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8-sig", errors="replace")
            loaded = LoadedYaml(path=path, file=display, text=text)
            mark = _offset_mark(raw[: exc.start].decode("utf-8", errors="replace"))
            loaded.diagnostics.append(loaded.diagnostic_at(mark, "the file is not valid UTF-8"))
            return loaded
    elif text.startswith("\ufeff"):
        text = text[1:]
    loaded = LoadedYaml(path=path, file=display, text=text)
    try:
        root, extra = _compose(_FAST, text)
    except yaml.YAMLError:
        try:  # the pure-Python parser words its errors better; errors are rare, so parse again
            _compose(_PyComposer, text)
        except yaml.YAMLError as exc:
            loaded.diagnostics.append(_syntax_diagnostic(loaded, exc))
            return loaded
        raise  # pragma: no cover - libyaml failed where the Python parser did not
    if extra is not None:
        loaded.diagnostics.append(
            loaded.diagnostic_at(
                _document_start(loaded, extra),
                "a file holds one YAML document; this '---' starts a second one",
            )
        )
    if root is None:
        return loaded
    builder = _Builder(loaded)
    try:
        loaded.data = builder.build(root, ())
    except _TooLarge:
        loaded.data = None
        loaded.diagnostics.append(
            loaded.diagnostic_at(_mark(root), f"the file expands to more than {MAX_NODES} values (aliases)")
        )
    if len(loaded.diagnostics) > 1:  # a merged anchor may report the same problem once per use
        seen: set[tuple[int, int, str]] = set()
        unique = []
        for d in loaded.diagnostics:
            if (d.line, d.col, d.message) not in seen:
                seen.add((d.line, d.col, d.message))
                unique.append(d)
        loaded.diagnostics = unique
    return loaded


def _compose(composer_cls: type, text: str) -> tuple[Node | None, Node | None]:
    """The first document's root node, and the second document's root node if there is one."""
    composer = composer_cls(text)
    try:
        if not composer.check_node():
            return None, None
        root = composer.get_node()
        extra = composer.get_node() if composer.check_node() else None
        return root, extra
    finally:
        dispose = getattr(composer, "dispose", None)
        if dispose is not None:
            dispose()


def _document_start(loaded: LoadedYaml, node: Node) -> Mark:
    """The '---' line that starts the document of `node` (else the node itself)."""
    for line in range(node.start_mark.line + 1, 0, -1):
        if loaded.source_line(line).startswith("---"):
            return Mark(line, 1)
    return _mark(node)


def _mark(node: Node) -> Mark:
    m = node.start_mark
    return Mark(m.line + 1, m.column + 1)


def _offset_mark(prefix: str) -> Mark:
    line = prefix.count("\n") + 1
    return Mark(line, len(prefix) - (prefix.rfind("\n") + 1) + 1)


_PROBLEM_REWRITES = (
    (
        re.compile(r"^found character '\\t' that cannot start any token$"),
        "tab characters cannot be used for indentation",
    ),
    (
        re.compile(r"^mapping values are not allowed here$"),
        "mapping values are not allowed here (quote a value that contains ': ', or check the indentation)",
    ),
    (re.compile(r"^found undefined alias '([^']*)'$"), r"unknown alias '*\1' (no '&\1' anchor before it)"),
)
_TOKEN_NAMES = {
    "'<stream end>'": "the end of the file",
    "<stream end>": "the end of the file",
    "<block end>": "the end of the block",
    "'<block mapping start>'": "a new mapping",
    "'<block sequence start>'": "a new list",
    "'<block end>'": "the end of the block",
    "'<scalar>'": "a value",
    "'?'": "a mapping key",
    "'-'": "a list item",
}


def _clean_problem(problem: str) -> str:
    problem = problem.strip()
    for pattern, replacement in _PROBLEM_REWRITES:
        if pattern.match(problem):
            return pattern.sub(replacement, problem)
    for token, name in _TOKEN_NAMES.items():
        problem = problem.replace(token, name)
    return problem.replace("but got", "but found")


def _syntax_diagnostic(loaded: LoadedYaml, exc: yaml.YAMLError) -> Diagnostic:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        pm = exc.problem_mark
        message = _clean_problem(exc.problem or "invalid YAML")
        if exc.context and exc.context.strip() != "while scanning for the next token":
            context = exc.context.strip()
            cm = exc.context_mark
            if cm is not None and (cm.line, cm.column) != (pm.line, pm.column):
                context += f" started at line {cm.line + 1}, column {cm.column + 1}"
            message += f" ({context})"
        hint = None
        if "${" in loaded.source_line(pm.line + 1) and "flow" in (exc.context or ""):
            hint = 'inside { } or [ ], quote a value that uses a variable: "${NAME}"'
        return loaded.diagnostic_at(Mark(pm.line + 1, pm.column + 1), f"invalid YAML: {message}", hint=hint)
    if isinstance(exc, yaml.reader.ReaderError):
        mark = _offset_mark(loaded.text[: exc.position])
        return loaded.diagnostic_at(mark, f"invalid YAML: unacceptable character #x{exc.character:04x}")
    return loaded.diagnostic_at(Mark(0, 0), f"invalid YAML: {exc}")  # pragma: no cover


class _TooLarge(Exception):
    pass


class _Builder:
    """Builds plain data from nodes, recording positions and collecting diagnostics."""

    def __init__(self, loaded: LoadedYaml) -> None:
        self.loaded = loaded
        self.positions = loaded.positions
        self.key_positions = loaded.key_positions
        self.count = 0

    def error(self, node: Node, message: str) -> None:
        self.loaded.diagnostics.append(self.loaded.diagnostic_at(_mark(node), message))

    def build(self, node: Node, path: LocPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        if isinstance(node, ScalarNode):
            self.positions[path] = _mark(node)
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            self.positions[path] = _mark(node)
            if node.tag != _SEQ:
                self.error(node, f"unsupported tag '{_show_tag(node.tag)}' on a list")
            return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        if node.tag != _MAP:
            self.error(node, f"unsupported tag '{_show_tag(node.tag)}' on a mapping")
        result: dict[Any, Any] = {}
        merges = [value for key, value in node.value if key.tag == _MERGE and isinstance(key, ScalarNode)]
        if merges:
            result.update(self.merged(merges, path))
        seen: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE and isinstance(key_node, ScalarNode):
                continue
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, "a mapping key must be a plain value, not a list or mapping")
                continue
            key = self.scalar(key_node)
            first = seen.get(key)
            if first is not None:
                self.error(
                    key_node, f"duplicate key {_show_key(key)} (first defined at line {_mark(first).line})"
                )
                continue
            seen[key] = key_node
            child = path + (key,)
            self.key_positions[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        self.positions[path] = _mark(node)
        return result

    def merged(self, merges: list[Node], path: LocPath) -> dict[Any, Any]:
        sources: list[Node] = []
        for value in merges:
            if isinstance(value, MappingNode):
                sources.append(value)
            elif isinstance(value, SequenceNode) and all(isinstance(v, MappingNode) for v in value.value):
                sources.extend(value.value)
            else:
                self.error(value, "a merge key '<<' takes a mapping or a list of mappings (e.g. '<<: *base')")
        out: dict[Any, Any] = {}
        for source in reversed(sources):  # earlier sources win: build them last
            for key_node, _ in source.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                    self.key_positions[path + (self.scalar(key_node),)] = _mark(key_node)
            out.update(self.build(source, path))
        return out

    def scalar(self, node: ScalarNode) -> Any:
        tag, value = node.tag, node.value
        if tag == _STR or tag == "!" or tag == _MERGE:  # '<<' outside a key is just text
            return value
        try:
            if tag == _NULL:
                return None
            if tag == _BOOL:
                lowered = value.lower()
                if lowered in ("true", "false"):
                    return lowered == "true"
                raise ValueError
            if tag == _INT:
                text = value.replace("_", "")
                try:
                    return int(text, 0)
                except ValueError:
                    return int(text, 10)
            if tag == _FLOAT:
                lowered = value.lower().replace("_", "")
                if lowered.endswith((".inf", ".nan")):
                    lowered = lowered.replace(".", "")
                return float(lowered)
        except ValueError:
            self.error(node, f"{value!r} is not a valid {tag.rsplit(':', 1)[-1]}")
            return value
        self.error(node, f"unsupported tag '{_show_tag(tag)}'")
        return value


def _show_tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag


def _show_key(key: Any) -> str:
    return f"'{key}'" if isinstance(key, str) else repr(key)
