"""jobqueue.Waker: the wake-up after a commit that the campaigns' transactional carrier and the
inbound receiver share — at most one job per interval and key, and none asked for is lost."""
from __future__ import annotations

import threading
import time

from altkraft_onprem.jobqueue import Waker


def test_a_burst_makes_one_job_now_and_one_when_the_interval_is_up():
    made: list[tuple[float, tuple]] = []
    done = threading.Event()

    def enqueue(*key):
        made.append((time.monotonic(), key))
        if len(made) == 3:
            done.set()
    wake = Waker(enqueue, interval=0.3)
    started = time.monotonic()
    for _ in range(20):
        wake(7)
    wake(8)                                  # another key: not held back by the first
    assert [key for _, key in made] == [(7,), (8,)]
    assert done.wait(5)
    at, key = made[2]
    assert key == (7,) and at - started >= 0.29
    time.sleep(0.4)
    assert len(made) == 3                    # the burst's later calls made one job, not more


def test_a_key_less_waker_and_a_call_after_the_interval_goes_at_once():
    made: list[float] = []
    wake = Waker(lambda: made.append(time.monotonic()), interval=0.1)
    wake()
    time.sleep(0.15)
    wake()
    assert len(made) == 2
