"""The campaign report and clickmap against a hand-computed fixture."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import links
from altkraft_onprem.reports import campaign as report
from altkraft_onprem.reports.clickmap import annotated_html, clickmap

from .conftest import add_list, add_subscriber, deliver, event, make_campaign

HTML = ('<html><body><p>Hi {{ subscriber.first_name }}</p>'
        '<a href="https://shop.example/a">A</a> <a href="https://shop.example/b">B</a></body></html>')
HTML_V2 = '<html><body><a href="https://shop.example/v2">New</a></body></html>'
APPLE = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


@pytest.fixture(scope="module")
def world(env):
    with db.write(env.engine) as conn:
        list_id = add_list(conn, "report list")
        s = {n: add_subscriber(conn, f"s{n}@{'gmail.test' if n <= 3 else 'corp.test'}", "2026-03-01 00:00",
                               lists_joined=[list_id]) for n in range(1, 8)}
        c = make_campaign(conn, "Report", HTML, list_id, extra_versions=(HTML_V2,))
        cid, v1, v2 = c["id"], c["version_ids"][0], c["version_ids"][1]
        for n in range(1, 6):
            deliver(conn, cid, s[n])
        deliver(conn, cid, s[6], "failed")
        deliver(conn, cid, s[7], "in_doubt")
        ev = lambda kind, n, **kw: event(conn, kind, s[n], "2026-04-01 10:00", campaign_id=cid,  # noqa: E731
                                         version_id=kw.pop("version_id", v1), **kw)
        ev("open", 1, user_agent=APPLE)
        ev("open", 1, user_agent=APPLE)
        ev("open", 2, user_agent=OUTLOOK)
        ev("open", 3, user_agent="Mozilla/5.0", machine=True, reason="mpp")
        ev("open", 4, user_agent=IPHONE)
        ev("read", 1, read_seconds=12.0, read_class="read")
        ev("read", 2, read_seconds=4.0, read_class="skimmed")
        ev("read", 4, read_seconds=1.0, read_class="glanced")
        ev("read", 1, read_class="unmeasurable", reason="proxy", user_agent=GMAIL)
        ev("read", 3, read_class="unmeasurable", machine=True, reason="mpp")
        ev("click", 1, link_index=0)
        ev("click", 1, link_index=0)
        ev("click", 1, link_index=1)
        ev("click", 2, link_index=0)
        ev("click", 5, link_index=0, machine=True, reason="scanner")
        ev("click", 2, link_index=0, version_id=v2)
    # s4 leaves through the campaign's own one-click link (the public route, as a mail client
    # posts it), twice: counted once.
    token = links.unsubscribe_token(env.settings, s[4], list_id, cid)
    for _ in range(2):
        response = env.app.test_client().post(f"/p/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    return {"id": cid, "v1": v1, "v2": v2}


@pytest.fixture(scope="module")
def summary(env, world):
    with db.read(env.engine) as conn:
        return report.summary(conn, world["id"])


def test_delivery_figures_come_from_the_ledger(summary):
    assert (summary["delivered"], summary["failed"], summary["in_doubt"]) == (5, 1, 1)


def test_opens_unique_total_human(summary):
    assert summary["opens"] == {"unique": 4, "total": 5, "human": 3, "machine": 1}


def test_reads_by_class_and_average_leave_out_proxies(summary):
    reads = summary["reads"]
    assert (reads["glanced"], reads["skimmed"], reads["read"], reads["not_measurable"]) == (1, 1, 1, 1)
    assert reads["avg_seconds"] == pytest.approx(17 / 3, abs=0.01)


def test_clicks_and_rates(summary):
    assert summary["clicks"] == {"unique": 3, "total": 6, "human": 2, "machine": 1}
    assert (summary["open_rate"], summary["ctr"], summary["click_to_open"]) == (60.0, 40.0, 66.67)
    assert summary["unsubscribes"] == 1


def test_by_domain(env, world):
    with db.read(env.engine) as conn:
        rows = report.by_domain(conn, world["id"])
    assert [(r["domain"], r["delivered"], r["opens"], r["clicks"]) for r in rows] == \
        [("gmail.test", 3, 2, 2), ("corp.test", 2, 1, 0)]


def test_by_client_and_device(env, world):
    with db.read(env.engine) as conn:
        data = report.by_client(conn, world["id"])
    clients = {c["name"]: c["opens"] for c in data["clients"]}
    assert clients == {"Apple Mail": 2, "Outlook": 1, "Apple Mail (privacy proxy)": 1}
    devices = {d["name"]: d["opens"] for d in data["devices"]}
    assert devices["mobile"] == 1


def test_clickmap_of_the_pinned_version(env, world):
    with db.read(env.engine) as conn:
        data = clickmap(conn, world["id"])
    assert data["version"] == 1 and data["recipients"] == 5
    assert [(k["url"], k["unique_clicks"], k["clicks"], k["machine_clicks"], k["percent"]) for k in data["links"]] == \
        [("https://shop.example/a", 2, 3, 1, 40.0), ("https://shop.example/b", 1, 1, 0, 20.0)]
    assert [v["version"] for v in data["versions"]] == [1, 2]


def test_clickmap_of_another_version(env, world):
    with db.read(env.engine) as conn:
        data = clickmap(conn, world["id"], version=2)
    assert [(k["url"], k["unique_clicks"], k["percent"]) for k in data["links"]] == \
        [("https://shop.example/v2", 1, 100.0)]


def test_clickmap_html_has_a_badge_per_link(env, world):
    with db.read(env.engine) as conn:
        html = annotated_html(conn, world["id"])
    assert html.count('class="ak-badge"') == 2
    assert "40.0% · 3" in html and 'href="https://shop.example/a"' in html
