"""The mirror's JSON: orjson where it can, the standard library's reading where orjson refuses."""

from __future__ import annotations

import math

import pytest

from services.mirror.model.records import canonical, loads, parse_person, person_from_stored
from tests.unit.mirror.test_overview import person_json


def test_what_orjson_refuses_but_json_reads_is_still_read() -> None:
    assert math.isnan(loads(b'{"a": NaN}')["a"])
    assert loads(b'{"a": "\\ud800"}') == {"a": "\ud800"}
    assert loads('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("text", [b"", b"not json", b'{"a": ', b"\xff\xfe"])
def test_what_is_not_json_is_a_value_error(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        loads(text)


def test_the_same_facts_give_the_same_text_and_the_text_gives_the_facts_back() -> None:
    first = parse_person(person_json())
    again = parse_person(person_json())
    assert first is not again
    assert canonical(first) == canonical(again)
    assert person_from_stored(canonical(first)) == first


def test_a_record_with_a_string_orjson_cannot_write_is_written_the_standard_way() -> None:
    record = parse_person(person_json())
    odd = record.__class__(**{**record.__dict__, "given_name": "Astrid \ud800"})
    text = canonical(odd)
    assert "Astrid" in text
    assert person_from_stored(text).given_name == "Astrid \ud800"
