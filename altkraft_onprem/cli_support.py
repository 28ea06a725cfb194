"""What every `altkraft` command shares: the one-line fatal error, the Context handed to each
command (settings, database, app) and the check that the schema is migrated.

The root command (cli.py) makes the Context and gives it the app factory, so that the domains'
commands (access/cli.py, audience/cli.py, campaigns/cli.py, ...) reach the app without
importing the composition root. Imports inside functions keep `altkraft --help` fast.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    """Handed to every command (`@pass_ctx` / `@click.pass_obj`): the settings, loaded on first
    use, a checked database engine, the app built by the factory the root command gave, and
    the domain reactions (what `create_app` connects) for commands that call services."""

    def __init__(self, config_path: str | None, app_factory: Callable[..., Any] | None = None,
                 connect_reactions: Callable[[], None] | None = None):
        self.config_path = config_path
        self._settings: Settings | None = None
        self._app_factory = app_factory
        self._connect_reactions = connect_reactions

    def connect_reactions(self) -> None:
        """Services called from a command react as in the app (events, extension points)."""
        if self._connect_reactions is not None:
            self._connect_reactions()

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
            raise Fatal(f"config error: database.url = {redacted(settings.database_url)!r}: "
                        f"expected a reachable database ({reason})") from None
        return engine

    def app(self, engine=None):
        if self._app_factory is None:
            raise RuntimeError("this Context was made without an app factory")
        try:
            return self._app_factory(self.settings, engine=engine)
        except ConfigError as exc:
            raise Fatal(str(exc)) from None


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


pass_ctx = click.make_pass_decorator(Context)


def require_migrated(engine) -> None:
    """Refuses (exit 2) to work on a database with pending migrations."""
    from altkraft_onprem.db import migrate as migrations

    if migrations.pending(engine):
        raise Fatal("the database is not migrated: run `altkraft db upgrade` "
                    "(or start with `altkraft run --migrate`)")
