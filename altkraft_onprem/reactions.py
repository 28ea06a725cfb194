"""Which domain reacts to which domain event, and which answers which extension point: the
one place handlers and providers are connected.

A composition root like app.py: it may import any domain. `create_app` calls `connect_all()`,
and every process that runs services (web workers, job consumers, the CLI, tests) builds the
app first, so every process has the same reactions. Connecting twice is harmless.
"""
from __future__ import annotations

from altkraft_onprem import events, extensions
from altkraft_onprem.access import scope
from altkraft_onprem.audience import lists
from altkraft_onprem.audience.importer import undo as import_undo
from altkraft_onprem.automation import enrollment, interest, outbox
from altkraft_onprem.automation import jobs as automation_jobs
from altkraft_onprem.campaigns import lookups as campaign_lookups
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.deliverability import presend, warmup
from altkraft_onprem.inbound import service as inbound
from altkraft_onprem.reports import feedback
from altkraft_onprem.sending import fanout
from altkraft_onprem.tracking import erasure
from altkraft_onprem.tracking import lookups as tracking_lookups

_outbox_handlers: dict[str, events.Handler] = {}


def connect_all() -> None:
    # Which lists an object named in a path belongs to, for roles limited to some lists.
    scope.register("list_id", lists.lists_of_list)
    scope.register("subscriber_id", lists.lists_of_subscriber)
    scope.register("campaign_id", campaigns.lists_of_campaign)
    scope.register("import_id", import_undo.lists_of_import)
    extensions.LIST_NAMES.provide(lists.names)
    # Campaigns' send run hands the due rows to the sender processes.
    extensions.CAMPAIGN_SENDERS.provide(fanout.run)
    # A person's timeline: what they were sent, then what they opened and clicked.
    extensions.PERSON_TIMELINE.provide(campaign_lookups.received_timeline)
    extensions.PERSON_TIMELINE.provide(tracking_lookups.events_timeline)
    extensions.PERSON_TIMELINE.provide(enrollment.timeline)        # workflow steps
    # Engagement is tracking's: segments' conditions on it and split tests' figures.
    extensions.SEGMENT_ACTIVITY.provide(tracking_lookups.activity_condition)
    extensions.SPLIT_TEST_ENGAGEMENT.provide(tracking_lookups.split_test_engagement)
    # A warm-up's quotas hold campaign rows back; deliverability lets them go day by day.
    extensions.CAMPAIGN_RELEASE.provide(warmup.release)
    extensions.CAMPAIGN_HOLDS.provide(warmup.held_for_campaign)
    # A message a campaign sends cannot be archived.
    extensions.MESSAGE_USERS.provide(campaign_lookups.message_users)
    extensions.CAMPAIGN_START_CHECKS.provide(presend.start_blockers)
    # A person's tracking events and per-person roll-ups go with the person.
    events.SUBSCRIBERS_ERASED.connect(_erase_tracking)
    events.SUBSCRIBERS_ERASED.connect(_erase_workflow_history)
    # A relay's synchronous 5xx is a bounce like one that comes back by mail.
    events.EMAIL_REJECTED.connect(inbound.relay_rejected)
    # Campaign reports count bounces and complaints by class and provider.
    events.EMAIL_BOUNCED.connect(_count_bounce)
    events.EMAIL_COMPLAINED.connect(_count_complaint)
    # Every domain event may feed workflows and webhooks: the outbox records those that an
    # active subscription or workflow listens to, in the emitting transaction.
    for name, event in events.declared().items():
        event.connect(_outbox_handlers.setdefault(name, _to_outbox(name)))


def _to_outbox(name: str) -> events.Handler:
    def handler(conn, **payload) -> None:
        outbox.append(conn, name, payload, wake=automation_jobs.wake)

    def many(conn, payloads) -> None:           # events.DomainEvent.emit_many
        outbox.append_many(conn, name, payloads, wake=automation_jobs.wake)
    handler.wants = interest.probe(name)        # what events.DomainEvent.wanted asks
    handler.many = many
    return handler


def _erase_workflow_history(conn, *, subscriber_ids) -> None:
    enrollment.erase_people(conn, subscriber_ids)


def _erase_tracking(conn, *, subscriber_ids) -> None:
    erasure.erase_people(conn, subscriber_ids)


def _count_bounce(conn, *, campaign_id, subscriber_id, provider, bounce_class, **_payload) -> None:
    feedback.count(conn, campaign_id, subscriber_id, provider, feedback.BOUNCE, bounce_class)


def _count_bounces(conn, payloads) -> None:
    feedback.count_many(conn, [(p["campaign_id"], p["subscriber_id"], p["provider"], feedback.BOUNCE,
                                p["bounce_class"]) for p in payloads])


def _count_complaint(conn, *, campaign_id, subscriber_id, provider, **_payload) -> None:
    feedback.count(conn, campaign_id, subscriber_id, provider, feedback.COMPLAINT)


def _count_complaints(conn, payloads) -> None:
    feedback.count_many(conn, [(p["campaign_id"], p["subscriber_id"], p["provider"], feedback.COMPLAINT, "")
                               for p in payloads])


_count_bounce.many = _count_bounces             # events.DomainEvent.emit_many
_count_complaint.many = _count_complaints
