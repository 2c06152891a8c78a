"""Secrets at rest: the master key and authenticated encryption of upstream credentials."""
