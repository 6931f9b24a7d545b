"""OpenTelemetry tracing, an optional extra (``pip install 'iwork-mc[tracing]'``).

One trace per message: the TOP call that accepts it is the root span, and its
W3C ``traceparent`` is stored with the message (``messages.trace_parent``).  The
worker's send, in whatever process or host claims the message, and the receipt
that settles it are spans of that same trace, children of the call's span.

Tracing is on only when :func:`configure` is given an OTLP endpoint (or a test
calls :func:`enable` with a provider of its own).  Otherwise every function
here does nothing: no OpenTelemetry import is needed, nothing is stored, and
the hot path pays one ``None`` check.  Spans carry ids, codes, channel names
and statuses, never a phone number or a text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from iwork_mc.store.base import StoreError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from iwork_mc.segments import ReceiptOutcome
    from iwork_mc.store.base import Store

__all__ = [
    "TracingUnavailable",
    "annotate",
    "configure",
    "current_parent",
    "disable",
    "enabled",
    "receipt",
    "shutdown",
    "span",
]

_tracer: Tracer | None = None
_provider: TracerProvider | None = None

Attributes = Mapping[str, str | int | float | bool]


class TracingUnavailable(RuntimeError):
    """An OTLP endpoint is configured but the ``tracing`` extra is not installed."""


def configure(otlp_endpoint: str, service_name: str = "iwork-mc") -> None:
    """Export spans to ``otlp_endpoint`` (OTLP over HTTP); an empty endpoint: no tracing."""
    if not otlp_endpoint:
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingUnavailable(
            "tracing_otlp_endpoint is set, but OpenTelemetry is not installed: "
            "pip install 'iwork-mc[tracing]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    enable(provider)


def enable(provider: TracerProvider) -> None:
    """Trace with ``provider`` (its processors decide where spans go)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("iwork_mc")


def disable() -> None:
    global _tracer, _provider
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def shutdown() -> None:
    """Send the spans still buffered (at process exit)."""
    if _provider is not None:
        _provider.shutdown()
    disable()


@contextlib.contextmanager
def span(
    name: str, *, parent: str = "", server: bool = False, attributes: Attributes | None = None
) -> Iterator[Any]:
    """A span, current while the block runs; a child of ``parent`` (a traceparent) if given.

    Yields the span (``None`` when tracing is off) for attributes known later.
    """
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent else None
    kind = SpanKind.SERVER if server else SpanKind.INTERNAL
    with _tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=dict(attributes or {})
    ) as current:
        yield current


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (an outcome known at the end, say)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(dict(attributes))


def current_parent() -> str:
    """The current span's W3C traceparent, to store with a message; ``""`` when off."""
    if _tracer is None:
        return ""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


async def receipt(store: Store, channel: str, outcome: ReceiptOutcome, state: str) -> None:
    """A span for a receipt just recorded, in its message's trace (one read, only when on)."""
    if _tracer is None or outcome.message_id is None:
        return
    try:
        message = await store.get_message_by_id(outcome.message_id)
    except StoreError:
        return  # a span is never worth failing the receipt for
    if message is None or not message.trace_parent:
        return
    final = outcome.message_status.value if outcome.message_status is not None else ""
    attributes: Attributes = {
        "iwork_mc.message_id": message.id,
        "iwork_mc.channel": channel,
        "iwork_mc.receipt_state": state,
        "iwork_mc.duplicate": outcome.duplicate,
        "iwork_mc.status": final,
    }
    with span("receipt", parent=message.trace_parent, attributes=attributes):
        pass
