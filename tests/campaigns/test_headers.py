"""Headers that name a campaign's mail to mailbox providers, read off real deliveries:
List-Id (RFC 2919) per list, Feedback-ID with a sender part that is a setting (default: the
From domain), both signed by DKIM."""
from __future__ import annotations

import dkim
import pytest

from altkraft_onprem import config, db
from altkraft_onprem.audience import subscribers
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.config import ConfigError
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    sending_settings,
    start,
)
from tests.delivery.keys import dns
from tests.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def delivered(env):
    """Campaign one: a list with a Russian name. Campaign two: two lists, one person in both,
    and a Feedback-ID sender set by the administrator."""
    sink = SmtpSink().start()
    settings, records = sending_settings(env, sink)
    news, _ = make_list(env, "Новости «Ромашки»", [{"email": "reader@example.net"}])
    one = make_campaign(env, make_message(env), [news])
    start(env, settings, one)
    run_campaign(settings, env.engine, one, processes=1)

    alpha, _ = make_list(env, "Alpha", [{"email": "both@example.net"}])
    beta, _ = make_list(env, 'Beta "weekly"', [{"email": "beta@example.net"}])
    with db.write(env.engine) as conn:
        both = subscribers.find_by_email(conn, "both@example.net")["id"]
        subscribers.change_memberships(conn, ACTOR, both, add=[beta], status="confirmed")
    two_settings = settings.replace(delivery__feedback_id_sender="shop-news")
    two = make_campaign(env, make_message(env), [alpha, beta])
    start(env, two_settings, two)
    run_campaign(two_settings, env.engine, two, processes=1)
    sink.stop()
    return {"sink": sink, "records": records, "one": one, "two": two, "news": news,
            "alpha": alpha, "beta": beta}


def _message(delivered, email: str):
    [message] = delivered["sink"].by_recipient(email)
    return message


def test_list_id_names_the_list(delivered):
    message = _message(delivered, "reader@example.net")
    assert str(message["List-Id"]) == f"Новости «Ромашки» <list{delivered['news']}.example.com>"
    assert message.raw.partition(b"\r\n\r\n")[0].isascii()       # encoded words


def test_a_campaign_to_several_lists_names_each_persons_own_list(delivered):
    assert str(_message(delivered, "beta@example.net")["List-Id"]) == \
        f'"Beta \\"weekly\\"" <list{delivered["beta"]}.example.com>'
    # a member of both gets the campaign's first list
    assert str(_message(delivered, "both@example.net")["List-Id"]) == \
        f'"Alpha" <list{delivered["alpha"]}.example.com>'


def test_feedback_id_names_the_sending_domain_by_default(delivered):
    assert str(_message(delivered, "reader@example.net")["Feedback-ID"]) == \
        f"{delivered['one']}:list{delivered['news']}:campaign:example.com"


def test_feedback_id_sender_is_a_setting(delivered):
    assert str(_message(delivered, "beta@example.net")["Feedback-ID"]) == \
        f"{delivered['two']}:lists:campaign:shop-news"       # Gmail's CampaignId:CustomerId:MailType:SenderId


def test_list_id_and_feedback_id_are_signed(delivered):
    for email in ("reader@example.net", "beta@example.net"):
        verifier = dkim.DKIM(_message(delivered, email).raw)
        assert verifier.verify(dnsfunc=dns(delivered["records"]))
        signed = [name.strip() for name in verifier.signature_fields[b"h"].split(b":")]
        assert b"list-id" in signed and b"feedback-id" in signed


@pytest.mark.parametrize("value", ["a:b", "two words", "é", "x" * 65])
def test_a_feedback_id_sender_that_would_break_the_header_is_refused(value):
    with pytest.raises(ConfigError, match="delivery.feedback_id_sender"):
        config.load(environ={}, overrides={"delivery.feedback_id_sender": value})
