"""Tables of the job queue.

Migration notes: ``jobs`` is unique on (hook_id, delivery_id) (NULLs are distinct on SQLite
and PostgreSQL, so jobs that are not deliveries never collide); the sweeper reads it through
the (status, lease_until) index.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from undersign.db import Base, UTCDateTime, utcnow

JOB_KINDS = ("delivery", "evaluate", "person")
JOB_STATUSES = ("queued", "running", "done", "failed")


class Job(Base):
    """One unit of work: a webhook delivery, a pull request to evaluate, or a person whose
    signature changed. Kept after it finished (dedupes redeliveries for GitHub's 3-7 days)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("hook_id", "delivery_id", name="uq_jobs_hook_id_delivery_id"),
        CheckConstraint("kind IN ('delivery', 'evaluate', 'person')", name="kind"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index("ix_jobs_status_lease_until", "status", "lease_until"),
        # The purge of finished jobs older than the redelivery window.
        Index("ix_jobs_status_finished_at", "status", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    # X-GitHub-Hook-ID (or the installation target) + X-GitHub-Delivery: the GUID alone is
    # shared by every hook that receives the same event (github/docs#32822).
    hook_id: Mapped[str | None] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str | None] = mapped_column(String(100))
    # The trigger (repository, numbers, comment...), never a whole payload.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Until then the job belongs to whoever queued or claimed it; afterwards the sweeper
    # hands it to a worker again.
    lease_until: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.status}>"
