"""Persistence: SQLAlchemy Core tables on SQLite (embedded) or PostgreSQL (production)."""
