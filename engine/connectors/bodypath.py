"""Paths into a JSON request body, such as `Params.Page` or `params.args[6].limit`: parsed once when the
config loads, and written without changing the call's own body.

A path is dot-separated names, each optionally followed by `[index]`s. Writing creates the objects a
path names when they are missing, but never creates or grows a list: a list index must already exist
in the body, so a path that does not fit the body is an error instead of a new, ignored key.
"""

from __future__ import annotations

import copy
import re
from typing import Any

__all__ = ["BodyPath", "parse_body_path"]

_SEGMENT = re.compile(r"(?P<name>[^.\[\]]+)(?P<indices>(?:\[\d+\])*)")


class BodyPath:
    """A parsed body path: a tuple of keys (str) and list indices (int)."""

    __slots__ = ("parts", "text")

    def __init__(self, text: str, parts: tuple[str | int, ...]) -> None:
        self.text = text
        self.parts = parts

    def __repr__(self) -> str:
        return f"BodyPath({self.text!r})"

    def write(self, body: Any, value: Any) -> Any:
        """A copy of `body` with `value` at this path; ValueError when the path does not fit it."""
        root = {} if body is None else copy.deepcopy(body)
        node: Any = root
        for depth, part in enumerate(self.parts[:-1]):
            node = self._child(node, part, self.parts[depth + 1], depth)
        self._set(node, self.parts[-1], value, len(self.parts) - 1)
        return root

    def _where(self, depth: int) -> str:
        return self.text if depth == 0 else f"{self.text} ({_show(self.parts[:depth])})"

    def _child(self, node: Any, part: str | int, following: str | int, depth: int) -> Any:
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"cannot write at {self._where(depth)}: it is not a list")
            if part >= len(node):
                raise ValueError(
                    f"cannot write at {self.text}: {_show(self.parts[:depth])} has {len(node)} item(s)"
                )
            return node[part]
        if not isinstance(node, dict):
            raise ValueError(f"cannot write at {self._where(depth)}: it is not an object")
        if part not in node or node[part] is None:
            if isinstance(following, int):
                raise ValueError(
                    f"cannot write at {self.text}: there is no list at {_show(self.parts[: depth + 1])}"
                )
            node[part] = {}
        return node[part]

    def _set(self, node: Any, part: str | int, value: Any, depth: int) -> None:
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"cannot write at {self._where(depth)}: it is not a list")
            if part >= len(node):
                shown = _show(self.parts[:depth])
                raise ValueError(f"cannot write at {self.text}: {shown} has {len(node)} item(s)")
            node[part] = value
        elif isinstance(node, dict):
            node[part] = value
        else:
            raise ValueError(f"cannot write at {self._where(depth)}: it is not an object")


def _show(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the body"


def parse_body_path(text: str) -> BodyPath:
    """Parse `a.b[2].c`; ValueError naming what is wrong with it."""
    parts: list[str | int] = []
    for segment in text.split("."):
        match = _SEGMENT.fullmatch(segment.strip())
        if match is None:
            raise ValueError(f"invalid body path {text!r}: expected names and [index]es, like params.args[1]")
        parts.append(match.group("name"))
        parts.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group("indices")))
    return BodyPath(text, tuple(parts))
