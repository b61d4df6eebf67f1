"""Resume tokens (commsgw.eventlog._base.encode_token / decode_token): what the gateway issues
reads back to the same position, and nothing else is taken for a position."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from commsgw._errors import InvalidArgument, ResumeTokenExpired
from commsgw.eventlog._base import decode_token, encode_token

LOG = "mem-0123456789abcdef0123456789abcdef"
log_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,60}", fullmatch=True)
positions = st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))


def raw_token(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@given(log_ids, positions)
def test_round_trip(log_id: str, position: tuple[int, int]) -> None:
    token = encode_token(log_id, position)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token), "URL-safe base64 without padding"
    assert decode_token(token, log_id) == position


def test_the_format_is_version_log_and_position() -> None:
    assert encode_token("mem-abc", (12, 3)) == raw_token("1|mem-abc|12-3")
    assert decode_token(raw_token("1|mem-abc|12-3"), "mem-abc") == (12, 3)


def test_padding_is_optional() -> None:
    padded = base64.urlsafe_b64encode(b"1|mem-abc|7-0").decode()
    assert padded.endswith("=")
    assert decode_token(padded, "mem-abc") == (7, 0)


@given(log_ids, log_ids, positions)
def test_a_token_of_another_log_has_expired(mine: str, other: str, pos: tuple[int, int]) -> None:
    assume(mine != other)
    with pytest.raises(ResumeTokenExpired):
        decode_token(encode_token(other, pos), mine)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage!",
        "not base64 at all",
        raw_token("1|mem-abc"),  # no position
        raw_token("1|mem-abc|12-3|x"),  # a part too many
        raw_token("2|mem-abc|12-3"),  # another version
        raw_token("1|mem-abc|12"),  # no sequence
        raw_token("1|mem-abc|-1-0"),  # negative
        raw_token("1|mem-abc|+1-0"),  # what int() takes but encode_token never writes
        raw_token("1|mem-abc| 1-0"),
        raw_token("1|mem-abc|1_0-0"),
        raw_token("1|mem-abc|1-0 "),
        raw_token("1|mem-abc|\u0661-\u0660"),  # Arabic-Indic digits
        raw_token("1|mem-abc|\uff11-0"),  # a fullwidth digit
        raw_token("1|mem-abc|1.5-0"),
        raw_token("1|mem-abc|0x1-0"),
        raw_token(b"1|mem-abc|\xff\xfe-0"),  # not UTF-8
    ],
)
def test_malformed_tokens_are_invalid_arguments(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_token(token, "mem-abc")
    assert info.value.reason == "INVALID_RESUME_TOKEN"


def test_too_long_is_refused_before_decoding() -> None:
    long = encode_token("mem-" + "a" * 400, (1, 0))
    assert len(long) > 512
    with pytest.raises(InvalidArgument, match="too long") as info:
        decode_token(long, "mem-" + "a" * 400)
    assert info.value.reason == "INVALID_RESUME_TOKEN"
    fits = encode_token("mem-" + "a" * 370, (1, 0))
    assert len(fits) <= 512
    assert decode_token(fits, "mem-" + "a" * 370) == (1, 0)


@given(st.text(max_size=600))
def test_any_text_is_a_position_or_a_clear_refusal(token: str) -> None:
    try:
        position = decode_token(token, LOG)
    except (InvalidArgument, ResumeTokenExpired):
        return
    assert position[0] >= 0 and position[1] >= 0
