"""`mesbridge dlq` and `mesbridge traces` as an operator runs them: which store they reach, and what they
say when they cannot, in one line and without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.errors import StartupError
from engine.service.server import ServiceHost
from engine.store import safe_url
from tests.config.test_check import make_root

PASSWORD = "s3cret-9f8e"


def mesbridge(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's current folder: relative paths and sqlite:/// URLs are read from it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- a store password is never shown ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgres://u:p@ss@db/x?pool_size=2", "postgres://u:***@db/x?pool_size=2"),
        (
            "postgresql://db/x?sslmode=require&password=s3cret",
            "postgresql://db/x?sslmode=require&password=***",
        ),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("sqlite:////srv/a:b@c.db?synchronous=normal", "sqlite:////srv/a:b@c.db?synchronous=normal"),
    ],
)
def test_safe_url_hides_the_password_only(url: str, shown: str) -> None:
    assert safe_url(url) == shown


@pytest.mark.parametrize(
    "command", [["traces", "list"], ["traces", "show", "abc"], ["dlq", "list"], ["dlq", "drop", "--all"]]
)
def test_a_store_command_that_cannot_connect_does_not_show_the_password(
    here: Path, command: list[str]
) -> None:
    result = mesbridge(*command, "--store", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x")
    assert result.exit_code == 1, result.output
    assert "store postgresql://u:***@127.0.0.1:1/x: cannot connect" in result.output
    assert PASSWORD not in result.output
    no_traceback(result)


async def test_run_that_cannot_open_its_store_does_not_show_the_password(here: Path) -> None:
    root = make_root(here / "root")
    host = ServiceHost(root, environ={}, port=0, store_url=f"postgresql://u:{PASSWORD}@127.0.0.1:1/x")
    with pytest.raises(StartupError) as failed:
        await host.start()
    assert "cannot open the store postgresql://u:***@127.0.0.1:1/x" in str(failed.value)
    assert PASSWORD not in str(failed.value)


# -- a file that is not a SQLite database -------------------------------------------------------------

NOT_A_DATABASE = b"this is a text file, not a database\n" * 40


@pytest.mark.parametrize("command", [["traces", "list"], ["dlq", "list"], ["dlq", "replay", "--all"]])
def test_a_file_that_is_not_a_database_is_a_one_line_store_error(here: Path, command: list[str]) -> None:
    (here / "bad.db").write_bytes(NOT_A_DATABASE)
    result = mesbridge(*command, "--store", "sqlite:///bad.db")
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        "Error: store sqlite:///bad.db: SQLite bad.db: file is not a database"
    ]
    no_traceback(result)
    assert (here / "bad.db").read_bytes() == NOT_A_DATABASE


async def test_run_on_a_file_that_is_not_a_database_is_a_startup_error(here: Path) -> None:
    (here / "bad.db").write_bytes(NOT_A_DATABASE)
    host = ServiceHost(make_root(here / "root"), environ={}, port=0, store_url="sqlite:///bad.db")
    with pytest.raises(
        StartupError, match=r"cannot open the store sqlite:///bad.db: .*file is not a database"
    ):
        await host.start()
