"""The WSGI app and the threaded loopback server that tests and the demo talk to."""

from __future__ import annotations

import json
import threading
import time
from types import TracebackType
from typing import Any

from flask import Flask, Response, redirect, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from undersign.emulator.api import apps as apps_api
from undersign.emulator.api import control, hooks, manifests, oauth, rest
from undersign.emulator.http import current_state
from undersign.emulator.models import RecordedRequest
from undersign.emulator.state import GitHubEmulator

_UNRECORDED = ("/_emulator", "/avatars/")


def _inject_fault() -> Response | None:
    """Answer with an injected fault (after its delay) instead of the real handler."""
    if request.path.startswith(_UNRECORDED):
        return None
    request.get_data(cache=True)  # keep the raw body for the recorder before forms parse it
    fault = current_state().take_fault(request.method, request.path)
    if fault is None:
        return None
    if fault.delay:
        time.sleep(fault.delay)  # outside the lock: other requests keep flowing
    if fault.status is None:
        return None
    body: Any = fault.body
    content_type = "application/json; charset=utf-8"
    if body is None:
        body = {"message": "Server Error", "status": str(fault.status)}
    if isinstance(body, dict | list):
        body = json.dumps(body)
    elif isinstance(body, str):
        content_type = "text/plain; charset=utf-8"
    headers = {"Content-Type": content_type, **fault.headers}
    return Response(body, status=fault.status, headers=headers)


def _record(response: Response) -> Response:
    if not request.path.startswith(_UNRECORDED):
        st = current_state()
        st.record_request(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query_string.decode("latin-1"),
                headers=dict(request.headers),
                body=request.get_data(cache=True),
                status=response.status_code,
                time=st.clock(),
            )
        )
    return response


def create_app(state: GitHubEmulator) -> Flask:
    """One Flask app for the whole host: OAuth, ``/api/v3`` REST, control API and pages."""
    app = Flask(__name__)
    app.config["EMULATOR_STATE"] = state
    state.apps.acting_installation = apps_api.request_installation
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Order matters: the fault hook runs before the REST pipeline; the recorder (registered
    # first, so run last) sees the final status, e.g. a 304 made by the REST hooks.
    app.before_request(_inject_fault)
    app.after_request(_record)
    rest.register(app)
    apps_api.register(app)  # after rest's hook: scopes installation tokens
    app.register_blueprint(hooks.bp)
    app.register_blueprint(manifests.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(control.pages)

    @app.get("/")
    def home() -> Any:
        return redirect("/_emulator/")

    return app


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: request lines carry OAuth codes, and clients may put secrets in URLs."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def version_string(self) -> str:
        return "GitHub.com"


class EmulatorServer:
    """Serve a :class:`GitHubEmulator` over HTTP in a daemon thread."""

    def __init__(self, state: GitHubEmulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.host = host
        self.port = port
        self.app = create_app(state)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/v3"

    def start(self) -> EmulatorServer:
        if self._server is not None:
            raise RuntimeError("emulator server already started")
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietRequestHandler
        )
        self.port = self._server.server_port
        self.state.base_url = self.url
        server = self._server
        self._thread = threading.Thread(
            # A short poll interval keeps stop() quick (tests start one server per test).
            target=lambda: server.serve_forever(poll_interval=0.01),
            name=f"github-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
