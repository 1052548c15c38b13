"""Throwaway PostgreSQL schemas: each test (or module) gets its own, dropped afterwards.

Suites and engineers share one ``test`` database on the PostgreSQL server, so tests never
create tables in ``public``: they create a randomly named schema and select it with the
``search_path`` connection option in the URL. Depends on SQLAlchemy only."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool, QueuePool

#: The server the PostgreSQL tests use unless ``--db`` (or the variable) names another.
POSTGRES_URL = os.environ.get(
    "UNDERSIGN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def with_search_path(server_url: str, schema: str) -> str:
    """``server_url`` with every connection's ``search_path`` set to ``schema``."""
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def throwaway_schema(server_url: str = POSTGRES_URL, prefix: str = "t") -> Iterator[str]:
    """A new empty schema on ``server_url``; yields a URL whose connections use it, and drops
    it (with everything in it) on exit. An unreachable server fails loudly: the PostgreSQL
    pass is part of the suite, never skipped."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # No pool: the shared server's connection slots are not held idle while the test runs.
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(server_url, schema)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def idle_connections(engine: Engine) -> int:
    """How many connections ``engine``'s pool holds open while nobody uses them."""
    pool = engine.pool
    assert isinstance(pool, QueuePool), pool
    return pool.checkedin()
