"""How long the outbox waits before trying a failed message again."""

from __future__ import annotations

from datetime import timedelta

from services.common.outbox import exponential_backoff


def test_the_wait_doubles_with_every_failed_attempt():
    assert [exponential_backoff(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=40),
    ]


def test_the_wait_is_capped_at_ten_minutes_however_many_attempts_failed():
    assert exponential_backoff(8) == timedelta(minutes=10)
    assert exponential_backoff(10_000) == timedelta(minutes=10)
