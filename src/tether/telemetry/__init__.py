"""OpenTelemetry export of the audit trail: spans built from durable audit events, sent
over OTLP off the hot path (``TETHER_OTLP_ENDPOINT``)."""
