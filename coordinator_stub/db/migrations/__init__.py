"""Alembic migrations of the coordinator's database (run by `aitbc-coordinator migrate`)."""
