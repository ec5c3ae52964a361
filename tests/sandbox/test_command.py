"""`mesbridge sandbox --fault`: the specs of each simulator, and the messages for bad ones."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from sandbox.base import Faults
from sandbox.command import SIMULATORS, parse_faults, sandbox


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        pytest.param((), {}, id="none"),
        pytest.param(
            ("priority:apply_then_error=0.2",), {"priority": Faults(apply_then_error=0.2)}, id="one"
        ),
        pytest.param(
            (
                "nextplus:latency=0.1",
                "nextplus:reset_after_body=0.05,latency=0.3",
                "nextx:apply_then_timeout=1",
            ),
            {"nextplus": Faults(latency=0.3, reset_after_body=0.05), "nextx": Faults(apply_then_timeout=1)},
            id="repeated-add-up",
        ),
    ],
)
def test_parse_faults(specs: tuple[str, ...], expected: dict[str, Faults]) -> None:
    assert parse_faults(specs, list(SIMULATORS)) == expected


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        pytest.param(
            ("erp:down=1",), "'erp:down=1': expected NAME:spec with NAME one of nextplus", id="name"
        ),
        pytest.param(("nextup:apply_then_error=2",), "apply_then_error must be within 0..1", id="rate"),
        pytest.param(
            ("nextup:apply_then_error=0.7", "nextup:apply_then_timeout=0.7"),
            "apply_then_error + apply_then_timeout + reset_after_body must be at most 1, got 1.4",
            id="sum",
        ),
    ],
)
def test_parse_faults_errors(specs: tuple[str, ...], message: str) -> None:
    with pytest.raises(click.BadParameter) as caught:
        parse_faults(specs, list(SIMULATORS))
    assert message in caught.value.message


def test_a_bad_fault_stops_the_command_before_any_server() -> None:
    result = CliRunner().invoke(sandbox, ["--fault", "priority:apply_then_timeout=yes"])
    assert result.exit_code == 2
    assert "Invalid value for --fault" in result.output


def test_the_sandbox_prints_the_exports_that_point_the_shipped_connectors_at_it() -> None:
    import socket
    import subprocess
    import sys

    from engine.config.root import load_project
    from engine.env import find_references

    def free_run(count: int) -> int:
        """The first of `count` consecutive free ports (each one bound and released to prove it)."""
        for _ in range(50):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                base = probe.getsockname()[1]
            sockets = []
            try:
                for port in range(base, base + count):
                    sock = socket.socket()
                    sockets.append(sock)
                    sock.bind(("127.0.0.1", port))
                return base
            except OSError:
                continue
            finally:
                for sock in sockets:
                    sock.close()
        raise AssertionError("no run of free ports")

    base = free_run(len(SIMULATORS))
    command = [sys.executable, "-m", "engine.cli", "sandbox", "--port-base", str(base)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        exports = {}
        while len(exports) < len(SIMULATORS):
            line = child.stdout.readline()
            assert line, "the sandbox stopped before printing its exports"
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                exports[name] = value
    finally:
        child.terminate()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert exports["PRIORITY_URL"] == f"http://127.0.0.1:{base + 1}/odata/Priority/tabula.ini/demo"
    assert exports["NEXTX_URL"] == f"http://127.0.0.1:{base + 3}"
    project = load_project(".")
    used = set().union(*(find_references(entry.config.base_url) for entry in project.connectors.values()))
    assert used == set(exports)  # every base URL the shipped connectors read, and nothing else
