"""The baseline of the ingest benchmark: a minimal WSGI endpoint served by undersign's own
gunicorn configuration (``undersign.serving.serve``: same worker class, workers, threads,
access log, timeouts). It reads the body like the webhook view does and answers 202.

``python -m bench.hello --port P --workers 2 --threads 4``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from undersign.serving import serve

BODY = b'{"message": "queued"}'


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    while stream.read(65536):
        pass
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status": "ok"}']
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    start_response("202 Accepted", headers)
    return [BODY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    serve(
        lambda: hello, host="127.0.0.1", port=args.port, workers=args.workers, threads=args.threads
    )


if __name__ == "__main__":
    main()
