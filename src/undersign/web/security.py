"""Security headers on every response, error pages included; the CSRF protection (bound to
the app by ``create_app``, exempted by the webhook view)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request, session
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

from undersign.config import Settings

csrf = CSRFProtect()


def content_security_policy(config: Settings) -> str:
    github = urlsplit(config.github_url)
    github_origin = f"{github.scheme}://{github.netloc}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: https://avatars.githubusercontent.com {github_origin}",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            # Sign-in starts with a plain link, but forms may post to GitHub in future.
            f"form-action 'self' {github_origin}",
        ]
    )


def security_headers(config: Settings) -> list[tuple[str, str]]:
    """The headers every answer carries (the webhook's plain WSGI answers included)."""
    headers = [
        ("Content-Security-Policy", content_security_policy(config)),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]
    if config.is_https:
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return headers


def install_security_headers(app: Flask, config: Settings) -> None:
    common = security_headers(config)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        for name, value in common:
            headers.setdefault(name, value)
        if request.path.startswith("/login/callback"):
            # The callback URL carries the code and state: never leak it in a Referer.
            headers["Referrer-Policy"] = "no-referrer"
        if session.get("github_id") or request.path.startswith("/login"):
            headers["Cache-Control"] = "no-store"
        return response
