"""`altkraft inbound` (the SMTP receiver) and `altkraft inbound replay FILE.eml`."""
from __future__ import annotations

import email.utils
import json

import click


@click.group(invoke_without_command=True)
@click.pass_context
def inbound(click_ctx: click.Context) -> None:
    """Receive bounces, complaints, mailto unsubscribes and DMARC reports (SMTP on
    inbound.smtp_listen, or the socket systemd passes); `replay` feeds one message through."""
    if click_ctx.invoked_subcommand is not None:
        return
    import logging

    from altkraft_onprem import jobqueue
    from altkraft_onprem.cli_support import require_migrated
    from altkraft_onprem.config import current_settings

    from . import jobs, receiver

    ctx = click_ctx.obj
    engine = ctx.engine()
    require_migrated(engine)
    # The settings in force, with the Settings page's layered over the file's: the bounce
    # domains of the sending domains made there are accepted too (read at start).
    with ctx.app(engine).app_context():
        settings = current_settings()
    jobqueue.configure_queue(settings)
    logging.basicConfig(level=settings["log_level"].upper(),
                        format="%(asctime)s altkraft-inbound %(levelname)s %(message)s")
    try:
        receiver.run(settings, engine, enqueue=jobs.process_inbound)
    except OSError as exc:
        from altkraft_onprem.cli_support import Fatal

        raise Fatal(f"config error: inbound.smtp_listen = {settings['inbound.smtp_listen']!r}: "
                    f"expected an address this host can listen on ({exc.strerror or exc})") from None


@inbound.command("replay")
@click.argument("file", type=click.File("rb"))
@click.option("--rcpt", "rcpt", help="The envelope recipient it arrived for (default: its To header).")
@click.pass_obj
def replay(ctx, file, rcpt: str | None) -> None:
    """Feed one message through the whole pipeline as if it had arrived for ADDRESS, and
    print the outcome as JSON."""
    from altkraft_onprem import db
    from altkraft_onprem.cli_support import require_migrated

    from . import intake, service

    raw = file.read()
    if rcpt is None:
        from .parse import read

        rcpt = email.utils.parseaddr(str(read(raw).get("To") or ""))[1]
    engine = ctx.engine()
    require_migrated(engine)
    ctx.app(engine)          # the domain-event reactions every process connects
    with db.write(engine) as conn:
        inbound_id = intake.store(conn, raw, source="replay", rcpt=rcpt or "")
    service.process_pending(engine, ctx.settings, ids=[inbound_id])
    with db.read(engine) as conn:
        click.echo(json.dumps(service.outcome(conn, inbound_id), ensure_ascii=False, default=str))
