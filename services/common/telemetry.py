"""OpenTelemetry traces and metrics, configured by the standard OTEL_* variables.

Exporters are made only when asked for, so a service started without any OTEL_* variable (a developer's
machine, a test) sends nothing anywhere:

- OTEL_SDK_DISABLED=true: no providers at all; the API's no-op tracer and meter stay in place.
- OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: a comma-separated list of "otlp" and "console", or
  "none". Unlike the SDK's own default, an unset variable means "none" unless an OTLP endpoint is set.
- OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT:
  setting one turns on OTLP for its signals. Only OTLP over gRPC is installed, so
  OTEL_EXPORTER_OTLP_PROTOCOL and its per-signal forms must be "grpc" when set.
- OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES describe the service; OTEL_SERVICE_NAME wins.
- OTEL_METRIC_EXPORT_INTERVAL: milliseconds between metric exports.

The OTLP exporters' other settings (headers, certificates, timeout, compression) and the sampler
(OTEL_TRACES_SAMPLER) are read by the SDK itself from the process environment.

No person number may reach a span or a metric: the SQLAlchemy instrumentation records statements with
their placeholders and never the bound values, and attributes set by hand must not carry one.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import grpc
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Tracer
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.settings import SettingsError

__all__ = [
    "Telemetry",
    "configure_telemetry",
    "grpc_client_interceptors",
    "grpc_server_interceptors",
    "instrument_sqlalchemy",
    "meter",
    "tracer",
]

_log = logging.getLogger(__name__)

_EXPORTERS = ("otlp", "console", "none")
# Kubernetes asks for health every few seconds; a span per probe would drown the real traffic.
_ALWAYS_EXCLUDED_GRPC_SERVICES = ("grpc.health.v1.Health",)


class Telemetry:
    """The providers one `configure_telemetry` call made; `shutdown()` flushes and stops their exporters.

    `installed` tells whether they became the process-wide providers: OpenTelemetry allows that only
    once per process, so a second configuration (as in tests) is usable through its own providers only.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        *,
        installed: bool,
    ):
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.installed = installed
        self._shut_down = False

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None

    @property
    def records_spans(self) -> bool:
        """Whether any span is kept. When none is, the gRPC and SQLAlchemy instrumentations would only
        make spans to throw away, about a tenth of a simple call's CPU, so services leave them out and
        `server.CallInterceptor` carries the caller's trace id on its own."""
        return self.tracer_provider is not None and self.tracer_provider.sampler is not ALWAYS_OFF

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def configure_telemetry(service: str, environ: Mapping[str, str] | None = None) -> Telemetry:
    """Builds the tracer and meter providers for `service` and installs them process-wide.

    Raises SettingsError naming the variable when an exporter or protocol is not one we can run.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Telemetry(None, None, installed=False)

    resource = Resource.create(_resource_attributes(service, env))
    processors = _span_processors(env)
    # With nowhere to send spans and no sampler asked for, none is recorded: spans still get trace ids
    # (for the logs and for propagation to the services called) at a fraction of a recorded one's cost.
    sampler = None if processors or env.get("OTEL_TRACES_SAMPLER") else ALWAYS_OFF
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    for processor in processors:
        tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(resource=resource, metric_readers=_metric_readers(env))

    installed = _install(tracer_provider, meter_provider)
    return Telemetry(tracer_provider, meter_provider, installed=installed)


def tracer(name: str) -> Tracer:
    """A tracer from the process-wide provider (a no-op one until telemetry is configured)."""
    return trace.get_tracer(name)


def meter(name: str) -> Meter:
    """A meter from the process-wide provider (a no-op one until telemetry is configured)."""
    return metrics.get_meter(name)


def _install(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> bool:
    # The API refuses to replace a provider once set (and only logs about it); checking first keeps
    # a repeated configuration quiet and lets us say so once, here.
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        _log.warning("telemetry was already configured in this process; the new providers stay local")
        return False
    trace.set_tracer_provider(tracer_provider)
    if not isinstance(metrics.get_meter_provider(), MeterProvider | metrics.NoOpMeterProvider):
        metrics.set_meter_provider(meter_provider)
    return True


def _resource_attributes(service: str, env: Mapping[str, str]) -> dict[str, str]:
    attributes = {SERVICE_NAME: service}
    raw = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    for pair in filter(None, (part.strip() for part in raw.split(","))):
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise SettingsError("OTEL_RESOURCE_ATTRIBUTES", f"expected key=value pairs, got {pair!r}")
        attributes[key.strip()] = unquote(value.strip())
    service_name = env.get("OTEL_SERVICE_NAME", "").strip()
    if service_name:
        attributes[SERVICE_NAME] = service_name
    return attributes


def _exporter_names(env: Mapping[str, str], signal: str) -> list[str]:
    """The exporters asked for one signal ("TRACES" or "METRICS"), without duplicates, "none" removed."""
    variable = f"OTEL_{signal}_EXPORTER"
    raw = env.get(variable, "").strip().lower()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "") or env.get(
            f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", ""
        )
        return ["otlp"] if endpoint.strip() else []
    names = list(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in _EXPORTERS]
    if unknown:
        raise SettingsError(variable, f"must be a list of {', '.join(_EXPORTERS)}, got {raw!r}")
    if "none" in names and len(names) > 1:
        raise SettingsError(variable, f"'none' cannot be combined with other exporters, got {raw!r}")
    return [name for name in names if name != "none"]


def _otlp_endpoint(env: Mapping[str, str], signal: str) -> str | None:
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(variable, "").strip().lower()
        if protocol and protocol != "grpc":
            raise SettingsError(variable, f"only grpc is available, got {protocol!r}")
        if protocol:
            break
    endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )
    return endpoint.strip() or None


def _span_processors(env: Mapping[str, str]) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    for name in _exporter_names(env, "TRACES"):
        if name == "console":
            # Console output is for looking at spans as they happen, so it skips the batching.
            processors.append(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
        else:
            processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=_otlp_endpoint(env, "TRACES"))))
    return processors


def _metric_readers(env: Mapping[str, str]) -> list[MetricReader]:
    readers: list[MetricReader] = []
    names = _exporter_names(env, "METRICS")
    if not names:
        return readers
    interval = _export_interval(env)
    for name in names:
        if name == "console":
            exporter = ConsoleMetricExporter(out=sys.stdout)
            readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval))
        else:
            otlp = OTLPMetricExporter(endpoint=_otlp_endpoint(env, "METRICS"))
            readers.append(PeriodicExportingMetricReader(otlp, export_interval_millis=interval))
    return readers


def _export_interval(env: Mapping[str, str]) -> float | None:
    raw = env.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    if not raw:
        return None
    try:
        interval = float(raw)
    except ValueError:
        interval = 0
    if interval <= 0:
        raise SettingsError(
            "OTEL_METRIC_EXPORT_INTERVAL", f"expected a positive number of milliseconds, got {raw!r}"
        )
    return interval


# --- instrumentation ------------------------------------------------------------------------------------

_instrumented_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def instrument_sqlalchemy(engine: AsyncEngine) -> None:
    """Traces every statement the engine runs; calling it again for the same engine changes nothing.

    Spans carry the statement as SQLAlchemy sends it, with placeholders: the installed instrumentation
    (opentelemetry-instrumentation-sqlalchemy 0.66b1) records the statement text and never the bound
    parameters, and `enable_commenter=False` keeps it from rewriting statements. Values must therefore
    never be inlined into SQL text.

    The instrumentor is a process-wide singleton that acts only on its first `instrument()` call, so a
    further engine is added by instrumenting again with every engine so far. `skip_dep_check` is set
    because the instrumentation declares support for SQLAlchemy below 2.1 and would otherwise refuse
    (with only a log line) to instrument the 2.1 series, whose engine events it uses unchanged.
    """
    sync_engine = engine.sync_engine
    if sync_engine in _instrumented_engines:
        return
    _instrumented_engines.add(sync_engine)
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(engines=list(_instrumented_engines), enable_commenter=False, skip_dep_check=True)


def grpc_server_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """Interceptors for a `grpc.aio.server`: a span per call, continuing the caller's trace.

    Health checks are never traced; OTEL_PYTHON_GRPC_EXCLUDED_SERVICES (comma-separated full service
    names) excludes more.
    """
    excluded = [
        *_ALWAYS_EXCLUDED_GRPC_SERVICES,
        *(name.strip() for name in os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "").split(",")),
    ]
    traced = filters.negate(filters.any_of(*(filters.service_name(name) for name in excluded if name)))
    return [aio_server_interceptor(filter_=traced)]  # type: ignore[no-untyped-call]


def grpc_client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for a `grpc.aio` channel: a client span per call, its context sent along."""
    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]
