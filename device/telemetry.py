"""The JSON-lines event log and OpenTelemetry spans (the SDK is optional at run time)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import IO, Any

from .config import TelemetryConfig

_LOGGER = logging.getLogger(__name__)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if hasattr(value, "value") and not isinstance(value, (int, str)):
        return value.value  # enums
    return value


class EventLog:
    """Writes one JSON object per line; every record has `t` (seconds of mic) and `event`."""

    def __init__(self, stream: IO[str] | None = None, path: str | Path | None = None) -> None:
        self._own = None
        if path:
            self._own = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._streams = [s for s in (stream, self._own) if s is not None]
        self.records: list[dict] = []

    def emit(self, t_s: float, event: str, **fields: Any) -> dict:
        """Record one event."""
        record = {"t": round(t_s, 4), "event": event, **{k: _clean(v) for k, v in fields.items()}}
        self.records.append(record)
        line = json.dumps(record)
        for stream in self._streams:
            stream.write(line + "\n")
            stream.flush()
        return record

    def close(self) -> None:
        """Close the file this log opened."""
        if self._own is not None:
            self._own.close()
            self._own = None


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def end(self) -> None:
        pass


class Telemetry:
    """Creates spans through OpenTelemetry when configured, otherwise does nothing."""

    def __init__(self, config: TelemetryConfig, exporter: Any = None) -> None:
        """`exporter` (an OpenTelemetry SpanExporter) overrides config.exporter, e.g. in tests."""
        self._tracer = None
        self._provider = None
        if config.exporter == "none" and exporter is None:
            return
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        except ImportError:
            _LOGGER.warning("telemetry.exporter = %s but the OpenTelemetry SDK is not installed "
                            "(pip install 'voice-device[otel]'); spans are off", config.exporter)
            return
        if exporter is not None:
            pass
        elif config.exporter == "console":
            exporter = ConsoleSpanExporter()
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                _LOGGER.warning("telemetry.exporter = otlp needs opentelemetry-exporter-otlp-proto-http; spans are off")
                return
            exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint or None)
        self._provider = TracerProvider(resource=Resource.create({"service.name": "voice-device"}))
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("voice_device")

    @property
    def enabled(self) -> bool:
        """Whether spans go anywhere."""
        return self._tracer is not None

    def start_span(self, name: str, parent: Any = None, **attributes: Any):
        """Start a span (child of `parent` when given); end it with .end()."""
        if self._tracer is None:
            return _NoSpan()
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None and not isinstance(parent, _NoSpan) else None
        span = self._tracer.start_span(name, context=context)
        for key, value in attributes.items():
            span.set_attribute(key, _clean(value))
        return span

    def shutdown(self) -> None:
        """Flush and stop the exporter."""
        if self._provider is not None:
            self._provider.shutdown()
