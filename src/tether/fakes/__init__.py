"""Stand-ins for upstream services, for tests and local demos (never used in production paths)."""
