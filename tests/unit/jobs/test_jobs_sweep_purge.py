"""The sweeper hands an expired job out once per lease (not every minute), and the periodic
purge deletes what nobody needs any more: dead web sessions, jobs finished over a week ago."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import func, select

from undersign.auth.models import WebSession
from undersign.config import ConfigError, load_settings
from undersign.db import Database, utcnow
from undersign.github.pacing import WritePacer
from undersign.jobs.models import Job
from undersign.jobs.queue import JobQueue
from undersign.jobs.runner import periodic_purge, purge, sweep
from undersign.runtime import job_handlers


def add_job(database: Database, status: str, **values: object) -> int:
    now = utcnow()
    with database.session() as session:
        job = Job(
            kind="evaluate",
            payload={"repo": "o/r", "number": 1},
            status=status,
            attempts=1,
            created_at=now,
            updated_at=now,
            lease_until=values.pop("lease_until", now),
            **values,
        )
        session.add(job)
        session.flush()
        return job.id


def test_sweep_hands_an_expired_job_out_once_per_lease(queue: JobQueue, database: Database) -> None:
    past = utcnow() - dt.timedelta(seconds=5)
    queued = add_job(database, "queued", lease_until=past)
    dead = add_job(database, "running", lease_until=past)  # its worker died
    alive = add_job(database, "running", lease_until=utcnow() + dt.timedelta(seconds=60))
    assert sweep(queue) == 2
    assert queue.huey.pending_count() == 2
    # The next minute's sweep: both were just handed out under a fresh lease.
    assert sweep(queue) == 0
    assert queue.huey.pending_count() == 2
    with database.session() as session:
        rows = {job.id: job for job in session.scalars(select(Job))}
    for job_id in (queued, dead):
        assert rows[job_id].status == "queued"  # the claim takes it whatever its lease
        assert rows[job_id].lease_until > utcnow() + dt.timedelta(seconds=50)
    assert rows[alive].status == "running"
    # Once that lease too runs out unclaimed, they are handed out again.
    with database.session() as session:
        for job_id in (queued, dead):
            session.get(Job, job_id).lease_until = past  # type: ignore[union-attr]
    assert sweep(queue) == 2


def add_session(database: Database, key: str, *, expires: float, seen: float) -> None:
    now = utcnow()
    with database.session() as session:
        session.add(
            WebSession(
                id_hash=key.ljust(64, "0"),
                data={"github_id": 1},
                created_at=now - dt.timedelta(hours=2),
                last_seen_at=now + dt.timedelta(seconds=seen),
                expires_at=now + dt.timedelta(seconds=expires),
            )
        )


def test_purge_deletes_dead_sessions_and_week_old_finished_jobs(
    queue: JobQueue, database: Database
) -> None:
    add_session(database, "live", expires=3600, seen=-60)
    add_session(database, "expired", expires=-1, seen=-60)
    add_session(database, "idle", expires=3600, seen=-3601)  # idle timeout is 1 h
    now = utcnow()
    old_done = add_job(database, "done", finished_at=now - dt.timedelta(days=7, minutes=1))
    old_failed = add_job(database, "failed", finished_at=now - dt.timedelta(days=8))
    recent = add_job(database, "done", finished_at=now - dt.timedelta(days=6))
    unfinished = add_job(database, "queued", finished_at=None)
    ctx = queue.context()
    assert purge(ctx, batch=1) == (2, 2)  # several small batches
    with database.session() as session:
        keys = set(session.scalars(select(WebSession.id_hash)))
        jobs = set(session.scalars(select(Job.id)))
    assert keys == {"live".ljust(64, "0")}
    assert jobs == {recent, unfinished}
    assert old_done not in jobs and old_failed not in jobs


def test_job_retention_is_a_setting_of_at_least_three_days(
    queue_environment: dict[str, str], database: Database
) -> None:
    settings = load_settings(queue_environment | {"UNDERSIGN_JOB_RETENTION_DAYS": "4"})
    queue = JobQueue(settings, database, job_handlers(settings))
    try:
        now = utcnow()
        add_job(database, "done", finished_at=now - dt.timedelta(days=4, minutes=1))
        younger = add_job(database, "done", finished_at=now - dt.timedelta(days=3, hours=23))
        assert purge(queue.context()) == (0, 1)
        with database.session() as session:
            assert set(session.scalars(select(Job.id))) == {younger}
    finally:
        queue.close()
    with pytest.raises(ConfigError, match="UNDERSIGN_JOB_RETENTION_DAYS: must be at least 3"):
        load_settings(queue_environment | {"UNDERSIGN_JOB_RETENTION_DAYS": "2"})


def test_purge_is_bounded_per_run_and_once_per_interval(
    queue: JobQueue, database: Database
) -> None:
    for index in range(5):
        add_session(database, f"expired{index}", expires=-1, seen=-60)
    ctx = queue.context()
    assert purge(ctx, batch=2, batches=2) == (4, 0)  # the rest waits for the next run
    periodic_purge(queue)  # first run of the interval, across processes
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(WebSession)) == 0
    add_session(database, "expired-later", expires=-1, seen=-60)
    periodic_purge(queue)  # another worker's sweep in the same interval: not its turn
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(WebSession)) == 1


def test_pacer_beats_again_after_its_last_wait(database: Database) -> None:
    """The job checks it still owns its work once the wait is over, right before the write,
    not only before each sleep (it may have lost it during the last one)."""
    events: list[str] = []

    def sleep(seconds: float) -> None:
        events.append("sleep")
        time.sleep(seconds)

    pacer = WritePacer(
        database,
        "k",
        per_minute=1,
        per_hour=100,
        minute=0.2,
        sleep=sleep,
        on_wait=lambda: events.append("beat"),
    )
    pacer.before_request("POST")
    assert events == []  # no wait, no beat
    pacer.before_request("POST")
    assert events[0] == "beat" and "sleep" in events
    assert events[-1] == "beat"
