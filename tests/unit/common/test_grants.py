"""Where services find the access grant of a call: the x-access-grant metadata entry."""

from __future__ import annotations

from services.common.grants import GRANT_METADATA_KEY, grant_from_metadata


def test_the_grant_is_read_from_its_metadata_entry_whatever_the_case_of_the_key():
    metadata: list[tuple[str, str | bytes]] = [
        ("authorization", "Bearer t"),
        ("X-Access-Grant", b"grant-token"),
    ]

    assert grant_from_metadata(metadata) == "grant-token"


def test_a_call_without_a_grant_has_none():
    assert grant_from_metadata([("authorization", "Bearer t")]) is None
    assert grant_from_metadata(None) is None


def test_the_key_is_the_one_services_send():
    assert grant_from_metadata([(GRANT_METADATA_KEY, "g")]) == "g"
