"""Validating a located YAML document with a pydantic model: every error back at its YAML node.

`validate_model` runs a model over a `LoadedYaml` and maps every pydantic error's `loc` back to the YAML
node it is about, with a plain message (``unknown key 'metod'``, ``expected an integer, got 'abc'``)
and a "did you mean" hint where one helps. Messages are built from each error's `type` and `ctx` and
from the model's own annotations, never from pydantic's message text.

pydantic is imported only when validating.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from engine.config.diagnostic import Diagnostic, sort_diagnostics
from engine.suggest import closest, did_you_mean

if TYPE_CHECKING:
    from engine.config.yamlsource import LoadedYaml

__all__ = ["diagnostics_from_errors", "validate_model"]


@dataclass
class _Branch:
    index: int  # position in loc of the union selector
    prefix: tuple[Any, ...]  # yaml path of the union value
    label: str
    member: Any  # the chosen union member annotation, None when unknown
    members: list[Any]
    discriminated: bool


@dataclass
class _Walk:
    yaml_path: tuple[Any, ...]
    branches: list[_Branch]
    types: list[Any]  # the candidate annotations at the end of loc (unions expanded)
    tags: dict[str, Any]  # tag -> member, when the end is a discriminated union


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while typing.get_origin(tp) is typing.Annotated:
        metadata.extend(tp.__metadata__)
        tp = tp.__origin__
    return tp, metadata


def _members(tp: Any) -> list[tuple[Any, list[Any]]]:
    """The non-None members of a union (each with its Annotated metadata), or [tp] itself."""
    tp, metadata = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        out: list[tuple[Any, list[Any]]] = []
        for arg in typing.get_args(tp):
            out.extend(_members(arg))
        return out
    if tp is type(None):
        return []
    return [(tp, metadata)]


def _is_model(tp: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field_names(model: Any) -> list[str]:
    names: list[str] = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
        if isinstance(info.validation_alias, str) and info.validation_alias not in names:
            names.append(info.validation_alias)
        if info.alias and info.alias != name and model.model_config.get("populate_by_name"):
            names.append(name)
    return names


def _field(model: Any, key: Any) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias, info.validation_alias):
            return info
    return None


def _tags(member: Any, metadata: list[Any], discriminator: str | None) -> list[str]:
    from pydantic import Tag

    tags = [m.tag for m in metadata if isinstance(m, Tag)]
    if tags or not _is_model(member):
        return tags
    fields = [discriminator] if discriminator else []
    fields += [n for n in member.model_fields if n not in fields]
    for name in fields:
        info = member.model_fields.get(name)
        if info is not None and typing.get_origin(_unwrap(info.annotation)[0]) is Literal:
            return [str(v) for v in typing.get_args(_unwrap(info.annotation)[0])]
    return []


def _labels(member: Any) -> list[str]:
    name = getattr(member, "__name__", None)
    labels = [name] if name else []
    origin = typing.get_origin(member)
    if origin is not None:
        labels.append(getattr(origin, "__name__", str(origin)))
    return labels


def _match_label(element: str, member: Any, metadata: list[Any], discriminator: str | None) -> bool:
    if element in _tags(member, metadata, discriminator):
        return True
    for label in _labels(member):
        if element == label or element.startswith(label + "[") or element.endswith(f", {label}]"):
            return True
    return False


def _walk(model_cls: Any, loc: Sequence[Any], data: Any, discriminator: str | None = None) -> _Walk:
    """Follow `loc` through the model's annotations, telling YAML path elements from union selectors."""
    current: list[Any] = [model_cls]
    path: list[Any] = []
    branches: list[_Branch] = []
    for index, element in enumerate(loc):
        members = [m for tp in current for m in _members(tp)]
        if len(members) > 1 and isinstance(element, str):
            chosen = [m for m in members if _match_label(element, m[0], m[1], discriminator)]
            discriminated = any(element in _tags(m[0], m[1], discriminator) for m in chosen)
            branches.append(
                _Branch(
                    index=index,
                    prefix=tuple(path),
                    label=element,
                    member=chosen[0][0] if len(chosen) == 1 else None,
                    members=[m[0] for m in members],
                    discriminated=discriminated,
                )
            )
            current = [m[0] for m in chosen] if chosen else [typing.Any]
            continue
        nxt: list[Any] = []
        for tp, _ in members:
            origin = typing.get_origin(tp)
            if _is_model(tp):
                info = _field(tp, element)
                if info is not None:
                    nxt.append(info.annotation)
            elif origin in (list, set, frozenset, tuple) or (
                isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str
            ):
                args = typing.get_args(tp)
                if origin is tuple and args and args[-1] is not Ellipsis and type(element) is int:
                    nxt.append(args[element] if element < len(args) else typing.Any)
                else:
                    nxt.append(args[0] if args else typing.Any)
            elif origin is dict or (isinstance(origin, type) and issubclass(origin, Mapping)):
                args = typing.get_args(tp)
                nxt.append(args[1] if len(args) == 2 else typing.Any)
        path.append(element)
        current = nxt or [typing.Any]
    end = [m for tp in current for m in _members(tp)]
    tags: dict[str, Any] = {}
    if len(end) > 1:
        for member, metadata in end:
            for tag in _tags(member, metadata, discriminator):
                tags.setdefault(tag, member)
    return _Walk(tuple(path), branches, [m[0] for m in end], tags)


