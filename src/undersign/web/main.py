"""The home page and the health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, send_from_directory
from werkzeug.wrappers import Response

from undersign.web.context import current_user, runtime

bp = Blueprint("main", __name__)


@bp.get("/")
def index() -> str:
    return render_template("index.html", user=current_user())


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers and feed readers ask for /favicon.ico whatever the page links: answer it
    rather than log a 404 on every page."""
    static = current_app.static_folder or ""
    return send_from_directory(static, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Alive when the app answers and its database answers."""
    if runtime().database.ping():
        return jsonify(status="ok"), 200
    return jsonify(status="database unavailable"), 503
