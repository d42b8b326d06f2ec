"""Alembic migrations of the store schema (run with `smsgw db upgrade`)."""
