"""The limits applied to what Jinja calls: methods, globals, filters, and JMESPath inside templates.

Each filter that can build a string, list or number is wrapped: some arguments are sized first (a
width, a count, what a join or a replacement would make), and the result is checked once built (see
`engine.expressions.limits`). A wrapper is called the way Jinja calls the filter it wraps.
The filters that walk their value item by item (`map`, `select`, `sum`, ...) count each item towards
the evaluation's total, as a loop counts its turns.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import Any

import jmespath
import jmespath.functions
import jmespath.visitor
from jinja2 import Undefined
from jinja2.filters import make_attrgetter
from jinja2.utils import _PassArg

from engine import helpers
from engine.errors import TemplateLimitError
from engine.expressions.limits import (
    MAX_LENGTH,
    SCALARS,
    SLACK,
    bound,
    charge,
    check,
    exact,
    limit_error,
    measure,
    printf_size,
    text_size,
    to_text,
)

__all__ = ["before_call", "bounded", "guard_filters", "jmes", "lipsum"]

# --- calls: methods and globals ------------------------------------------------------------------

_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def bounded(iterable: Any) -> Any:
    """An iterator as a list of at most MAX_LENGTH items; anything else as it is."""
    if isinstance(iterable, Iterator):
        items = []
        for item in iterable:
            items.append(item)
            if len(items) > MAX_LENGTH:
                raise limit_error("a list", None, MAX_LENGTH, "items")
        return items
    return iterable


def before_call(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """The arguments of a call from a template, checked when the call builds from them.

    An iterator a template can make is as long as what it was made from (`slice(n)` is read with a
    bound), so only what a call would build from it is sized: `'-'.join(items)`.
    """
    owner = getattr(function, "__self__", None)
    if not isinstance(owner, str | bytes) or not isinstance(function, types.BuiltinMethodType):
        return args
    name = function.__name__
    if name in _WIDTH_METHODS and args and isinstance(args[0], int):
        exact(max(len(owner), args[0]), owner)
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            exact(len(owner) + tabs * max(tabsize - 1, 0), owner)
    elif name == "replace" and len(args) >= 2:
        _replace_size(owner, *args[:3])
    elif name == "join" and args and isinstance(args[0], Iterable):
        if isinstance(args[0], Iterator):  # read once here, and handed on as what was read
            args = (bounded(args[0]), *args[1:])
        items = args[0] if isinstance(args[0], list | tuple) else list(args[0])
        parts = sum(len(item) for item in items if isinstance(item, str | bytes))
        exact(parts + len(owner) * max(len(items) - 1, 0), owner)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        widest = max((len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1)
        exact(len(owner) * max(widest, 1), owner)
    return args


def _replace_size(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not isinstance(text, str | bytes) or type(old) is not type(text) or type(new) is not type(text):
        return
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    exact(len(text) + found * (len(new) - len(old)), text)


def lipsum(original: Callable[..., str]) -> Callable[..., str]:
    """Jinja's `lipsum`, sized from its arguments before it runs."""

    def sized(n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> str:  # noqa: A002
        if isinstance(n, int) and isinstance(max, int):
            bound(n * max * 16)
        return check(original(n, html, min, max))

    return functools.update_wrapper(sized, original)


# --- filters --------------------------------------------------------------------------------------


def _guard(original: Callable[..., Any], pre: Callable[..., Any] | None) -> Callable[..., Any]:
    """A filter whose arguments `pre` checks first (it may return a bounded replacement for the value)
    and whose result `check` checks. `pre` gets what Jinja passes first (an environment or an eval
    context) or None, then the filter's own arguments. The wrapper is called as Jinja calls `original`.
    """
    if pre is None:

        def checked(*args: Any, **kwargs: Any) -> Any:
            return check(original(*args, **kwargs))

        return functools.update_wrapper(checked, original)
    if _PassArg.from_obj(original) is None:

        def plain(value: Any, *args: Any, **kwargs: Any) -> Any:
            replaced = pre(None, value, *args, **kwargs)
            return check(original(value if replaced is None else replaced, *args, **kwargs))

        return functools.update_wrapper(plain, original)

    def passing(head: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        replaced = pre(head, value, *args, **kwargs)
        return check(original(head, value if replaced is None else replaced, *args, **kwargs))

    return functools.update_wrapper(passing, original)


def _printing(original: Callable[[Any], str]) -> Callable[[Any], str]:
    """A filter that prints its one value (`string`, `to_str`, ...): sized first, unless a scalar."""

    def guarded(value: Any) -> str:
        kind = type(value)
        if kind is not str and kind not in SCALARS:
            bound(text_size(value))
        result = original(value)
        size = len(result)
        if size > MAX_LENGTH:
            raise limit_error("a string", size, MAX_LENGTH, "characters")
        charge(size)
        return result

    return functools.update_wrapper(guarded, original)


def _center(_: Any, value: Any, width: Any = 80) -> None:
    if isinstance(width, int):
        exact(max(text_size(value), width))


def _indent(_: Any, s: Any, width: Any = 4, first: Any = False, blank: Any = False) -> None:
    if isinstance(s, str) and isinstance(width, int | str):
        indent = len(width) if isinstance(width, str) else max(width, 0)
        exact(len(s) + (len(s.splitlines()) + 1) * indent)


def _wordwrap(env: Any, s: Any, width: Any = 79, long: Any = True, wrapstring: Any = None, *_: Any) -> None:
    wrap = env.newline_sequence if wrapstring is None else wrapstring
    if isinstance(s, str) and isinstance(wrap, str):
        bound(len(s) + (len(s) + 1) * len(wrap))


def _replace(_: Any, s: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old_text, new_text = (to_text(x) for x in (s, old, new))
    _replace_size(text, old_text, new_text, -1 if count is None else count)


def _join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
    items = value if isinstance(value, list | tuple) else bounded(iter(value))
    parts = map(make_attrgetter(eval_ctx.environment, attribute), items) if attribute is not None else items
    bound(sum(text_size(part) for part in parts) + text_size(d) * max(len(items) - 1, 0))
    return items


def _format(_: Any, value: Any, *args: Any, **kwargs: Any) -> None:
    bound(printf_size(to_text(value), kwargs or args))


def _pprint(_: Any, value: Any) -> None:
    size, items, depth = measure(value, SLACK * MAX_LENGTH)
    bound(size + items * (depth + 2))


def _tojson(_: Any, value: Any, indent: Any = None) -> None:
    size, items, depth = measure(value, SLACK * MAX_LENGTH, json=True)
    step = len(indent) if isinstance(indent, str) else max(indent, 0) if isinstance(indent, int) else 0
    bound(size + items * (depth * step + 2))


def _xmlattr(_: Any, d: Any, autospace: Any = True) -> None:
    bound(6 * text_size(d))


def _urlencode(_: Any, value: Any) -> None:
    bound(12 * text_size(value))


def _urlize(_: Any, value: Any, trim_url_limit: Any = None, nofollow: Any = False, target: Any = None,
            rel: Any = None, extra_schemes: Any = None) -> None:  # fmt: skip
    text = value if isinstance(value, str) else ""
    extra = sum(len(x) for x in (target, rel) if isinstance(x, str))
    bound(6 * len(text) + len(text.split()) * (96 + extra))


def _sum(env: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    values = iterable if isinstance(iterable, list | tuple) else bounded(iter(iterable))
    if isinstance(start, list | tuple):
        picked = map(make_attrgetter(env, attribute), values) if attribute is not None else values
        exact(len(start) + sum(len(v) for v in picked if isinstance(v, list | tuple)), start)
    return values


def _batch(_: Any, value: Any, linecount: Any, fill_with: Any = None) -> Any:
    items = bounded(value)
    if fill_with is not None and isinstance(linecount, int) and linecount > MAX_LENGTH:
        if items if isinstance(items, list) else bounded(iter(items)):
            exact(linecount, [])
    return items


def _date(_: Any, value: Any, fmt: Any = "%Y-%m-%d", tz: Any = None) -> None:
    if isinstance(fmt, str):
        bound(16 * len(fmt))


def _slices(original: Callable[..., Any]) -> Callable[..., Any]:
    """`slice(n)` yields n lists whatever its input: reading more than MAX_LENGTH of them is refused."""

    def sliced(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for index, part in enumerate(original(*args, **kwargs)):
            if index >= MAX_LENGTH:
                raise limit_error("a list", None, MAX_LENGTH, "items")
            yield part

    return functools.update_wrapper(sliced, original)


_FILTER_GUARDS: dict[str, Callable[..., Any] | None] = {
    "batch": _batch,
    "capitalize": None,
    "center": _center,
    "dictsort": None,
    "e": None,
    "escape": None,
    "forceescape": None,
    "format": _format,
    "groupby": None,
    "indent": _indent,
    "int": None,
    "join": _join,
    "list": None,
    "lower": None,
    "pprint": _pprint,
    "replace": _replace,
    "reverse": None,
    "safe": None,
    "slice": None,
    "sort": None,
    "striptags": None,
    "sum": _sum,
    "title": None,
    "tojson": _tojson,
    "trim": None,
    "truncate": None,
    "upper": None,
    "urlencode": _urlencode,
    "urlize": _urlize,
    "wordwrap": _wordwrap,
    "xmlattr": _xmlattr,
    # the project's helpers that build; the others return a value they were given, or a scalar
    "date": _date,
    "fromjson": None,
    "split": None,
}
"""The filters that can build a string, list or number: each result is checked, some arguments first."""


def _counted(items: Iterator[Any]) -> Iterator[Any]:
    for item in items:
        charge(1)
        yield item


def _counting(original: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that walks its value item by item: each item counts towards the evaluation's total, as a
    loop's turn does (a chain of `map`s over a large list builds nothing, yet walks it once per `map`)."""
    position = 0 if _PassArg.from_obj(original) is None else 1

    def counting(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position:
            value = args[position]
            if isinstance(value, Undefined):
                pass  # the filter meets it as Jinja's does: a lazy one (`unique`, `map`) never touches it
            elif isinstance(value, Iterator):
                args = (*args[:position], _counted(value), *args[position + 1 :])
            elif isinstance(value, Sized):
                charge(len(value))
        return original(*args, **kwargs)

    return functools.update_wrapper(counting, original)


_WALKING = ("map", "select", "reject", "selectattr", "rejectattr", "unique", "min", "max", "sum", "join")
"""The filters that walk every item of their value and may give back something small (or lazy)."""


def guard_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The filters with the limits applied to every one that can build, and the items of every one that
    walks its value counted."""
    guarded = dict(filters)
    for name, pre in _FILTER_GUARDS.items():
        if name in guarded:
            guarded[name] = _guard(guarded[name], pre)
    for name in _WALKING:
        guarded[name] = _counting(guarded[name])
    for name in ("string", "to_str", "odata_quote", "path_raw"):
        if name in guarded:
            guarded[name] = _printing(guarded[name])
    guarded["slice"] = _slices(guarded["slice"])
    if "jmes" in guarded:
        guarded["jmes"] = functools.update_wrapper(jmes, guarded["jmes"])
    return guarded


# --- JMESPath inside templates --------------------------------------------------------------------


class _Functions(jmespath.functions.Functions):
    """JMESPath's functions; the two that build text from many values are sized first."""

    @jmespath.functions.signature({"types": []})
    def _func_to_string(self, arg: Any) -> Any:
        if not isinstance(arg, str):
            bound(text_size(arg, json=True))
        return check(super()._func_to_string(arg))

    @jmespath.functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator: str, array: list[str]) -> Any:
        exact(sum(map(len, array)) + len(separator) * max(len(array) - 1, 0))
        return check(super()._func_join(separator, array))


_OPTIONS = jmespath.Options(custom_functions=_Functions())


class _Interpreter(jmespath.visitor.TreeInterpreter):
    """JMESPath's interpreter, stopped after MAX_LENGTH steps; a flatten is sized before it is built."""

    def __init__(self) -> None:
        super().__init__(_OPTIONS)
        self.steps = MAX_LENGTH

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self.steps -= 1
        if self.steps < 0:
            raise TemplateLimitError(
                f"the JMESPath expression takes more than {MAX_LENGTH:,} steps; the limit is {MAX_LENGTH:,}"
            )
        return super().visit(node, *args, **kwargs)

    def visit_flatten(self, node: Any, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        exact(sum(len(item) if isinstance(item, list) else 1 for item in base), base)
        merged: list[Any] = []
        for item in base:
            if isinstance(item, list):
                merged.extend(item)
            else:
                merged.append(item)
        return merged


def jmes(value: Any, expression: str) -> Any:
    """The `jmes` helper within the limits: JMESPath selection, bounded in steps and in what it builds."""
    return check(_Interpreter().visit(helpers.compiled_jmes(expression).parsed, value))
