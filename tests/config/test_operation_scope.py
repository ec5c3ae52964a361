"""`check` on what a named operation reads: `args`, and the `vars` of the binding that calls it."""

from __future__ import annotations

from pathlib import Path

from tests.config.test_check import MAPPING, check, make_root

CONNECTOR = """\
name: erp
base_url: http://127.0.0.1:9
operations:
  rpc:
    method: POST
    path: /rpc
    body: {Method: "{{ args.method }}", Db: "{{ vars.database }}"}
"""

CALLING = MAPPING.replace(
    "call: erp\n        method: POST\n        path: /reports", "call: erp.rpc\n        args: {method: Add}"
)


def test_an_operation_reading_a_var_the_calling_binding_defines_passes(tmp_path: Path) -> None:
    mapping = CALLING.replace("vars:\n", "vars:\n  database: demo\n")
    code, out = check(make_root(tmp_path, mapping, CONNECTOR))
    assert code == 0, out


def test_an_operation_reading_a_var_the_calling_binding_lacks_is_located_at_the_call(tmp_path: Path) -> None:
    mapping = CALLING.replace("vars:\n", "vars:\n  databse: demo\n")
    code, out = check(make_root(tmp_path, mapping, CONNECTOR))
    assert code == 1
    assert "operation 'erp.rpc' reads 'vars.database', which binding 'demo' does not define" in out
    assert "did you mean 'databse'?" in out
    assert "mappings/demo/" in out and out.count("error:") == 1, out


def test_an_operation_reading_the_callers_event_is_refused_at_the_operation(tmp_path: Path) -> None:
    connector = CONNECTOR.replace('Db: "{{ vars.database }}"', 'Db: "{{ event.db }}"')
    code, out = check(make_root(tmp_path, CALLING, connector))
    assert code == 1
    assert "connectors/erp.yaml:7:45:" in out  # at the string that reads it
    assert "operation 'erp.rpc' reads 'event': an operation's templates see only `args`" in out
