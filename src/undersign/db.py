"""Database engine, sessions and the declarative base shared by every model, and the one
row lease every package uses.

Every datetime is stored and returned in UTC (SQLite keeps no zone, so ``UTCDateTime``
puts it back). Constraint names follow one convention so Alembic migrations are stable
across SQLite and PostgreSQL. Depends on SQLAlchemy only: every package's models import
this module, never the reverse (``migrations.load_models`` gathers them).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Engine,
    MetaData,
    String,
    create_engine,
    event,
    or_,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import (
    DeclarativeBase,
    InstrumentedAttribute,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
)
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

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
        self._kept: list[Any] = []  # raw connections the delivery recorder keeps checked out
        self._on_dispose: list[Callable[[], None]] = []

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

    def kept_ingest_connection(self) -> Any:
        """A raw DBAPI connection of ``ingest_engine`` that its taker keeps checked out (the
        delivery recorder's); ``dispose`` closes it. Left to the garbage collector, such a
        connection went back to a pool nobody used any more and stayed open on the server."""
        connection = self.ingest_engine.raw_connection()
        self._kept = [kept for kept in self._kept if kept.is_valid] + [connection]
        return connection

    def on_dispose(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` at the start of the next ``dispose``, while the pool still
        works: a background writer for this database (the metrics buffer) writes what it
        holds and stops. Left running, it opened a new connection on the engine after
        ``dispose``, which stayed open on the server until the garbage collector came."""
        self._on_dispose.append(callback)

    def dispose(self) -> None:
        """Close every connection of this database, its background writers stopped first."""
        callbacks, self._on_dispose = self._on_dispose, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # letting go must not fail: what was not written is lost
                log.warning("a dispose callback failed", exc_info=True)
        kept, self._kept = self._kept, []
        for connection in kept:
            try:
                connection.invalidate()  # closes the DBAPI connection
            except Exception:  # already closed by the server: nothing to let go
                log.debug("closing a kept ingest connection failed", exc_info=True)
        if self._ingest_engine is not None and self._ingest_engine.pool is not self.engine.pool:
            self._ingest_engine.dispose()
        self.engine.dispose()


def describe_error(exc: BaseException) -> str:
    """The first line of what the driver said: no SQL, no parameters, no documentation link,
    so an operator's command ends with one line that names the problem."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


# --- row leases --------------------------------------------------------------------------


@dataclass(frozen=True)
class RowLease:
    """The lease columns of one table, and the three statements that take, renew and
    release a lease on its rows.

    Each is a single ``UPDATE ... WHERE <row> AND <lease free | owner matches>``, so two
    processes never both hold a row, on SQLite (one writer at a time) as on PostgreSQL (the
    second UPDATE waits for the first's row lock, then re-checks the WHERE and matches
    nothing). Each returns how many rows it changed: ``1`` means held (renewed, released),
    ``0`` that someone else holds it (or the row is gone). The caller owns the transaction.
    """

    #: When the lease runs out (NULL: free).
    until: InstrumentedAttribute[Any]
    #: Who holds it: a random token per holder, so only the holder renews or releases it.
    #: None for tables whose rows are leased by their status instead (jobs).
    owner: InstrumentedAttribute[Any] | None = None

    def free(self, now: dt.datetime) -> ColumnElement[bool]:
        """The default condition for taking a row: no lease, or one that ran out."""
        return or_(self.until.is_(None), self.until < now)

    def take(
        self,
        session: Session,
        *where: ColumnElement[bool],
        ttl: dt.timedelta,
        owner: str | None = None,
        free: ColumnElement[bool] | None = None,
        values: Mapping[Any, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Lease the rows matching ``where`` that are ``free`` (default: `free`) for ``ttl``,
        writing ``values`` in the same statement (a job's status, its attempt count)."""
        now = now or utcnow()
        condition = self.free(now) if free is None else free
        return self._update(session, [*where, condition], self._held(now + ttl, owner), values)

    def renew(
        self,
        session: Session,
        *where: ColumnElement[bool],
        ttl: dt.timedelta,
        owner: str | None = None,
        values: Mapping[Any, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Push the lease of ``owner`` (when the table has owners) ``ttl`` into the future."""
        until = (now or utcnow()) + ttl
        return self._update(session, [*where, *self._owned(owner)], {self.until: until}, values)

    def release(
        self,
        session: Session,
        *where: ColumnElement[bool],
        owner: str | None = None,
        values: Mapping[Any, Any] | None = None,
    ) -> int:
        """Give the rows back (free at once), if ``owner`` still holds them."""
        return self._update(session, [*where, *self._owned(owner)], self._held(None, None), values)

    @contextmanager
    def holding(
        self,
        database: Database,
        *where: ColumnElement[bool],
        ttl: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> Iterator[bool]:
        """Take the lease in its own transaction, yield whether it was taken, and release it
        after the block (if taken): for short work done by one process at a time. A holder
        that dies leaves the lease to run out after ``ttl``."""
        owner = new_lease_owner()
        with database.session() as session:
            held = self.take(session, *where, ttl=ttl, owner=owner, now=now) == 1
        try:
            yield held
        finally:
            if held:
                with database.session() as session:
                    self.release(session, *where, owner=owner)

    def _held(self, until: dt.datetime | None, owner: str | None) -> dict[Any, Any]:
        held: dict[Any, Any] = {self.until: until}
        if self.owner is not None:
            held[self.owner] = owner
        return held

    def _owned(self, owner: str | None) -> list[ColumnElement[bool]]:
        if self.owner is None:
            return []
        if owner is None:
            raise ValueError("this lease has owners: say whose lease it is")
        return [self.owner == owner]

    def _update(
        self,
        session: Session,
        where: list[ColumnElement[bool]],
        lease_values: dict[Any, Any],
        values: Mapping[Any, Any] | None,
    ) -> int:
        statement = (
            update(self.until.class_).where(*where).values({**lease_values, **(values or {})})
        )
        return int(getattr(session.execute(statement), "rowcount", 0) or 0)


def new_lease_owner() -> str:
    """A holder's token: random, so two processes (or two threads) never share one."""
    return secrets.token_hex(8)


class NamedLease(Base):
    """A lease on work that has no row of its own (the reconciler's turn, the purge): one
    row per name, held by one process until ``expires_at``."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # NULL: free


NAMED_LEASE = RowLease(NamedLease.expires_at, NamedLease.owner)


def take_named_lease(
    database: Database, name: str, ttl: dt.timedelta, *, owner: str | None = None
) -> bool:
    """True when this caller now holds ``name`` for ``ttl``; False while another holds it.
    The row is created on first use; two processes creating it together both try the
    INSERT, and the loser's unique violation means the winner holds it."""
    owner = owner or new_lease_owner()
    with database.session() as session:
        if NAMED_LEASE.take(session, NamedLease.name == name, ttl=ttl, owner=owner) == 1:
            return True
        if session.get(NamedLease, name) is not None:
            return False
    try:
        with database.session() as session:
            session.add(NamedLease(name=name, owner=owner, expires_at=utcnow() + ttl))
    except IntegrityError:
        return False
    return True
