"""Alembic environment: the application store's schema (intentd.store.schema)."""

from alembic import context
from sqlalchemy import create_engine, pool, text

from intentd.store.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url


def run() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas may start together: one migrates, the others wait.
            connection.execute(text("SELECT pg_advisory_lock(727274)"))
            connection.commit()
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(727274)"))
            connection.commit()
    engine.dispose()


run()
