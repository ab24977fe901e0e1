"""Commands of the HTTP gateway (``--server https://host:9003``): login, logout, push, jobs, history, user."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ..http import HttpOdin, TokenCache, is_http
from .common import OUTPUT_TABLE, fail, make_console, print_table, run_async, state
from .fmt import dump


def gateway_command(fn: Callable[..., Awaitable[int | None]]) -> Callable[..., None]:
    """``async def cmd(gateway, **options)`` as a click callback on the gateway given by --server."""
    import functools

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> None:
        s = state(click.get_current_context())
        if not is_http(s.server):
            fail("this command talks to the HTTP gateway: give --server https://host:9003 (or ODIN_SERVER)")
        server = str(s.server)

        async def body() -> int | None:
            async with HttpOdin(server, token=s.token, cache=TokenCache()) as gateway:
                return await fn(gateway, **kwargs)

        code = run_async(body())
        if code:
            raise SystemExit(code)

    return wrapper


@click.command("login", short_help="Log in to the gateway; the token is cached.")
@click.option("-u", "--username", default=None, help="Your user name (asked for when not given).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@gateway_command
async def login_cmd(gateway: HttpOdin, username: str | None, password_stdin: bool) -> None:
    """Log in; later commands with the same --server use the cached token (refreshed automatically).

    The tokens are kept in ~/.config/odin/tokens.json (mode 0600; env ODIN_TOKEN_FILE).

    \b
    Example:
      odin --server https://odin.example:9003 login -u ann
    """
    # asked here, not by click while parsing: gateway_command has checked for --server first
    username = username or str(click.prompt("Username"))
    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt("Password", hide_input=True)
    user = await gateway.login(username, password)
    make_console().print(f"logged in to {gateway.url} as {user['username']} ({user.get('role', '?')})", markup=False)


@click.command("logout", short_help="Revoke the cached token and forget it.")
@gateway_command
async def logout_cmd(gateway: HttpOdin) -> None:
    """Revoke the token cached for --server and remove it from the cache.

    \b
    Example:
      odin --server https://odin.example:9003 logout
    """
    await gateway.logout()
    make_console().print(f"logged out of {gateway.url}", markup=False)


@click.command("push", short_help="Write a file of a job (one git commit).")
@click.argument("job")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="The file's name in the job (default: the local file's name).")
@click.option("--create", is_flag=True, help="Create the job first.")
@click.option("--base", default=None, metavar="COMMIT", help="Refuse if the file changed since this commit.")
@gateway_command
async def push_cmd(gateway: HttpOdin, job: str, file: Path, name: str | None, create: bool, base: str | None) -> None:
    """Upload FILE into JOB on the gateway: one commit authored by you.

    \b
    Examples:
      odin --server https://odin:9003 push team/train main.yml
      odin --server https://odin:9003 push team/train configs/lr.yml --name configs/lr.yml
    """
    if create:
        await gateway.create_job(job)
    written = await gateway.push(job, name or file.name, file.read_bytes(), base=base)
    make_console().print(f"wrote {written['bytes']} bytes: {written['location']}", markup=False)


@click.command("jobs", short_help="The pipeline definitions on the gateway.")
@click.argument("query", required=False, default="")
@OUTPUT_TABLE
@gateway_command
async def jobs_cmd(gateway: HttpOdin, query: str, output: str) -> None:
    """The jobs in the gateway's repository (QUERY: part of a job path).

    \b
    Examples:
      odin --server https://odin.example:9003 jobs
      odin --server https://odin.example:9003 jobs team/ -o json
    """
    jobs = await gateway.jobs(query)
    if output != "table":
        click.echo(dump(jobs, output))
        return
    table = Table("job", "location", box=None)
    for j in jobs:
        table.add_row(j["name"], j["location"])
    print_table(make_console(), table)


@click.command("history", short_help="The commits that changed a job.")
@click.argument("job")
@OUTPUT_TABLE
@gateway_command
async def history_cmd(gateway: HttpOdin, job: str, output: str) -> None:
    """The git history of JOB, newest first (POST /v1/pipelines with `commit` runs any of them).

    \b
    Example:
      odin --server https://odin.example:9003 history team/train
    """
    commits = await gateway.history(job)
    if output != "table":
        click.echo(dump(commits, output))
        return
    table = Table("commit", "time", "author", "message", box=None)
    for c in commits:
        table.add_row(
            c["commit"][:12], str(c["time"]), c["author"], c["message"].splitlines()[0] if c["message"] else ""
        )
    print_table(make_console(), table)


@click.group("user", short_help="Users of the gateway (admins manage everyone).")
def user_group() -> None:
    """Users: `odin user list`, `show NAME`, `create NAME`, `update NAME`, `delete NAME`.

    \b
    Examples:
      odin --server https://odin.example:9003 user list
      odin --server https://odin.example:9003 user create bob --role admin
      odin --server https://odin.example:9003 user update ann --password
    """


def _user_table(users: list[dict[str, Any]]) -> Table:
    table = Table("user", "role", "first name", "last name", box=None)
    for u in users:
        table.add_row(u["username"], u.get("role", ""), u.get("firstname", ""), u.get("lastname", ""))
    return table


@user_group.command("list")
@click.argument("query", required=False, default="")
@OUTPUT_TABLE
@gateway_command
async def user_list(gateway: HttpOdin, query: str, output: str) -> None:
    """Every user (admins only)."""
    users = await gateway.users(query)
    if output != "table":
        click.echo(dump(users, output))
        return
    print_table(make_console(), _user_table(users))


@user_group.command("show")
@click.argument("username")
@OUTPUT_TABLE
@gateway_command
async def user_show(gateway: HttpOdin, username: str, output: str) -> None:
    """One user."""
    user = await gateway.user(username)
    if output != "table":
        click.echo(dump(user, output))
        return
    print_table(make_console(), _user_table([user]))


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.option("--firstname", default="")
@click.option("--lastname", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@gateway_command
async def user_create(
    gateway: HttpOdin, username: str, role: str, firstname: str, lastname: str, password_stdin: bool
) -> None:
    """Create a user (admins only)."""
    user = await gateway.create_user(
        username, _password(password_stdin), role=role, firstname=firstname, lastname=lastname
    )
    make_console().print(f"created {user['username']} ({user.get('role')})", markup=False)


@user_group.command("update")
@click.argument("username")
@click.option("--role", type=click.Choice(["user", "admin"]), default=None)
@click.option("--firstname", default=None)
@click.option("--lastname", default=None)
@click.option("--password", "change_password", is_flag=True, help="Set a new password (prompted).")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@gateway_command
async def user_update(
    gateway: HttpOdin,
    username: str,
    role: str | None,
    firstname: str | None,
    lastname: str | None,
    change_password: bool,
    password_stdin: bool,
) -> None:
    """Change a user: yours, or anyone's as an admin. A new password revokes every token of that user."""
    fields: dict[str, Any] = {k: v for k, v in (("role", role), ("firstname", firstname), ("lastname", lastname)) if v}
    if change_password or password_stdin:
        fields["password"] = _password(password_stdin)
    if not fields:
        fail("nothing to change: give --role, --firstname, --lastname or --password")
    user = await gateway.update_user(username, **fields)
    make_console().print(f"updated {user['username']}", markup=False)


@user_group.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Confirm the action without prompting.")
@gateway_command
async def user_delete(gateway: HttpOdin, username: str, yes: bool) -> None:
    """Delete a user (admins only)."""
    if not yes:  # asked here, not by click while parsing: gateway_command has checked for --server first
        click.confirm("Delete this user?", abort=True)
    await gateway.delete_user(username)
    make_console().print(f"deleted {username}", markup=False)


GATEWAY_COMMANDS = (login_cmd, logout_cmd, push_cmd, jobs_cmd, history_cmd, user_group)
