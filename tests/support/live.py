"""The app served over real HTTP on loopback, in a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """The test server logs nothing: werkzeug's access log would print query strings
    (OAuth codes), which the production server (gunicorn, path-only format) never does."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class _Dispatch:
    """Lets the server bind (and learn its port) before the app that needs the URL exists."""

    def __init__(self) -> None:
        self.app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


class LiveServer:
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

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
