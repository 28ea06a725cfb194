"""`altkraft campaign start|pause|resume|cancel|winner ID` — the same actions as the UI and API."""
from __future__ import annotations

import click

from .actions import ACTIONS


@click.group()
def campaign() -> None:
    """Campaigns: start, pause, resume, cancel, show, pick a split test's winner."""


def _command(action: str):
    @click.argument("campaign_id", type=click.IntRange(min=1))
    @click.pass_obj
    def command(ctx, campaign_id: int) -> None:
        from altkraft_onprem import jobqueue
        from altkraft_onprem.access.cli import operator_call

        from . import actions

        settings = ctx.settings
        jobqueue.configure_queue(settings)

        def call(conn, actor):
            from altkraft_onprem.access.policy import authorize

            authorize(actor, "campaigns:send")
            return actor

        actor = operator_call(ctx, call)
        try:
            state = actions.perform(actor, settings, campaign_id, action, engine=ctx.engine())
        except Exception as exc:  # noqa: BLE001 - ServiceError and friends: one line, exit 1
            message = getattr(exc, "message", None)
            if message is None:
                raise
            raise click.ClickException(message) from None
        click.echo(f"campaign {campaign_id}: {state}")
    command.__doc__ = {"start": "Start a campaign now.", "schedule": "Schedule a campaign.",
                       "pause": "Pause a running campaign.", "resume": "Resume a paused campaign.",
                       "cancel": "Cancel a campaign (unsent messages are never sent)."}[action]
    return campaign.command(action)(command)


for _action in ACTIONS:
    _command(_action)


@campaign.command("show")
@click.argument("campaign_id", type=click.IntRange(min=1))
@click.pass_obj
def show(ctx, campaign_id: int) -> None:
    """Print a campaign's state and progress as JSON."""
    import json

    from altkraft_onprem import db

    from . import service

    with db.read(ctx.engine()) as conn:
        found = service.get_campaign(conn, campaign_id)
        progress = service.progress(conn, campaign_id)
    click.echo(json.dumps({"id": campaign_id, "state": found["state"],
                           "pause_reason": found["pause_reason"], "stats": progress}))


@campaign.command("winner")
@click.argument("campaign_id", type=click.IntRange(min=1))
@click.option("--variant", type=click.IntRange(min=1), default=None,
              help="The variant to send (1 = A, 2 = B, …); without it, the best by the "
                   "test's metric so far.")
@click.pass_obj
def winner(ctx, campaign_id: int, variant: int | None) -> None:
    """Pick a split test's winner now; the rest of the audience gets it."""
    from altkraft_onprem import jobqueue
    from altkraft_onprem.access.cli import operator_call

    from . import actions
    from .models import variant_letter

    jobqueue.configure_queue(ctx.settings)

    def call(conn, actor):
        from altkraft_onprem.access.policy import authorize

        authorize(actor, "campaigns:send")
        return actor

    actor = operator_call(ctx, call)
    try:
        chosen = actions.choose_winner(actor, campaign_id, variant, engine=ctx.engine())
    except Exception as exc:  # noqa: BLE001 - ServiceError and friends: one line, exit 1
        message = getattr(exc, "message", None)
        if message is None:
            raise
        raise click.ClickException(message) from None
    click.echo(f"campaign {campaign_id}: variant {variant_letter(chosen)} wins")
