from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import Meter as SdkMeter
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from services.common import telemetry as telemetry_module
from services.common.settings import SettingsError
from services.common.telemetry import (
    Telemetry,
    configure_telemetry,
    grpc_client_interceptors,
    grpc_server_interceptors,
    instrument_sqlalchemy,
    meter,
    tracer,
)

PERSON_NUMBER = "191212121212"


@pytest.fixture(autouse=True)
def fresh_globals() -> Iterator[None]:
    """Each test starts as a new process would: no process-wide providers yet.

    OpenTelemetry lets a process set its providers once, so the test swaps the API's globals and puts
    the previous ones back afterwards.
    """
    saved = (
        trace._TRACER_PROVIDER,
        trace._TRACER_PROVIDER_SET_ONCE,
        metrics_internal._METER_PROVIDER,
        metrics_internal._METER_PROVIDER_SET_ONCE,
    )
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    metrics_internal._METER_PROVIDER, metrics_internal._METER_PROVIDER_SET_ONCE = None, Once()
    yield
    (
        trace._TRACER_PROVIDER,
        trace._TRACER_PROVIDER_SET_ONCE,
        metrics_internal._METER_PROVIDER,
        metrics_internal._METER_PROVIDER_SET_ONCE,
    ) = saved


@pytest.fixture
def configured() -> Iterator[list[Telemetry]]:
    """Shuts down whatever a test configured, so no exporter outlives it."""
    made: list[Telemetry] = []
    yield made
    for telemetry in made:
        telemetry.shutdown()


def span_processors(telemetry: Telemetry) -> tuple[Any, ...]:
    assert telemetry.tracer_provider is not None
    return telemetry.tracer_provider._active_span_processor._span_processors


def metric_readers(telemetry: Telemetry) -> list[Any]:
    assert telemetry.meter_provider is not None
    return list(telemetry.meter_provider._metric_readers)


# Spans are recorded only with an exporter or a sampler asked for; tests attach an in-memory exporter.
RECORDING = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}


def capture_spans(telemetry: Telemetry) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    assert telemetry.tracer_provider is not None
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_without_variables_there_is_no_exporter_and_spans_still_have_trace_ids(configured):
    telemetry = configure_telemetry("case", environ={})
    configured.append(telemetry)

    with tracer("services.case").start_as_current_span("RegisterContact") as span:
        context = span.get_span_context()

    # Nothing to export to, so nothing is recorded; the trace id is there for the logs all the same.
    assert not span.is_recording()
    assert not telemetry.records_spans  # so the services leave the instrumentations out
    assert telemetry.installed
    assert span_processors(telemetry) == ()
    assert metric_readers(telemetry) == []
    assert context.is_valid
    assert telemetry.tracer_provider is not None
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "case"


def test_an_explicit_sampler_records_spans_even_without_an_exporter(configured):
    telemetry = configure_telemetry("case", environ={"OTEL_TRACES_SAMPLER": "parentbased_always_on"})
    configured.append(telemetry)

    with tracer("services.case").start_as_current_span("RegisterContact") as span:
        pass

    assert isinstance(span, ReadableSpan)
    assert telemetry.records_spans
    assert span.is_recording() is False  # ended
    assert span.resource.attributes["service.name"] == "case"


def test_the_environment_names_the_service_and_adds_resource_attributes(configured):
    telemetry = configure_telemetry(
        "case",
        environ={
            "OTEL_SERVICE_NAME": "case-blue",
            "OTEL_RESOURCE_ATTRIBUTES": "environment=test, team=%C3%84ldre%20direkt,service.name=x",
        },
    )
    configured.append(telemetry)

    assert telemetry.tracer_provider is not None
    attributes = telemetry.tracer_provider.resource.attributes
    assert attributes["service.name"] == "case-blue"
    assert attributes["environment"] == "test"
    assert attributes["team"] == "Äldre direkt"


def test_the_console_exporter_writes_each_finished_span(configured, capsys):
    telemetry = configure_telemetry("case", environ={"OTEL_TRACES_EXPORTER": "console"})
    configured.append(telemetry)

    with tracer("services.case").start_as_current_span("RegisterContact") as span:
        trace_id = span.get_span_context().trace_id
    telemetry.shutdown()
    assert telemetry.records_spans

    written = json.loads(capsys.readouterr().out)
    assert written["name"] == "RegisterContact"
    assert written["context"]["trace_id"] == f"0x{trace.format_trace_id(trace_id)}"
    assert written["resource"]["attributes"]["service.name"] == "case"


def test_an_otlp_endpoint_turns_on_otlp_for_both_signals(configured):
    telemetry = configure_telemetry("case", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    configured.append(telemetry)

    [processor] = span_processors(telemetry)
    [reader] = metric_readers(telemetry)
    assert isinstance(processor, BatchSpanProcessor)
    assert isinstance(processor.span_exporter, OTLPSpanExporter)
    assert isinstance(reader, PeriodicExportingMetricReader)


def test_a_traces_endpoint_turns_on_otlp_for_traces_only(configured):
    telemetry = configure_telemetry(
        "case", environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}
    )
    configured.append(telemetry)

    assert len(span_processors(telemetry)) == 1
    assert metric_readers(telemetry) == []