def _value_at(data: Any, path: Sequence[Any]) -> Any:
    for element in path:
        if isinstance(data, dict) and element in data:
            data = data[element]
        elif isinstance(data, list) and type(element) is int and 0 <= element < len(data):
            data = data[element]
        else:
            return None
    return data


# ------------------------------------------------------------------------------------ union collapse


def _collapse(entries: list[tuple[dict[str, Any], _Walk]], data: Any) -> list[tuple[dict[str, Any], _Walk]]:
    """Keep, for each union without a discriminator, only the errors of its most relevant branch.

    The most relevant branch is, in order: a model whose distinctive keys (fields no other member of
    the union has) appear most in the mapping, then one sharing most keys with it, then the branch with
    fewest errors, then the first. Scalars and lists prefer non-model branches.
    """
    alive = list(range(len(entries)))
    points = sorted(
        {(b.index, tuple(e["loc"][: b.index])) for e, w in entries for b in w.branches if not b.discriminated}
    )
    for index, prefix in points:
        groups: dict[str, list[int]] = {}
        branch_of: dict[str, _Branch] = {}
        for k in alive:
            err, walk = entries[k]
            for b in walk.branches:
                if b.index == index and tuple(err["loc"][:index]) == prefix and not b.discriminated:
                    groups.setdefault(b.label, []).append(k)
                    branch_of.setdefault(b.label, b)
        if len(groups) < 2:
            continue
        value = _value_at(data, next(iter(branch_of.values())).prefix)
        models = [m for m in next(iter(branch_of.values())).members if _is_model(m)]

        def score(
            label: str,
            value: Any = value,
            models: list[Any] = models,
            groups: dict[str, list[int]] = groups,
            branch_of: dict[str, _Branch] = branch_of,
        ) -> tuple[int, int, int]:
            member = branch_of[label].member
            n_errors = len(groups[label])
            if not isinstance(value, dict):
                return (-1 if _is_model(member) else 0, 0, -n_errors)
            if not _is_model(member):
                return (-1, 0, -n_errors)
            own = set(_field_names(member))
            others: set[str] = set()
            for m in models:
                if m is not member:
                    others.update(_field_names(m))
            keys = set(value)
            return (len(keys & (own - others)), len(keys & own), -n_errors)

        best = max(groups, key=score)  # max keeps the first of equals: pydantic's member order
        dropped = {k for label, ks in groups.items() if label != best for k in ks}
        alive = [k for k in alive if k not in dropped]
    return [entries[k] for k in alive]


