"""DMARC aggregate reports sent to the DMARC address: read (gzip and zip attachments), stored
per day, source IP and result, kept once when sent twice; zip bombs and junk are refused into
the review queue."""
from __future__ import annotations

import gzip
import io
import zipfile
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.inbound import dmarc, intake, service
from altkraft_onprem.inbound.models import dmarc_reports, dmarc_rows, inbound_messages
from tests.inbound.conftest import DMARC, inbound_settings

XML = """<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata><org_name>{org}</org_name><email>noreply-dmarc@{org}</email>
    <report_id>{report_id}</report_id><date_range><begin>1764201600</begin><end>1764287999</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record><row><source_ip>192.0.2.25</source_ip><count>120</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><result>pass</result><selector>ak1</selector></dkim>
      <spf><domain>bounces.example.com</domain><result>pass</result></spf></auth_results></record>
  <record><row><source_ip>203.0.113.9</source_ip><count>7</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>spoof.example</domain><result>fail</result></spf></auth_results></record>
</feedback>"""


def report_mail(attachment: bytes, filename: str, subtype: str = "gzip") -> bytes:
    message = MIMEMultipart()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = DMARC
    message["Subject"] = "Report domain: example.com Submitter: google.com"
    message.attach(MIMEText("DMARC aggregate report"))
    part = MIMEApplication(attachment, subtype)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    message.attach(part)
    return message.as_bytes()


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def settings(env):
    return inbound_settings(env)


def feed(env, settings, raw: bytes) -> dict:
    with db.write(env.engine) as conn:
        stored = intake.store(conn, raw, source="replay", rcpt=DMARC)
    service.process_pending(env.engine, settings, ids=[stored])
    with db.read(env.engine) as conn:
        return service.outcome(conn, stored)


def test_gzip_report_is_stored_per_day_ip_and_result(env, settings):
    xml = XML.format(org="google.com", report_id="r-1").encode()
    found = feed(env, settings, report_mail(gzip.compress(xml), "google.com!example.com!1.xml.gz"))
    assert (found["state"], found["outcome"]) == ("processed", "dmarc")
    assert found["dmarc"] == {"org_name": "google.com", "report_id": "r-1", "domain": "example.com",
                              "policy": "none", "records": 2}
    with db.read(env.engine) as conn:
        rows = conn.execute(select(dmarc_rows.c.day, dmarc_rows.c.source_ip, dmarc_rows.c.count,
                                   dmarc_rows.c.passed).order_by(dmarc_rows.c.source_ip)).all()
        summary = dmarc.summary(conn)
    assert [tuple(r) for r in rows] == [("2025-11-27", "192.0.2.25", 120, True),
                                        ("2025-11-27", "203.0.113.9", 7, False)]
    assert summary["days"] == [{"day": "2025-11-27", "passed": 120, "failed": 7}]


def test_the_same_report_twice_is_kept_once(env, settings):
    xml = XML.format(org="google.com", report_id="r-1").encode()
    # Another copy (another Message-ID path: a zip this time) of the same report id.
    feed(env, settings, report_mail(zipped("report.xml", xml), "google.com!example.com!1.zip", "zip"))
    with db.read(env.engine) as conn:
        assert conn.execute(select(func.count()).select_from(dmarc_reports)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(dmarc_rows)).scalar_one() == 2


def test_zip_report_from_another_organisation(env, settings):
    xml = XML.format(org="yahoo.com", report_id="y-9").encode()
    found = feed(env, settings, report_mail(zipped("y.xml", xml), "yahoo.com!example.com!1.zip", "zip"))
    assert found["state"] == "processed" and found["dmarc"]["org_name"] == "yahoo.com"


def test_a_zip_bomb_goes_to_review_unopened(env, settings):
    bomb = zipped("bomb.xml", b"<" + b"a" * (dmarc.MAX_XML_BYTES + 10))
    found = feed(env, settings, report_mail(bomb, "bomb.zip", "zip"))
    assert found["state"] == "review"
    assert "unpacks to more than" in found["notes"][0]


def test_a_gzip_bomb_goes_to_review(env, settings):
    bomb = gzip.compress(b"a" * (dmarc.MAX_XML_BYTES + 10))
    found = feed(env, settings, report_mail(bomb, "bomb.xml.gz"))
    assert found["state"] == "review" and "unpacks to more than" in found["notes"][0]


def test_junk_at_the_dmarc_address_goes_to_review(env, settings):
    found = feed(env, settings, b"From: a@b\r\nTo: dmarc@bounces.example.com\r\nSubject: hi\r\n\r\nhello\r\n")
    assert found["state"] == "review" and found["notes"]
    with db.read(env.engine) as conn:
        assert conn.execute(select(func.count()).select_from(inbound_messages).where(
            inbound_messages.c.state == "new")).scalar_one() == 0


def test_inbound_page_shows_the_dmarc_figures(env, settings, client):
    env.login(client, env.user("Analyst"))
    page = client.get("/deliverability/inbound").get_data(as_text=True)
    days = page.split('id="dmarc-days"', 1)[1].split("</table>", 1)[0]
    assert "2025-11-27" in days and "<td>240</td>" in days      # google.com and yahoo.com together
    assert "203.0.113.9" in page.split('id="dmarc-sources"', 1)[1]
    assert 'data-chart="dmarc"' in page
