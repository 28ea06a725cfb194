"""Inbound tests: a campaign really sent through the SMTP sink (its messages are what comes
back), and the real receiver on 127.0.0.1."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.inbound import jobs, receiver
from altkraft_onprem.inbound.models import inbound_messages
from tests.campaigns.helpers import make_campaign, make_list, make_message, sending_settings, start
from tests.conftest import free_port

BOUNCE_DOMAIN = "bounces.example.com"
FBL = "fbl@bounces.example.com"
DMARC = "dmarc@bounces.example.com"


def inbound_settings(env, sink=None, **extra):
    values = {"delivery__bounce_domain": BOUNCE_DOMAIN, "inbound__fbl_addresses": [FBL],
              "inbound__dmarc_address": DMARC, **extra}
    if sink is None:
        return env.settings.replace(**values)
    return sending_settings(env, sink, **values)[0]


def send_campaign(env, settings, people: list[dict], list_name: str) -> dict:
    from altkraft_onprem.campaigns.jobs import run_campaign

    list_id, ids = make_list(env, list_name, people)
    campaign_id = make_campaign(env, make_message(env), [list_id], name=list_name)
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    return {"campaign_id": campaign_id, "ids": ids, "list_id": list_id}


class Receiver:
    """`altkraft inbound`'s server (receiver.serve) on its own event loop in a thread."""

    def __init__(self, env, settings, enqueue=None):
        self.env, self.settings = env, settings
        self.port = free_port()
        self.enqueue = enqueue or jobs.process_inbound
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10), "receiver did not start"
        return self

    def _run(self) -> None:
        settings = self.settings.replace(inbound__smtp_listen=f"127.0.0.1:{self.port}")

        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await receiver.serve(settings, self.env.engine, self.enqueue,
                                 receiver.listening_socket(settings), self._stop,
                                 ready=lambda _server: self._ready.set())
        asyncio.run(main())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def settled(env, inbound_id: int | None = None, timeout: float = 15.0) -> None:
    """Waits until the pipeline has judged every stored message (or the given one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read(env.engine) as conn:
            query = select(inbound_messages.c.id).where(inbound_messages.c.state == "new")
            if inbound_id is not None:
                query = query.where(inbound_messages.c.id == inbound_id)
            if conn.execute(query.limit(1)).first() is None:
                return
        time.sleep(0.05)
    raise AssertionError("the pipeline did not judge the stored messages in time")


@pytest.fixture(scope="module")
def sink(module_smtp_sink):
    return module_smtp_sink
