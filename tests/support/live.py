"""The app served over real HTTP on loopback, in a thread of the test process.

Depends on Flask and werkzeug only; ``tests/conftest.py`` builds the settings and the app."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Middleware = TypeVar("Middleware", bound="WSGIApplication")


class _QuietHandler(WSGIRequestHandler):
    """The test server logs nothing: werkzeug's access log would print query strings
    (OAuth codes), which the production server (gunicorn, path-only format) never does."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class _Dispatch:
    """Lets the server bind (and learn its port) before the app that needs the URL exists."""

    def __init__(self) -> None:
        self.app: WSGIApplication | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.app is not None
        return self.app(environ, start_response)


class LiveServer:
    """A threaded werkzeug server bound to a free loopback port as soon as it is built."""

    def __init__(self) -> None:
        self._dispatch = _Dispatch()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._dispatch, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None
        self.app: Flask | None = None

    def start(self, app: Flask) -> LiveServer:
        self.app = app
        self._dispatch.app = app
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def wrap(self, middleware: Callable[[WSGIApplication], Middleware]) -> Middleware:
        """Put WSGI ``middleware`` in front of the served app (from the next request on) and
        return it, so a test can read what it saw."""
        assert self._dispatch.app is not None, "start the server first"
        wrapped = middleware(self._dispatch.app)
        self._dispatch.app = wrapped
        return wrapped

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
