"""Server-side sessions.

Flask's default session is a signed cookie: after logout, a copy of the old cookie is
still valid. Keeping the session in the database (the cookie only carries a random id,
stored here as a hash) makes logout and expiry real.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from undersign.db import Base, UTCDateTime, utcnow


class WebSession(Base):
    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    github_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class RateLimitWindow(Base):
    """Requests counted per key (e.g. ``sign-in:<client ip>``) in one fixed time window.

    In the database so every web worker process shares one count (web/ratelimit.py).
    """

    __tablename__ = "rate_limit_windows"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
