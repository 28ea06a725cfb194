"""A full campaign through a real SMTP sink: ledger, MIME, DKIM, List-Unsubscribe, UTM."""
from __future__ import annotations

import dkim
import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import service as audience
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.delivery import verp
from altkraft_onprem.tracking import tokens
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
    start,
)
from tests.delivery.keys import dns

PEOPLE = [{"email": f"person{i}@example.net", "first_name": name}
          for i, name in enumerate(["Иван", "Мария", "Анна", "Пётр", "Олег", "Юлия"])]


@pytest.fixture(scope="module")
def sent(env, sink):
    """One campaign sent to six confirmed people (plus one unconfirmed and one suppressed)."""
    settings, records = sending_settings(env, sink)
    list_id, ids = make_list(env, "Newsletter", PEOPLE)
    make_list(env, "Other", [{"email": "unconfirmed@example.net"}], status="unconfirmed")
    with db.write(env.engine) as conn:
        from altkraft_onprem.audience import subscribers

        extra = subscribers.create_subscriber(conn, ACTOR, {"email": "gone@example.net"},
                                              list_ids=[list_id])
        audience.suppress(conn, ACTOR, email="gone@example.net", reason="test", source="manual")
    message_id = make_message(env)
    campaign_id = make_campaign(env, message_id, [list_id])
    start(env, settings, campaign_id)
    outcomes = run_campaign(settings, env.engine, campaign_id, processes=2)
    return {"settings": settings, "records": records, "campaign_id": campaign_id, "ids": ids,
            "suppressed": extra, "outcomes": outcomes, "list_id": list_id}


def test_every_person_gets_one_message(sent, sink):
    assert sorted(sink.recipients()) == sorted(p["email"] for p in PEOPLE)


def test_campaign_finishes_with_every_row_accounted(env, sent):
    found = progress(env, sent["campaign_id"])
    assert found["state"] == "finished"
    assert (found["total"], found["sent"], found["failed"], found["in_doubt"], found["remaining"]) \
        == (6, 6, 0, 0, 0)


def test_every_message_verifies_with_dkim(sent, sink):
    for message in sink.messages:
        assert dkim.verify(message.raw, dnsfunc=dns(sent["records"])), message["To"]


def test_list_unsubscribe_headers_are_signed(sent, sink):
    message = sink.messages[0]
    unsubscribe = str(message["List-Unsubscribe"])
    assert "<https://" in unsubscribe or "<http://" in unsubscribe
    assert "<mailto:" in unsubscribe
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    signed = dkim.DKIM(message.raw)
    signed.verify(dnsfunc=dns(sent["records"]))
    names = [h.strip() for h in signed.signature_fields[b"h"].split(b":")]
    assert b"list-unsubscribe" in names and b"list-unsubscribe-post" in names


def test_content_is_personalised(sent, sink):
    message = sink.by_recipient("person1@example.net")[0]
    assert str(message["Subject"]) == "Скидки для Мария 🎉"
    assert "Здравствуйте, Мария!" in message.get_body(("html",)).get_content()
    assert "Здравствуйте, Мария!" in message.get_body(("plain",)).get_content()


def test_links_are_click_tracked(env, sent, sink):
    html = sink.by_recipient("person2@example.net")[0].get_body(("html",)).get_content()
    assert "shop.example.com" not in html
    key = tokens.tracking_key(sent["settings"])
    marker = "/t/c/"
    token = html[html.index(marker) + len(marker):].split('"')[0]
    target = tokens.decode(key, token, "c")
    assert target.campaign_id == sent["campaign_id"] and target.subscriber_id == sent["ids"][2]


def test_click_targets_carry_utm_without_duplicates(env, sent):
    with db.read(env.engine) as conn:
        version_id = campaigns.get_campaign(conn, sent["campaign_id"])["version_id"]
        targets = dict(campaigns.tracking_targets(conn, sent["campaign_id"], version_id))
    assert targets[0] == ("https://shop.example.com/sale?x=1&utm_source=altkraft&utm_medium=email"
                          "&utm_campaign=winter")
    assert targets[1].count("utm_source") == 1 and "utm_source=partner" in targets[1]


def test_version_is_pinned(env, sent):
    with db.read(env.engine) as conn:
        campaign = campaigns.get_campaign(conn, sent["campaign_id"])
    assert campaign["version_id"] is not None


def test_return_path_names_campaign_and_subscriber(sent, sink):
    message = sink.by_recipient("person3@example.net")[0]
    key = tokens.tracking_key(sent["settings"])
    assert verp.decode(key, message.envelope_from) == (sent["campaign_id"], sent["ids"][3])


def test_ledger_keeps_message_id_and_reply(env, sent, sink):
    with db.read(env.engine) as conn:
        rows = campaigns.deliveries_page(conn, sent["campaign_id"])
    by_email = {m.envelope_to[0]: m["Message-ID"] for m in sink.messages}
    for row in rows:
        assert row["state"] == "sent" and row["reply"].startswith("250")
        assert row["message_id"] == by_email[row["email"]]


def test_one_click_post_unsubscribes(env, sent, sink, client):
    if not any(rule.rule.startswith("/p/u/") for rule in env.app.url_map.iter_rules()):
        pytest.skip("the audience public pages (/p/u/) are not registered yet")
    message = sink.by_recipient("person4@example.net")[0]
    url = str(message["List-Unsubscribe"]).split("<")[1].split(">")[0]
    path = url.split("://", 1)[1].split("/", 1)[1]
    response = client.post("/" + path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code in (200, 204)
    with db.read(env.engine) as conn:
        assert not audience.is_sendable(conn, sent["ids"][4], [sent["list_id"]])
