"""`mesbridge console`: what the operator console served by `mesbridge run` at /console needs."""

from __future__ import annotations

import sys

import click

from engine.console.passwords import MIN_LENGTH, hash_password
from engine.console.settings import user_name_problem


@click.group("console")
def console() -> None:
    """The operator console: `mesbridge run` serves it at /console once MESBRIDGE_CONSOLE_USERS
    (or MESBRIDGE_CONSOLE_USERS_FILE) names its users, as `user:<hash>` entries."""


@console.command("hash-password")
@click.option("--user", default=None, help="Print `USER:<hash>`, an entry of MESBRIDGE_CONSOLE_USERS")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (the default when it is not a terminal)",
)
def hash_password_command(user: str | None, from_stdin: bool) -> None:
    """Print a salted scrypt hash of a password, asked for at a prompt (never an argument, which the
    shell history and the process list would keep). Only the hash goes into the console's settings."""
    if user is not None and (problem := user_name_problem(user)) is not None:
        raise click.BadParameter(problem, param_hint="--user")
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < MIN_LENGTH:
        raise click.ClickException(f"the password is shorter than {MIN_LENGTH} characters")
    hashed = hash_password(password)
    click.echo(f"{user}:{hashed}" if user else hashed)
