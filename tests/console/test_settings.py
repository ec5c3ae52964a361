"""The console's parts on their own: settings from the environment, password hashes, the hash command,
sessions, the login throttle, and the service's recent rates and activity."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.commands.console import console as console_command
from engine.connectors.connector import CallRecord
from engine.console.passwords import PasswordHash, hash_password
from engine.console.sessions import Sessions
from engine.console.settings import ConsoleSettings
from engine.console.throttle import LoginThrottle
from engine.errors import StartupError
from engine.service.activity import Activity
from engine.service.metrics import Metrics
from tests.console.conftest import OTHER, hashes
from tests.console.stack import PASSWORD, USER


def test_a_hash_matches_its_password_only_and_carries_no_separator_a_shell_minds() -> None:
    hashed = hashes()[USER]
    assert hashed.startswith("scrypt:16384:8:1:")
    assert not set("$, =\"'") & set(hashed)
    parsed = PasswordHash.parse(hashed)
    assert parsed.matches(PASSWORD) and not parsed.matches(PASSWORD + "x") and not parsed.matches("")
    assert hash_password(PASSWORD) != hashed  # salted
    with pytest.raises(ValueError, match="shorter than 8"):
        hash_password("short")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plaintext-password", "not a hash printed by"),
        ("scrypt:16384:8:1:salt", "not a hash printed by"),
        ("scrypt:abc:8:1:c2FsdHNhbHQ:a2V5a2V5a2V5a2V5a2V5", "garbled"),
        ("scrypt:16384:8:1:!!!:a2V5a2V5a2V5a2V5a2V5", "garbled"),
        ("scrypt:1000:8:1:c2FsdHNhbHQ:a2V5a2V5a2V5a2V5a2V5", "out of range"),
        ("scrypt:16384:8:1:c2Fs:a2V5a2V5a2V5a2V5a2V5", "too short"),
    ],
)
def test_a_hash_that_is_not_one_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PasswordHash.parse(text)


def test_settings_read_users_from_the_variable_and_the_file(tmp_path) -> None:
    assert ConsoleSettings.from_environ({}) is None
    assert ConsoleSettings.from_environ({"MESBRIDGE_CONSOLE_USERS": "  "}) is None
    file = tmp_path / "users"
    file.write_text(f"# console users\n{OTHER}:{hashes()[OTHER]}  # second shift\n\n")
    settings = ConsoleSettings.from_environ(
        {"MESBRIDGE_CONSOLE_USERS": f"{USER}:{hashes()[USER]}", "MESBRIDGE_CONSOLE_USERS_FILE": str(file)}
    )
    assert settings is not None
    assert sorted(settings.users) == [USER, OTHER]
    assert settings.session_seconds == 8 * 3600 and not settings.shared_secret and len(settings.key) == 32
    only_file = ConsoleSettings.from_environ({"MESBRIDGE_CONSOLE_USERS_FILE": str(file)})
    assert only_file is not None and list(only_file.users) == [OTHER]


def test_a_shared_secret_gives_every_process_the_same_key_and_without_one_each_its_own() -> None:
    users = f"{USER}:{hashes()[USER]}"
    secret = "s" * 40
    one = ConsoleSettings.from_environ({"MESBRIDGE_CONSOLE_USERS": users, "MESBRIDGE_CONSOLE_SECRET": secret})
    two = ConsoleSettings.from_environ({"MESBRIDGE_CONSOLE_USERS": users, "MESBRIDGE_CONSOLE_SECRET": secret})
    assert one is not None and two is not None and one.key == two.key and one.shared_secret
    cookie, _ = Sessions(one).issue(USER)
    assert Sessions(two).read(cookie) is not None
    three = ConsoleSettings.from_environ({"MESBRIDGE_CONSOLE_USERS": users})
    four = ConsoleSettings.from_environ({"MESBRIDGE_CONSOLE_USERS": users})
    assert three is not None and four is not None and three.key != four.key
    assert Sessions(four).read(Sessions(three).issue(USER)[0]) is None


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"MESBRIDGE_CONSOLE_USERS": "alice"}, "MESBRIDGE_CONSOLE_USERS: 'alice' is not `user:<hash>`"),
        ({"MESBRIDGE_CONSOLE_USERS": "alice:secret123"}, "the password hash of alice: it is not a hash"),
        ({"MESBRIDGE_CONSOLE_USERS": "al ice:{alice}"}, "user name 'al ice' must be"),
        ({"MESBRIDGE_CONSOLE_USERS": "alice:{alice},alice:{bob}"}, "user alice is given twice"),
        ({"MESBRIDGE_CONSOLE_USERS": ","}, "names no console user"),
        (
            {"MESBRIDGE_CONSOLE_USERS_FILE": "/no/such/file"},
            "MESBRIDGE_CONSOLE_USERS_FILE: cannot read /no/such/file",
        ),
        (
            {"MESBRIDGE_CONSOLE_USERS": "alice:{alice}", "MESBRIDGE_CONSOLE_SECRET": "short"},
            "shorter than 32",
        ),
        ({"MESBRIDGE_CONSOLE_USERS": "alice:{alice}", "MESBRIDGE_CONSOLE_SESSION_HOURS": "0"}, "above 0"),
        (
            {"MESBRIDGE_CONSOLE_USERS": "alice:{alice}", "MESBRIDGE_CONSOLE_SESSION_HOURS": "soon"},
            "not 'soon'",
        ),
    ],
)
def test_a_wrong_console_setting_stops_the_start_naming_it(environ: dict[str, str], problem: str) -> None:
    filled = {key: value.format(alice=hashes()[USER], bob=hashes()[OTHER]) for key, value in environ.items()}
    with pytest.raises(StartupError) as raised:
        ConsoleSettings.from_environ(filled)
    assert problem in str(raised.value)
    for value in (hashes()[USER], hashes()[OTHER], "secret123"):
        assert value not in str(raised.value)


def test_hash_password_reads_a_prompt_or_stdin_and_prints_a_hash_that_logs_in() -> None:
    runner = CliRunner()
    result = runner.invoke(console_command, ["hash-password", "--user", "carol"], input="night-shift-99\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    user, _, hashed = line.partition(":")
    assert user == "carol" and PasswordHash.parse(hashed).matches("night-shift-99")
    settings = ConsoleSettings.from_environ({"MESBRIDGE_CONSOLE_USERS": line})
    assert settings is not None and settings.users["carol"].matches("night-shift-99")
    short = runner.invoke(console_command, ["hash-password", "--stdin"], input="short\n")
    assert short.exit_code == 1 and "shorter than 8" in short.output
    bad_user = runner.invoke(console_command, ["hash-password", "--user", "a b"], input="long-enough\n")
    assert bad_user.exit_code == 2 and "must be letters" in bad_user.output


def test_a_session_lasts_its_hours_and_a_login_form_one_hour() -> None:
    now = [1_000_000.0]
    settings = ConsoleSettings.from_environ(
        {"MESBRIDGE_CONSOLE_USERS": f"{USER}:{hashes()[USER]}", "MESBRIDGE_CONSOLE_SESSION_HOURS": "2"}
    )
    assert settings is not None
    sessions = Sessions(settings, clock=lambda: now[0])
    cookie, session = sessions.issue(USER)
    login, token = sessions.login_cookie()
    now[0] += 3599
    assert sessions.read(cookie) == session and sessions.login_ok(login, token)
    assert not sessions.login_ok(login, token + "x") and not sessions.login_ok(login, None)
    now[0] += 2
    assert not sessions.login_ok(login, token)
    now[0] += 2 * 3600 - 3601 - 1
    assert sessions.read(cookie) is not None
    now[0] += 1
    assert sessions.read(cookie) is None
    assert sessions.csrf_ok(session, sessions.csrf(session)) and not sessions.csrf_ok(session, None)


def test_the_throttle_counts_per_user_and_address_and_forgets_after_its_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(per_pair=3, per_user=5, per_address=4, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait("alice", "10.0.0.1") == 0
        throttle.failed("alice", "10.0.0.1")
        now[0] += 1
    assert throttle.wait("alice", "10.0.0.1") == pytest.approx(57)
    assert throttle.wait("alice", "10.0.0.2") == 0  # the same user from elsewhere
    assert throttle.wait("bob", "10.0.0.1") == 0
    throttle.failed("bob", "10.0.0.1")
    assert throttle.wait("carol", "10.0.0.1") > 0  # four failures from that address
    now[0] += 57
    assert throttle.wait("alice", "10.0.0.1") == 0
    throttle.failed("dave", "10.0.0.3")
    throttle.succeeded("dave", "10.0.0.3")
    assert ("pair", "dave", "10.0.0.3") not in throttle._failures
    assert throttle.attempt("erin", "10.0.0.4") == 0  # counted as failed until it succeeds
    assert ("user", "erin") in throttle._failures
    throttle.succeeded("erin", "10.0.0.4")
    assert not [key for key in throttle._failures if "erin" in key or "10.0.0.4" in key]
    small = LoginThrottle(max_keys=5)
    for number in range(10):
        small.failed(f"user{number}", "10.0.0.9")
    assert len(small._failures) <= 5


def test_recent_rates_count_the_last_five_minutes_only() -> None:
    now = [10_000.0]
    metrics = Metrics(clock=lambda: now[0])
    metrics.event("a", "ok")
    now[0] += 30
    assert metrics.recent() == (60.0, {"a": {"ok": 1}})
    now[0] += 200
    metrics.event("a", "ok")
    metrics.event("a", "failed")
    window, counts = metrics.recent()
    assert window == 230.0 and counts == {"a": {"ok": 2, "failed": 1}}
    now[0] += 100
    window, counts = metrics.recent()
    assert window == 300.0 and counts == {"a": {"ok": 1, "failed": 1}}
    now[0] += 400
    assert metrics.recent() == (300.0, {})
    assert metrics.totals() == {"a": {"ok": 2, "failed": 1}}


def test_activity_keeps_each_connectors_last_five_calls_newest_first() -> None:
    activity = Activity(clock=lambda: 5.0)
    for number in range(7):
        activity.call(CallRecord("mes", "GET", f"/api/{number}", 200, 0.001, 1))
    assert [call.path for call in activity.recent_calls("mes")] == [f"/api/{n}" for n in (6, 5, 4, 3, 2)]
    assert activity.recent_calls("other") == []
    activity.failed("p", "boom", "transient", event_id="p:1")
    assert activity.failures["p"].message == "boom" and activity.failures["p"].at == 5.0
