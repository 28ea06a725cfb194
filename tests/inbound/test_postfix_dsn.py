"""A real DSN from a real Postfix: a campaign is relayed through a local Postfix (its own
configuration directory, queue and port on 127.0.0.1 — nothing system-wide changes), the
recipient's MX (an SMTP server in the test) refuses a dead address with 550 5.1.1, Postfix
bounces the message to its VERP return path, and the transport_maps line of
docs/deliverability.md delivers the DSN to `altkraft inbound`'s receiver: it becomes a hard
bounce and a suppression."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers, suppressions
from altkraft_onprem.inbound import intake
from altkraft_onprem.inbound.models import bounces, inbound_messages
from tests.campaigns.helpers import sending_settings
from tests.conftest import free_port
from tests.inbound.conftest import BOUNCE_DOMAIN, Receiver, send_campaign, settled
from tests.smtp_sink import SmtpSink

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
DEAD_DOMAIN = "mx.dead.example"
PEOPLE = [{"email": f"gone@{DEAD_DOMAIN}"}, {"email": f"alive@{DEAD_DOMAIN}"}]
# Postfix's own services, none chrooted (master.cf of the Debian package, trimmed).
SERVICES = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

pytestmark = [
    pytest.mark.skipif(not Path(POSTFIX).exists(), reason="Postfix is missing (make system-deps)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="Postfix's master process starts as root"),
]


class Postfix:
    """A private Postfix instance: `postfix -c DIR start` with its own queue and log."""

    def __init__(self, directory: Path, routes: dict[str, int]):
        self.directory, self.port = directory, free_port()
        self.conf, self.log = directory / "conf", directory / "maillog"
        self.conf.mkdir()
        (directory / "queue").mkdir()
        (directory / "data").mkdir()
        shutil.chown(directory / "data", "postfix")
        transport = ", ".join(f"{domain}=smtp:[127.0.0.1]:{port}" for domain, port in routes.items())
        (self.conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {directory}/queue
data_directory = {directory}/data
maillog_file_prefixes = {directory}
maillog_file = {self.log}
myhostname = postfix.test.example
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = inline:{{ {transport} }}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
alias_maps =
alias_database =
biff = no
""")
        (self.conf / "master.cf").write_text(f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + SERVICES)

    def _postfix(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", str(self.conf), command], capture_output=True,
                              text=True, timeout=60)

    def start(self) -> Postfix:
        started = self._postfix("start")
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Postfix did not start ({started.returncode}): {started.stderr}\n"
                                f"{self.maillog()}")
                time.sleep(0.2)

    def stop(self) -> None:
        self._postfix("stop")

    def maillog(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(scope="module")
def world(env):
    mx = SmtpSink().start()                       # the recipients' mailbox provider
    mx.fail(f"550 5.1.1 <{PEOPLE[0]['email']}>: Recipient address rejected: User unknown",
            stage="rcpt", rcpt=PEOPLE[0]["email"])
    receiver_port = free_port()
    # Not under pytest's 0700 temporary directory: Postfix's daemons run as the postfix user.
    directory = Path(tempfile.mkdtemp(prefix="ak-postfix-"))
    directory.chmod(0o755)
    postfix = Postfix(directory, {BOUNCE_DOMAIN: receiver_port, DEAD_DOMAIN: mx.port}).start()
    settings, _ = sending_settings(env, mx, delivery__bounce_domain=BOUNCE_DOMAIN)
    settings = settings.replace(smtp__relays=[{"host": "127.0.0.1", "port": postfix.port,
                                               "security": "none"}])
    receiver = Receiver(env, settings)
    receiver.port = receiver_port
    receiver.start()
    try:
        sent = send_campaign(env, settings, PEOPLE, "Through Postfix")
        yield {**sent, "mx": mx, "postfix": postfix, "settings": settings}
    finally:
        receiver.stop()
        postfix.stop()
        mx.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _dsn(env, world, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read(env.engine) as conn:
            row = conn.execute(select(inbound_messages).order_by(inbound_messages.c.id)).first()
        if row is not None:
            settled(env, row.id, timeout=30)
            with db.read(env.engine) as conn:
                return dict(conn.execute(select(inbound_messages).where(
                    inbound_messages.c.id == row.id)).one()._mapping)
        time.sleep(0.2)
    pytest.fail("no DSN reached the receiver; Postfix's log:\n" + world["postfix"].maillog()[-4000:])


def test_the_live_address_is_delivered_through_postfix(env, world):
    deadline = time.monotonic() + 30
    while not world["mx"].by_recipient(PEOPLE[1]["email"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(world["mx"].by_recipient(PEOPLE[1]["email"])) == 1
    assert world["mx"].by_recipient(PEOPLE[0]["email"]) == []


def test_postfix_bounces_the_dead_address_to_the_receiver(env, world):
    stored = _dsn(env, world)
    raw = intake.raw_message(stored["raw"])
    assert b"Reporting-MTA: dns; postfix.test.example" in raw        # written by Postfix
    assert (stored["source"], stored["peer"], stored["state"], stored["outcome"]) == \
        ("smtp", "127.0.0.1", "processed", "bounce")
    assert stored["rcpt"].startswith("bounces+") and stored["rcpt"].endswith("@" + BOUNCE_DOMAIN)
    assert (stored["campaign_id"], stored["subscriber_id"]) == (world["campaign_id"], world["ids"][0])


def test_the_dsn_is_a_hard_bounce_and_a_suppression(env, world):
    _dsn(env, world)
    with db.read(env.engine) as conn:
        bounce = conn.execute(select(bounces)).one()
        entry = conn.execute(select(suppressions).where(suppressions.c.email == PEOPLE[0]["email"])).one()
        states = dict(conn.execute(select(subscribers.c.email, subscribers.c.state).where(
            subscribers.c.id.in_(world["ids"]))).all())
    assert (bounce.bounce_class, bounce.status, bounce.source, bounce.suppressed) == ("hard", "5.1.1", "dsn", True)
    assert "550 5.1.1" in bounce.diagnostic and "User unknown" in bounce.diagnostic
    assert bounce.remote_mta                                   # Postfix names the MX it asked
    assert (bounce.campaign_id, bounce.subscriber_id, bounce.email) == \
        (world["campaign_id"], world["ids"][0], PEOPLE[0]["email"])
    assert entry.source == "bounce"
    assert states == {PEOPLE[0]["email"]: "bounced", PEOPLE[1]["email"]: "active"}
