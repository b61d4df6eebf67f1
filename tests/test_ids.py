"""GUID normalisation (commsgw._ids.normalize_guid): every form Graph uses becomes lower-case
dashed; anything else is not a GUID."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsgw._ids import new_guid, normalize_guid

GUID = "57dab8b1-894c-409a-b240-bd8beae78896"
CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.parametrize(
    "raw",
    [
        GUID,
        GUID.upper(),
        "57DAB8B1894C409AB240BD8BEAE78896",
        "57dab8b1894c409ab240bd8beae78896",
        "{57DAB8B1-894C-409A-B240-BD8BEAE78896}",
        "{57DAB8B1894C409AB240BD8BEAE78896}",
        "{ 57dab8b1-894c-409a-b240-bd8beae78896 }",
        "  57DAB8B1894C409AB240BD8BEAE78896\n",
        "57DaB8b1-894C-409a-B240-bD8bEaE78896",
    ],
)
def test_every_form_becomes_lower_case_dashed(raw: str) -> None:
    assert normalize_guid(raw) == GUID


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "{}",
        "not-a-guid",
        "57dab8b1-894c-409a-b240-bd8beae7889",  # 35 characters
        "57dab8b1-894c-409a-b240-bd8beae788966",  # 37
        "57DAB8B1894C409AB240BD8BEAE7889",  # 31 hex digits
        "57DAB8B1894C409AB240BD8BEAE788966",  # 33
        "57DAB8B1894C409AB240BD8BEAE7889Z",
        "57dab8b1894c-409a-b240-bd8beae78896-",  # dashes in the wrong places
        "57dab8b1-894c-409a-b240bd8b-eae78896",
        "{57dab8b1-894c-409a-b240-bd8beae78896",  # one brace
        "57dab8b1-894c-409a-b240-bd8beae78896}",
        "{{57dab8b1-894c-409a-b240-bd8beae78896}}",
        "57dab8b1-894c-409a-b240-bd8beae7889\u0661",  # a non-ASCII digit
        "\uff15" + "7dab8b1-894c-409a-b240-bd8beae78896",  # a fullwidth digit
        "urn:uuid:57dab8b1-894c-409a-b240-bd8beae78896",
    ],
)
def test_anything_else_is_none(raw: str) -> None:
    assert normalize_guid(raw) is None


@given(st.uuids())
def test_any_guid_in_any_form(u: uuid.UUID) -> None:
    want = str(u)
    for raw in (str(u), str(u).upper(), u.hex, u.hex.upper(), f"{{{u}}}", f" {u.hex} "):
        assert normalize_guid(raw) == want


@given(st.text(max_size=40))
def test_the_result_is_canonical_or_none(raw: str) -> None:
    got = normalize_guid(raw)
    if got is not None:
        assert CANONICAL.fullmatch(got)
        assert normalize_guid(got) == got


def test_new_guid_is_a_lower_case_dashed_version_4_rfc_4122_guid() -> None:
    seen = set()
    variants = set()
    for _ in range(2000):
        g = new_guid()
        parsed = uuid.UUID(g)
        assert str(parsed) == g  # lower-case, dashed, 36 characters
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        variants.add(g[19])
        seen.add(g)
    assert len(seen) == 2000
    assert variants == set("89ab")  # every variant nibble occurs
