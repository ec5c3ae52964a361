"""Path templates: a value in a URL path is one segment's data; only `path_raw` inserts structure."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from engine.errors import ExpressionError, PathValueError
from engine.expressions import PathTemplate, PathTemplateField, compile_path_template


@pytest.mark.parametrize(
    ("source", "context", "expected"),
    [
        ("/api/Workorders/{{ id }}", {"id": 12}, "/api/Workorders/12"),
        ("/api/{{ id }}", {"id": "a/b?c#d%e f"}, "/api/a%2Fb%3Fc%23d%25e%20f"),
        ("/api/{{ id }}", {"id": "A-z_0.9~"}, "/api/A-z_0.9~"),
        ("/api/{{ id }}", {"id": 'פק"ע'}, "/api/%D7%A4%D7%A7%22%D7%A2"),
        ("/SERIAL({{ x | odata_quote }})", {"x": "WO-1"}, "/SERIAL(%27WO-1%27)"),
        ("/SERIAL({{ x | odata_quote }})", {"x": "a')/../b"}, "/SERIAL(%27a%27%27%29%2F..%2Fb%27)"),
        ("/a/{{ x }}.{{ y }}", {"x": "v", "y": 2}, "/a/v.2"),
        ("/x{{ a }}/y", {"a": ""}, "/x/y"),
        ("/api/{{ a }}/", {"a": "b"}, "/api/b/"),
        ("/api/../literal/{{ a }}", {"a": "b"}, "/api/../literal/b"),
        ("/api?q={{ q }}", {"q": ""}, "/api?q="),
        ("/api/{{ a }}?q={{ q }}", {"a": "א", "q": "x/y"}, "/api/%D7%90?q=x%2Fy"),
        ("/api/{{ none }}", {}, "/api/None"),
        (
            "{{ base | path_raw }}/KITITEMS_SUBFORM",
            {"base": "/SERIAL('WO-1')"},
            "/SERIAL('WO-1')/KITITEMS_SUBFORM",
        ),
        ("/a/{% if x %}{{ x }}{% else %}none{% endif %}", {"x": "b/c"}, "/a/b%2Fc"),
    ],
)
def test_values_are_segment_data_and_literal_text_is_kept(
    source: str, context: dict[str, Any], expected: str
) -> None:
    assert PathTemplate(source).render(context) == expected


@pytest.mark.parametrize(
    ("source", "context", "message"),
    [
        ("/api/{{ id }}", {"id": ".."}, "makes the path segment '..'"),
        ("/api/{{ id }}/x", {"id": "."}, "makes the path segment '.'"),
        ("/x/{{ a }}{{ b }}", {"a": ".", "b": "."}, "makes the path segment '..'"),
        ("/x/.{{ a }}", {"a": "."}, "makes the path segment '..'"),
        ("/api/{{ id }}", {"id": ""}, "leaves a path segment empty"),
        ("/api/{{ a }}{{ b }}/x", {"a": "", "b": ""}, "leaves a path segment empty"),
        ("{{ a }}/x", {"a": ""}, "leaves a path segment empty"),
        ("/api/{{ id }}", {"id": "WO-\ud800"}, r"lone surrogate \(U\+D800\) at position 3"),
    ],
)
def test_a_value_that_would_change_the_target_is_an_error(
    source: str, context: dict[str, Any], message: str
) -> None:
    with pytest.raises(PathValueError, match=message) as caught:
        PathTemplate(source).render(context)
    assert caught.value.where == "path" and caught.value.template == source
    assert "{{" not in str(caught.value)


def test_an_undefined_value_is_an_error_naming_the_field() -> None:
    with pytest.raises(ExpressionError, match="^path: 'event' has no key 'id'$"):
        PathTemplate("/api/{{ event.id }}").render({"event": {}})


def test_raw_structure_is_discoverable() -> None:
    assert PathTemplate("/a/{{ x }}").raw_lines == ()
    assert PathTemplate("{{ base | path_raw }}/x/{{ y }}").raw_lines == (1,)


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@given(texts, texts)
def test_a_value_decodes_back_to_itself_and_adds_no_segment(first: str, second: str) -> None:
    """The law of RFC 6570 simple expansion: structure comes from the template, the value is data."""
    if first in ("", ".", "..") or second in ("", ".", ".."):
        return
    path = PathTemplate("/a/{{ x }}/b({{ y }})").render({"x": first, "y": second})
    segments = path.split("/")
    assert len(segments) == 4
    assert unquote(segments[2]) == first and unquote(segments[3]) == f"b({second})"


@given(texts)
def test_the_compiled_subset_and_jinja_give_the_same_path(value: str) -> None:
    outcomes = []
    for source in ("/a/{{ x }}/{{ x ~ '!' }}", "/a/{% if true %}{{ x }}{% endif %}/{{ x ~ '!' }}"):
        try:
            outcomes.append(PathTemplate(source).render({"x": value}))
        except PathValueError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


class _Call(BaseModel):
    path: PathTemplateField


def test_path_templates_are_pydantic_fields_checked_at_load() -> None:
    assert _Call(path="/a/{{ x }}").path.render({"x": "b/c"}) == "/a/b%2Fc"
    assert compile_path_template(_Call(path="/a").path).source == "/a"
    bad_paths = [
        ("/a/{{ x | lookupp }}", "unknown filter 'lookupp'"),
        (5, "a path is a string"),
        ("/a/WO-\ud800", "lone surrogate"),
    ]
    for bad, message in bad_paths:
        with pytest.raises(ValidationError, match=message) as caught:
            _Call(path=bad)
        assert caught.value.errors()[0]["type"] == "template_syntax"
