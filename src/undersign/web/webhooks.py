"""``POST /webhooks/github``: verify, read, record, queue, answer 202 (SECURITY.md W1-W8).

GitHub waits 10 seconds for a 2xx and never retries by itself, so this endpoint does no
GitHub call and no evaluation: it records the delivery as a job row (the dedupe key and the
durable record in one statement) and hands it to the queue. If the database cannot take the
row, it answers 503 so the delivery shows as failed on GitHub and can be redelivered.

It is answered as plain WSGI in front of Flask (``WebhookEndpoint``): a delivery needs none of
Flask's per-request machinery (cookie session, CSRF, templates, error pages), and measured,
that machinery cost more than all the endpoint's own work (bench/RESULTS.md, section 1). The
answers carry the same security headers, request id, metrics and log context as Flask's.

Every answer names its own metric outcome (``Answer.outcome``): nobody reads it back from the
message. The trigger is stored as ``enforcement.tasks.Delivery``, the payload its handler reads.

A signature that matches no secret this process knows has the runtime read the app
registered from the setup page again (``Runtime.refresh_credentials``, at most every few
seconds) and is checked once more: a delivery signed with a new app's secret is taken without
a restart, and one that matches costs nothing more.

Depends on config (the settings), github.webhooks (verify, parse), enforcement.tasks (the
payload), jobs (the recorder, the row), observability, runtime, and web's own helpers.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wsgi import get_input_stream

from undersign.config import Settings
from undersign.enforcement.tasks import Delivery
from undersign.github.webhooks import MalformedPayload, parse_delivery, verify_signature
from undersign.jobs.models import Job
from undersign.jobs.queue import requeue_failed
from undersign.jobs.recorder import DeliveryNotRecorded, DeliveryRecorder
from undersign.observability import metrics
from undersign.observability.logging import bind, unbind
from undersign.runtime import Runtime
from undersign.web.bodylimit import read_up_to
from undersign.web.context import RUNTIME, runtime
from undersign.web.ops import (
    ACCEPTED,
    DUPLICATE,
    IGNORED,
    INVALID_SIGNATURE,
    MALFORMED,
    REQUEST_ID_HEADER,
    UNAVAILABLE,
    request_id_for,
)
from undersign.web.security import csrf, security_headers

log = logging.getLogger(__name__)

PATH = "/webhooks/github"
#: GitHub sends nothing over 25 MB ("payloads are capped at 25 MB").
MAX_BODY = 25 * 1024 * 1024
_HEADER_VALUE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
RECORDER = "undersign.delivery_recorder"

Header = Callable[[str], "str | None"]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Answer:
    """The reply, and the outcome ``/metrics`` counts it under (``web.ops``'s names)."""

    status: int
    message: str
    outcome: str
    job: int | None = None

    def body(self) -> bytes:
        """``{"message":...,"job":N}``: the message part is encoded once per message."""
        head = _message_json(self.message)
        return head + (b"}\n" if self.job is None else b',"job":%d}\n' % self.job)


@functools.lru_cache(maxsize=64)
def _message_json(message: str) -> bytes:
    """``{"message":"..."`` (the object left open for the job id)."""
    return json.dumps({"message": message}, separators=(",", ":")).encode()[:-1]


def _hook_key(header: Header) -> str | None:
    """Which hook (or app installation target) sent this: part of the dedupe key, because the
    delivery GUID is shared by every hook receiving the same event (github/docs#32822)."""
    hook_id = header("X-GitHub-Hook-ID")
    if hook_id:
        return hook_id if _HEADER_VALUE.fullmatch(hook_id) else None
    target_type = header("X-GitHub-Hook-Installation-Target-Type") or ""
    target_id = header("X-GitHub-Hook-Installation-Target-ID") or ""
    key = f"{target_type}:{target_id}"
    return key if target_type and target_id and _HEADER_VALUE.fullmatch(key) else None


def accept(svc: Runtime, recorder: DeliveryRecorder, header: Header, body: bytes | None) -> Answer:
    """Everything the endpoint decides, from the headers and the raw body (None: over the cap).
    A delivery answered 202 "queued" is committed (its queue message follows on the recorder's
    pusher thread; the sweeper re-queues a row whose message was lost with the process); one
    answered "requeued" is committed and on the queue."""
    if body is None:
        return Answer(413, "the body is over 25 MB", MALFORMED)
    settings = svc.settings
    signature = header("X-Hub-Signature-256")
    if not verify_signature(_secrets(settings), body, signature):
        # Perhaps signed with the secret of an app registered from the setup page since
        # this process read the registration: read it again (at most every few seconds, so
        # a flood of bad signatures costs the database nothing more) and check once more.
        svc.refresh_credentials()
        if svc.settings is settings or not verify_signature(
            _secrets(svc.settings), body, signature
        ):
            if not _secrets(svc.settings):
                log.error("webhook refused: UNDERSIGN_WEBHOOK_SECRET is not set")
            return Answer(401, "invalid or missing X-Hub-Signature-256", INVALID_SIGNATURE)
        settings = svc.settings

    event_name = header("X-GitHub-Event")
    try:
        event = parse_delivery(
            event_name,
            body,
            header("Content-Type"),
            app_events=settings.app_mode,  # token mode has no installations nor check runs
        )
    except MalformedPayload as exc:
        return Answer(400, f"malformed payload: {exc.reason}", MALFORMED)
    if event.kind == "ping":
        return Answer(200, "pong", ACCEPTED)
    if not event.relevant:
        log.info("webhook %s ignored: %s", event_name, event.ignored_because)
        return Answer(202, f"ignored: {event.ignored_because}", IGNORED)

    delivery_id = header("X-GitHub-Delivery") or ""
    hook_key = _hook_key(header)
    if not _HEADER_VALUE.fullmatch(delivery_id) or hook_key is None:
        return Answer(
            400, "malformed payload: X-GitHub-Delivery or X-GitHub-Hook-ID is missing", MALFORMED
        )

    database = svc.database
    try:
        job_id = recorder.record(
            Delivery.from_event(event).to_json(),
            lease=settings.job_lease,
            hook_id=hook_key,
            delivery_id=delivery_id,
            event_name=event.kind,
        )
        if job_id is None:  # recorded before (a redelivery, or the same delivery at once)
            with database.session() as session:
                existing = session.scalar(
                    select(Job.id).where(Job.hook_id == hook_key, Job.delivery_id == delivery_id)
                )
                if existing is None or not requeue_failed(
                    session, existing, lease=settings.job_lease
                ):
                    return Answer(
                        202, "duplicate: this delivery is already recorded", DUPLICATE, existing
                    )
            # GitHub's "Redeliver" keeps the GUID: an operator re-drives a job that gave up.
            svc.queue.enqueue_quietly([existing])
            return Answer(202, "requeued", ACCEPTED, existing)
    except (SQLAlchemyError, DeliveryNotRecorded):
        log.exception("webhook %s could not be recorded", delivery_id)
        return Answer(503, "cannot record the delivery now; redeliver it later", UNAVAILABLE)
    # The row is committed: from here on the delivery will be processed even if
    # this process dies (the sweeper re-enqueues rows nobody picked up).
    return Answer(202, "queued", ACCEPTED, job_id)


def _secrets(settings: Settings) -> list[str]:
    """The webhook secrets a signature may match: the current one, and the previous one
    during a rotation."""
    return [s for s in (settings.webhook_secret, settings.webhook_secret_previous) if s]


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The raw body, or None when it is over the cap.

    A chunked body has no length to check first, and Werkzeug would silently truncate it at
    ``max_content_length`` (SECURITY.md F5): read one byte more than allowed and refuse if it
    is there. A dechunking stream's read() may return a single chunk: read until EOF or cap.
    """
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        if int(length) > MAX_BODY:
            return None
        # A sized body, as GitHub sends: exactly its length from the server's stream, so
        # never into a next request (what Werkzeug's limited stream is for), in one read.
        return read_up_to(environ["wsgi.input"], int(length))
    body = read_up_to(get_input_stream(environ, safe_fallback=True), MAX_BODY + 1)
    return None if len(body) > MAX_BODY else body


class WebhookEndpoint:
    """WSGI middleware answering ``POST /webhooks/github`` itself; anything else goes on to
    Flask (which also knows the route, so other methods get its 405)."""

    def __init__(self, app: WSGIApp, svc: Runtime, recorder: DeliveryRecorder) -> None:
        self.app = app
        self.services = svc
        self.recorder = recorder
        self.headers = [
            ("Content-Type", "application/json"),
            *security_headers(svc.settings),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        settings = self.services.settings
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""), settings.trusted_proxies)
        fields = {"request_id": request_id}
        delivery = environ.get("HTTP_X_GITHUB_DELIVERY", "")
        if _HEADER_VALUE.fullmatch(delivery):
            fields["delivery_id"] = delivery
        token = bind(**fields)
        try:
            answer = self._answer(environ)
        finally:
            unbind(token)
        event = environ.get("HTTP_X_GITHUB_EVENT")
        try:
            metrics.record_webhook(self.services.database, event, answer.outcome)
        except Exception:  # counting must never fail a delivery
            log.exception("could not count a webhook delivery")
        body = answer.body()
        status = HTTPStatus(answer.status)
        start_response(
            f"{status.value} {status.phrase}",
            [
                *self.headers,
                ("Content-Length", str(len(body))),
                (REQUEST_ID_HEADER, request_id),
            ],
        )
        return [body]

    def _answer(self, environ: dict[str, Any]) -> Answer:
        def header(name: str) -> str | None:
            value = environ.get(_environ_key(name))
            return value if isinstance(value, str) else None

        try:
            return accept(self.services, self.recorder, header, _read_body(environ))
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("unhandled error %s on POST %s", incident, PATH)
            return Answer(500, f"an unexpected error happened (reference {incident})", UNAVAILABLE)


@functools.lru_cache(maxsize=64)
def _environ_key(name: str) -> str:
    """Where a request header is in a WSGI environ (``Content-Type`` has no ``HTTP_``)."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


@csrf.exempt
def receive() -> Response:
    """The route as Flask knows it. ``WebhookEndpoint`` answers every POST before Flask
    sees it; this view answers the same way for an app served without the middleware."""
    request.max_content_length = MAX_BODY + 1
    recorder = current_app.extensions[RECORDER]
    answer = accept(runtime(), recorder, request.headers.get, _read_body(request.environ))
    g.webhook_outcome = answer.outcome  # what web.ops counts
    return Response(answer.body(), status=answer.status, mimetype="application/json")


def register(app: Flask) -> None:
    svc: Runtime = app.extensions[RUNTIME]
    recorder = DeliveryRecorder(svc.database, lambda: svc.queue)
    app.extensions[RECORDER] = recorder
    app.add_url_rule(PATH, "webhooks.github", receive, methods=["POST"])
    app.wsgi_app = WebhookEndpoint(app.wsgi_app, svc, recorder)  # type: ignore[method-assign]
