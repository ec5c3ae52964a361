"""Python functions written from config: the one way the engine turns source it wrote into code.

Templates (`engine.expressions.compiler`), field paths (`engine.expressions.selection`) and step lists
(`engine.pipeline.program`) each write the source of one function. Whatever the source refers to that
is not a literal is passed in as `_o0`, `_o1`, ...: the function reads them as closure cells, and no
value from the config is ever written into the source except as a `repr()` literal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["define"]


def define(
    lines: Sequence[str], objects: Sequence[Any], filename: str, globals: dict[str, Any] | None = None
) -> Any:
    """The function that `lines` define (a `def` or `async def` and its body, indented from column 0),
    with `objects` as `_o0`, `_o1`, ... and `globals` as its module globals. SyntaxError (and a
    SyntaxWarning the caller made an error) propagates."""
    name = lines[0].split("def ", 1)[1].split("(", 1)[0]
    parameters = ", ".join(f"_o{index}" for index in range(len(objects)))
    body = "".join(f"    {line}\n" for line in lines)
    code = compile(f"def _make({parameters}):\n{body}    return {name}\n", filename, "exec")
    namespace = dict(globals or {})
    exec(code, namespace)  # noqa: S102 - the engine wrote the source; config values only as repr()
    return namespace["_make"](*objects)
