"""Flask settings that must be explicit in production (Flask's defaults are unsafe)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from tests.support.databases import idle_connections

from undersign.config import load_settings
from undersign.db import Database
from undersign.web import create_app


def _app(tmp_path: Path, base_url: str) -> Flask:
    settings = load_settings(
        {
            "UNDERSIGN_ENV": "test",
            "UNDERSIGN_INSTANCE_PATH": str(tmp_path),
            "UNDERSIGN_BASE_URL": base_url,
            "UNDERSIGN_SECRET_KEY": "s" * 40,
            "UNDERSIGN_GITHUB_CLIENT_ID": "Ov23li",
            "UNDERSIGN_GITHUB_CLIENT_SECRET": "secret",
        }
    )
    return create_app(settings, database=Database(f"sqlite:///{tmp_path / 'db.sqlite3'}"))


def test_https_deployment_sets_secure_host_cookie_and_hsts(tmp_path: Path):
    from undersign.db import Base
    from undersign.migrations import load_models

    app = _app(tmp_path, "https://cla.example.org")
    load_models()
    Base.metadata.create_all(app.extensions["undersign"].database.engine)
    client = app.test_client()
    response = client.get("/login", base_url="https://cla.example.org")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-undersign=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_explicit_limits(tmp_path: Path):
    app = _app(tmp_path, "http://127.0.0.1:8000")
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.debug is False


def test_closing_the_runtime_disposes_the_database_the_app_made(tmp_path: Path) -> None:
    """An app built without a database makes its own; its runtime owns it, so closing the
    runtime closes its connections (before, nothing did: tests building such apps left
    their PostgreSQL connections open)."""
    settings = load_settings(
        {
            "UNDERSIGN_ENV": "test",
            "UNDERSIGN_INSTANCE_PATH": str(tmp_path),
            "UNDERSIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "UNDERSIGN_SECRET_KEY": "s" * 40,
        }
    )
    runtime = create_app(settings).extensions["undersign"]
    assert runtime.database.ping()
    assert idle_connections(runtime.database.engine) == 1
    runtime.close()
    assert idle_connections(runtime.database.engine) == 0
