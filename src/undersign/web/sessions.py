"""Flask sessions kept in the database, so logout and expiry are real.

The cookie carries only a random id (256 bits); the table keeps its SHA-256, so a read of
the table does not hand out live cookies. A replayed cookie after logout finds no row and
is anonymous. Rows are written only when a session holds data, so anonymous page views
cost no write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete
from werkzeug.datastructures import CallbackDict

from undersign.auth.models import WebSession
from undersign.db import Database, utcnow

TOUCH_INTERVAL = dt.timedelta(seconds=60)


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """A dict that remembers whether it changed, plus its server-side id."""

    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def on_update(_self: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        self.rotate_requested = False
        self.created_at: dt.datetime | None = None
        self.last_seen_at: dt.datetime | None = None

    def regenerate(self) -> None:
        """Issue a new id at privilege change (sign-in), ending the old one (fixation)."""
        self.rotate_requested = True
        self.modified = True

    def destroy(self) -> None:
        """Forget everything: the server row goes, the old cookie becomes worthless."""
        self.clear()
        self.rotate_requested = True
        self.modified = True


class DatabaseSessionInterface(SessionInterface):
    def __init__(self, database: Database, *, lifetime: int, idle_timeout: int) -> None:
        self.database = database
        self.lifetime = dt.timedelta(seconds=lifetime)
        self.idle_timeout = dt.timedelta(seconds=idle_timeout)

    def get_cookie_name(self, app: Flask) -> str:
        # The __Host- prefix makes browsers insist on Secure, Path=/ and no Domain.
        return "__Host-undersign" if app.config["SESSION_COOKIE_SECURE"] else "undersign_session"

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid or len(sid) > 100 or not sid.isascii():  # ours are base64url; others: none
            return ServerSession()
        now = utcnow()
        with self.database.session() as db:
            row = db.get(WebSession, _hash(sid))
            if row is None:
                return ServerSession()
            if row.expires_at <= now or row.last_seen_at + self.idle_timeout <= now:
                db.delete(row)
                return ServerSession()
            result = ServerSession(dict(row.data), sid=sid)
            result.created_at = row.created_at
            result.last_seen_at = row.last_seen_at
            return result

    def save_session(  # type: ignore[override]
        self, app: Flask, session: ServerSession, response: Response
    ) -> None:
        name = self.get_cookie_name(app)
        secure = bool(app.config["SESSION_COOKIE_SECURE"])
        response.vary.add("Cookie")
        now = utcnow()
        old_sid = session.sid
        if session.rotate_requested and old_sid:
            self._delete(old_sid)
            session.sid = None
        if not session:
            if old_sid and not session.rotate_requested:
                self._delete(old_sid)
            if old_sid:
                response.delete_cookie(name, path="/", secure=secure, samesite="Lax")
            return
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
            created = now
            with self.database.session() as db:
                db.add(
                    WebSession(
                        id_hash=_hash(session.sid),
                        data=dict(session),
                        github_id=session.get("github_id"),
                        created_at=created,
                        last_seen_at=now,
                        expires_at=created + self.lifetime,
                    )
                )
            response.set_cookie(
                name, session.sid, httponly=True, secure=secure, samesite="Lax", path="/"
            )
            return
        stale = session.last_seen_at is None or now - session.last_seen_at > TOUCH_INTERVAL
        if session.modified or stale:
            with self.database.session() as db:
                row = db.get(WebSession, _hash(session.sid))
                if row is None:  # ended elsewhere (logout in another tab) while we ran
                    return
                row.data = dict(session)
                row.github_id = session.get("github_id")
                row.last_seen_at = now

    def _delete(self, sid: str) -> None:
        with self.database.session() as db:
            db.execute(delete(WebSession).where(WebSession.id_hash == _hash(sid)))


def end_sessions_of(database: Database, github_id: int) -> int:
    """End every session of one person (a revoked or removed account)."""
    with database.session() as db:
        result = db.execute(delete(WebSession).where(WebSession.github_id == github_id))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
