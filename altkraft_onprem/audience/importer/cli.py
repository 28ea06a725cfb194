"""`altkraft import FILE --list NAME`: the same import job as the UI and API, run here with a
progress bar. Confirmation emails (double opt-in) go to the queue for `altkraft run` to send."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_names", multiple=True, metavar="NAME",
              help="Target list (name or id); repeat for several.")
@click.option("--mode", type=click.Choice(["add", "update", "upsert"]), default="upsert",
              show_default=True, help="add: new people only; update: existing only; upsert: both.")
@click.option("--status", type=click.Choice(["confirmed", "unconfirmed"]), default="confirmed",
              show_default=True, help="Membership status of imported people.")
@click.option("--mapping", help='JSON {"column header or 1-based position": "field"} '
                                '(fields: email, first_name, …, "custom.KEY", "" to skip). '
                                "Default: detected from the header.")
@click.option("--rejected", "rejected_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the rejected rows CSV (default: FILE.rejected.csv).")
@click.pass_obj
def import_command(ctx, file: Path, list_names: tuple[str, ...], mode: str, status: str,
                   mapping: str | None, rejected_path: Path | None) -> None:
    """Import subscribers from a .csv, .txt, .xls, .xlsx, .zip or .tar.gz file."""
    from altkraft_onprem import db, jobqueue
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.access.policy import authorize
    from altkraft_onprem.cli_support import require_migrated
    from altkraft_onprem.errors import ServiceError

    from . import runner, service
    from .api import resolve_lists
    from .archives import Limits

    settings = ctx.settings
    engine = ctx.engine()
    require_migrated(engine)
    jobqueue.configure_queue(settings)          # confirmations are queued for the service
    jobqueue.bind_app(ctx.app(engine))
    actor = system_actor(f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'root'}")
    try:
        authorize(actor, "subscribers:import")
        parsed = json.loads(mapping) if mapping else None
        with db.write(engine) as conn:
            list_ids = resolve_lists(conn, ",".join(list_names))
            import_id = service.create_import(
                conn, actor, filename=file.name, path=file.resolve(), list_ids=list_ids, mode=mode,
                status=status, mapping=parsed)
    except ValueError as exc:
        raise click.ClickException(f"--mapping is not valid JSON: {exc}") from None
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    total = runner.estimate_rows(file, file.name)
    with click.progressbar(length=total or 0, label=f"import #{import_id}", show_pos=True,
                           item_show_func=lambda info: info, file=click.get_text_stream("stderr")) as bar:
        last = [0]

        def progress(info: dict) -> None:
            done = info["rows_done"]
            errors = info["counts"]["invalid"] + info["counts"]["duplicates"] + info["counts"]["suppressed"]
            bar.update(max(done - last[0], 0), f"{info['rows_per_s']:.0f} rows/s, {errors} errors")
            last[0] = done

        report = runner.run_import(engine, import_id, limits=Limits.from_settings(settings),
                                   progress=progress, batch_size=settings["imports.batch_size"])
    counts = report["counts"]
    click.echo(", ".join(f"{key} {value}" for key, value in counts.items()))
    click.echo(f"{report['rows_done']} rows in {report['progress']['elapsed_s']} s "
               f"({report['progress']['rows_per_s']:.0f} rows/s)")
    if report["progress"]["errors"]:
        target = rejected_path or file.with_name(file.name + ".rejected.csv")
        with db.read(engine) as conn, open(target, "w", encoding="utf-8-sig", newline="") as out:
            for chunk in service.rejected_csv(conn, import_id):
                out.write(chunk)
        click.echo(f"rejected rows with line numbers and reasons: {target}")
    if report["state"] != "finished":
        raise click.ClickException(f"import #{import_id} {report['state']}: {report['error']}")
