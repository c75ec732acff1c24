"""Events per second per publisher: token buckets with an honest retry_after_ms."""

from __future__ import annotations

from secbus.auth.ratelimit import RateLimiter


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_over_rate_publisher_is_told_how_long_to_wait_and_then_succeeds():
    clock = Clock()
    limiter = RateLimiter(rate=100, burst=100, clock=clock)
    assert limiter.take("web", 100) == 0
    wait_ms = limiter.take("web", 50)
    assert wait_ms == 500  # 50 tokens at 100/s
    clock.now += wait_ms / 1000
    assert limiter.take("web", 50) == 0
    assert limiter.refused == 1


def test_publishers_have_separate_buckets():
    limiter = RateLimiter(rate=10, burst=10, clock=Clock())
    assert limiter.take("a", 10) == 0
    assert limiter.take("a", 1) > 0
    assert limiter.take("b", 10) == 0


def test_a_batch_larger_than_the_bucket_is_not_refused_forever():
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=10, clock=clock)
    assert limiter.take("a", 1000) == 0  # takes the whole bucket
    assert limiter.take("a", 1000) == 1000
    clock.now += 1
    assert limiter.take("a", 1000) == 0


def test_rate_zero_disables_limiting_and_idle_buckets_are_forgotten():
    assert RateLimiter(0).take("a", 10**9) == 0
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock, max_idle_s=10)
    for i in range(100):
        limiter.take(f"p{i}", 1)
    clock.now += 11
    limiter.take("fresh", 1)
    assert list(limiter._buckets) == ["fresh"]