# ------------------------------------------------------------------------------------ messages


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if not value:
            return "an empty string"
        shown = value if len(value) <= 40 else value[:37] + "..."
        return "'" + shown.replace("\n", "\\n") + "'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "iterable_type": "a list",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
    "multiple_of": ("multiple_of", "must be a multiple of"),
}
_LENGTHS = {
    "string_too_short": ("min_length", "must have at least {} character(s)"),
    "string_too_long": ("max_length", "must have at most {} character(s)"),
    "too_short": ("min_length", "must have at least {} item(s)"),
    "too_long": ("max_length", "must have at most {} item(s)"),
}


def _literal_options(walk: _Walk) -> list[Any]:
    """The values a Literal annotation at the end of the walk allows."""
    options: list[Any] = []
    for tp in walk.types:
        if typing.get_origin(tp) is Literal:
            options.extend(typing.get_args(tp))
    return options


def _show_options(options: list[Any]) -> str:
    shown = [_describe(option) for option in options]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _discriminator(ctx: Mapping[str, Any]) -> str | None:
    """The field name of a discriminated union (ctx gives it quoted: `'kind'`); None for a function."""
    name = str(ctx.get("discriminator", ""))
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] == "'" else None


def _message(err: dict[str, Any], walk: _Walk, parent: _Walk | None) -> tuple[str, str | None]:
    """A plain message and a hint for one pydantic error, from its type, ctx and the model."""
    kind = err["type"]
    loc = err["loc"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = loc[-1] if loc else ""
        names: list[str] = []
        for model in parent.types if parent else []:
            if _is_model(model):
                names.extend(n for n in _field_names(model) if n not in names)
        return f"unknown key '{key}'", did_you_mean(key, names)
    if kind == "missing":
        return f"missing required key '{loc[-1]}'" if loc else "missing value", None
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = _discriminator(ctx)
        expected = list(walk.tags)
        listed = ", ".join(expected)
        if kind == "union_tag_invalid":
            tag = ctx.get("tag", "")
            return f"unknown {field or 'kind'} '{tag}' — expected one of: {listed}", did_you_mean(
                tag, expected
            )
        if not isinstance(value, dict):
            return f"expected a mapping, got {_describe(value)}", None
        if field:
            return f"missing required key '{field}' — expected one of: {listed}", None
        hint = next((h for h in (did_you_mean(k, expected) for k in value) if h), None)
        return f"cannot tell what this is — expected one of: {listed}", hint
    if kind in ("literal_error", "enum"):
        options = _literal_options(walk)
        shown = _show_options(options) if options else str(ctx.get("expected", "one of the allowed values"))
        hint = did_you_mean(value, [str(o) for o in options]) if isinstance(value, str) else None
        return f"expected {shown}, got {_describe(value)}", hint
    if kind in _EXPECTED:
        if loc == () and value is None:
            return f"the file is empty; expected {_EXPECTED[kind]}", None
        return f"expected {_EXPECTED[kind]}, got {_describe(value)}", None
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err.get("msg", ""))), None
    if kind in _BOUNDS:
        key, phrase = _BOUNDS[kind]
        return f"{phrase} {ctx.get(key)}, got {_describe(value)}", None
    if kind in _LENGTHS:
        key, phrase = _LENGTHS[kind]
        return f"{phrase.format(ctx.get(key))}, got {_describe(value)}", None
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')!r}, got {_describe(value)}", None
    if kind == "finite_number":
        return f"must be a finite number, got {_describe(value)}", None
    if "message" in ctx:  # our own PydanticCustomError kinds (template_syntax, ...)
        return str(ctx["message"]), None
    return str(err.get("msg", kind)), None


