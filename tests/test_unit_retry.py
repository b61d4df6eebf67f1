"""commsgw.graph._retry: which Graph answers are retried, and after how long."""

from __future__ import annotations

import datetime as dt
import random
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsgw.graph._retry import RETRYABLE_STATUS, backoff, parse_retry_after

NOW = 1_700_000_000.0


class Bound(random.Random):
    """A Random whose uniform(a, b) answers `b` (or `a` with low=True): the draw's bounds."""

    def __init__(self, *, low: bool = False) -> None:
        super().__init__(0)
        self.low = low
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a if self.low else b


def test_retryable_statuses_are_throttling_and_transient_answers() -> None:
    assert frozenset({429, 503, 504}) == RETRYABLE_STATUS
    for status in (200, 400, 401, 403, 404, 409, 500, 501, 502):
        assert status not in RETRYABLE_STATUS


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("1", 1.0), ("120", 120.0), (" 7 ", 7.0), ("0.5", 0.5), ("2.25", 2.25)],
)
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=lambda: NOW) == seconds


@pytest.mark.parametrize("value", ["-1", "-0.5", "-3600"])
def test_negative_delta_is_zero(value: str) -> None:
    assert parse_retry_after(value) == 0.0


@given(st.integers(min_value=0, max_value=10**9))
def test_any_whole_delta(n: int) -> None:
    assert parse_retry_after(str(n)) == float(n)


def test_http_date_in_the_future_is_the_time_until_it() -> None:
    date = format_datetime(dt.datetime.fromtimestamp(NOW + 30, dt.UTC), usegmt=True)
    assert date.endswith(" GMT")
    assert parse_retry_after(date, now=lambda: NOW) == pytest.approx(30.0)


def test_http_date_in_the_past_is_zero() -> None:
    date = format_datetime(dt.datetime.fromtimestamp(NOW - 30, dt.UTC), usegmt=True)
    assert parse_retry_after(date, now=lambda: NOW) == 0.0


@given(
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ).map(lambda d: d.replace(microsecond=0)),
    st.integers(min_value=0, max_value=86_400),
)
def test_any_http_date(when: dt.datetime, ahead: int) -> None:
    now = when.timestamp() - ahead
    assert parse_retry_after(format_datetime(when, usegmt=True), now=lambda: now) == ahead


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "10 seconds", "Wed, 99 Foo 2015 07:28:00 GMT", "1,5"]
)
def test_absent_or_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=lambda: NOW) is None


# --- backoff ----------------------------------------------------------------------------------


def test_retry_after_wins_capped_at_the_maximum() -> None:
    rng = Bound()
    assert backoff(1, 0.7, base_s=0.1, max_s=5, rng=rng) == 0.7
    assert backoff(3, 0.0, base_s=0.1, max_s=5, rng=rng) == 0.0
    assert backoff(1, 60.0, base_s=0.1, max_s=5, rng=rng) == 5
    assert rng.calls == []  # no jitter drawn when Graph said how long


def test_without_retry_after_the_ceiling_doubles_up_to_the_maximum() -> None:
    rng = Bound()
    ceilings = [backoff(n, None, base_s=0.1, max_s=1.0, rng=rng) for n in range(1, 8)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert all(a == 0 for a, _ in rng.calls)  # full jitter: from zero


def test_full_jitter_can_be_zero() -> None:
    assert backoff(4, None, base_s=0.1, max_s=1.0, rng=Bound(low=True)) == 0.0


@given(
    attempt=st.integers(min_value=1, max_value=60),
    base_s=st.floats(min_value=0.001, max_value=10),
    max_s=st.floats(min_value=0.001, max_value=100),
    seed=st.integers(),
)
def test_jittered_delay_stays_within_its_ceiling(
    attempt: int, base_s: float, max_s: float, seed: int
) -> None:
    delay = backoff(attempt, None, base_s=base_s, max_s=max_s, rng=random.Random(seed))
    assert 0 <= delay <= min(max_s, base_s * 2 ** (attempt - 1))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "1_000", "0x10", "\uff11\uff10"])
def test_what_is_not_delta_seconds_or_a_date_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None
