"""What operators and load balancers ask: ``/readyz``, ``/metrics``; and the request id.

``/healthz`` (main.py) says the process answers and its database does. ``/readyz`` adds the
queue: a web process that cannot hand jobs to workers should get no traffic. ``/metrics`` is
the Prometheus text format, computed from the shared database (see observability.metrics),
so any process gives the whole installation's numbers.

Every request gets an id: the ``X-Request-ID`` a trusted proxy sent (only when
``UNDERSIGN_TRUSTED_PROXIES`` > 0, and only if well-formed), else a new one. It is on every
log line of the request and echoed in the response.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid

from flask import Flask, Response, g, jsonify, request

from undersign.observability import metrics
from undersign.observability.logging import bind, delivery_id_of, unbind
from undersign.web.context import runtime

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
WEBHOOK_ENDPOINT = "webhooks.github"

# The outcomes of a webhook delivery (``undersign_webhook_deliveries_total``'s label).
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
IGNORED = "ignored"
INVALID_SIGNATURE = "invalid_signature"
MALFORMED = "malformed"
UNAVAILABLE = "unavailable"


def request_id_for(incoming: str, trusted_proxies: int) -> str:
    """A trusted proxy's well-formed ``X-Request-ID``, else a new one."""
    if trusted_proxies > 0 and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def _start_request() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = request_id_for(incoming, runtime().settings.trusted_proxies)
    g.request_id = request_id
    fields: dict[str, str] = {"request_id": request_id}
    delivery = delivery_id_of(request.headers.get("X-GitHub-Delivery"))
    if request.path == "/webhooks/github" and delivery:
        fields["delivery_id"] = delivery
    g.log_token = bind(**fields)


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    if request.endpoint == WEBHOOK_ENDPOINT:
        _count_webhook(response)
    return response


def _end_request(_exc: BaseException | None) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        unbind(token)


def outcome_for_status(status: int) -> str:
    """A delivery answered before the view ran (the body too large, an error): its status
    is all there is to go by."""
    if status == 401:
        return INVALID_SIGNATURE
    if status in (400, 413, 415):
        return MALFORMED
    if status >= 500:
        return UNAVAILABLE
    return ACCEPTED


def _count_webhook(response: Response) -> None:
    outcome = g.get("webhook_outcome") or outcome_for_status(response.status_code)
    event = request.headers.get("X-GitHub-Event")
    try:
        metrics.record_webhook(runtime().database, event, outcome)
    except Exception:  # counting must never fail a delivery
        log.exception("could not count a webhook delivery")


def readyz() -> tuple[Response, int]:
    """Ready when the database and the queue both answer; 503 names the one that does not."""
    svc = runtime()
    checks = {"database": svc.database.ping(), "queue": False}
    try:
        svc.queue.huey.storage.queue_size()
        checks["queue"] = True
    except Exception as exc:
        log.warning("readiness: the queue is unreachable (%s)", type(exc).__name__)
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        return jsonify(status="unavailable", failed=failed), 503
    return jsonify(status="ok"), 200


def metrics_view() -> Response:
    """Prometheus text format; ``Authorization: Bearer UNDERSIGN_METRICS_TOKEN`` if set."""
    svc = runtime()
    expected = svc.settings.metrics_token
    if expected:
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode("utf-8"), expected.encode("utf-8")
        ):
            response = jsonify(message="a bearer token is required")
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    body = svc.render_metrics()
    response = Response(body, status=200, content_type=metrics.CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask) -> None:
    # First of all before-request functions, so even a request refused early (CSRF) has an id.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
    app.add_url_rule("/readyz", "ops.readyz", readyz, methods=["GET"])
    app.add_url_rule("/metrics", "ops.metrics", metrics_view, methods=["GET"])
