"""Building a world for campaign tests: a list, subscribers, a message, relays and keys."""
from __future__ import annotations

import json
from pathlib import Path

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import lists, subscribers
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.messages import service as messages
from tests.conftest import start_service
from tests.delivery.keys import write_keys

ACTOR = system_actor("test")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "newsletter.html"

HTML = """<html><body>
<p>Здравствуйте, {{ subscriber.first_name | default('друг') }}!</p>
<p><a href="https://shop.example.com/sale?x=1">Sale</a>
<a href="https://shop.example.com/new?utm_source=partner">New</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


def sending_settings(env, sink, **extra):
    """env.settings plus the sink as relay and test DKIM keys for example.com."""
    entries, records = write_keys(env.data_dir / "dkim")
    values = {"smtp__relays": [sink.relay()], "dkim__keys": entries,
              "delivery__retry_seconds": 0.2}
    values.update(extra)
    return env.settings.replace(**values), records


def start_sending_service(env, sink, processes: int = 1):
    """`altkraft run` (a real process) with the sink as its relay and test DKIM keys."""
    entries, _ = write_keys(env.data_dir / "dkim")
    return start_service(env, extra_env={
        "ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay()]),
        "ALTKRAFT_DKIM__KEYS": json.dumps(entries),
        "ALTKRAFT_DELIVERY__PROCESSES": str(processes)})


def make_list(env, name: str, people: list[dict], status: str = "confirmed") -> tuple[int, list[int]]:
    with db.write(env.engine) as conn:
        list_id = lists.create_list(conn, ACTOR, name)
        ids = [subscribers.create_subscriber(conn, ACTOR, person, list_ids=[list_id], status=status)
               for person in people]
    return list_id, ids


def make_message(env, html: str = HTML, subject: str = "Скидки для {{ subscriber.first_name }} 🎉") -> int:
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "Sale", subject=subject, html=html)
    return message_id


def make_campaign(env, message_id: int, list_ids: list[int], **extra) -> int:
    values = {"name": "Winter sale", "message_id": message_id, "list_ids": list_ids,
              "from_email": "news@example.com", "from_name": "Магазин",
              "utm": {"utm_source": "altkraft", "utm_medium": "email", "utm_campaign": "winter"}}
    values.update(extra)
    with db.write(env.engine) as conn:
        return campaigns.create_campaign(conn, ACTOR, **values)


def start(env, settings, campaign_id: int) -> None:
    with db.write(env.engine) as conn:
        campaigns.start(conn, ACTOR, settings, campaign_id)


def progress(env, campaign_id: int) -> dict:
    with db.read(env.engine) as conn:
        return {**campaigns.progress(conn, campaign_id),
                "state": campaigns.get_campaign(conn, campaign_id)["state"]}


def record_events(env, rows: list[dict]) -> None:
    """Tracking events written the way the tracking endpoints' buffer writes them (its flush:
    the insert, scanner labels, roll-ups), without its background thread."""
    from altkraft_onprem.tracking.buffer import EventBuffer

    buffer = EventBuffer()
    defaults = {"link_index": None, "machine": False, "reason": None, "read_seconds": None,
                "read_class": None, "user_agent": "test", "ip": "127.0.0.1"}
    buffer.engine, buffer.rows = env.engine, [{**defaults, **row} for row in rows]
    buffer.flush()
