"""Keep the bot under GitHub's limits, across every process that shares its token.

* Content-creating requests (statuses, comments) are limited to 80 a minute and 500 an hour
  (REFERENCE.md §2.3, secondary limits). GitHub gives no way to ask how close one is, and
  "continuing while limited can get the integration banned", so the pacer counts the bot's own
  writes in ``github_write_slots`` and sleeps until a slot is free: it never exceeds.
* When GitHub does refuse (primary limit at 0, or a secondary limit with ``retry-after``),
  ``block`` records until when, and every process checks that gate before any call: no call
  before the reset (SECURITY.md §4).

The gate row of the token is updated first in each pacing transaction; that takes PostgreSQL's
row lock or SQLite's write lock, so two workers never both take the last free slot.

Depends on ``db``, ``github.models`` and ``github.errors``: pacing is about GitHub's limits,
so it lives beside the client it slows down.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from undersign.db import Database, utcnow
from undersign.github.errors import RateLimited
from undersign.github.models import RateGate, WriteSlot

log = logging.getLogger(__name__)

MIN_WAIT = 1.0
MAX_WAIT = 3600.0


def token_key(token: str) -> str:
    """What identifies a token in the database: its SHA-256, never the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class WritePacer:
    """Shared write pacing and rate-limit gate for one token."""

    def __init__(
        self,
        database: Database,
        key: str,
        *,
        per_minute: int,
        per_hour: int,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[], None] | None = None,
        minute: float = 60.0,
        hour: float = 3600.0,
    ) -> None:
        """``minute``/``hour``: the window lengths, shortened only by tests."""
        if per_minute < 1 or per_hour < 1:
            raise ValueError("write limits must be at least 1")
        self.database = database
        self.key = key
        self.per_minute = per_minute
        self.per_hour = per_hour
        self.sleep = sleep
        self.on_wait = on_wait
        self.waited = 0.0
        self.minute = minute
        self.hour = hour
        self._gates: set[str] = set()  # gate rows known to exist

    def before_request(self, method: str) -> None:
        """Client hook: refuse any call while the gate is shut; pace writes."""
        self.check_gate()
        if method in ("POST", "PATCH", "PUT", "DELETE"):
            self.acquire_write()

    def scoped_key(self, scope: str | None) -> str:
        """The gate of one narrower limit (``installation:N``: an installation's primary
        limit, which GitHub counts apart from the app's other installations)."""
        if not scope:
            return self.key
        return hashlib.sha256(f"{self.key}:{scope}".encode()).hexdigest()

    def check_gate(self, scope: str | None = None) -> None:
        """``RateLimited`` while the token's gate, or that of ``scope``, is shut."""
        with self.database.session() as session:
            gate = session.get(RateGate, self.scoped_key(scope))
            until = gate.blocked_until if gate else None
            reason = gate.reason if gate else None
        if until is not None:
            left = (until - utcnow()).total_seconds()
            if left > 0:
                raise RateLimited(reason or "rate limited", left, secondary=True, scope=scope)

    def block(self, seconds: float, reason: str, scope: str | None = None) -> float:
        """Shut the gate (of ``scope`` only, when given) for ``seconds`` (clamped to
        [1 s, 1 h]); returns the clamped wait."""
        seconds = min(max(float(seconds), MIN_WAIT), MAX_WAIT)
        until = utcnow() + dt.timedelta(seconds=seconds)
        with self.database.session() as session:
            gate = self._lock_gate(session, self.scoped_key(scope))
            if gate.blocked_until is None or gate.blocked_until < until:
                gate.blocked_until = until
                gate.reason = reason[:200]
        log.warning(
            "GitHub rate limit: no calls%s for %.0f s (%s)",
            f" for {scope}" if scope else "",
            seconds,
            reason[:200],
        )
        return seconds

    def _ensure_gate(self, key: str) -> None:
        """Create a gate row once, in its own transaction: two processes starting together
        may both try, and the loser's unique violation just means it exists."""
        if key in self._gates:
            return
        try:
            with self.database.session() as session:
                if session.get(RateGate, key) is None:
                    session.add(RateGate(token_key=key, touched_at=utcnow()))
        except IntegrityError:
            pass
        self._gates.add(key)

    def _lock_gate(self, session: Session, key: str | None = None) -> RateGate:
        key = key or self.key
        self._ensure_gate(key)
        now = utcnow()
        # UPDATE first: it takes the row lock (PostgreSQL) or the write lock (SQLite) that
        # serialises pacing decisions until this transaction ends.
        session.execute(update(RateGate).where(RateGate.token_key == key).values(touched_at=now))
        gate = session.get(RateGate, key)
        if gate is None:  # deleted behind our back: recreate it on the next attempt
            self._gates.discard(key)
            raise RuntimeError("rate gate row vanished")
        return gate

    def acquire_write(self) -> None:
        """Block until one more write stays within both windows, then record it.

        ``on_wait`` runs before each sleep and once more after the last one, so a job can
        keep its leases alive while it waits, and check it still owns its work before the
        write goes out (it may raise to stop the write)."""
        waited = False
        while True:
            wait = self._try_acquire()
            if wait <= 0:
                if waited and self.on_wait is not None:
                    self.on_wait()
                return
            waited = True
            self.waited += wait
            if self.on_wait is not None:
                self.on_wait()
            self.sleep(min(wait, 5.0))

    def _try_acquire(self) -> float:
        with self.database.session() as session:
            self._lock_gate(session)
            now = utcnow()
            minute_ago = now - dt.timedelta(seconds=self.minute)
            hour_ago = now - dt.timedelta(seconds=self.hour)
            session.execute(
                delete(WriteSlot).where(
                    WriteSlot.token_key == self.key, WriteSlot.created_at < hour_ago
                )
            )
            waits: list[float] = []
            for since, limit, window in (
                (minute_ago, self.per_minute, self.minute),
                (hour_ago, self.per_hour, self.hour),
            ):
                count = session.scalar(
                    select(func.count())
                    .select_from(WriteSlot)
                    .where(WriteSlot.token_key == self.key, WriteSlot.created_at >= since)
                )
                if (count or 0) >= limit:
                    # The slot frees when the oldest write in the window leaves it.
                    oldest = session.scalars(
                        select(WriteSlot.created_at)
                        .where(WriteSlot.token_key == self.key, WriteSlot.created_at >= since)
                        .order_by(WriteSlot.created_at)
                        .limit(1)
                        .offset((count or 0) - limit)
                    ).first()
                    freed = (oldest or now) + dt.timedelta(seconds=window)
                    waits.append(max((freed - now).total_seconds(), 0.05))
            if waits:
                return max(waits)
            session.add(WriteSlot(token_key=self.key, created_at=now))
            return 0.0
