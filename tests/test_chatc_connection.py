"""chatc's timing policy, exactly and without a clock: send pacing and reconnect backoff."""

from __future__ import annotations

import pytest

from chatc.pacing import Backoff, TokenBucket


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(burst=3, rate_per_s=2.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s(100.0) == pytest.approx(0.5)
    assert not bucket.take(100.25)
    assert bucket.wait_s(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5)
    assert not bucket.take(100.5)


def test_bucket_refills_only_up_to_the_burst() -> None:
    bucket = TokenBucket(burst=2, rate_per_s=10.0, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert [bucket.take(3600.0) for _ in range(3)] == [True, True, False]


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(burst=1, rate_per_s=1.0, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert bucket.wait_s(10.0) == pytest.approx(1.0)


def test_paced_lines_over_a_minute_stay_under_chatds_flood_limit() -> None:
    """chatd allows 10 at once, then 4 per second; the defaults must never exceed that."""
    from chatc.pacing import BURST_LINES, RATE_LINES_PER_S

    bucket = TokenBucket(BURST_LINES, RATE_LINES_PER_S, now=0.0)
    server = TokenBucket(10, 4.0, now=0.0)
    now = 0.0
    for _ in range(200):
        while not bucket.take(now):
            now += bucket.wait_s(now)
        assert server.take(now), f"chatd would make line wait at t={now:.2f}s"


@pytest.mark.parametrize(("burst", "rate"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bucket_rejects_nonsense(burst: int, rate: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(burst, rate, now=0.0)


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, 10.0, uniform=lambda low, high: 1.0)
    assert [backoff.next_delay_s() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay_s() == 1.0


def test_backoff_jitter_stays_within_twenty_percent() -> None:
    assert Backoff(5.0, 60.0, uniform=lambda low, high: low).next_delay_s() == pytest.approx(4.0)
    assert Backoff(5.0, 60.0, uniform=lambda low, high: high).next_delay_s() == pytest.approx(6.0)
