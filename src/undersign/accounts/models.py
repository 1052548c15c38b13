"""A person known to undersign, keyed by GitHub's numeric user id.

Logins can be renamed (and a freed login can be taken by someone else); the id cannot.
The login kept here is refreshed at every sign-in and is only ever used for display.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from undersign.db import Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    github_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    login: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    account_type: Mapped[str] = mapped_column(String(20), default="User")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ProvenEmail(Base):
    """An email address a person proved to be theirs: GitHub listed it as verified on their
    account when they linked it (``GET /user/emails`` with the ``user:email`` scope).

    ``address`` is case-folded and nothing else (no dot or ``+tag`` rewriting: a provider's
    aliasing rules are its own) and belongs to at most one GitHub id. ``domain`` (the part
    after the last ``@``) lets a company later cover "every address proven on its domain".
    """

    __tablename__ = "proven_emails"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    github_id: Mapped[int] = mapped_column(BigInteger, index=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    proven_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
