"""The reading lease on an IMAP mailbox (inbound/imap.py take): a racing taker that loses is
told so; any other failure (the database cannot answer) is raised, not mistaken for "another
reader holds it"."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import OperationalError

from altkraft_onprem import db
from altkraft_onprem.access.setup import put_state
from altkraft_onprem.inbound import imap

BOX = {"username": "fbl@example.com", "host": "imap.example.com", "port": 993, "folder": "INBOX"}


def test_a_taker_that_races_another_and_loses_is_refused(env):
    box = {**BOX, "folder": "Race"}
    result = {}
    with db.write(env.engine) as conn:
        # The other taker's lease, not committed yet while ours starts.
        put_state(conn, imap.state_key(box),
                  '{"reader": "other", "reader_until": "2999-01-01T00:00:00+00:00"}')
        racing = threading.Thread(
            target=lambda: result.setdefault("took", imap.take(env.engine, box, "me")))
        racing.start()
        racing.join(1.0)
    racing.join(30)
    assert result == {"took": False}


def test_a_database_failure_is_raised_not_taken_for_another_reader(tmp_path):
    empty = db.build_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")    # no app_state table
    try:
        with pytest.raises(OperationalError):
            imap.take(empty, BOX, "me")
    finally:
        empty.dispose()
