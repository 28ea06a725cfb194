"""The `altkraft` command: run, worker, db, user, token, config.

Operator mistakes (bad config, unreachable database, unmigrated schema) end with one line on
stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from altkraft_onprem import config as config_module
from altkraft_onprem.config import ConfigError, Settings

EXIT_CONFIG = 2


class Fatal(click.ClickException):
    """One line for the operator, exit status 2."""

    exit_code = EXIT_CONFIG

    def show(self, file=None) -> None:
        click.echo(self.message, err=True)


class Context:
    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = config_module.load(self.config_path)
            except ConfigError as exc:
                raise Fatal(str(exc)) from None
        return self._settings

    def engine(self):
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        from altkraft_onprem import db

        settings = self.settings
        try:
            engine = db.build_engine(settings.database_url, pool_size=settings["database.pool_size"],
                                     busy_timeout_ms=settings["database.busy_timeout_ms"])
            if engine.dialect.name == "sqlite":
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise Fatal(f"config error: database.url = {_redacted(settings.database_url)!r}: "
                        f"expected a reachable database ({reason})") from None
        return engine

    def app(self, engine=None):
        from altkraft_onprem.app import create_app

        try:
            return create_app(self.settings, engine=engine)
        except ConfigError as exc:
            raise Fatal(str(exc)) from None


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              envvar=config_module.CONFIG_ENV, help="TOML config file (default: $ALTKRAFT_CONFIG).")
@click.version_option(package_name="altkraft-onprem")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """ALTKRAFT On-Premise: email marketing on your own servers."""
    ctx.obj = Context(config_path)


# --- run / worker ---------------------------------------------------------------------------

def ensure_data_dir(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o750)


def ensure_secret_key(settings: Settings) -> None:
    """Creates DATA_DIR/secret_key (0600) on first start; a configured file must exist."""
    path = settings.secret_key_path
    if path.exists() or settings["secret_key_file"]:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")


def _require_migrated(engine, migrate: bool) -> None:
    from altkraft_onprem.db import migrate as migrations

    if not migrations.pending(engine):
        return
    if not migrate:
        raise Fatal("the database is not migrated: run `altkraft db upgrade` "
                    "(or start with `altkraft run --migrate`)")
    _upgrade(engine)


def _upgrade(engine) -> None:
    from altkraft_onprem import db
    from altkraft_onprem.access.service import sync_builtin_roles
    from altkraft_onprem.db import migrate as migrations

    migrations.upgrade(engine)
    with db.write(engine) as conn:
        sync_builtin_roles(conn)


def _override(ctx: Context, key: str, value: str) -> Settings:
    """A command-line option over a setting, for this process and (through the environment)
    the job consumer it starts."""
    try:
        settings = ctx.settings.replace(**{key.replace(".", "__"): value})
    except ConfigError as exc:
        raise Fatal(str(exc)) from None
    os.environ["ALTKRAFT_" + key.replace(".", "__").upper()] = value
    ctx._settings = settings
    return settings


VERBOSE_HELP = ("Log every background job and server event (log_level \"info\"); by default "
                "only problems are logged.")


def _verbose(ctx: Context, verbose: bool) -> None:
    if verbose and ctx.settings["log_level"] in ("warning", "error"):
        _override(ctx, "log_level", "info")


@cli.command()
@click.option("--migrate", is_flag=True, help="Apply pending database migrations first.")
@click.option("--bind", help="HOST:PORT to listen on (overrides server.bind).")
@click.option("--no-consumer", is_flag=True, help="Serve only; jobs run in `altkraft worker`s.")
@click.option("--verbose", "-v", is_flag=True, help=VERBOSE_HELP)
@pass_ctx
def run(ctx: Context, migrate: bool, bind: str | None, no_consumer: bool, verbose: bool) -> None:
    """Serve the web UI, API and tracking, and run background jobs."""
    from altkraft_onprem import db
    from altkraft_onprem.access import service as access
    from altkraft_onprem.server import Appliance, prepare_metrics_dir

    if bind:
        _override(ctx, "server.bind", bind)
    _verbose(ctx, verbose)
    settings = ctx.settings
    ensure_data_dir(settings)
    ensure_secret_key(settings)
    engine = ctx.engine()
    _require_migrated(engine, migrate)
    ctx.app(engine)  # fail here, in one line, on anything create_app refuses
    with db.write(engine) as conn:
        setup_token = access.issue_setup_token(conn) if access.setup_needed(conn) else None
    engine.dispose()
    public = settings["server.public_url"]
    click.echo(f"ALTKRAFT is starting on http://{settings['server.bind']}  (public URL: {public})")
    hint = _public_url_hint(settings)
    if hint:
        click.echo(hint)
    if setup_token:
        click.echo(f"First run: create the administrator at {public}/setup/{setup_token}")
    sys.stdout.flush()
    prepare_metrics_dir(settings)
    Appliance(settings, ctx.config_path, with_consumer=not no_consumer).run()


def _public_url_hint(settings: Settings) -> str:
    """Links in mail and the setup link use server.public_url: a local one that names another
    port than the service listens on (only --bind or server.bind changed) leads nowhere."""
    public = urlsplit(settings["server.public_url"])
    named = public.port or (443 if public.scheme == "https" else 80)
    port = settings["server.bind"].rpartition(":")[2]
    if public.hostname not in ("127.0.0.1", "localhost", "::1") or str(named) == port:
        return ""
    return (f"Note: the public URL names port {named}, the service listens on {port}: "
            "set server.public_url (ALTKRAFT_SERVER__PUBLIC_URL) too, or links lead nowhere.")


@cli.command()
@click.option("--workers", type=int, help="Job workers (default: queue.workers).")
@click.option("--verbose", "-v", is_flag=True, help=VERBOSE_HELP)
@pass_ctx
def worker(ctx: Context, workers: int | None, verbose: bool) -> None:
    """Run background jobs (extra consumers for scale-out, on any machine)."""
    import logging

    from altkraft_onprem import tasks

    _verbose(ctx, verbose)
    settings = ctx.settings
    try:
        engine = ctx.engine()
        _require_migrated(engine, migrate=False)
        app = ctx.app(engine)
        tasks.configure_queue(settings)
        tasks.bind_app(app)
        tasks.load_task_modules()
        logging.basicConfig(level=settings["log_level"].upper(),
                            format="%(asctime)s altkraft-worker %(levelname)s %(message)s")
        consumer = tasks.huey.create_consumer(workers=workers or settings["queue.workers"],
                                              worker_type=settings["queue.worker_type"],
                                              periodic=True, check_worker_health=True)
    except KeyboardInterrupt:
        # Stopped (SIGINT) while starting: nothing ran yet, so this is a clean stop.
        click.echo("altkraft worker: stopped before it started", err=True)
        return
    consumer.run()      # from here on huey handles SIGINT: running jobs finish first


# --- db -------------------------------------------------------------------------------------

@cli.group(name="db")
def db_group() -> None:
    """Database schema."""


@db_group.command()
@pass_ctx
def upgrade(ctx: Context) -> None:
    """Apply pending migrations (safe to run again)."""
    from altkraft_onprem.db import migrate as migrations

    if ctx.settings.database_url.startswith("sqlite"):
        ensure_data_dir(ctx.settings)
    engine = ctx.engine()
    before = migrations.pending(engine)
    _upgrade(engine)
    click.echo(f"migrated: {', '.join(sorted(before))}" if before else "already up to date")


@db_group.command()
@pass_ctx
def status(ctx: Context) -> None:
    """Say whether migrations are pending (exit 1 when they are)."""
    from altkraft_onprem.db import migrate as migrations

    missing = migrations.pending(ctx.engine())
    click.echo(f"pending: {', '.join(sorted(missing))}" if missing else "up to date")
    sys.exit(1 if missing else 0)


# --- users and tokens -----------------------------------------------------------------------

def _service_call(ctx: Context, fn):
    """Run fn(conn, actor) as the host operator; service errors become one line, exit 1."""
    from altkraft_onprem import db
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.errors import ServiceError

    engine = ctx.engine()
    _require_migrated(engine, migrate=False)
    actor = system_actor(f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'root'}")
    try:
        with db.write(engine) as conn:
            return fn(conn, actor)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None


@cli.group()
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
    from altkraft_onprem.access import service
    from altkraft_onprem.access.policy import authorize

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    def create(conn, actor):
        authorize(actor, "users:manage")
        return service.create_user(conn, actor, email, password, service.role_id_by_name(conn, role), name)

    user_id = _service_call(ctx, create)
    click.echo(f"created user {user_id} ({email}, {role})")


@cli.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--email", required=True, help="The user the token acts as (with that user's role).")
@click.option("--name", default="cli", show_default=True)
@pass_ctx
def token_create(ctx: Context, email: str, name: str) -> None:
    """Create an API token; prints it alone on the last line (shown once)."""
    from altkraft_onprem.access import service
    from altkraft_onprem.access.policy import authorize

    def create(conn, actor):
        authorize(actor, "users:manage")
        user_id = service.user_id_by_email(conn, email)
        return service.create_token(conn, actor, user_id, name, ctx.settings["security.api_token_days"])

    token_id, secret = _service_call(ctx, create)
    click.echo(f"token {token_id} for {email} (store it now: it is not shown again):", err=True)
    click.echo(secret)


# --- config ---------------------------------------------------------------------------------

@cli.group(name="config")
def config_group() -> None:
    """Configuration file."""


@config_group.command("check")
@pass_ctx
def config_check(ctx: Context) -> None:
    """Validate the configuration and reach the database (exit 2 naming the offending key)."""
    from sqlalchemy.engine import make_url

    settings = ctx.settings
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        where = f"database: {url.database} (created by `altkraft db upgrade`)"
    else:
        ctx.engine().dispose()
        where = f"database: {_redacted(settings.database_url)} (reachable)"
    click.echo(f"ok: {settings.source or 'built-in defaults'}; {where}")


@config_group.command("example")
def config_example() -> None:
    """Print config.example.toml (every setting, commented)."""
    from altkraft_onprem.config_docs import render_example

    click.echo(render_example(), nl=False)


@config_group.command("docs")
def config_docs() -> None:
    """Print docs/configuration.md."""
    from altkraft_onprem.config_docs import render_markdown

    click.echo(render_markdown(), nl=False)


def _domain_commands() -> None:
    from altkraft_onprem.audience.cli import backup_command, restore_command
    from altkraft_onprem.audience.importer.cli import import_command
    from altkraft_onprem.campaigns.cli import campaign
    from altkraft_onprem.inbound.cli import inbound

    cli.add_command(campaign)
    cli.add_command(inbound)
    cli.add_command(backup_command)
    cli.add_command(restore_command)
    cli.add_command(import_command)


_domain_commands()


def main() -> None:
    cli(prog_name="altkraft")


if __name__ == "__main__":
    main()
