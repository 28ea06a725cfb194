"""`altkraft workflow list|publish|pause|enroll|resume` — the same operations as the UI and API."""
from __future__ import annotations

import json

import click


@click.group()
def workflow() -> None:
    """Workflows: list, publish a draft, pause, enroll people, resume parked ones."""


def _run(ctx, fn, *permissions: str):
    """fn(conn, actor) as the host operator, after the permission check; wakes the
    automation jobs after the commit."""
    from altkraft_onprem import jobqueue
    from altkraft_onprem.access.cli import operator_call
    from altkraft_onprem.access.policy import authorize

    jobqueue.configure_queue(ctx.settings)

    def call(conn, actor):
        for permission in permissions:
            authorize(actor, permission)
        return fn(conn, actor)

    try:
        return operator_call(ctx, call)
    except click.ClickException:
        raise
    except Exception as exc:  # noqa: BLE001 - Conflict, NotFound …: one line, exit 1
        message = getattr(exc, "message", None)
        if message is None:
            raise
        raise click.ClickException(message) from None


@workflow.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_obj
def list_command(ctx, as_json: bool) -> None:
    """Print the workflows: id, state, published version, name."""
    from . import workflows

    found = _run(ctx, lambda conn, actor: workflows.list_workflows(conn), "automation:read")
    if as_json:
        click.echo(json.dumps([{k: w[k] for k in ("id", "name", "state", "version")} for w in found]))
        return
    for item in found:
        click.echo(f"{item['id']}\t{item['state']}\tv{item['version'] or '-'}\t{item['name']}")


@workflow.command("publish")
@click.argument("workflow_id", type=click.IntRange(min=1))
@click.pass_obj
def publish_command(ctx, workflow_id: int) -> None:
    """Check a workflow's draft and publish it as its next version."""
    from . import workflows

    result = _run(ctx, lambda conn, actor: workflows.publish(conn, actor, workflow_id),
                  "automation:write")
    click.echo(f"workflow {workflow_id}: version {result['version']} published")


@workflow.command("pause")
@click.argument("workflow_id", type=click.IntRange(min=1))
@click.pass_obj
def pause_command(ctx, workflow_id: int) -> None:
    """Pause a workflow (nobody enters or moves on until it is published again)."""
    from . import workflows

    state = _run(ctx, lambda conn, actor: workflows.pause(conn, actor, workflow_id),
                 "automation:write")
    click.echo(f"workflow {workflow_id}: {state}")


@workflow.command("enroll")
@click.argument("workflow_id", type=click.IntRange(min=1))
@click.option("--subscriber", "subscriber_ids", type=click.IntRange(min=1), multiple=True,
              help="A subscriber id (repeat for several).")
@click.option("--segment", "segment_id", type=click.IntRange(min=1),
              help="Everyone in this segment.")
@click.option("--test", is_flag=True, help="A test run: waits are compressed.")
@click.pass_obj
def enroll_command(ctx, workflow_id: int, subscriber_ids: tuple[int, ...], segment_id: int | None,
                   test: bool) -> None:
    """Enroll people in a workflow (by id or a whole segment)."""
    from . import jobs, workflows

    if bool(subscriber_ids) == (segment_id is not None):
        raise click.UsageError("give --subscriber (one or more) or --segment")
    result = _run(ctx, lambda conn, actor: workflows.enroll(
        conn, actor, workflow_id, subscriber_ids=list(subscriber_ids) or None,
        segment_id=segment_id, test=test, wake=jobs.wake), "automation:write")
    if result["queued"]:
        click.echo(f"workflow {workflow_id}: {result['asked']} people are being enrolled in the "
                   "background")
        return
    click.echo(f"workflow {workflow_id}: {result['entered']} of {result['asked']} enrolled")


@workflow.command("resume")
@click.argument("workflow_id", type=click.IntRange(min=1))
@click.option("--enrollment", "enrollment_ids", type=click.IntRange(min=1), multiple=True,
              help="A parked enrollment id (repeat for several); default: every parked one.")
@click.pass_obj
def resume_command(ctx, workflow_id: int, enrollment_ids: tuple[int, ...]) -> None:
    """Resume parked enrollments: each tries the step where it stopped again."""
    from . import jobs, workflows

    resumed = _run(ctx, lambda conn, actor: workflows.resume(
        conn, actor, workflow_id, list(enrollment_ids) or None, wake=jobs.wake), "automation:write")
    click.echo(f"workflow {workflow_id}: {resumed} resumed")
