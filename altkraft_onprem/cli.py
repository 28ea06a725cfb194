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
from altkraft_onprem.cli_support import Context, Fatal, pass_ctx, redacted, require_migrated
from altkraft_onprem.config import ConfigError, Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              envvar=config_module.CONFIG_ENV, help="TOML config file (default: $ALTKRAFT_CONFIG).")
@click.version_option(package_name="altkraft-onprem")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """ALTKRAFT On-Premise: email marketing on your own servers."""
    ctx.obj = Context(config_path, app_factory=_create_app, connect_reactions=_connect_reactions)


def _create_app(settings: Settings, engine=None):
    from altkraft_onprem.app import create_app

    return create_app(settings, engine=engine)


def _connect_reactions() -> None:
    from altkraft_onprem import reactions

    reactions.connect_all()


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

    if migrate and migrations.pending(engine):
        _upgrade(engine)
    require_migrated(engine)


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
        where = f"database: {redacted(settings.database_url)} (reachable)"
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
    from altkraft_onprem.access.cli import token, user
    from altkraft_onprem.audience.cli import backup_command, restore_command
    from altkraft_onprem.audience.importer.cli import import_command
    from altkraft_onprem.automation.cli import workflow
    from altkraft_onprem.campaigns.cli import campaign
    from altkraft_onprem.inbound.cli import inbound

    cli.add_command(user)
    cli.add_command(token)
    cli.add_command(campaign)
    cli.add_command(workflow)
    cli.add_command(inbound)
    cli.add_command(backup_command)
    cli.add_command(restore_command)
    cli.add_command(import_command)


_domain_commands()


def main() -> None:
    cli(prog_name="altkraft")


if __name__ == "__main__":
    main()
