"""A relay's max_connections for the whole installation: its slots in the database."""
from __future__ import annotations

import time
import uuid

from altkraft_onprem.delivery.slots import RelaySlots
from altkraft_onprem.holders import HOST, owner_name
from tests.delivery.test_journal import _dead_pid


def _relay() -> str:
    return f"relay-{uuid.uuid4().hex[:8]}:25"


def test_no_more_holders_than_the_relay_allows(env):
    relay = _relay()
    holders = [RelaySlots(env.engine, owner_name(), 300) for _ in range(3)]
    assert sorted(h.take(relay, 2) for h in holders[:2]) == [0, 1]
    assert holders[2].take(relay, 2) is None
    holders[0].give_back(relay, 0)
    assert holders[2].take(relay, 2) == 0


def test_a_slot_of_a_holder_that_died_here_is_free_at_once(env):
    relay = _relay()
    assert RelaySlots(env.engine, owner_name(pid=_dead_pid()), 300).take(relay, 1) == 0
    assert RelaySlots(env.engine, owner_name(), 300).take(relay, 1) == 0


def test_another_hosts_slot_is_free_when_its_lease_runs_out(env):
    relay = _relay()
    assert RelaySlots(env.engine, f"other-{HOST}:4242:0badf00d.1", 0.2).take(relay, 1) == 0
    mine = RelaySlots(env.engine, owner_name(), 300)
    assert mine.take(relay, 1) is None
    time.sleep(0.3)
    assert mine.take(relay, 1) == 0


def test_a_smaller_limit_counts_only_its_slots(env):
    relay = _relay()
    assert RelaySlots(env.engine, owner_name(), 300).take(relay, 3) == 0
    assert RelaySlots(env.engine, owner_name(), 300).take(relay, 1) is None
