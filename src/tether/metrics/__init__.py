"""Prometheus metrics: what the audit log records, counted; how long decisions and audit
commits take; what is in flight right now."""
