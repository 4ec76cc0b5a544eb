"""The access log's entry hash: its canonical form is fixed, because every stored chain depends on it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from services.common.audit import _entry_hash


def reference_hash(seq: int, prev_hash: str, fields: dict[str, object]) -> str:
    """The definition: sorted-key JSON with fixed separators and no ASCII escaping, hashed with SHA-256."""
    occurred_at = fields["occurred_at"]
    assert isinstance(occurred_at, datetime)
    payload = {
        "seq": seq,
        "prev_hash": prev_hash,
        **fields,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fields(text: str = "case.GetCase", when: datetime | None = None) -> dict[str, object]:
    return {
        "occurred_at": when or datetime(2026, 11, 23, 14, 5, 9, 120_000, tzinfo=UTC),
        "actor": "agent-17",
        "actor_role": "agent",
        "person_number": "194107086995",
        "action": text,
        "purpose": "Ringde om hemtjänst",
        "service": "case",
    }


def test_a_known_entry_has_the_hash_it_always_had():
    # Fixed once: a change of encoding would break every chain already stored.
    expected = "f3993e363a906cd83a98803443a6f9e5582d9ac6075bd27b3fb467452a2a98d6"
    assert reference_hash(1, "0" * 64, fields()) == expected
    assert _entry_hash(1, "0" * 64, fields()) == expected


@given(
    seq=st.integers(min_value=1, max_value=2**62),
    text=st.text(),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_the_hash_is_that_of_the_sorted_json_for_any_text_and_any_offset(
    seq: int, text: str, offset_minutes: int
):
    when = datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=timezone(timedelta(minutes=offset_minutes)))
    entry = fields(text, when)
    entry["purpose"] = text[::-1]
    entry["actor"] = f'"{text}\\'

    assert _entry_hash(seq, "a" * 64, entry) == reference_hash(seq, "a" * 64, entry)
