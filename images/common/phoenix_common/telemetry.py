"""OpenTelemetry tracing setup shared by every component.

A component calls ``configure_tracing`` once at startup. With an OTLP endpoint
configured, spans are exported over OTLP/gRPC; tests may pass their own span
processor (an in-memory exporter) instead. W3C trace context is the propagator,
so a trace started at the gateway continues through the orchestrator into the
memory and tools services.

With neither, no SDK provider is installed (the SDK is not even imported): the
API's no-op tracer is left in place, spans cost nothing, and FastAPI's native
telemetry stays off. Recording
spans that no processor would ever export cost the chat path a measurable share
of its time (bench/chat.py) for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

from phoenix_common import __version__
from phoenix_common.settings import CommonSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


def configure_tracing(
    settings: CommonSettings,
    component: str,
    *,
    extra_processor: SpanProcessor | None = None,
) -> TracerProvider | None:
    """Create and install the process's TracerProvider; None when there is nowhere to send spans."""
    if not settings.otlp_endpoint and extra_processor is None:
        return None
    # The SDK (and psutil, which its resource detection imports) loads only when spans
    # are exported: about 2 MiB of RSS every untraced process would carry for nothing.
    from opentelemetry.sdk.resources import (  # noqa: PLC0415 - see above
        SERVICE_NAME,
        SERVICE_VERSION,
        Resource,
    )
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415 - see above
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415 - see above

    resource = Resource.create(
        {
            SERVICE_NAME: settings.service_name or f"phoenix-{component}",
            SERVICE_VERSION: __version__,
        }
    )
    provider = TracerProvider(resource=resource)
    if settings.otlp_endpoint:
        # Imported lazily: the exporter pulls in an OTLP client most runs never need.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415 - see the comment above
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)
    return provider
