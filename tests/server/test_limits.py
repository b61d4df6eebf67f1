"""Limits: the webhook's token bucket per source (commsgw.notifications._webhook.RateLimiter,
with explicit times) and the watch-stream limits (commsgw.server._limits.StreamLimits)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsgw._errors import TooManyStreams
from commsgw.notifications._webhook import RateLimiter
from commsgw.server._callers import PERMISSIONS, TRUSTED, Identity
from commsgw.server._limits import StreamLimits

# --- the webhook's rate limiter -------------------------------------------------------------


def test_a_burst_of_twice_the_rate_then_the_time_to_wait() -> None:
    rl = RateLimiter(2)
    assert [rl.allow("a", now=0.0) for _ in range(4)] == [0.0] * 4
    assert rl.allow("a", now=0.0) == pytest.approx(0.5)  # one token comes in 1/rate s
    assert rl.allow("a", now=0.25) == pytest.approx(0.25)  # refused requests cost nothing
    assert rl.allow("a", now=0.5) == 0.0
    assert rl.allow("a", now=0.5) > 0


def test_sources_are_limited_separately() -> None:
    rl = RateLimiter(1)
    assert [rl.allow("a", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert rl.allow("a", now=0.0) > 0
    assert rl.allow("b", now=0.0) == 0.0


def test_an_idle_source_gets_no_more_than_one_burst() -> None:
    rl = RateLimiter(5)
    rl.allow("a", now=0.0)
    allowed = [rl.allow("a", now=3600.0) for _ in range(11)]
    assert allowed[:10] == [0.0] * 10
    assert allowed[10] > 0


def test_the_wait_it_tells_is_enough() -> None:
    rl = RateLimiter(3)
    for _ in range(6):
        rl.allow("a", now=10.0)
    wait = rl.allow("a", now=10.0)
    assert wait > 0
    assert rl.allow("a", now=10.0 + wait + 1e-9) == 0.0


def test_sources_idle_long_enough_are_forgotten_at_the_limit() -> None:
    rl = RateLimiter(1, max_sources=3)
    for source in ("a", "b", "c"):
        rl.allow(source, now=0.0)
    assert len(rl._buckets) == 3
    # 10 s later their buckets are full again: a new source makes room by forgetting them.
    assert rl.allow("d", now=10.0) == 0.0
    assert set(rl._buckets) == {"d"}
    # Forgotten, a source starts again from a full bucket, as it would have had anyway.
    again = [rl.allow("a", now=10.0) for _ in range(3)]
    assert again[:2] == [0.0, 0.0]
    assert again[2] > 0


@given(
    rate=st.floats(min_value=0.5, max_value=100),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_never_more_than_a_burst_plus_the_rate(rate: float, gaps: list[float]) -> None:
    rl = RateLimiter(rate)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += rl.allow("a", now=now) == 0.0
    assert allowed <= 2 * rate + rate * now + 1e-6


# --- stream limits --------------------------------------------------------------------------

WATCHER = Identity("watcher", frozenset({"operations.watch"}))
RECORDER = Identity("recorder", frozenset({"operations.watch", "recordings.read"}))


def test_counts_in_total_and_per_caller() -> None:
    limits = StreamLimits(total=10, per_caller=5)
    limits.acquire(WATCHER)
    limits.acquire(WATCHER)
    limits.acquire(RECORDER)
    assert limits.open == 3
    assert (limits.open_by(WATCHER), limits.open_by(RECORDER)) == (2, 1)
    limits.release(WATCHER)
    limits.release(RECORDER)
    assert limits.open == 1
    assert (limits.open_by(WATCHER), limits.open_by(RECORDER)) == (1, 0)


def test_the_per_caller_limit() -> None:
    limits = StreamLimits(total=10, per_caller=2)
    limits.acquire(WATCHER)
    limits.acquire(WATCHER)
    with pytest.raises(TooManyStreams, match="'watcher' has 2 watch streams open") as info:
        limits.acquire(WATCHER)
    assert info.value.reason == "TOO_MANY_STREAMS"
    assert limits.open == 2  # the refused one is not counted
    limits.acquire(RECORDER)  # another caller is not affected
    limits.release(WATCHER)
    limits.acquire(WATCHER)  # room again
    assert limits.open_by(WATCHER) == 2


def test_the_total_limit_applies_to_everyone() -> None:
    limits = StreamLimits(total=3, per_caller=2)
    limits.acquire(WATCHER)
    limits.acquire(WATCHER)
    limits.acquire(RECORDER)
    for who in (RECORDER, TRUSTED):
        with pytest.raises(TooManyStreams, match="3 watch streams at most"):
            limits.acquire(who)
    assert limits.open == 3


def test_the_trusted_identity_has_only_the_total() -> None:
    limits = StreamLimits(total=5, per_caller=1)
    for _ in range(5):
        limits.acquire(TRUSTED)
    assert limits.open_by(TRUSTED) == 5
    with pytest.raises(TooManyStreams):
        limits.acquire(TRUSTED)


def test_a_caller_with_the_trusted_name_is_still_limited() -> None:
    limits = StreamLimits(total=5, per_caller=1)
    impostor = Identity(TRUSTED.name, PERMISSIONS)
    assert impostor == TRUSTED and impostor is not TRUSTED
    limits.acquire(impostor)
    with pytest.raises(TooManyStreams):
        limits.acquire(impostor)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.49])
def test_a_rate_below_half_a_request_a_second_still_admits_one(rate: float) -> None:
    rl = RateLimiter(rate)
    assert rl.allow("a", now=0.0) == 0.0
    assert rl.allow("a", now=0.0) > 0
    assert rl.allow("a", now=1 / rate) == 0.0
