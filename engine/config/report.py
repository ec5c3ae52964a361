"""Printing diagnostics: text for people, JSON for tools, GitHub workflow commands for CI."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict

from engine.config.diagnostic import Diagnostic, sort_diagnostics

__all__ = ["escape_data", "escape_property", "format_github", "format_json", "format_text"]


_ANSI = {
    "error": "\x1b[1;31m",
    "warning": "\x1b[1;33m",
    "bold": "\x1b[1m",
    "hint": "\x1b[36m",
    "reset": "\x1b[0m",
}


def _summary(diags: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diags if d.severity == "error")
    warnings = len(diags) - errors
    text = f"{errors} error" + ("" if errors == 1 else "s")
    if warnings:
        text += f", {warnings} warning" + ("" if warnings == 1 else "s")
    return text


def format_text(diags: Iterable[Diagnostic], color: bool = False) -> str:
    """Human-readable: ``file:line:col: error: message``, the source line, a caret, the hint; a summary.

    ``color=True`` adds ANSI colours.
    """
    items = sort_diagnostics(diags)

    def paint(text: str, style: str) -> str:
        return f"{_ANSI[style]}{text}{_ANSI['reset']}" if color and style in _ANSI else text

    lines: list[str] = []
    for d in items:
        where = f"{d.file}:{d.line}:{d.col}" if d.line else d.file
        lines.append(f"{paint(where, 'bold')}: {paint(d.severity, str(d.severity))}: {d.message}")
        if d.line and d.source_line:
            source = d.source_line.rstrip("\r\n")
            lines.append("    " + source)
            pad = "".join(c if c == "\t" else " " for c in source[: max(d.col - 1, 0)])
            lines.append("    " + pad + paint("^", str(d.severity)))
        if d.hint:
            lines.append(f"  {paint('hint', 'hint')}: {d.hint}")
    lines.append(_summary(items))
    return "\n".join(lines)


def format_json(diags: Iterable[Diagnostic]) -> str:
    """A JSON list of objects with the `Diagnostic` fields (`environment` only when true)."""
    found = []
    for d in sort_diagnostics(diags):
        data = asdict(d)
        if not d.environment:
            del data["environment"]
        found.append(data)
    return json.dumps(found, indent=2, ensure_ascii=False)


def escape_data(text: str) -> str:
    """A workflow command's message, escaped: `%`, CR and LF."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value, escaped: `%`, CR, LF, `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(diags: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands (``::error file=F,line=L,col=C::message``), one per line; a
    finding in an environment variable is in no file: its annotation is titled with the variable
    (``::error title=environment MESBRIDGE_STORE::message``)."""
    out = []
    for d in sort_diagnostics(diags):
        command = "warning" if d.severity == "warning" else "error"
        if d.environment:
            out.append(f"::{command} title={escape_property(d.file)}::{escape_data(_message(d))}")
            continue
        props = f"file={escape_property(d.file)}"
        if d.line:
            props += f",line={d.line},col={d.col}"
        out.append(f"::{command} {props}::{escape_data(_message(d))}")
    return "\n".join(out)


def _message(d: Diagnostic) -> str:
    return d.message + (f" ({d.hint})" if d.hint else "")
