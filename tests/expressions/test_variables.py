"""`${VAR}`, `${VAR:-default}` and `${file:PATH}` in templates and vars: resolved when used, from the
template's own text only, and masked wherever a secret one is shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import nodes

from engine.env import using
from engine.errors import ExpressionError
from engine.expressions import Template, compile_path_template, environment
from engine.expressions.templates import parse
from engine.expressions.variables import Variables, is_reference
from engine.pipeline.executor import Executor
from engine.pipeline.models import Pipeline
from engine.redaction import environment_redactor


def render(source: object, environ: dict[str, str], **context: object) -> object:
    with using(environ):
        return Template(source).render({"event": {}, **context})


def test_a_reference_in_text_resolves_when_the_template_renders() -> None:
    template = Template({"db": "${ERP_DB}", "line": "db=${ERP_DB:-x} n={{ event.n }}"})  # compiles unset
    with using({"ERP_DB": "prod"}):
        assert template.render({"event": {"n": 2}}) == {"db": "prod", "line": "db=prod n=2"}
    with using({}):
        assert Template("db=${ERP_DB:-x} n={{ event.n }}").render({"event": {"n": 2}}) == "db=x n=2"
        with pytest.raises(ExpressionError, match="environment variable ERP_DB is not set"):
            template.render({"event": {"n": 2}})


def test_a_reference_is_text_and_keeps_the_whitespace_around_it() -> None:
    assert render("  ${A}  ", {"A": "1"}) == "  1  "
    assert render("${A}", {"A": "7"}) == "7"  # text, never the number a lone expression would give


def test_references_resolve_inside_statements_too() -> None:
    assert render("{% if event.on %}${A}{% else %}-{% endif %}", {"A": "yes"}, event={"on": True}) == "yes"


@given(st.text())
def test_event_data_is_never_resolved(text: str) -> None:
    environ = {"A": "resolved"}
    assert render("{{ event.x }}", environ, event={"x": text}) == text
    assert render("<{{ event.x }}>", environ, event={"x": text}) == f"<{text}>"


def test_a_reference_in_an_expression_is_a_string_as_written() -> None:
    assert render("{{ '${A}' }}", {"A": "1"}) == "${A}"


def test_only_the_templates_text_becomes_references_on_the_parse_tree() -> None:
    ast = parse("a ${A} {{ b }} ${file:/run/secrets/k}", environment())
    calls = [node for node in ast.find_all(nodes.Call) if is_reference(node)]
    assert [call.args[0].value for call in calls] == ["${A}", "${file:/run/secrets/k}"]


@pytest.mark.parametrize(
    "source",
    [
        "{{ _mesbridge_reference('${file:' ~ event.path ~ '}') }}",
        "{% set read = _mesbridge_reference %}{{ read('${' ~ event.name ~ '}') }}",
        "/items/{{ _mesbridge_reference('${HOME}') }}",
    ],
)
def test_the_global_references_call_cannot_be_called_by_a_template(source: str) -> None:
    """Else a template could read any variable or file the event names, past `mesbridge check`."""
    with pytest.raises(ValueError, match="'_mesbridge_reference' is mesbridge's own name"):
        parse(source, environment())
    with pytest.raises(ValueError, match="mesbridge's own name"):
        Template({"x": source})


def test_a_file_reference_reads_the_file_without_its_final_newline_and_is_always_masked(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "db_password"
    secret.write_text("s3cret-from-file\n", encoding="utf-8")
    assert render(f"${{file:{secret}}}", {}) == "s3cret-from-file"
    assert environment_redactor({}).redact("login failed for s3cret-from-file") == "login failed for ***"


def test_a_missing_file_names_the_file_not_its_content(tmp_path: Path) -> None:
    with pytest.raises(ExpressionError, match=r"secret file .*nothing cannot be read: No such file"):
        render(f"${{file:{tmp_path / 'nothing'}}}", {})


def test_a_secret_named_variable_read_by_a_template_is_masked_by_every_redactor() -> None:
    render("Bearer ${LATE_API_TOKEN}", {"LATE_API_TOKEN": "tok-9f8e7d6c"})
    assert environment_redactor({}).redact({"note": "sent tok-9f8e7d6c"}) == {"note": "sent ***"}


def test_a_reference_in_a_url_path_is_one_segments_data() -> None:
    path = compile_path_template("/api/${TENANT}/orders/{{ event.id }}")
    with using({"TENANT": "a/b"}):
        assert path.render({"event": {"id": 5}}) == "/api/a%2Fb/orders/5"


def test_vars_resolve_when_an_event_runs_and_a_missing_one_fails_that_event_naming_it() -> None:
    variables = {"login": "${ERP_LOGIN}", "nested": ["${ERP_DB:-demo}"], "plain": 1}
    assert Variables({"plain": 1}).value() == {"plain": 1}
    with using({"ERP_LOGIN": "mes"}):
        assert Variables(variables).value() == {"login": "mes", "nested": ["demo"], "plain": 1}
    pipeline = Pipeline.model_validate(
        {
            "name": "demo.vars",
            "source": {"kind": "webhook", "path": "/demo"},
            "reply": {"body": {"login": "{{ vars.login }}"}},
        }
    )
    executor = Executor(pipeline, {}, variables)
    with using({"ERP_LOGIN": "mes"}):
        assert asyncio.run(executor.run({})).body == {"login": "mes"}
    with using({}):
        outcome = asyncio.run(executor.run({}))
    assert outcome.status == 500
    assert (
        "environment variable ERP_LOGIN is not set (needed by pipeline demo.vars, vars)"
        in outcome.body["message"]
    )
