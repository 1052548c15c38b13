"""Running the app under gunicorn, the production WSGI server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


class GunicornServer(BaseApplication):
    """gunicorn, configured from Python instead of a config file.

    The app is built inside each worker (no preload), so no database connection or thread
    crosses a fork.
    """

    def __init__(self, app_factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self.app_factory = app_factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Any:
        return self.app_factory()


def serve(
    app_factory: Callable[[], Any],
    *,
    host: str,
    port: int,
    workers: int = 2,
    threads: int = 4,
    access_log: bool = True,
    **extra: Any,
) -> None:
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": 20,
        "accesslog": "-" if access_log else None,
        # The query string may carry an OAuth code or state: log the path only.
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
        "errorlog": "-",
        # gunicorn itself trusts no X-Forwarded-* header (it would honour X-Forwarded-Proto from
        # any local process); UNDERSIGN_TRUSTED_PROXIES (ProxyFix) is the one switch (O14).
        "forwarded_allow_ips": "",
        # gunicorn 27's control socket defaults to one path per user, so a second
        # instance on the host would fight over it; undersign does not use it.
        "control_socket_disable": True,
        # Error and access logs in undersign's format, through its redaction filter.
        "logger_class": "undersign.observability.logging.GunicornLogger",
        **extra,
    }
    GunicornServer(app_factory, options).run()
