"""Running undersign: the app under gunicorn (the production WSGI server), and the queue
workers beside it (``undersign worker``, or the process ``undersign serve`` starts).

Depends on config, runtime, jobs (consumer, sweep), observability.logging.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gunicorn.app.base import BaseApplication

from undersign.config import Settings
from undersign.jobs.queue import make_consumer
from undersign.jobs.runner import sweep
from undersign.observability import logging as undersign_logging
from undersign.runtime import build_runtime

log = logging.getLogger(__name__)


def configure_logging(settings: Settings) -> None:
    """JSON or text, redacted, with request and delivery ids (observability.logging)."""
    undersign_logging.configure_logging(settings, sys.stderr)


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


@contextmanager
def embedded_consumer(settings: Settings, *, enabled: bool = True) -> Iterator[None]:
    """Queue workers in a child process started (spawned, not forked) beside gunicorn.

    Not threads of the gunicorn master: gunicorn forks its web workers from the master at
    any time, and a fork copies every lock another master thread happens to hold (logging,
    metrics, database pools) into the child, locked forever: web workers that never answer.
    """
    if not enabled:
        yield
        return
    process = multiprocessing.get_context("spawn").Process(
        target=run_embedded_worker, args=(settings,), name="undersign-worker"
    )
    process.start()
    try:
        yield
    finally:
        process.terminate()  # SIGTERM: Huey finishes running jobs, then stops
        process.join(timeout=15)
        if process.is_alive():
            process.kill()
            process.join()


def run_embedded_worker(settings: Settings, workers: int = 2) -> None:
    """The body of the embedded worker process (what `undersign worker` runs)."""
    configure_logging(settings)
    queue = build_runtime(settings).queue
    try:
        sweep(queue, everything=True)
    except Exception:
        log.exception("start-up sweep failed; the periodic one retries")
    make_consumer(queue, workers=workers, embedded=False).run()
