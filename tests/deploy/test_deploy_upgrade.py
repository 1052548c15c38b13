"""`undersign db upgrade` from several processes at once (the undersign-migrate unit of every
machine runs it at boot, and machines start together): one migrates, the others wait for it
and find nothing to do."""

from __future__ import annotations

import multiprocessing
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from tests.support.processes import UNDERSIGN, clean_env

from undersign.migrations import head_revision, upgrade

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
RUNS = 3  # processes at once


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database (not just a schema: the issue's failure was on the type of
    ``alembic_version`` in ``public``), dropped afterwards."""
    name = f"deploy_upgrade_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _upgrade_after(barrier: Any, url: str, results: Any) -> None:
    """In a child process: everything imported, then all children migrate at one instant."""
    barrier.wait(timeout=60)
    try:
        upgrade(url)
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}"[:500])


def _migrate_at_the_same_instant(url: str) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(RUNS), context.Queue()
    procs = [
        context.Process(target=_upgrade_after, args=(barrier, url, results)) for _ in range(RUNS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    return outcomes


def _upgrade_at_once(url: str, tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    env = clean_env(
        UNDERSIGN_ENV="development",
        UNDERSIGN_INSTANCE_PATH=str(tmp_path),
        UNDERSIGN_DATABASE_URL=url,
    )
    procs = [
        subprocess.Popen(
            [UNDERSIGN, "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RUNS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _assert_all_migrated(results: list[subprocess.CompletedProcess[str]], url: str) -> None:
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "database is up to date" in result.stdout
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == (
                head_revision()
            )
            assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_db_upgrade_from_three_processes_at_once_on_a_fresh_postgresql_database(
    fresh_postgres_database: str, tmp_path: Path
) -> None:
    results = _upgrade_at_once(fresh_postgres_database, tmp_path)
    _assert_all_migrated(results, fresh_postgres_database)


@pytest.mark.postgres
def test_migrations_started_at_the_same_instant_on_postgresql(
    fresh_postgres_database: str,
) -> None:
    """The command's start-up spreads processes over a second or so; here they meet at a
    barrier first, so without the lock they really collide (UniqueViolation on the type of
    ``alembic_version``, or tables that already exist)."""
    assert _migrate_at_the_same_instant(fresh_postgres_database) == ["ok"] * RUNS
    _assert_all_migrated([], fresh_postgres_database)


def test_db_upgrade_from_three_processes_at_once_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    results = _upgrade_at_once(url, tmp_path)
    _assert_all_migrated(results, url)
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    assert _migrate_at_the_same_instant(other) == ["ok"] * RUNS
    _assert_all_migrated([], other)
