from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.auth import Caller, Role
from services.common.errors import InvalidArgument
from services.common.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PageRequest,
    PageTokens,
    development_key,
)

FARSTA = {"unit": "units/farsta", "status": "open"}
TOKENS = PageTokens([development_key("case")], service="case")


def page_request(page_size: int, page_token: str, query: dict[str, str]) -> PageRequest:
    return TOKENS.page(page_size, page_token, query, owner=None)


def token_of(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def refused_field(
    page_size: int,
    page_token: str,
    query: dict[str, str],
    tokens: PageTokens = TOKENS,
    owner: Caller | None = None,
) -> str:
    with pytest.raises(InvalidArgument) as caught:
        tokens.page(page_size, page_token, query, owner=owner)
    [violation] = caught.value.violations
    return violation.field


@pytest.mark.parametrize(
    ("page_size", "size"),
    [(0, DEFAULT_PAGE_SIZE), (1, 1), (50, 50), (MAX_PAGE_SIZE, MAX_PAGE_SIZE), (10**9, MAX_PAGE_SIZE)],
)
def test_page_size_defaults_to_fifty_and_is_capped_at_a_thousand(page_size: int, size: int):
    assert page_request(page_size, "", FARSTA).size == size


def test_a_negative_page_size_is_refused_naming_page_size():
    assert refused_field(-1, "", FARSTA) == "page_size"


def test_the_first_page_starts_at_the_beginning():
    assert page_request(10, "", FARSTA).after is None


def test_the_next_page_continues_after_the_last_position_returned():
    first = page_request(2, "", FARSTA)
    token = first.next_token(["2025-03-03", 17], more=True)

    second = page_request(2, token, FARSTA)

    assert second.after == ["2025-03-03", 17]
    assert second.size == 2


def test_the_last_page_has_no_next_token():
    assert page_request(2, "", FARSTA).next_token(17, more=False) == ""


def test_the_order_of_the_filters_does_not_change_the_query():
    token = page_request(2, "", {"unit": "units/farsta", "status": "open"}).next_token(5, more=True)

    assert page_request(2, token, {"status": "open", "unit": "units/farsta"}).after == 5


def test_the_page_size_may_change_between_pages():
    token = page_request(2, "", FARSTA).next_token(5, more=True)

    assert page_request(100, token, FARSTA).size == 100


@pytest.mark.parametrize(
    "other_query",
    [
        {"unit": "units/vasterort", "status": "open"},
        {"unit": "units/farsta"},
        {"unit": "units/farsta", "status": "open", "officer": "officers/7"},
    ],
)
def test_a_token_from_another_query_is_refused_naming_page_token(other_query: dict[str, str]):
    token = page_request(2, "", FARSTA).next_token(5, more=True)

    assert refused_field(2, token, other_query) == "page_token"


@pytest.mark.parametrize(
    "garbage",
    [
        "not a token",
        "!!!!",
        "e30",  # {}
        token_of([1, 2]),
        token_of("q"),
        token_of({"q": "0123456789abcdef"}),
        token_of({"a": 5}),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        token_of({"q": "x", "a": 1})[:-3],
        "åäö",
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
    ],
)
def test_a_garbage_token_is_refused_naming_page_token(garbage: str):
    assert refused_field(2, garbage, FARSTA) == "page_token"


@given(st.text(min_size=1, max_size=200))
def test_no_made_up_token_fails_other_than_by_naming_page_token(token: str):
    assert refused_field(5, token, FARSTA) == "page_token"


def test_a_token_of_another_service_is_refused_naming_page_token():
    directory = PageTokens([development_key("case")], service="directory")
    token = directory.page(2, "", FARSTA, owner=None).next_token(5, more=True)

    assert refused_field(2, token, FARSTA) == "page_token"


def test_a_token_signed_with_another_key_is_refused_naming_page_token():
    other = PageTokens([development_key("directory")], service="case")
    token = other.page(2, "", FARSTA, owner=None).next_token(5, more=True)

    assert refused_field(2, token, FARSTA) == "page_token"


def test_a_token_whose_position_was_changed_by_hand_is_refused():
    token = page_request(2, "", FARSTA).next_token(5, more=True)
    payload, signature = token.split(".")
    changed = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed["a"] = 6

    assert refused_field(2, f"{token_of(changed)}.{signature}", FARSTA) == "page_token"


def test_a_token_keeps_working_while_its_key_is_rotated_out():
    old, new = development_key("case"), b"n" * 32
    token = page_request(2, "", FARSTA).next_token(5, more=True)

    assert PageTokens([new, old], service="case").page(2, token, FARSTA, owner=None).after == 5
    assert refused_field(2, token, FARSTA, tokens=PageTokens([new], service="case")) == "page_token"


def test_one_callers_token_is_refused_for_another_caller():
    astrid = Caller("citizen-1", frozenset({Role.CITIZEN}), None, person_number="194107082386", token="")
    bertil = Caller("citizen-2", frozenset({Role.CITIZEN}), None, person_number="193812301234", token="")
    token = TOKENS.page(2, "", FARSTA, owner=astrid).next_token(5, more=True)

    assert TOKENS.page(2, token, FARSTA, owner=astrid).after == 5
    assert refused_field(2, token, FARSTA, owner=bertil) == "page_token"


def test_a_key_shorter_than_32_bytes_is_refused():
    with pytest.raises(ValueError, match="32"):
        PageTokens([b"short"], service="case")
