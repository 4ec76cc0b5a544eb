from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.common.logs import PersonDataFilter, configure_logging

# Skatteverket's test person Tolvan Tolvansson, in the forms people and systems write it.
PERSON_NUMBERS = ["19121212-1212", "191212121212", "121212-1212", "1212121212"]
# The same number as people type it into a note or a search field.
TYPED_PERSON_NUMBERS = [
    "121212 1212",
    "19121212 1212",
    "121212\u20131212",  # en dash
    "121212\u20141212",  # em dash
    "121212\u22121212",  # minus sign
    "19121212\u00a01212",  # no-break space
    "1912 12 12-1212",
    "19121212-12 12",
    "12 12 12 - 1212",
    "1912-12-12-1212",
    "1912.12.12-1212",
]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers_before, level_before = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("case", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers_before:
            root.removeHandler(handler)
    root.setLevel(level_before)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_log_line_is_one_json_object_with_the_standard_fields(output):
    logging.getLogger("services.case.handlers").warning("case %s forwarded", "cases/12")

    [line] = lines(output)

    assert line["message"] == "case cases/12 forwarded"
    assert line["level"] == "WARNING"
    assert line["logger"] == "services.case.handlers"
    assert line["service"] == "case"
    logged_at = datetime.fromisoformat(line["time"])
    assert logged_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - logged_at) < timedelta(minutes=1)


def test_extra_fields_are_written_with_their_types(output):
    logging.getLogger("x").info("forwarded", extra={"case_id": "cases/12", "attempt": 2, "acute": True})

    [line] = lines(output)

    assert (line["case_id"], line["attempt"], line["acute"]) == ("cases/12", 2, True)


def test_an_extra_field_cannot_pass_itself_off_as_a_fixed_one(output):
    logging.getLogger("x").info("hello", extra={"service": "forged", "trace_id": "0" * 32})

    [line] = lines(output)

    assert line["service"] == "case"
    assert "trace_id" not in line


def test_records_below_the_level_are_not_written(output):
    logging.getLogger("x").debug("details")
    logging.getLogger("x").info("news")

    assert [line["message"] for line in lines(output)] == ["news"]


def test_configuring_twice_writes_each_record_once_to_the_latest_stream(output):
    second = io.StringIO()
    configure_logging("case", level="DEBUG", stream=second)

    logging.getLogger("x").debug("once")

    assert output.getvalue() == ""
    assert [line["message"] for line in lines(second)] == ["once"]


def test_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="VERBOSE"):
        configure_logging("case", level="VERBOSE", stream=io.StringIO())


@pytest.mark.parametrize("person_number", PERSON_NUMBERS)
def test_a_person_number_in_the_message_is_redacted(output, person_number):
    logging.getLogger("x").info(f"looked up {person_number} for cases/12")

    [line] = lines(output)

    assert person_number not in output.getvalue()
    assert line["message"] == "looked up [personnummer] for cases/12"


@pytest.mark.parametrize("person_number", PERSON_NUMBERS)
def test_a_person_number_in_the_arguments_is_redacted(output, person_number):
    logging.getLogger("x").info("looked up %s (%d%%)", person_number, 100)

    [line] = lines(output)

    assert person_number not in output.getvalue()
    assert line["message"] == "looked up [personnummer] (100%)"


def test_a_person_number_in_an_extra_field_is_redacted(output):
    logging.getLogger("x").info(
        "looked up",
        extra={
            "person": "19121212-1212",
            "person_as_number": 191212121212,
            "request": {"person_number": "121212-1212", "page_size": 10},
        },
    )

    [line] = lines(output)

    assert "1212" not in output.getvalue()
    assert line["person"] == "[personnummer]"
    assert line["person_as_number"] == "[personnummer]"
    assert "[personnummer]" in line["request"]


@pytest.mark.parametrize("person_number", TYPED_PERSON_NUMBERS)
def test_a_typed_person_number_in_the_message_is_redacted(output, person_number):
    logging.getLogger("x").info(f"note: caller gave {person_number}, wants a call back")

    [line] = lines(output)

    assert line["message"] == "note: caller gave [personnummer], wants a call back"


@pytest.mark.parametrize("person_number", TYPED_PERSON_NUMBERS)
def test_a_typed_person_number_in_the_arguments_is_redacted(output, person_number):
    logging.getLogger("x").info("searched for %r in %s", person_number, "units/42")

    [line] = lines(output)

    assert line["message"] == "searched for '[personnummer]' in units/42"


def test_a_typed_person_number_in_an_extra_field_is_redacted(output):
    logging.getLogger("x").info(
        "note saved",
        extra={
            "note": "Ring dottern, hennes pnr 1912 12 12-1212",
            "search": "12 12 12 \u2013 1212",
            "form": {"person_number": "1912.12.12-1212", "phone": "070-123 45 67"},
        },
    )

    [line] = lines(output)

    assert line["note"] == "Ring dottern, hennes pnr [personnummer]"
    assert line["search"] == "[personnummer]"
    assert line["form"] == "{'person_number': '[personnummer]', 'phone': '070-123 45 67'}"


def test_a_typed_person_number_in_a_dict_is_redacted_although_its_text_escapes_the_spaces(output):
    # The filter reads a dict through str(), which writes a no-break space as "\\xa0".
    logging.getLogger("x").info("lookup", extra={"request": {"person_number": "19121212\u00a01212"}})

    [line] = lines(output)

    assert line["request"] == "{'person_number': '[personnummer]'}"


def test_phone_numbers_dates_and_amounts_stay_in_the_log(output):
    text = "ring 08-80 65 65 eller 070-123 45 67 före 2026-12-01, faktura 1 234,50 kr, OCR 40010112301234"
    logging.getLogger("x").info("%s", text, extra={"detail": text})

    [line] = lines(output)

    assert line["message"] == text
    assert line["detail"] == text


def test_a_person_number_in_an_exception_is_redacted(output):
    try:
        raise LookupError("no address for 19121212-1212")
    except LookupError:
        logging.getLogger("x").exception("lookup failed")

    [line] = lines(output)

    assert "1212" not in output.getvalue()
    assert "LookupError: no address for [personnummer]" in line["exception"]


def test_the_filter_redacts_the_record_itself_for_the_handlers_after_it():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "looked up %s", ("19121212-1212",), None)

    kept = PersonDataFilter().filter(record)

    assert kept
    assert record.getMessage() == "looked up [personnummer]"


def test_the_ids_of_the_active_span_are_on_the_line(output):
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("ResolveResponsible") as span:
        logging.getLogger("x").info("inside")
    logging.getLogger("x").info("outside")

    inside, outside = lines(output)
    context = span.get_span_context()
    assert inside["trace_id"] == trace.format_trace_id(context.trace_id)
    assert inside["span_id"] == trace.format_span_id(context.span_id)
    assert len(inside["trace_id"]) == 32
    assert "trace_id" not in outside
    assert "span_id" not in outside
