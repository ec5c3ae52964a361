"""`mesbridge dlq` and `mesbridge traces` as an operator runs them: which store they reach, and what they
say when they cannot, in one line and without a traceback."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.errors import StartupError
from engine.service.server import ServiceHost
from engine.store import PolledItem, hide_password, open_store, safe_url
from tests.config.test_check import make_root

ERP_SECRETS = {"ERP_USER": "api", "ERP_PASSWORD": "erp-secret"}
"""What the connector of `make_root` needs for `mesbridge run` to start."""

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


STORE_COMMANDS = [
    ["dlq", "list"],
    ["dlq", "show", "ev-1"],
    ["dlq", "replay", "--all"],
    ["dlq", "drop", "--all"],
    ["queue", "list"],
    ["queue", "drop", "ev-1"],
    ["queue", "dead", "--all", "--pipeline", "demo.operation"],
    ["traces", "list"],
    ["traces", "show", "t-1"],
    ["traces", "export", "t-1", "--json"],
]


def root_with(here: Path, settings: str | None, mapping: str | None = None) -> Path:
    """A config root `root` in the current folder, with this mesbridge.yaml (None: none)."""
    root = make_root(here / "root") if mapping is None else make_root(here / "root", mapping)
    if settings is not None:
        (root / "mesbridge.yaml").write_text(settings, encoding="utf-8")
    return root


def store_with_a_dead_letter(path: Path) -> None:
    """A store at `path`, as `mesbridge run` leaves it, holding the dead letter ev-1."""

    async def fill() -> None:
        store = open_store(f"sqlite:///{path}")
        await store.migrate()
        await store.enqueue("demo.operation", "WO-1", {"event": {"validQty": 1}}, event_id="ev-1")
        [job] = await store.claim("worker")
        await store.dead_letter(job, "refused", "business")
        await store.close()

    asyncio.run(fill())


# -- the store the settings name, or an error: never another store -------------------------------------


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_a_settings_file_that_does_not_parse_stops_a_store_command(here: Path, command: list[str]) -> None:
    root_with(here, "store: sqlite:///q.db\nworkers: [4\n")
    store_with_a_dead_letter(here / "q.db")
    result = mesbridge(*command, "--root", "root")
    assert result.exit_code == 2, result.output
    assert "the settings of root cannot be read" in result.output
    assert "root/mesbridge.yaml:3:1: error: invalid YAML" in result.output
    assert not (here / "mesbridge.db").exists()  # the default store, which the settings do not name
    no_traceback(result)


def test_a_settings_value_that_does_not_validate_stops_a_store_command(here: Path) -> None:
    root_with(here, "store: sqlite:///q.db\nworkers: many\n")
    result = mesbridge("dlq", "list", "--root", "root")
    assert result.exit_code == 2, result.output
    assert "root/mesbridge.yaml:2:10: error:" in result.output
    assert not (here / "mesbridge.db").exists()


def test_an_invalid_mesbridge_variable_stops_a_store_command(here: Path) -> None:
    root_with(here, None)
    result = mesbridge("traces", "list", "--root", "root", env={"MESBRIDGE_WORKERS": "many"})
    assert result.exit_code == 2, result.output
    assert (
        "environment MESBRIDGE_WORKERS: error: invalid setting workers: Input should be a valid integer"
    ) in result.output
    assert "mesbridge.yaml" not in result.output  # the file holds no such setting
    assert not (here / "mesbridge.db").exists()


def test_a_broken_mapping_does_not_stop_a_store_command(here: Path) -> None:
    """An operator lists and drops dead letters while a mapping (or connector) file is broken."""
    root = root_with(here, "store: sqlite:///state.db\n", mapping="pipelines: [oops\n")
    (root / "connectors" / "mes.yaml").write_text("name: [\n", encoding="utf-8")
    store_with_a_dead_letter(here / "state.db")
    listed = mesbridge("dlq", "list", "--root", "root", "--json")
    assert listed.exit_code == 0, listed.output
    assert [dead["id"] for dead in json.loads(listed.output)] == ["ev-1"]
    dropped = mesbridge("dlq", "drop", "ev-1", "--root", "root")
    assert (dropped.exit_code, dropped.output) == (0, "dropped ev-1\n")


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_a_config_root_that_does_not_exist_is_refused(here: Path, command: list[str]) -> None:
    result = mesbridge(*command, "--root", "nowhere")
    assert result.exit_code == 2, result.output
    assert "config root nowhere is not a folder" in result.output
    assert not (here / "mesbridge.db").exists()
    no_traceback(result)


def test_a_missing_config_root_does_not_matter_with_store(here: Path) -> None:
    store_with_a_dead_letter(here / "state.db")
    result = mesbridge("dlq", "list", "--root", "nowhere", "--store", "sqlite:///state.db", "--json")
    assert result.exit_code == 0, result.output
    assert [dead["id"] for dead in json.loads(result.output)] == ["ev-1"]


# -- a store command creates and migrates no store ---------------------------------------------------


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_a_store_command_does_not_create_a_missing_sqlite_store(here: Path, command: list[str]) -> None:
    root_with(here, None)  # the default settings: sqlite:///mesbridge.db, in the current folder
    result = mesbridge(*command, "--root", "root")
    assert result.exit_code == 1, result.output
    where = Path.cwd() / "mesbridge.db"
    assert result.output.startswith(f"Error: store sqlite:///mesbridge.db ({where}) does not exist;")
    assert len(result.output.splitlines()) == 1
    assert sorted(path.name for path in here.iterdir()) == ["root"]  # no mesbridge.db, -wal or -shm
    no_traceback(result)


def _versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def test_a_store_command_does_not_migrate_an_older_store(here: Path) -> None:
    store_with_a_dead_letter(here / "old.db")
    with sqlite3.connect(here / "old.db") as conn:  # as an older mesbridge left it
        conn.execute("DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)")
    before = _versions(here / "old.db")
    result = mesbridge("dlq", "list", "--store", "sqlite:///old.db")
    assert result.exit_code == 1, result.output
    assert f"its schema is at version {len(before)}, this mesbridge's at {len(before) + 1}" in result.output
    assert _versions(here / "old.db") == before


def test_a_store_command_uses_a_store_a_newer_mesbridge_migrated(here: Path) -> None:
    """Migrations only add: an older CLI works on a newer schema, as older replicas do in a rolling
    update (docs/deploy.md), and leaves its version as it is."""
    store_with_a_dead_letter(here / "new.db")
    latest = len(_versions(here / "new.db"))
    with sqlite3.connect(here / "new.db") as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, 'later', '2031-01-01T00:00:00.000000Z')", (latest + 1,)
        )
    result = mesbridge("dlq", "drop", "--all", "--store", "sqlite:///new.db")
    assert (result.exit_code, result.output) == (0, "dropped ev-1\n")
    assert _versions(here / "new.db") == [*range(1, latest + 2)]


def test_a_store_command_adds_no_tables_to_an_empty_file(here: Path) -> None:
    (here / "empty.db").touch()
    result = mesbridge("traces", "list", "--store", "sqlite:///empty.db")
    assert result.exit_code == 1, result.output
    assert "Error: store sqlite:///empty.db: it holds no mesbridge tables" in result.output
    assert (here / "empty.db").stat().st_size == 0


async def test_run_still_creates_its_store(here: Path) -> None:
    host = ServiceHost(make_root(here / "root"), environ=ERP_SECRETS, port=0, store_url="sqlite:///state.db")
    await host.start()
    await host.stop()
    assert _versions(here / "state.db")
    listed = await asyncio.to_thread(mesbridge, "dlq", "list", "--store", "sqlite:///state.db")
    assert (listed.exit_code, listed.output) == (0, "no dead letters\n")


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
    "command",
    [
        ["traces", "list"],
        ["traces", "show", "abc"],
        ["dlq", "list"],
        ["dlq", "drop", "--all"],
        ["queue", "list"],
    ],
)
def test_a_store_command_that_cannot_connect_does_not_show_the_password(
    here: Path, command: list[str]
) -> None:
    result = mesbridge(*command, "--store", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x")
    assert result.exit_code == 1, result.output
    assert "store postgresql://u:***@127.0.0.1:1/x: cannot connect" in result.output
    assert PASSWORD not in result.output
    no_traceback(result)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql://u:p%zz{PASSWORD}@127.0.0.1:1/x", 'invalid percent-encoded token: "***"'),
        (f"postgresql://127.0.0.1:1/x?password=p%zz{PASSWORD}", "cannot connect to PostgreSQL"),
        (f"postgresql://u:{PASSWORD}@127.0.0.1:1/x?bogus=1", 'invalid URI query parameter: "bogus"'),
        (f"postgresql://u:{PASSWORD}@127.0.0.1:1/x?pool_size=x", "pool_size must be a whole number"),
    ],
)
def test_a_store_url_libpq_refuses_is_one_line_without_the_password(here: Path, url: str, says: str) -> None:
    result = mesbridge("dlq", "list", "--store", url)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: store postgresql://") and says in result.output
    assert PASSWORD not in result.output
    no_traceback(result)


def test_hide_password_replaces_it_as_written_and_decoded() -> None:
    url = "postgresql://u:p%40ss@db/x?password=q%2Fw"
    assert hide_password("token p%40ss; p@ss; q/w; q%2Fw", url) == "token ***; ***; ***; ***"
    assert hide_password("no secret here", "postgresql://u@db/x") == "no secret here"


@pytest.mark.parametrize("command", [["traces", "list"], ["check"]])
def test_an_invalid_mesbridge_store_variable_is_named_not_echoed(here: Path, command: list[str]) -> None:
    root_with(here, None)
    result = mesbridge(*command, "--root", "root", env={"MESBRIDGE_STORE": f"postgresq://u:{PASSWORD}@db/x"})
    assert result.exit_code in (1, 2), result.output
    assert "environment MESBRIDGE_STORE: error: invalid setting store: unsupported store URL scheme" in (
        result.output
    )
    assert PASSWORD not in result.output


async def test_run_that_cannot_open_its_store_does_not_show_the_password(here: Path) -> None:
    root = make_root(here / "root")
    host = ServiceHost(
        root, environ=ERP_SECRETS, port=0, store_url=f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"
    )
    with pytest.raises(StartupError) as failed:
        await host.start()
    assert "cannot open the store postgresql://u:***@127.0.0.1:1/x" in str(failed.value)
    assert PASSWORD not in str(failed.value)


# -- a file that is not a SQLite database -------------------------------------------------------------

NOT_A_DATABASE = b"this is a text file, not a database\n" * 40


@pytest.mark.parametrize(
    "command", [["traces", "list"], ["dlq", "list"], ["dlq", "replay", "--all"], ["queue", "drop", "ev-1"]]
)
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
    host = ServiceHost(make_root(here / "root"), environ=ERP_SECRETS, port=0, store_url="sqlite:///bad.db")
    with pytest.raises(
        StartupError, match=r"cannot open the store sqlite:///bad.db: .*file is not a database"
    ):
        await host.start()


# -- replaying a polled record -------------------------------------------------------------------------


def test_a_replay_of_a_pipeline_the_root_does_not_serve_says_it_waits_for_a_replica_that_does(
    here: Path,
) -> None:
    """A replica serving other bindings (or a pipeline renamed since) does not deliver the replayed
    event: `replayed` alone would promise a delivery that no replica of that config makes."""
    root = root_with(here, "store: sqlite:///state.db\n")

    async def fill() -> None:
        store = open_store("sqlite:///state.db")
        await store.migrate()
        for pipeline in ("demo.operation", "retired.op"):
            await store.enqueue(pipeline, "WO-1", {"event": {"validQty": 1}}, event_id=f"{pipeline}:1")
            [job] = await store.claim("worker")
            await store.dead_letter(job, "refused", "business")
        await store.close()

    asyncio.run(fill())
    served = mesbridge("dlq", "replay", "demo.operation:1", "--root", str(root))
    assert (served.exit_code, served.output) == (0, "replayed demo.operation:1\n")
    other = mesbridge("dlq", "replay", "retired.op:1", "--root", str(root))
    no_traceback(other)
    assert other.exit_code == 0 and other.output.startswith("replayed retired.op:1\n")
    assert f"retired.op is not in the config at {root}" in other.output
    assert "waits in the queue for one that serves retired.op" in other.output
    assert "mesbridge queue list --not-served" in other.output


def test_a_polled_record_polled_again_since_is_not_replayed_over_the_newer_one(here: Path) -> None:
    """WO-1 at v1 died; the ERP changed it and v2 was delivered. Replaying v1 would write the older
    record over v2 in the MES: refused, naming the newer version, unless forced."""

    async def fill() -> None:
        store = open_store("sqlite:///state.db")
        await store.migrate()
        for version in ("v1", "v2"):
            payload = {"event": {"QUANT": version}, "key": "WO-1", "version": version}
            await store.enqueue_polled(
                "wo.poll", [PolledItem("WO-1", version, payload, f"wo.poll:WO-1:{version}")]
            )
            [job] = await store.claim("worker")
            await (store.dead_letter(job, "refused", "business") if version == "v1" else store.complete(job))
            await asyncio.sleep(0.01)
        await store.close()

    asyncio.run(fill())
    refused = mesbridge("dlq", "replay", "wo.poll:WO-1:v1", "--store", "sqlite:///state.db")
    assert refused.exit_code == 1, refused.output
    assert "WO-1 was polled again since, at version v2" in refused.output
    assert "--force" in refused.output
    forced = mesbridge("dlq", "replay", "wo.poll:WO-1:v1", "--store", "sqlite:///state.db", "--force")
    assert (forced.exit_code, forced.output) == (0, "replayed wo.poll:WO-1:v1\n")


def test_an_erp_error_that_looks_like_markup_is_printed_as_it_is(here: Path) -> None:
    """ERP texts and event keys are shown as written: `[/PART]` in an error is no closing tag (which rich
    would refuse with a traceback), and `[bold]` in a key is not swallowed."""
    error = "Priority answered HTTP 400: field [/PART] unknown"

    async def fill() -> None:
        store = open_store("sqlite:///state.db")
        await store.migrate()
        await store.enqueue("p", "WO-[bold]1", {"event": {}}, event_id="ev-[bold]1")
        await store.enqueue("q", "WO-2", {"event": {}}, event_id="ev-2")
        [waiting] = await store.claim("w", pipelines={"p"})
        await store.retry(waiting, error, 600)
        [dead] = await store.claim("w", pipelines={"q"})
        await store.dead_letter(dead, error, kind="business")
        await store.close()

    asyncio.run(fill())
    for command in (["queue", "list"], ["dlq", "list"], ["dlq", "show", "ev-2"]):
        result = CliRunner().invoke(main, [*command, "--store", "sqlite:///state.db"], env={"COLUMNS": "300"})
        no_traceback(result)
        assert result.exit_code == 0, result.output
        assert "[/PART]" in result.output, result.output
    listed = CliRunner().invoke(main, ["queue", "list", "--store", "sqlite:///state.db"])
    assert "WO-[bold]1" in listed.output and "ev-[bold]1" in listed.output, listed.output
