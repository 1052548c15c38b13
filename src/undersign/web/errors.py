"""Friendly error pages: a clear message and the right 4xx, never a traceback."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError) -> tuple[str, int]:
        return (
            render_template(
                "error.html",
                title="Form expired",
                message="This form was too old or not sent from this site. Go back, reload "
                "the page and try again.",
            ),
            400,
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> tuple[str, int]:
        code = error.code or 500
        return (
            render_template("error.html", title=f"{code} {error.name}", message=error.description),
            code,
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[str, int]:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", incident, request.method, request.path)
        return (
            render_template(
                "error.html",
                title="Something went wrong",
                message=f"An unexpected error happened (reference {incident}).",
            ),
            500,
        )
