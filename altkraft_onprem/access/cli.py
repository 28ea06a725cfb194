"""`altkraft user create` and `altkraft token create`, and `operator_call`: how any command
acts as the host operator (the person at the shell, named after $SUDO_USER or $USER)."""
from __future__ import annotations

import os
import sys

import click

from altkraft_onprem.cli_support import Context, pass_ctx, require_migrated


def operator_call(ctx: Context, fn):
    """Run fn(conn, actor) as the host operator; service errors become one line, exit 1."""
    from altkraft_onprem import db
    from altkraft_onprem.errors import ServiceError

    from .models import system_actor

    engine = ctx.engine()
    require_migrated(engine)
    ctx.connect_reactions()
    actor = system_actor(f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'root'}")
    try:
        with db.write(engine) as conn:
            return fn(conn, actor)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None


@click.group()
def user() -> None:
    """Staff accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--role", default="Administrator", show_default=True,
              help="Administrator, Manager, Editor, Analyst, Viewer or a custom role.")
@click.option("--name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def user_create(ctx: Context, email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create a user (password prompted, or read from stdin)."""
    from . import service
    from .policy import authorize

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    def create(conn, actor):
        authorize(actor, "users:manage")
        return service.create_user(conn, actor, email, password, service.role_id_by_name(conn, role), name)

    user_id = operator_call(ctx, create)
    click.echo(f"created user {user_id} ({email}, {role})")


@click.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--email", required=True, help="The user the token acts as (with that user's role).")
@click.option("--name", default="cli", show_default=True)
@pass_ctx
def token_create(ctx: Context, email: str, name: str) -> None:
    """Create an API token; prints it alone on the last line (shown once)."""
    from . import service
    from .policy import authorize

    def create(conn, actor):
        authorize(actor, "users:manage")
        user_id = service.user_id_by_email(conn, email)
        return service.create_token(conn, actor, user_id, name, ctx.settings["security.api_token_days"])

    token_id, secret = operator_call(ctx, create)
    click.echo(f"token {token_id} for {email} (store it now: it is not shown again):", err=True)
    click.echo(secret)


@user.command("reset-2fa")
@click.option("--email", required=True)
@pass_ctx
def user_reset_2fa(ctx: Context, email: str) -> None:
    """Remove a user's second factor (a lost phone, a changed secret key); their sessions end."""
    from . import service
    from .policy import authorize

    def reset(conn, actor):
        authorize(actor, "users:manage")
        service.reset_two_factor(conn, actor, service.user_id_by_email(conn, email))

    operator_call(ctx, reset)
    click.echo(f"two-factor sign-in of {email} reset")