def test_exporter_none_wins_over_an_endpoint(configured):
    telemetry = configure_telemetry(
        "case",
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
        },
    )
    configured.append(telemetry)

    assert span_processors(telemetry) == ()
    assert metric_readers(telemetry) == []


def test_console_and_otlp_can_be_asked_for_together(configured):
    telemetry = configure_telemetry("case", environ={"OTEL_TRACES_EXPORTER": "console,otlp"})
    configured.append(telemetry)

    kinds = [type(processor) for processor in span_processors(telemetry)]
    assert kinds == [SimpleSpanProcessor, BatchSpanProcessor]


def test_a_disabled_sdk_sets_up_nothing(configured, capsys):
    telemetry = configure_telemetry(
        "case", environ={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
    )
    configured.append(telemetry)

    with tracer("services.case").start_as_current_span("RegisterContact") as span:
        pass
    meter("services.case").create_counter("contacts").add(1)

    assert not telemetry.enabled
    assert not telemetry.records_spans
    assert not telemetry.installed
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not span.get_span_context().is_valid
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_METRICS_EXPORTER": "prometheus"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "none,console"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES"),
        (
            {"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "soon"},
            "OTEL_METRIC_EXPORT_INTERVAL",
        ),
    ],
)
def test_a_setting_we_cannot_run_is_refused_naming_the_variable(environ, variable):
    with pytest.raises(SettingsError) as refused:
        configure_telemetry("case", environ=environ)

    assert refused.value.variable == variable


def test_configuring_again_keeps_the_first_providers_and_still_works(configured):
    first = configure_telemetry("case", environ={})
    second = configure_telemetry("directory", environ={})
    configured.extend([first, second])

    assert first.installed
    assert not second.installed
    assert trace.get_tracer_provider() is first.tracer_provider
    assert second.tracer_provider is not None
    with second.tracer_provider.get_tracer("t").start_as_current_span("s") as span:
        assert span.get_span_context().is_valid


@pytest.fixture
def sqlalchemy_instrumentation() -> Iterator[None]:
    yield
    SQLAlchemyInstrumentor().uninstrument()
    telemetry_module._instrumented_engines.clear()


async def test_statements_are_traced_with_placeholders_and_never_with_values(
    configured, sqlalchemy_instrumentation
):
    telemetry = configure_telemetry("case", environ=RECORDING)
    configured.append(telemetry)
    spans = capture_spans(telemetry)
    metadata = MetaData()
    people = Table("people", metadata, Column("id", Integer, primary_key=True), Column("pnr", String(12)))
    first = create_async_engine("sqlite+aiosqlite:///:memory:")
    second = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        instrument_sqlalchemy(first)
        instrument_sqlalchemy(second)
        instrument_sqlalchemy(first)
        for engine in (first, second):
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                await conn.execute(insert(people).values(pnr=PERSON_NUMBER))
                await conn.execute(select(people.c.id).where(people.c.pnr == PERSON_NUMBER))
    finally:
        await first.dispose()
        await second.dispose()

    statements = [
        str(span.attributes.get("db.statement")) for span in spans.get_finished_spans() if span.attributes
    ]
    inserts = [statement for statement in statements if statement.startswith("INSERT INTO people")]
    selects = [statement for statement in statements if statement.startswith("SELECT people.id")]
    # One span per statement and engine: the second engine is traced, and the first not twice.
    assert len(inserts) == 2
    assert len(selects) == 2
    assert all("?" in statement for statement in inserts + selects)
    everything = json.dumps([json.loads(span.to_json()) for span in spans.get_finished_spans()])
    assert PERSON_NUMBER not in everything


async def test_a_grpc_call_is_traced_on_both_sides_as_one_trace_and_health_checks_are_not(configured):
    telemetry = configure_telemetry("case", environ=RECORDING)
    configured.append(telemetry)
    spans = capture_spans(telemetry)

    async def say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b"hej " + request

    server = grpc.aio.server(interceptors=grpc_server_interceptors())
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})]
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=grpc_client_interceptors()
        ) as channel:
            # wait_for_ready: on a loaded machine the first connection attempt can be refused before the
            # listener is up; the test is about spans, not about the first attempt.
            answer = await channel.unary_unary("/test.Echo/Say", None, None)(
                b"svejs", wait_for_ready=True, timeout=30
            )
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30
            )
    finally:
        await server.stop(None)

    finished = spans.get_finished_spans()
    server_spans = [span for span in finished if span.kind == trace.SpanKind.SERVER]
    client_spans = [span for span in finished if span.kind == trace.SpanKind.CLIENT]
    assert answer == b"hej svejs"
    assert [span.name for span in server_spans] == ["/test.Echo/Say"]
    [client_say] = [span for span in client_spans if span.name == "/test.Echo/Say"]
    [server_say] = server_spans
    assert server_say.context.trace_id == client_say.context.trace_id
    assert server_say.parent is not None
    assert server_say.parent.span_id == client_say.context.span_id


def test_meter_and_tracer_come_from_the_configured_providers(configured):
    telemetry = configure_telemetry("case", environ={})
    configured.append(telemetry)

    assert metrics.get_meter_provider() is telemetry.meter_provider
    assert isinstance(meter("services.case"), SdkMeter)
    assert isinstance(tracer("services.case"), SdkTracer)
