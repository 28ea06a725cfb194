"""Tables of delivery: the relays' connection slots, shared by every process and host."""
from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime

# One row per relay and connection (0 .. max_connections - 1, added when first needed): a
# process holds a slot while it has a session open to that relay (delivery/slots.py).
relay_slots = Table(
    "relay_slots", metadata,
    Column("relay", String(300), primary_key=True),        # host:port
    Column("slot", Integer, primary_key=True),
    Column("owner", String(120), nullable=True),
    Column("until", UTCDateTime, nullable=True),
)
