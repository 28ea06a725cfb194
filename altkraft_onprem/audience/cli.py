"""`altkraft backup FILE` and `altkraft restore FILE --yes`."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def backup_command(ctx, file: Path) -> None:
    """Write a consistent snapshot of the whole database to FILE (safe while running)."""
    from altkraft_onprem.errors import ServiceError

    from . import backup

    ctx.engine()                        # clear message if the database is unreachable
    try:
        size = backup.backup(ctx.settings.database_url, file)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"backup written: {file} ({size} bytes)")


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Really replace the current database.")
@click.pass_obj
def restore_command(ctx, file: Path, yes: bool) -> None:
    """Replace the whole database with a snapshot from `altkraft backup` (stop the service
    first)."""
    from altkraft_onprem.errors import ServiceError

    from . import backup

    if not yes:
        raise click.ClickException("this replaces every row in the database: stop the service, "
                                   "then run again with --yes")
    ctx.engine()
    try:
        backup.restore(ctx.settings.database_url, file)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"restored from {file}")
