"""The token buckets behind the provisioning rate limits, on a clock the test moves."""

from __future__ import annotations

import threading

import pytest

from provisiond.services.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_then_one_token_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert [limiter.take("k", 60) for _ in range(60)] == [0.0] * 60  # a minute's worth
    assert limiter.take("k", 60) == pytest.approx(1.0)  # next token in 1 s
    clock.now += 0.5
    assert limiter.take("k", 60) == pytest.approx(0.5)  # refused requests take nothing
    clock.now += 0.5
    assert limiter.take("k", 60) == 0.0
    assert limiter.take("k", 60) > 0
    clock.now += 3600  # refills up to the rate, not beyond
    assert sum(limiter.take("k", 60) == 0.0 for _ in range(100)) == 60


def test_keys_are_independent() -> None:
    limiter = RateLimiter(Clock())
    assert [limiter.take("a", 2) for _ in range(3)][2] > 0
    assert limiter.take("b", 2) == 0.0
    assert limiter.take(("source", "a", "10.0.0.1"), 1) == 0.0
    assert limiter.take(("source", "a", "10.0.0.2"), 1) == 0.0


def test_memory_stays_bounded_under_many_keys() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, max_keys=100)
    for n in range(1000):
        limiter.take(f"addr-{n}", 10)
        clock.now += 0.001
    assert len(limiter._buckets) <= 100
    limiter.take("late", 10)
    assert "late" in limiter._buckets


def test_concurrent_takers_never_exceed_the_bucket() -> None:
    limiter = RateLimiter(Clock())  # the clock stands still: no refill
    allowed: list[int] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        allowed.append(sum(limiter.take("shared", 500) == 0.0 for _ in range(200)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 500
