"""Who the bot is, asked from GitHub by several workers at once: the first jobs of a fresh
installation (a reconcile hands out one per open pull request) all miss the cached row, all
ask ``GET /user``, and all store the answer; the losers of that race must not crash.
(Met on PostgreSQL, where each statement is a round trip: the PostgreSQL pass of
``make test`` fails without the fix; on SQLite the window between the check and the insert
is too short to hit reliably.)"""

from __future__ import annotations

import threading

from tests.conftest import BOT_LOGIN, CLAFactory

from undersign.enforcement.models import BotIdentity
from undersign.enforcement.service import bot_identity
from undersign.jobs.context import JobContext

WORKERS = 3


def test_workers_asking_who_the_bot_is_at_once_all_get_the_answer(
    cla_factory: CLAFactory,
) -> None:
    cla = cla_factory(start=False)
    # GitHub answers slowly, so every worker has missed the cached row before any stores it.
    cla.state.add_fault("GET", r"/api/v3/user$", status=None, delay=1.0, times=WORKERS)
    barrier = threading.Barrier(WORKERS)
    answers: list[tuple[str, int | None]] = []
    errors: list[Exception] = []

    def worker() -> None:
        ctx = JobContext.from_settings(cla.settings, cla.database)  # a process of its own
        barrier.wait(timeout=30)
        try:
            answers.append(bot_identity(ctx))
        except Exception as exc:  # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    bot = cla.state.user_by_login(BOT_LOGIN)
    assert bot is not None
    assert answers == [(BOT_LOGIN, bot.id)] * WORKERS
    with cla.database.session() as session:
        [row] = session.query(BotIdentity).all()
        assert (row.login, row.github_id) == (BOT_LOGIN, bot.id)
    assert len([r for r in cla.state.requests if r.path == "/api/v3/user"]) == WORKERS
