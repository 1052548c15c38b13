"""Database engine, sessions and the declarative base shared by every model.

Every datetime is stored and returned in UTC (SQLite keeps no zone, so ``UTCDateTime``
puts it back). Constraint names follow one convention so Alembic migrations are stable
across SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use undersign.db.utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _on_connect_pragmas(engine: Engine, *pragmas: str) -> None:
    """Run ``pragmas`` on every new SQLite connection of ``engine``."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


def _configure_sqlite(engine: Engine) -> None:
    # Foreign keys are off by default in SQLite; WAL lets the web process read while a worker
    # writes; busy_timeout turns brief lock contention into a wait, not an error.
    _on_connect_pragmas(engine, "foreign_keys=ON", "journal_mode=WAL", "busy_timeout=10000")


def _configure_sqlite_ingest(engine: Engine) -> None:
    # WAL + NORMAL: a commit is written to the WAL (the OS has it) but not fsynced; the next
    # checkpoint syncs it. Survives the process dying, not a power cut (docs/deploy.md).
    # No busy handler: record_delivery retries a locked database itself, sooner.
    _on_connect_pragmas(engine, "synchronous=NORMAL", "busy_timeout=0")


def _is_sqlite_file(url: str) -> bool:
    return url.startswith("sqlite") and ":memory:" not in url and not url.rstrip("/").endswith(":")


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 10})
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """The engine and a session factory; one per app or worker process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._ingest_engine: Engine | None = None

    @property
    def ingest_engine(self) -> Engine:
        """Where webhook deliveries are recorded (``DeliveryRecorder``): its own small pool of
        autocommit connections, so one statement is one round trip (no BEGIN, no COMMIT, no
        pre-ping: the recorder retries once on a connection found dead). On a SQLite file,
        ``synchronous=NORMAL`` (the delivery's promise is about the process dying; see
        docs/deploy.md), while every other write keeps SQLite's default full sync."""
        if self._ingest_engine is None:
            if _is_sqlite_file(self.url):
                engine = make_engine(self.url, isolation_level="AUTOCOMMIT")
                _configure_sqlite_ingest(engine)
            elif self.url.startswith("sqlite"):  # in memory: one database per engine
                engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            else:
                engine = make_engine(
                    self.url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, pool_size=2
                )
            self._ingest_engine = engine
        return self._ingest_engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block succeeds, rolled back otherwise."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    def dispose(self) -> None:
        if self._ingest_engine is not None and self._ingest_engine.pool is not self.engine.pool:
            self._ingest_engine.dispose()
        self.engine.dispose()


def describe_error(exc: BaseException) -> str:
    """The first line of what the driver said: no SQL, no parameters, no documentation link,
    so an operator's command ends with one line that names the problem."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
