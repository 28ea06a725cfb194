"""Report pages, CSV exports and the API through the app."""
from __future__ import annotations

import pytest

from altkraft_onprem import db

from .conftest import add_list, add_subscriber, deliver, event, make_campaign

HTML = '<html><body><a href="https://shop.example/p">P</a></body></html>'


@pytest.fixture(scope="module")
def world(env):
    with db.write(env.engine) as conn:
        list_id = add_list(conn, "pages list")
        sid = add_subscriber(conn, "p1@pages.example", "2026-03-02 10:00", "form", [list_id])
        c = make_campaign(conn, "Pages", HTML, list_id)
        deliver(conn, c["id"], sid)
        event(conn, "open", sid, "2026-04-01 10:00", campaign_id=c["id"], version_id=c["version_ids"][0])
        event(conn, "click", sid, "2026-04-01 10:01", campaign_id=c["id"], version_id=c["version_ids"][0],
              link_index=0)
    return {"campaign": c["id"], "list": list_id}


@pytest.fixture(scope="module")
def analyst(env):
    client = env.app.test_client()
    env.login(client, env.user("Analyst"))
    return client


@pytest.fixture(scope="module")
def token(env):
    return env.token("Analyst")


@pytest.mark.parametrize("path", ["/reports/", "/reports/cohorts", "/reports/engagement",
                                  "/reports/cohorts?period=week&metric=click", "/reports/engagement?period=month",
                                  "/"])
def test_pages_render(analyst, world, path):
    response = analyst.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


def test_campaign_page_and_clickmap_render(analyst, world):
    assert analyst.get(f"/reports/campaigns/{world['campaign']}").status_code == 200
    page = analyst.get(f"/reports/campaigns/{world['campaign']}/clickmap")
    assert page.status_code == 200
    frame = analyst.get(f"/reports/campaigns/{world['campaign']}/clickmap/frame")
    assert b'class="ak-badge"' in frame.data and b"100.0% \xc2\xb7 1" in frame.data


def test_bounces_and_complaints_are_figures(analyst, world):
    page = analyst.get(f"/reports/campaigns/{world['campaign']}").get_data(as_text=True)
    for key in ("bounces", "complaints"):
        figure = page.split(f'data-figure="{key}"', 1)[1].split("</div>", 1)[0]
        assert "<strong>0</strong>" in figure
    report = analyst.get(f"/reports/campaigns/{world['campaign']}/report.csv").get_data(as_text=True)
    assert "bounces_hard,0" in report and "complaints,0" in report


def test_bad_filters_are_named_and_ignored(analyst, world):
    page = analyst.get("/reports/engagement?period=year&since=yesterday&list_id=x").get_data(as_text=True)
    assert "period must be one of" in page and "since must be a date" in page and "list_id must be a number" in page


def test_unknown_campaign_is_404(analyst, world):
    assert analyst.get("/reports/campaigns/999999").status_code == 404


def test_csv_exports(analyst, world):
    report = analyst.get(f"/reports/campaigns/{world['campaign']}/report.csv")
    assert report.mimetype == "text/csv" and "delivered,1" in report.get_data(as_text=True)
    clickmap = analyst.get(f"/reports/campaigns/{world['campaign']}/clickmap.csv").get_data(as_text=True)
    assert "https://shop.example/p,1,1,0,100.0" in clickmap
    assert analyst.get("/reports/cohorts.csv").get_data(as_text=True).startswith("cohort,size,month_0_percent")
    assert analyst.get("/reports/engagement.csv?since=2026-03-01&until=2026-03-03").get_data(as_text=True) \
        .splitlines()[1:3] == ["2026-03-01,0,0,0,0,0", "2026-03-02,1,0,0,0,1"]


def test_viewer_may_not_see_reports(env, client, world):
    env.login(client, env.user("Viewer"))
    assert client.get("/reports/").status_code == 403


def test_api_campaign_report(env, client, world, token):
    body = client.get(f"/api/v1/campaigns/{world['campaign']}/report",
                      headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["delivered"] == 1
    assert body["opens"] == {"unique": 1, "total": 1, "human": 1, "machine": 0}
    assert body["clicks"]["unique"] == 1 and body["ctr"] == 100.0
    assert set(body["reads"]) >= {"glanced", "skimmed", "read", "avg_seconds"}


def test_api_clickmap(env, client, world, token):
    body = client.get(f"/api/v1/campaigns/{world['campaign']}/clickmap?version=1",
                      headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["links"] == [{"index": 0, "url": "https://shop.example/p", "unique_clicks": 1, "clicks": 1,
                              "machine_clicks": 0, "percent": 100.0}]
    missing = client.get(f"/api/v1/campaigns/{world['campaign']}/clickmap?version=7",
                         headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 422 and "version" in missing.get_json()["detail"]


def test_api_cohorts_and_engagement(env, client, world, token):
    headers = {"Authorization": f"Bearer {token}"}
    cohorts = client.get(f"/api/v1/reports/cohorts?period=month&list_id={world['list']}", headers=headers).get_json()
    assert cohorts["rows"][0]["cohort"] == "2026-03-01" and cohorts["rows"][0]["size"] == 1
    engagement = client.get("/api/v1/reports/engagement?period=day&since=2026-03-01&until=2026-03-03",
                            headers=headers).get_json()
    assert engagement["new"] == [0, 1, 0]
    bad = client.get("/api/v1/reports/engagement?period=year", headers=headers)
    assert bad.status_code == 422