def validate_model(
    model_cls: Any,
    loaded: LoadedYaml,
    file: str | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[Any | None, list[Diagnostic]]:
    """Validate `loaded.data` with `model_cls`; return ``(instance, [])`` or ``(None, diagnostics)``.

    The diagnostics include those found while loading the YAML (syntax errors stop here; duplicate keys
    are reported together with the validation errors). `file` overrides the name shown (default
    `loaded.file`); `context` is passed to pydantic's ``model_validate``.
    """
    from pydantic import ValidationError

    diags = list(loaded.diagnostics)
    if file is not None and file != loaded.file:
        diags = [_replace_file(d, file) for d in diags]
    if loaded.data is None and not loaded.ok:
        return None, sort_diagnostics(diags)
    try:
        obj = model_cls.model_validate(loaded.data, context=context)
    except ValidationError as exc:
        diags.extend(diagnostics_from_errors(model_cls, loaded, exc.errors(include_url=False), file=file))
        return None, sort_diagnostics(diags)
    except Exception as exc:  # a validator failed in an unplanned way: still no traceback for the user
        d = loaded.diagnostic((), f"could not validate this file: {type(exc).__name__}: {exc}")
        diags.append(_replace_file(d, file) if file is not None else d)
        return None, sort_diagnostics(diags)
    if any(d.severity == "error" for d in diags):
        return None, sort_diagnostics(diags)
    return obj, sort_diagnostics(diags)


def diagnostics_from_errors(
    model_cls: Any, loaded: LoadedYaml, errors: Sequence[Mapping[str, Any]], file: str | None = None
) -> list[Diagnostic]:
    """Located diagnostics for pydantic `errors` (``ValidationError.errors()``) raised by `model_cls`."""
    entries = []
    for err in errors:
        err = dict(err)
        err["loc"] = tuple(err.get("loc", ()))
        disc = (err.get("ctx") or {}).get("discriminator")
        field = disc[1:-1] if isinstance(disc, str) and disc.startswith("'") else None
        entries.append((err, _walk(model_cls, err["loc"], loaded.data, field)))
    entries = _misspelt_required(_collapse(entries, loaded.data), model_cls, loaded.data)
    out: list[Diagnostic] = []
    seen: set[tuple[int, int, str]] = set()
    for err, walk in entries:
        loc = err["loc"]
        kind = err["type"]
        parent = _walk(model_cls, loc[:-1], loaded.data) if kind == "extra_forbidden" and loc else None
        message, hint = _message(err, walk, parent)
        if kind == "extra_forbidden":
            diag = loaded.diagnostic(walk.yaml_path, message, key=True, hint=hint)
        elif kind == "missing":
            diag = loaded.diagnostic(walk.yaml_path[:-1], message, hint=hint)
        elif kind == "union_tag_invalid":
            field = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
            value = _value_at(loaded.data, walk.yaml_path)
            target = walk.yaml_path
            if isinstance(value, dict) and field in value:
                target += (field,)
            diag = loaded.diagnostic(target, message, hint=hint)
        else:
            subpath = tuple((err.get("ctx") or {}).get("subpath", ()))  # where inside a template value
            diag = loaded.diagnostic(walk.yaml_path + subpath, message, hint=hint)
        if file is not None:
            diag = _replace_file(diag, file)
        if (diag.line, diag.col, diag.message) not in seen:
            seen.add((diag.line, diag.col, diag.message))
            out.append(diag)
    return out


def _misspelt_required(
    entries: list[tuple[dict[str, Any], _Walk]], model_cls: Any, data: Any
) -> list[tuple[dict[str, Any], _Walk]]:
    """A required key written misspelt is one mistake: the unknown key (whose hint names the required
    one) is reported, and the missing key it was meant to be is not."""
    missing = {err["loc"]: index for index, (err, _) in enumerate(entries) if err["type"] == "missing"}
    dropped: set[int] = set()
    for err, _ in entries:
        loc = err["loc"]
        if err["type"] != "extra_forbidden" or not loc:
            continue
        parent = _walk(model_cls, loc[:-1], data)
        names = [n for model in parent.types if _is_model(model) for n in _field_names(model)]
        meant = closest(loc[-1], names)
        if meant is not None and loc[:-1] + (meant,) in missing:
            dropped.add(missing[loc[:-1] + (meant,)])
    return [entry for index, entry in enumerate(entries) if index not in dropped]


def _replace_file(diag: Diagnostic, file: str) -> Diagnostic:
    from dataclasses import replace

    return replace(diag, file=file)
