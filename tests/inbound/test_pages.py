"""Deliverability -> Inbound mail: the page, the raw viewer, reclassify and unsuppress through
the real forms (CSRF included), and who may do what."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access.models import audit_log
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.inbound import intake, service
from altkraft_onprem.inbound.models import bounces
from tests.conftest import csrf_token
from tests.inbound import reports
from tests.inbound.conftest import FBL, inbound_settings, send_campaign

PEOPLE = [{"email": f"paged{i}@example.net"} for i in range(3)]


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink)
    sent = send_campaign(env, settings, PEOPLE, "Paged")
    originals = [sink.by_recipient(p["email"])[0] for p in PEOPLE]
    with db.write(env.engine) as conn:
        ids = [intake.store(conn, reports.dsn(originals[0].raw, recipient=PEOPLE[0]["email"]),
                            source="replay", rcpt=originals[0].envelope_from),
               intake.store(conn, reports.arf(b"From: x@example.org\r\nTo: y@example.org\r\nSubject: hi <script>\r\n\r\nhi"),
                            source="replay", rcpt=FBL)]
    service.process_pending(env.engine, settings, ids=ids)
    return {**sent, "stored": ids}


@pytest.fixture()
def admin(env, client):
    env.login(client, env.user("Administrator"))
    return client


def _bounce(env):
    with db.read(env.engine) as conn:
        return conn.execute(select(bounces).order_by(bounces.c.id)).first()


def test_page_shows_ways_in_bounces_and_the_unmatched_inbox(world, admin):
    page = admin.get("/deliverability/inbound").get_data(as_text=True)
    assert 'data-way="smtp"' in page and "paged0@example.net" in page
    unmatched = page.split('id="unmatched"', 1)[1]
    assert "fbl@bounces.example.com" in unmatched


def test_raw_viewer_escapes_the_message(world, admin):
    page = admin.get(f"/deliverability/inbound/messages/{world['stored'][1]}").get_data(as_text=True)
    assert "&lt;script&gt;" in page and "<script>" not in page.split('id="raw"', 1)[1]
    raw = admin.get(f"/deliverability/inbound/messages/{world['stored'][1]}?raw=1")
    assert raw.mimetype == "text/plain" and b"<script>" in raw.data


def test_viewer_may_look_but_not_reclassify(env, world, client):
    env.login(client, env.user("Viewer"))
    page = client.get("/deliverability/inbound")
    assert page.status_code == 200 and "Reclassify" not in page.get_data(as_text=True)
    token = csrf_token(page.get_data(as_text=True)) if 'name="csrf_token"' in page.get_data(as_text=True) else ""
    response = client.post(f"/deliverability/inbound/bounces/{_bounce(env).id}/reclassify",
                           data={"bounce_class": "soft", "csrf_token": token})
    assert response.status_code == 403


def test_reclassify_through_the_form(env, world, admin):
    page = admin.get("/deliverability/inbound").get_data(as_text=True)
    response = admin.post(f"/deliverability/inbound/bounces/{_bounce(env).id}/reclassify",
                          data={"bounce_class": "soft", "csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert (_bounce(env).bounce_class, _bounce(env).rule) == ("soft", "manual")


def test_unsuppress_is_audited_and_makes_the_person_active(env, world, admin):
    page = admin.get("/deliverability/inbound").get_data(as_text=True)
    response = admin.post("/deliverability/inbound/unsuppress",
                          data={"email": PEOPLE[0]["email"], "reason": "misread",
                                "csrf_token": csrf_token(page)})
    assert response.status_code == 302
    with db.read(env.engine) as conn:
        state = conn.execute(select(subscribers.c.state).where(
            subscribers.c.email == PEOPLE[0]["email"])).scalar_one()
        actions = conn.execute(select(audit_log.c.action).where(
            audit_log.c.action.like("suppression.%"))).scalars().all()
    assert state == "active"
    assert "suppression.unsuppress" in actions and "suppression.remove" in actions


def test_the_form_needs_its_csrf_token(env, world, admin):
    response = admin.post("/deliverability/inbound/unsuppress", data={"email": PEOPLE[1]["email"]})
    assert response.status_code == 400
