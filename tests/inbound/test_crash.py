"""kill -9 of the receiver or of a classifier loses nothing: every message answered 250 is
stored, and every stored message is applied exactly once when the pipeline runs again."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.inbound import intake, service
from altkraft_onprem.inbound.models import bounces, complaints, inbound_messages
from altkraft_onprem.tracking.tokens import tracking_key
from bench.inbound import BOUNCE_DOMAIN, FBL, make_messages, populate
from tests.conftest import QUEUE_KIND, REDIS_URL, free_port


@pytest.fixture(scope="module")
def settings(env):
    return env.settings.replace(delivery__bounce_domain=BOUNCE_DOMAIN, inbound__fbl_addresses=[FBL],
                                inbound__messages_per_ip_minute=10_000_000)


@pytest.fixture(scope="module")
def messages(env, settings):
    people = populate(env.engine, 150)
    return make_messages(tracking_key(settings), people, 600)


def _environment(env, port: int) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    environment.update(ALTKRAFT_DATA_DIR=str(env.data_dir), ALTKRAFT_DATABASE__URL=env.database_url,
                       ALTKRAFT_QUEUE__BACKEND=QUEUE_KIND, ALTKRAFT_QUEUE__REDIS_URL=REDIS_URL,
                       ALTKRAFT_QUEUE__NAME=env.settings["queue.name"],
                       ALTKRAFT_DELIVERY__BOUNCE_DOMAIN=BOUNCE_DOMAIN,
                       ALTKRAFT_INBOUND__FBL_ADDRESSES=json.dumps([FBL]),
                       ALTKRAFT_INBOUND__MESSAGES_PER_IP_MINUTE="10000000",
                       ALTKRAFT_INBOUND__SMTP_LISTEN=f"127.0.0.1:{port}")
    return environment


def _send_until_dropped(port: int, messages: list, acked: list) -> None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream = sock.makefile("rb")

        def reply() -> bytes:
            while True:
                line = stream.readline()
                if not line:
                    raise ConnectionError
                if line[3:4] != b"-":
                    return line
        reply()
        sock.sendall(b"EHLO crash.example\r\n")
        reply()
        for rcpt, data, _outcome in messages:
            sock.sendall(b"MAIL FROM:<>\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n")
            if not [reply() for _ in range(3)][2].startswith(b"354"):
                continue
            sock.sendall(data.replace(b"\r\n.", b"\r\n..") + b".\r\n")
            if reply().startswith(b"250"):
                acked.append((rcpt, data))
    except (OSError, ConnectionError):
        return


def test_kill_9_of_the_receiver_loses_no_acknowledged_message(env, settings, messages):
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "altkraft_onprem.cli", "inbound"],
                                env=_environment(env, port), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and receiver.poll() is None
            time.sleep(0.1)
    acked: list = []
    clients = [threading.Thread(target=_send_until_dropped, args=(port, messages[i::3], acked))
               for i in range(3)]
    for client in clients:
        client.start()
    while len(acked) < 60:
        time.sleep(0.01)
    os.kill(receiver.pid, signal.SIGKILL)
    receiver.wait()
    for client in clients:
        client.join(20)
    assert 60 <= len(acked) < len(messages)
    with db.read(env.engine) as conn:
        stored = set(conn.execute(select(inbound_messages.c.digest)).scalars())
    assert [a for a in acked if intake.digest(a[0], a[1]) not in stored] == []


CLASSIFY = """
import sys
from altkraft_onprem import config, db, reactions
from altkraft_onprem.inbound import service
settings = config.load()
reactions.connect_all()
engine = db.build_engine(settings.database_url)
print("ready", flush=True)
while service.process_pending(engine, settings, limit=20):
    pass
"""


def test_kill_9_of_a_classifier_applies_each_message_once(env, settings, messages):
    with db.write(env.engine) as conn:
        for rcpt, data, _outcome in messages[:400]:
            intake.store(conn, data, source="replay", rcpt=rcpt)
    classifier = subprocess.Popen([sys.executable, "-c", CLASSIFY], env=_environment(env, free_port()),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert classifier.stdout.readline().startswith(b"ready")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with db.read(env.engine) as conn:
            done = conn.execute(select(func.count()).select_from(inbound_messages).where(
                inbound_messages.c.state != "new")).scalar_one()
        if done >= 60:
            break
        time.sleep(0.02)
    classifier.kill()
    classifier.wait()
    assert done < 400                      # killed in the middle of the run
    while service.process_pending(env.engine, settings):
        pass
    with db.read(env.engine) as conn:
        waiting = conn.execute(select(func.count()).select_from(inbound_messages).where(
            inbound_messages.c.state == "new")).scalar_one()
        twice = conn.execute(select(bounces.c.inbound_id).group_by(bounces.c.inbound_id)
                             .having(func.count() > 1)).all()
        twice += conn.execute(select(complaints.c.inbound_id).group_by(complaints.c.inbound_id)
                              .having(func.count() > 1)).all()
    assert waiting == 0 and twice == []
