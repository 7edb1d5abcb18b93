"""`intentd user create|list|disable`: manage users in the configured store.

Works against the same store the servers use (the data dir's SQLite file, or
INTENTD_DATABASE_URL), migrating it first. Disabling a user also tells running
servers to close that user's sockets when they share a Redis bus; an embedded
server (in-process bus) picks the revocation up on the user's next request.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from intentd.cli.options import DataDir, settings_or_exit
from intentd.config import Settings

# The store's modules (SQLAlchemy, Alembic) are imported in the commands that
# use them: every other `intentd` command starts without them, in a third of the time.
if TYPE_CHECKING:
    from intentd.experience.users import User
    from intentd.store import Store

app = typer.Typer(name="user", help="Manage users (in the store the servers use).", no_args_is_help=True)
_CLI = {"via": "cli"}


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)


async def _open_store(settings: Settings) -> Store:
    from intentd.store import Store
    from intentd.store.migrate import upgrade_async

    store = Store.from_settings(settings)  # creates the data dir for SQLite
    await upgrade_async(settings.app_database_url)
    return store


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _fail("no password on standard input")
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="The user's email (their login).")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="The tenant the user belongs to (if not given, the default one).")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the user the admin role.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a user; the password is prompted for (or read from stdin)."""
    from intentd.experience import audit
    from intentd.experience.users import DEFAULT_TENANT, UserError, create_user

    tenant_id = DEFAULT_TENANT if tenant is None else tenant
    settings = settings_or_exit(data_dir)
    password = _read_password(password_stdin)

    async def run() -> User:
        store = await _open_store(settings)
        try:
            return await create_user(
                store,
                email=email,
                password=password,
                tenant_id=tenant_id,
                role="admin" if admin else "user",
                audit_event=audit.AuditEvent(action="user.created", tenant_id=tenant_id, detail=_CLI),
            )
        finally:
            await store.close()

    try:
        user = asyncio.run(run())
    except UserError as exc:
        raise _fail(f"cannot create {email}: {exc}") from None
    typer.echo(f"created {user.email} (id {user.id}, tenant {user.tenant_id}, role {user.role})")


@app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's users.")] = None,
    data_dir: DataDir = None,
) -> None:
    """List users: email, tenant, role, disabled, id."""
    from intentd.experience.users import list_users

    settings = settings_or_exit(data_dir)

    async def run() -> list[User]:
        store = await _open_store(settings)
        try:
            return await list_users(store, tenant)
        finally:
            await store.close()

    found = asyncio.run(run())
    table = Table("email", "tenant", "role", "disabled", "id")
    for user in found:
        table.add_row(user.email, user.tenant_id, user.role, "yes" if user.disabled else "no", user.id)
    Console(width=200).print(table)


@app.command("disable")
def disable(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    data_dir: DataDir = None,
) -> None:
    """Disable a user: revokes their refresh tokens and sessions; they can no longer log in."""
    from intentd.bus import create_bus
    from intentd.experience import audit
    from intentd.experience.users import get_user_by_email, set_disabled

    settings = settings_or_exit(data_dir)

    async def run() -> User | None:
        store = await _open_store(settings)
        # Only a shared (Redis) bus reaches running servers; an in-process one would reach nobody.
        bus = create_bus(settings.redis_url) if settings.redis_url else None
        try:
            if bus is not None:
                await bus.start()
            user = await get_user_by_email(store, email)
            if user is None:
                return None
            return await set_disabled(
                store, bus, user, True,
                audit_event=audit.AuditEvent(action="user.disabled", tenant_id=user.tenant_id, detail=_CLI),
            )
        finally:
            if bus is not None:
                await bus.close()
            await store.close()

    user = asyncio.run(run())
    if user is None:
        raise _fail(f"no user {email}")
    typer.echo(f"disabled {user.email}")
