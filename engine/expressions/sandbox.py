"""The one Jinja environment every template runs in.

It is Jinja's `ImmutableSandboxedEnvironment` with `StrictUndefined`, the project's helpers, and two
changes made through Jinja's own extension points:

- on a mapping, a key wins over a method or attribute of the same name (`getattr`): `event.items` is
  the event's `items` field, never `dict.items`. A mapping without that key still has its methods, so
  `event.get('code')` works;
- the limits of `engine.expressions.limits`: every binary operator is intercepted (`call_binop`), `~`
  compiles to `environment.concat_values` and `{% for %}` reads through `environment.counted`, printed
  values go through `finalize`, text is joined by `concat`, calls go through `call`, `str.format`
  through a bounded formatter, and the filters and globals that can build are guarded
  (`engine.expressions.guards`).

Undefined values are `StrictUndefined`; the only addition is that the error they raise carries the
undefined value, so a message can name the field that was missing.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from markupsafe import Markup

from engine import helpers
from engine.expressions import guards, limits, variables

__all__ = ["Environment", "MissingValue", "environment"]


class MissingValue(UndefinedError):
    """Jinja's UndefinedError, holding the undefined value that raised it."""

    def __init__(self, undefined: jinja2.StrictUndefined, message: str | None = None) -> None:
        super().__init__(message)
        self.undefined = undefined


class StrictUndefined(jinja2.StrictUndefined):
    """Jinja's StrictUndefined (by name too, as messages show it), whose error holds the undefined value."""

    __slots__ = ()

    def __init__(
        self, hint: str | None = None, obj: Any = missing, name: str | None = None, exc: Any = UndefinedError
    ) -> None:
        raises = functools.partial(MissingValue, self) if exc is UndefinedError else exc
        super().__init__(hint, obj, name, raises)  # type: ignore[arg-type]


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with `a ~ b` compiled to `environment.concat_values((a, b))` and each
    `{% for %}` reading its items through `environment.counted`, which counts every iteration."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            counted = nodes.EnvironmentAttribute("counted", lineno=loop.lineno)
            if not (isinstance(loop.iter, nodes.Call) and loop.iter.node == counted):
                loop.iter = nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.lineno)
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_values((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Environment(ImmutableSandboxedEnvironment):
    """The sandbox with the mapping rule and the limits (see the module docstring)."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset(limits.BINOPS)
    concat = staticmethod(limits.join_text)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.binop_table = dict(limits.BINOPS)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`obj.attribute`: on a mapping that has the key, the key's value; otherwise Jinja's lookup."""
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                if attribute in obj:
                    return obj[attribute]
            except TypeError:
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return limits.BINOPS[operator](left, right)

    @staticmethod
    def concat_values(values: tuple[Any, ...]) -> str:
        """`a ~ b ~ c`."""
        return limits.concat(values)

    @staticmethod
    def counted(items: Any) -> Iterator[Any]:
        """The items a `{% for %}` loops over, each iteration counted towards the evaluation's total."""
        for item in items:
            limits.charge(1)
            yield item

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A call from the template: one step of the evaluation's total (a macro calling itself twice
        builds nothing, yet runs 2**n times), its arguments and result within the limits."""
        limits.charge(1)
        args = guards.before_call(__obj, args, kwargs)
        return limits.check(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        """`str.format` and `str.format_map`, through the bounded sandboxed formatter."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str) or isinstance(owner, Markup):
            return super().wrap_str_format(value)
        is_format_map = value.__name__ == "format_map"
        formatter = limits.Formatter(self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(wrapper, value)


def _finalize(value: Any) -> Any:
    """A printed value: sized before Jinja turns it into text."""
    if type(value) is str:
        return value
    return limits.to_text(value)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one Jinja environment every template compiles in."""
    env = Environment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
    )
    env.filters.update(helpers.FILTERS)
    env.filters = guards.guard_filters(env.filters)
    env.globals.update(helpers.GLOBALS)
    env.globals["lipsum"] = guards.lipsum(env.globals["lipsum"])  # type: ignore[arg-type]
    env.globals[variables.GLOBAL] = variables.reference_value
    return env
