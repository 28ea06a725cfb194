"""Bucket labels and the distance between them (db/periods.py)."""
from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from altkraft_onprem.db import periods


@given(moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
       unit=st.sampled_from(periods.UNITS), steps=st.integers(min_value=-400, max_value=400))
def test_index_counts_the_periods_between_two_labels(moment, unit, steps):
    start = periods.label(moment, unit)
    later = periods.label(periods.step(periods.parse(start, unit), unit, steps), unit)
    assert periods.index(start, later, unit) == steps
