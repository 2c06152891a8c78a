"""Runaway-loop guards: repeated calls, retry storms, sessions that stop making progress,
and a circuit breaker on a failing upstream."""
