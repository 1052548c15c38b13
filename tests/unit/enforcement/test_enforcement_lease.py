"""The per pull request lease (enforcement.lease.pr_lease): one evaluation at a time, kept
alive by the job's heartbeat, lost to a newer evaluation once it runs out, and what the
evaluation gathered written only by the holder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, update

from undersign.config import load_settings
from undersign.db import Database, utcnow
from undersign.enforcement.lease import PullRequestBusy, pr_lease
from undersign.enforcement.models import PullRequestCheck, PullRequestContributor
from undersign.jobs.context import JobContext

NAME = "octo-org/widgets"


@pytest.fixture
def ctx(tmp_path: Path, database: Database) -> JobContext:
    settings = load_settings(
        {
            "UNDERSIGN_ENV": "test",
            "UNDERSIGN_INSTANCE_PATH": str(tmp_path / "instance"),
            "UNDERSIGN_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
            "UNDERSIGN_JOB_LEASE": "60",
        }
    )
    return JobContext(settings=settings, database=database)


def row(database: Database) -> PullRequestCheck:
    with database.session() as session:
        check = session.scalar(select(PullRequestCheck).where(PullRequestCheck.number == 7))
        assert check is not None
        session.expunge(check)
        return check


def expire(database: Database) -> None:
    """As if the holder stalled past its lease."""
    with database.session() as session:
        session.execute(
            update(PullRequestCheck).values(locked_until=utcnow() - dt.timedelta(seconds=1))
        )


def test_one_evaluation_at_a_time_and_its_values_written_on_release(ctx: JobContext) -> None:
    with pr_lease(ctx, NAME, 7) as held:
        assert held.snapshot.first_sighting is True
        assert row(ctx.database).lock_owner is not None
        with pytest.raises(PullRequestBusy), pr_lease(ctx, NAME, 7):
            pass
        held.values.update(
            head_sha="a" * 40, verdict="failure", contributor_ids={1: True, 2: False}
        )
    check = row(ctx.database)
    assert (check.locked_until, check.lock_owner) == (None, None)
    assert (check.head_sha, check.verdict) == ("a" * 40, "failure")
    with ctx.database.session() as session:
        columns = select(PullRequestContributor.github_id, PullRequestContributor.pending)
        pending = {int(r.github_id): bool(r.pending) for r in session.execute(columns)}
    assert pending == {1: True, 2: False}
    with pr_lease(ctx, NAME, 7) as again:
        assert again.snapshot.first_sighting is False
        assert (again.snapshot.head_sha, again.snapshot.verdict) == ("a" * 40, "failure")


def test_a_failed_evaluation_still_gives_the_pull_request_back(ctx: JobContext) -> None:
    with pytest.raises(RuntimeError), pr_lease(ctx, NAME, 7) as held:
        held.values.update(verdict="error")
        raise RuntimeError("GitHub went away")
    check = row(ctx.database)
    assert (check.lock_owner, check.verdict) == (None, "error")


def test_the_heartbeat_renews_the_lease_and_is_put_back_after(ctx: JobContext) -> None:
    beats: list[str] = []
    outer = lambda: beats.append("job")  # noqa: E731 - the job's own heartbeat
    ctx.set_heartbeat(outer)
    with pr_lease(ctx, NAME, 7):
        expire(ctx.database)
        beat = ctx.heartbeat()
        assert beat is not None and beat is not outer
        beat()  # what a pacing wait calls
        assert beats == ["job"]
        until = row(ctx.database).locked_until
        assert until is not None and until > utcnow() + dt.timedelta(seconds=50)
    assert ctx.heartbeat() is outer


def test_a_lease_lost_to_a_newer_evaluation_stops_the_older_one(ctx: JobContext) -> None:
    with pytest.raises(PullRequestBusy, match="lost its lock"), pr_lease(ctx, NAME, 7) as older:
        older.values.update(verdict="failure")
        expire(ctx.database)
        with pr_lease(ctx, NAME, 7) as newer:
            newer.values.update(verdict="success")
        older.confirm()  # before its write: it must not land over the newer verdict
    check = row(ctx.database)
    assert (check.verdict, check.lock_owner) == ("success", None)
