"""Alembic environment: runs on the connection `smsgw.store.db` hands over.

There is no alembic.ini: `smsgw db upgrade` builds the Alembic config in code
and puts an open connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from smsgw.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
