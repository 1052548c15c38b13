"""Anti-automation for sign-in (SECURITY.md O13, 6.A.18): a per-client-IP request budget.

Bogus callbacks cost nothing to send; each real one makes a token request that counts
against GitHub's secondary limit for this OAuth app. The count lives in the database so every
worker process shares it, keyed by ``request.remote_addr`` as ProxyFix computed it (so only
the trusted proxy depth of ``X-Forwarded-For`` counts, never a value a client chose).
"""

from __future__ import annotations

import logging
import math
import time

from flask import abort, make_response, render_template, request
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from undersign.auth.models import RateLimitWindow
from undersign.db import Database
from undersign.web.context import runtime

log = logging.getLogger(__name__)

#: Requests to /login and /login/callback per client IP per window. A person signing in makes
#: two; a whole office behind one NAT address signing in at once stays well under this.
SIGN_IN_LIMIT = 60
SIGN_IN_PERIOD = 60  # seconds


def count_hit(database: Database, key: str, period: int, now: float | None = None) -> int:
    """Count one request for ``key`` in the current fixed window; the window's total."""
    window = int(now if now is not None else time.time()) // period * period
    row = (RateLimitWindow.key == key) & (RateLimitWindow.window_start == window)
    for _ in range(2):
        try:
            with database.session() as db:
                bumped = db.execute(
                    update(RateLimitWindow).where(row).values(hits=RateLimitWindow.hits + 1)
                )
                if not bumped.rowcount:  # type: ignore[attr-defined]
                    db.add(RateLimitWindow(key=key, window_start=window, hits=1))
                    db.flush()
                    # A new window: forget finished ones, so the table stays small.
                    db.execute(delete(RateLimitWindow).where(RateLimitWindow.window_start < window))
                return int(db.scalar(select(RateLimitWindow.hits).where(row)) or 0)
        except IntegrityError:
            continue  # another process created the window first; the update finds it now
    return 0


def sign_in_rate_limit() -> None:
    """Abort with 429 and ``Retry-After`` when this client IP is over the sign-in budget."""
    key = f"sign-in:{request.remote_addr or 'unknown'}"
    try:
        hits = count_hit(runtime().database, key, SIGN_IN_PERIOD)
    except SQLAlchemyError:
        # Fail open: without the database the sign-in cannot finish anyway, and its own
        # error page says so better than a 429 would.
        log.warning("sign-in rate limit not checked: database error", exc_info=True)
        return
    if hits <= SIGN_IN_LIMIT:
        return
    retry_after = max(1, math.ceil(SIGN_IN_PERIOD - time.time() % SIGN_IN_PERIOD))
    log.info("sign-in rate limit reached for %s", key)
    page = render_template(
        "error.html",
        title="Too many sign-in attempts",
        message="Too many sign-in attempts came from your network. Wait a minute and try again.",
    )
    abort(make_response(page, 429, {"Retry-After": str(retry_after)}))
