"""The home page and the health check."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from werkzeug.wrappers import Response

from undersign.web.context import current_user, services

bp = Blueprint("main", __name__)


@bp.get("/")
def index() -> str:
    return render_template("index.html", user=current_user())


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Alive when the app answers and its database answers."""
    if services().database.ping():
        return jsonify(status="ok"), 200
    return jsonify(status="database unavailable"), 503
