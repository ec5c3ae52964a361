"""Event values are data in every shipped binding's URL paths: a value holding `/`, `..`, `?`, `#` or
`%` lands, percent-encoded, inside the segment its template names, or the event fails; it never
changes the target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config.references import path_templates
from engine.config.root import load_project
from engine.errors import ExpressionError
from engine.expressions import PathTemplate
from engine.expressions.paths import encode_segment

ROOT = Path(__file__).resolve().parents[2]
BENIGN = "7"
HOSTILE = "7/../../x?y=1#z%2F..'"


class Anything(str):
    """A value that is this text at every field and index: `event.item.sku` reads it too."""

    def __getitem__(self, key: Any) -> Anything:  # type: ignore[override]
        return Anything(str(self))

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything(str(self))


def shipped_paths() -> Iterator[tuple[str, PathTemplate]]:
    project = load_project(ROOT)
    assert project.ok
    for source, loc, path in path_templates(project):
        yield f"{source.file}:{source.diagnostic(loc, '').line}", path


TEMPLATED = [(label, path) for label, path in shipped_paths() if path.names]


def test_every_binding_has_templated_paths_under_test() -> None:
    files = {label.split(":")[0] for label, _ in TEMPLATED}
    for binding in ("priority", "nextx", "nextup"):
        assert any(file.startswith(f"mappings/{binding}/") for file in files), files
    assert any(file.startswith("connectors/") for file in files), files


@pytest.mark.parametrize(("label", "path"), TEMPLATED, ids=[label for label, _ in TEMPLATED])
def test_a_hostile_value_stays_inside_its_segment(label: str, path: PathTemplate) -> None:
    benign = path.render({name: Anything(BENIGN) for name in path.names})
    try:
        hostile = path.render({name: Anything(HOSTILE) for name in path.names})
    except ExpressionError:
        return  # e.g. a numeric key refuses the text: the event fails before any call
    assert "?" not in hostile and "#" not in hostile and "/../" not in hostile
    quoted = "'" + HOSTILE.replace("'", "''") + "'"  # what odata_quote makes of it
    as_benign = hostile.replace(encode_segment(quoted), encode_segment(f"'{BENIGN}'"))
    as_benign = as_benign.replace(encode_segment(HOSTILE), BENIGN)
    assert as_benign == benign, f"{label}: {path.source!r} gave {hostile!r}"
