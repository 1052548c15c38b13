"""Security headers on every response, error pages included."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request, session
from werkzeug.wrappers import Response

from undersign.config import Settings


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


def install_security_headers(app: Flask, config: Settings) -> None:
    csp = content_security_policy(config)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.path.startswith("/login/callback"):
            # The callback URL carries the code and state: never leak it in a Referer.
            headers["Referrer-Policy"] = "no-referrer"
        else:
            headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if config.is_https:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if session.get("github_id") or request.path.startswith("/login"):
            headers["Cache-Control"] = "no-store"
        return response
