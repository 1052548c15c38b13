"""The one row lease (db.RowLease) and the named leases built on it: taken by one holder at a
time, renewed and released only by that holder, free again once it runs out, on SQLite and
PostgreSQL (``--db``)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from undersign.db import (
    NAMED_LEASE,
    Database,
    NamedLease,
    RowLease,
    take_named_lease,
    utcnow,
)

TTL = dt.timedelta(seconds=60)


def add_row(database: Database, name: str) -> None:
    with database.session() as session:
        session.add(NamedLease(name=name, owner=None, expires_at=utcnow() - TTL))


def holder(database: Database, name: str) -> tuple[str | None, dt.datetime | None]:
    with database.session() as session:
        row = session.get(NamedLease, name)
        assert row is not None
        return row.owner, row.expires_at


def test_one_holder_at_a_time_until_the_lease_runs_out(database: Database) -> None:
    add_row(database, "work")
    row = NamedLease.name == "work"
    with database.session() as session:
        assert NAMED_LEASE.take(session, row, ttl=TTL, owner="a") == 1
    with database.session() as session:
        assert NAMED_LEASE.take(session, row, ttl=TTL, owner="b") == 0
    assert holder(database, "work")[0] == "a"
    # Taken as if 61 s had passed: a's lease ran out, b gets it.
    later = utcnow() + dt.timedelta(seconds=61)
    with database.session() as session:
        assert NAMED_LEASE.take(session, row, ttl=TTL, owner="b", now=later) == 1
    assert holder(database, "work")[0] == "b"


def test_only_the_holder_renews_or_releases(database: Database) -> None:
    add_row(database, "work")
    row = NamedLease.name == "work"
    with database.session() as session:
        NAMED_LEASE.take(session, row, ttl=TTL, owner="a")
    _, until = holder(database, "work")
    with database.session() as session:
        assert NAMED_LEASE.renew(session, row, ttl=TTL * 2, owner="b") == 0
        assert NAMED_LEASE.release(session, row, owner="b") == 0
    assert holder(database, "work") == ("a", until)
    with database.session() as session:
        assert NAMED_LEASE.renew(session, row, ttl=TTL * 2, owner="a") == 1
    owner, renewed = holder(database, "work")
    assert until is not None and renewed is not None
    assert owner == "a" and renewed > until + dt.timedelta(seconds=30)
    with database.session() as session:
        assert NAMED_LEASE.release(session, row, owner="a") == 1
    with database.session() as session:  # free at once, without waiting for the expiry
        assert NAMED_LEASE.take(session, row, ttl=TTL, owner="b") == 1


def test_a_lease_with_owners_refuses_to_renew_for_nobody(database: Database) -> None:
    with database.session() as session, pytest.raises(ValueError, match="whose lease"):
        NAMED_LEASE.renew(session, NamedLease.name == "work", ttl=TTL)


def test_a_custom_free_condition_and_values_travel_in_the_same_update(database: Database) -> None:
    """How the job queue uses it: no owner column, its own idea of "free", and other columns
    written by the statement that takes the lease."""
    add_row(database, "a")
    add_row(database, "b")
    lease = RowLease(NamedLease.expires_at)
    with database.session() as session:
        taken = lease.take(
            session,
            NamedLease.name.in_(["a", "b"]),
            ttl=TTL,
            free=NamedLease.name == "b",
            values={NamedLease.owner: "queued"},
        )
    assert taken == 1
    assert holder(database, "a")[0] is None
    owner, until = holder(database, "b")
    assert until is not None
    assert owner == "queued" and until > utcnow() + dt.timedelta(seconds=50)


def test_holding_gives_the_lease_back_after_the_block(database: Database) -> None:
    add_row(database, "work")
    row = NamedLease.name == "work"
    with NAMED_LEASE.holding(database, row, ttl=TTL) as held:
        assert held is True
        with NAMED_LEASE.holding(database, row, ttl=TTL) as again:
            assert again is False  # the first holder still has it
        assert holder(database, "work")[0] is not None
    assert holder(database, "work")[0] is None
    with pytest.raises(RuntimeError), NAMED_LEASE.holding(database, row, ttl=TTL):
        raise RuntimeError("the work failed")
    assert holder(database, "work")[0] is None  # released on the way out of a failure too


def test_a_named_lease_is_created_on_first_use_and_held_for_its_ttl(database: Database) -> None:
    assert take_named_lease(database, "reconcile", TTL) is True
    assert take_named_lease(database, "reconcile", TTL) is False
    assert take_named_lease(database, "purge", TTL) is True  # another name, another lease
    with database.session() as session:
        lease = session.get(NamedLease, "reconcile")
        assert lease is not None
        lease.expires_at = utcnow() - TTL  # it ran out
    assert take_named_lease(database, "reconcile", TTL) is True


def test_racing_processes_take_a_named_lease_once(database: Database) -> None:
    """Eight threads (each its own connection) race for a lease nobody created yet: one
    wins, whether by the INSERT or by the UPDATE."""
    start = threading.Barrier(8)
    results: list[bool] = []

    def race() -> None:
        start.wait()
        results.append(take_named_lease(database, "race", TTL))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * 7 + [True]
    with database.session() as session:
        assert list(session.scalars(select(NamedLease.name))) == ["race"]
