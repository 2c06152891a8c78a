"""The record types the store and the domain share: they live below both, so the store
imports no domain package."""
