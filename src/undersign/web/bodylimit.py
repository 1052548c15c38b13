"""Chunked request bodies held to the same cap as sized ones (SECURITY.md F5, 6.B.26).

Werkzeug enforces ``MAX_CONTENT_LENGTH`` on a ``Transfer-Encoding: chunked`` body by
silently truncating it, so a form past the cap was parsed from its first megabyte and acted
on. This middleware reads such a body up to one byte past the cap and hands Flask a sized
body instead: within the cap it is parsed as usual, past it Flask answers its own 413 page.
The webhook reads its body itself (with its larger cap), so its path is left alone. Such a
body is marked (``CHUNKED``): a route with a larger cap of its own (the console's signature
import) keeps the forms' cap for it rather than parse a body cut at that cap.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

#: ``environ`` key set on a chunked body this middleware read (up to the forms' cap).
CHUNKED = "undersign.chunked_body"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SizedChunkedBodies:
    def __init__(self, app: WSGIApp, limit: int, exempt_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt_paths = exempt_paths

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if (
            chunked
            and not environ.get("CONTENT_LENGTH")
            and environ.get("PATH_INFO", "") not in self.exempt_paths
        ):
            body = read_up_to(environ["wsgi.input"], self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))  # past the cap: Flask's 413
            environ.pop("wsgi.input_terminated", None)
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # now a sized body
            environ[CHUNKED] = True
        return self.app(environ, start_response)


def read_up_to(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes: a dechunking stream's read() may return one chunk at a time."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        part = stream.read(min(remaining, 65536))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
