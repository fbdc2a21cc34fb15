"""Persistence: the engine and sessions, the tables, and the versioned schema (Alembic)."""
