"""The web layer: the app factory and its blueprints. The only package that knows HTTP.

Depends on config, db, runtime (the queue, the hooks), and the web modules below.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request, url_for
from sqlalchemy.orm import configure_mappers
from werkzeug.middleware.proxy_fix import ProxyFix

from undersign.config import Settings, load_settings
from undersign.db import Database
from undersign.migrations import load_models
from undersign.runtime import Runtime, build_runtime
from undersign.web import auth, companies, console, emails, main, ops, setup, signing, webhooks
from undersign.web.bodylimit import SizedChunkedBodies
from undersign.web.context import RUNTIME, close_db_session, current_user
from undersign.web.errors import install_error_handlers
from undersign.web.security import csrf, install_security_headers
from undersign.web.sessions import DatabaseSessionInterface

MAX_FORM_BODY = 1024 * 1024  # forms are small; the webhook route raises its own limit


def create_app(
    config: Settings | None = None,
    *,
    database: Database | None = None,
    extras: dict[str, Any] | None = None,
    runtime: Runtime | None = None,
) -> Flask:
    """Build the Flask app from settings; nothing is read from the environment elsewhere.
    ``runtime``: one already built (its settings and database win); else one is built."""
    if runtime is None:
        config = config or load_settings()
        # A database made here is the runtime's own, which its close() disposes.
        runtime = build_runtime(config, database, extras=extras)
    config, database = runtime.settings, runtime.database
    # Every model imported and the mappers configured before the first request: left to
    # the first requests, threads configuring them while others were still importing model
    # modules failed (KeyError 'PullRequestContributor'): webhooks answered 503 for a while
    # after every restart (found by bench/rolling_restart.py).
    load_models()
    configure_mappers()
    app = Flask(__name__, instance_path=config.instance_path)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_SECURE=config.is_https,
        SESSION_COOKIE_HTTPONLY=True,
        # Lax, not Strict: the top-level redirect back from GitHub must carry the cookie.
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_FORM_BODY,
        WTF_CSRF_TIME_LIMIT=3600,
        WTF_CSRF_SSL_STRICT=True,
        TEMPLATES_AUTO_RELOAD=False,
        PREFERRED_URL_SCHEME="https" if config.is_https else "http",
    )
    app.extensions[RUNTIME] = runtime
    app.session_interface = DatabaseSessionInterface(
        database, lifetime=config.session_lifetime, idle_timeout=config.session_idle_timeout
    )
    # Werkzeug truncates an over-cap chunked body instead of refusing it (SECURITY.md F5).
    app.wsgi_app = SizedChunkedBodies(  # type: ignore[method-assign]
        app.wsgi_app, MAX_FORM_BODY, exempt_paths=("/webhooks/github",)
    )
    if config.trusted_proxies:
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=0
        )
    # Before the CSRF check, which is the first to read the form: the import's larger cap.
    app.before_request(console.raise_upload_limit)
    csrf.init_app(app)
    app.teardown_appcontext(close_db_session)
    install_security_headers(app, config)
    app.context_processor(_template_helpers)
    install_error_handlers(app)

    auth.init_oauth(app, config)
    app.register_blueprint(main.bp)
    app.register_blueprint(auth.bp)
    signing.register(app)
    emails.register(app)
    companies.register(app)
    console.register(app)
    setup.register(app)
    webhooks.register(app)
    ops.register(app)
    return app


def _template_helpers() -> dict[str, Any]:
    def login_url() -> str:
        """Sign-in link that comes back to the page it was clicked on."""
        here = request.full_path.rstrip("?") if request.query_string else request.path
        return url_for("auth.login", next=here if here != "/" else None)

    return {
        "current_user": current_user,
        "login_url": login_url,
        "shows_my_companies": companies.shows_my_companies,
    }
