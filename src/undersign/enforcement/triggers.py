"""What makes undersign look at pull requests again, besides webhooks: signatures changing."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from undersign.config import Settings
from undersign.jobs.queue import enqueue_after_commit, get_queue, new_job


def on_signature_change(settings: Settings, session: Session) -> Callable[[int, str], None]:
    """The ``SignatureService(session, on_change=...)`` callback.

    The job row is added to ``session``, so it commits together with the signature (or not at
    all), and Huey hears of it only after that commit: a worker never evaluates before the
    signature is visible, and a crash right after the commit is healed by the sweeper. The
    job then re-evaluates every open pull request the person contributed to (signed: they may
    now pass; revoked: they must fail again).
    """
    queue = get_queue(settings)

    def changed(github_id: int, event: str) -> None:
        job = new_job(
            session,
            "person",
            {"github_id": int(github_id), "event": event},
            lease=settings.job_lease,
        )
        enqueue_after_commit(session, queue, [job.id])

    return changed
