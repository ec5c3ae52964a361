"""`mesbridge run` as a process: kill -9 mid-stream, SIGTERM drain, start-up errors, the dlq command.

kill -9 loses no event because an event is acknowledged (202) only after the store committed it, and
a job leased by the killed process returns when its lease (3 s here) expires. Delivery is at least
once, so the pipeline looks the work order up before creating it: a job that reached the ERP just
before the kill is not created twice. The simulator refuses duplicate work-order numbers, so a
duplicate would show as a dead letter; the test asserts each number exists exactly once and there
are no dead letters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from engine.commands.dlq import dlq

from .conftest import CONNECTORS, REPO, Sims, Subprocess, url, write_root


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _event(number: str, **extra: object) -> dict[str, object]:
    return {"eventId": f"ev-{number}", "workorderNumber": number, "sku": "SKU-1", "quantity": 2, **extra}


def _start(root: Path, environ: dict[str, str], port: str = "0") -> subprocess.CompletedProcess[str]:
    """`mesbridge run ROOT` that is expected to stop at start-up: its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(root), "--port", port],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    sims.faults("nextplus", latency=0.05)
    service = Subprocess(root, sims.environ, tmp_path / "run.log")
    service.start()
    numbers = [f"K9-{i:03d}" for i in range(40)]
    try:
        with httpx.Client(timeout=10) as client:
            for number in numbers[:25]:
                assert client.post(url(service.url, "/wo"), json=_event(number)).status_code == 202
            assert _wait(lambda: len(sims.workorders("K9-")) >= 3, 10)
            assert service.process is not None
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(10)
            delivered_before = len(sims.workorders("K9-"))
            assert delivered_before < 25, "the kill came too late to test anything"
            service.start()
            for number in numbers[25:]:
                assert client.post(url(service.url, "/wo"), json=_event(number)).status_code == 202
            assert _wait(lambda: len(sims.workorders("K9-")) == 40, 30), sims.workorders("K9-")

            def drained() -> bool:
                return client.get(f"{service.url}/status").json()["queue_depth"] == 0

            assert _wait(drained, 10)
    finally:
        service.stop()
    assert sorted(sims.workorders("K9-")) == numbers
    result = CliRunner().invoke(dlq, ["list", "--root", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []


def test_sigterm_drains_in_flight_work(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    service = Subprocess(root, sims.environ, tmp_path / "run.log")
    service.start()
    sims.faults("nextplus", latency=0.4)
    replies: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(timeout=10) as client:
            replies.append(client.post(url(service.url, "/wo-sync"), json=_event("ST-1")))

    caller = threading.Thread(target=call)
    try:
        caller.start()
        assert _wait(
            lambda: (
                any(c["method"] == "POST" for c in sims.sims["nextplus"].calls)
                or len(sims.sims["nextplus"].calls) > 0
            ),
            5,
        )
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        caller.join(10)
        assert service.process.wait(15) == 0
    finally:
        service.stop()
    assert replies and replies[0].status_code == 201, replies and replies[0].text
    log = (tmp_path / "run.log").read_text()
    assert "draining in-flight work" in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines and all("level" in line and "message" in line for line in lines)
    assert "service-test-token" not in log  # secrets never reach the log


def test_a_second_sigterm_while_draining_exits_at_once(tmp_path: Path, sims: Sims) -> None:
    """The drain would wait for the job in flight (an 8 s call, a 60 s grace); a second SIGTERM does
    not, and the job, still leased, is delivered after its lease by the next process."""
    root = write_root(tmp_path)
    settings = root / "mesbridge.yaml"
    text = settings.read_text().replace("shutdown_grace: 5", "shutdown_grace: 60")
    settings.write_text(text.replace("deadline: 5,", "deadline: 60,"))
    connector = root / "connectors" / "mes.yaml"
    connector.write_text(connector.read_text().replace("deadline: 2}", "deadline: 30}"))
    service = Subprocess(root, sims.environ, tmp_path / "run.log")
    service.start()
    try:
        sims.faults("nextplus", latency=8)
        with httpx.Client(timeout=10) as client:
            assert client.post(url(service.url, "/wo"), json=_event("SIG-1")).status_code == 202
        time.sleep(1)  # a worker took the job at once (an enqueue wakes the workers): its login waits
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        assert _wait(lambda: "draining in-flight work" in (tmp_path / "run.log").read_text(), 10)
        time.sleep(0.5)
        assert service.process.poll() is None  # the first signal drains: the job is still in flight
        second = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(10) == 128 + signal.SIGTERM
        assert time.monotonic() - second < 3
        warned = [r["message"] for r in service.log_records() if r["level"] == "warning"]
        assert any(m.startswith("SIGTERM received while draining: exiting now") for m in warned), warned
        sims.faults("nextplus")
        service.start()
        assert _wait(lambda: sims.workorders("SIG-") == ["SIG-1"], 20), sims.workorders("SIG-")
    finally:
        service.stop()


def test_sighup_reloads_the_config_and_the_service_keeps_serving(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    service = Subprocess(root, sims.environ, tmp_path / "run.log")  # --no-reload: nothing watches
    try:
        service.start()
        assert service.process is not None
        before = httpx.get(f"{service.url}/status").json()["version"]
        settings = root / "mesbridge.yaml"
        settings.write_text(settings.read_text().replace("max_body_bytes: 4096", "max_body_bytes: 8192"))
        service.process.send_signal(signal.SIGHUP)

        def reloaded() -> bool:
            return httpx.get(f"{service.url}/status").json()["last_reload"] is not None

        assert _wait(reloaded, 10), service.log.read_text()[-2000:]
        status = httpx.get(f"{service.url}/status").json()
        assert status["last_reload"]["result"] == "applied" and status["version"] != before
        assert service.process.poll() is None
    finally:
        service.stop()


def test_missing_webhook_token_is_a_clear_startup_error(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    environ = {k: v for k, v in sims.environ.items() if k != "MESBRIDGE_WEBHOOK_TOKEN"}
    done = _start(root, environ)
    assert done.returncode == 1
    assert "MESBRIDGE_WEBHOOK_TOKEN is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_connector_variable_that_is_not_set_stops_the_start(tmp_path: Path, sims: Sims) -> None:
    """Not a 500 at the first request: the start names the variable and where the connector uses it."""
    root = write_root(tmp_path)
    connector = root / "connectors" / "mes.yaml"
    connector.write_text(connector.read_text() + "headers: {X-Site: '${MES_SITE_UNSET}'}\n")
    environ = {k: v for k, v in sims.environ.items() if k != "NEXTPLUS_URL"}
    done = _start(root, environ)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = len(connector.read_text().splitlines())
    assert (
        "connectors/mes.yaml:1:11: error: environment variable NEXTPLUS_URL is not set "
        "(needed by connector mes, base_url)"
    ) in done.stderr
    assert (
        f"connectors/mes.yaml:{line}:20: error: environment variable MES_SITE_UNSET is not set "
        "(needed by connector mes, headers.X-Site)"
    ) in done.stderr
    # a connector no served pipeline uses does not stop the start
    (root / "connectors" / "unused.yaml").write_text("base_url: ${UNUSED_URL_UNSET}\n")
    service = Subprocess(root, {**sims.environ, "MES_SITE_UNSET": "A"}, tmp_path / "run.log")
    try:
        service.start()
    finally:
        service.stop()


def test_a_verify_lookups_connector_variable_that_is_not_set_stops_the_start(
    tmp_path: Path, sims: Sims
) -> None:
    """The connector a verify lookup asks is used too: its first call would come after an uncertain
    write, the worst moment to learn that its variable is not set."""
    root = write_root(tmp_path)
    mapping = root / "mappings" / "test" / "workorders.yaml"
    text = mapping.read_text()
    assert "            verify:  " in text
    mapping.write_text(
        text.replace("            verify:  ", "            verify:\n              call: lookup\n  ")
    )
    (root / "connectors" / "lookup.yaml").write_text("base_url: ${LOOKUP_URL_UNSET}\n")
    done = _start(root, sims.environ)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        "connectors/lookup.yaml:1:11: error: environment variable LOOKUP_URL_UNSET is not set "
        "(needed by connector lookup, base_url)"
    ) in done.stderr


def test_a_var_or_template_variable_that_is_not_set_stops_the_start(tmp_path: Path, sims: Sims) -> None:
    """Not a 500 "configuration error" at each event: the start names the binding's var and the step's
    template that need a variable not set, where they are written. A `${X}` in an expression is text."""
    root = write_root(tmp_path)
    mapping = root / "mappings" / "test" / "workorders.yaml"
    text = mapping.read_text().replace(
        'sku: "{{ event.sku }}",\n',
        'sku: "{{ event.sku }} ${WO_TAG_UNSET}", note: "{{ \'${NOT_A_REF}\' }}",\n',
        1,
    )
    mapping.write_text("vars:\n  site: ${WO_SITE_UNSET}\n" + text)
    done = _start(root, sims.environ)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = mapping.read_text().splitlines()
    [line] = [n for n, text in enumerate(lines, 1) if "WO_TAG_UNSET" in text]
    column = lines[line - 1].index("${WO_TAG_UNSET}") + 1
    assert (
        "mappings/test/workorders.yaml:2:9: error: environment variable WO_SITE_UNSET is not set "
        "(needed by binding test, vars.site)"
    ) in done.stderr
    assert (
        f"mappings/test/workorders.yaml:{line}:{column}: error: environment variable WO_TAG_UNSET is not "
        "set (needed by pipeline wo.create, steps[1].then[0].body.sku)"
    ) in done.stderr
    assert "NOT_A_REF is not set" not in done.stderr and "\n2 errors\n" in done.stderr
    environ = {**sims.environ, "WO_SITE_UNSET": "A", "WO_TAG_UNSET": "B"}
    service = Subprocess(root, environ, tmp_path / "run.log")
    try:
        service.start()
    finally:
        service.stop()


def test_a_tls_ca_file_that_cannot_be_loaded_stops_the_start(tmp_path: Path, sims: Sims) -> None:
    """A configuration error, not a failure of every call retried to its deadline: the start names the
    file, where it is set and why it cannot be loaded."""
    root = write_root(tmp_path)
    connector = root / "connectors" / "mes.yaml"
    absent, not_pem = tmp_path / "absent-ca.pem", tmp_path / "not-a-ca.pem"
    not_pem.write_text("not a certificate\n")
    for path, reason in ((absent, "No such file or directory"), (not_pem, "")):
        connector.write_text(CONNECTORS["mes"] + f"tls_ca_file: ${{MES_CA:-{path}}}\n")
        done = _start(root, sims.environ)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        line = len(connector.read_text().splitlines())
        assert (
            f"connectors/mes.yaml:{line}:14: error: tls_ca_file {path} cannot be loaded: {reason}"
        ) in done.stderr, done.stderr
        assert "(needed by connector mes: every call would fail)" in done.stderr


def test_an_invalid_mesbridge_variable_is_named_not_located_in_the_settings(
    tmp_path: Path, sims: Sims
) -> None:
    root = write_root(tmp_path)
    done = _start(root, {**sims.environ, "MESBRIDGE_WORKERS": "many", "MESBRIDGE_TRACES": "maybe"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        "environment MESBRIDGE_WORKERS: error: invalid setting workers: Input should be a valid integer"
    ) in done.stderr
    assert (
        "environment MESBRIDGE_TRACES: error: invalid setting traces.enabled: Input should be a valid boolean"
    ) in done.stderr
    assert "mesbridge.yaml:1:1" not in done.stderr


def test_a_webhook_secret_file_that_cannot_be_read_is_named_as_a_file(tmp_path: Path, sims: Sims) -> None:
    secret = tmp_path / "absent-token"
    auth = {"kind": "shared_secret", "in": "query", "name": "token", "secret": f"${{file:{secret}}}"}
    root = write_root(tmp_path, settings={"webhook_auth": auth})
    done = _start(root, sims.environ)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"secret file {secret} cannot be read: No such file or directory" in done.stderr
    assert f"Put the secret webhook callers send in the file {secret}." in done.stderr
    assert "export file:" not in done.stderr


def test_the_start_warning_of_an_open_webhook_is_a_json_log_line(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path, settings={"webhook_auth": None})
    service = Subprocess(root, sims.environ, tmp_path / "run.log")
    try:
        service.start()
    finally:
        service.stop()
    warnings = [r for r in service.log_records() if r["message"].startswith("no caller authentication")]
    assert [(r["level"], r["logger"], r["paths"]) for r in warnings] == [
        ("warning", "mesbridge.service", ["/nu", "/nx", "/wo", "/wo-sync"])
    ]
    assert not [line for line in service.log.read_text().splitlines() if not line.startswith("{")]


def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    done = _start(root, sims.environ, port="70000")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "Invalid value for '--port': 70000 is not in the range 0<=x<=65535." in done.stderr


def test_a_malformed_postgresql_url_is_a_clear_startup_error(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    environ = {**sims.environ, "MESBRIDGE_STORE": "postgresql://mesbridge:hunter2@[::1/mesbridge"}
    done = _start(root, environ)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        "malformed PostgreSQL URL postgresql://mesbridge:***@[::1/mesbridge: Invalid IPv6 URL" in done.stderr
    )
    assert "hunter2" not in done.stderr


def test_settings_that_are_a_folder_stop_the_start(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    (root / "mesbridge.yaml").unlink()
    (root / "mesbridge.yaml").mkdir()  # what `docker run -v ./mesbridge.yaml:...` makes of a missing file
    done = _start(root, sims.environ)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "mesbridge.yaml: error: is not a file: the settings cannot be read" in done.stderr


def test_an_empty_webhook_secret_file_is_named_as_a_file(tmp_path: Path, sims: Sims) -> None:
    secret = tmp_path / "token"
    secret.write_text("\n")
    auth = {"kind": "shared_secret", "in": "query", "name": "token", "secret": f"${{file:{secret}}}"}
    root = write_root(tmp_path, settings={"webhook_auth": auth})
    done = _start(root, sims.environ)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"file:{secret} is empty (needed by settings webhook_auth, secret)" in done.stderr
    assert f"Put the secret webhook callers send in the file {secret}." in done.stderr


def test_a_store_in_memory_is_warned_of(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    environ = {**sims.environ, "MESBRIDGE_STORE": "sqlite:///:memory:"}
    service = Subprocess(root, environ, tmp_path / "run.log")
    try:
        service.start()
    finally:
        service.stop()
    warnings = [r["message"] for r in service.log_records() if r["level"] == "warning"]
    assert any(m.startswith("the store sqlite:///:memory: is in memory: queued events") for m in warnings)


def test_dlq_command_lists_shows_replays_and_drops(tmp_path: Path, sims: Sims) -> None:
    root = write_root(tmp_path)
    service = Subprocess(root, sims.environ, tmp_path / "run.log")
    service.start()
    runner = CliRunner()
    try:
        with httpx.Client(timeout=10) as client:
            for number in ("DL-1", "DL-2"):
                response = client.post(url(service.url, "/wo"), json=_event(number, sku=None))
                assert response.status_code == 202

        def listed() -> list[dict[str, object]]:
            result = runner.invoke(dlq, ["list", "--root", str(root), "--json"])
            return json.loads(result.output) if result.exit_code == 0 else []

        assert _wait(lambda: len(listed()) == 2, 10)
        table = runner.invoke(dlq, ["list", "--root", str(root)])
        assert "wo.create:ev-DL-1" in table.output and "2 dead letter" in table.output
        shown = runner.invoke(dlq, ["show", "--root", str(root), "wo.create:ev-DL-1", "--json"])
        data = json.loads(shown.output)
        assert data["payload"]["event"]["workorderNumber"] == "DL-1" and data["attempts"] == 1
        assert runner.invoke(dlq, ["show", "--root", str(root), "nope"]).exit_code == 1
        dropped = runner.invoke(dlq, ["drop", "--root", str(root), "wo.create:ev-DL-2"])
        assert dropped.exit_code == 0 and "dropped" in dropped.output
        replayed = runner.invoke(dlq, ["replay", "--root", str(root), "--all"])
        assert replayed.exit_code == 0 and "replayed wo.create:ev-DL-1" in replayed.output
        # the replayed event fails the same way and comes back, alone, with both failures shown
        assert _wait(lambda: [d["id"] for d in listed()] == ["wo.create:ev-DL-1"], 10)
        again = json.loads(
            runner.invoke(dlq, ["show", "--root", str(root), "wo.create:ev-DL-1", "--json"]).output
        )
        assert (again["attempts"], again["replays"]) == (2, 1)
        first, replay, second = again["history"]
        assert first["error"] == data["history"][0]["error"] == second["error"]
        assert replay == {"at": replay["at"], "error": "replayed from the dead letters", "replay": True}
        text = runner.invoke(dlq, ["show", "--root", str(root), "wo.create:ev-DL-1"]).output
        assert (
            "attempt 1 at" in text and "replayed from the dead letters at" in text and "attempt 2 at" in text
        )
        assert runner.invoke(dlq, ["replay", "--root", str(root)]).exit_code == 2
    finally:
        service.stop()
    assert os.path.exists(tmp_path / "state.db")
