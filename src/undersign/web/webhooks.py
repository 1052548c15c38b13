"""``POST /webhooks/github``: verify, read, record, queue, answer 202 (SECURITY.md W1-W8).

GitHub waits 10 seconds for a 2xx and never retries by itself, so this view does no GitHub
call and no evaluation: it records the delivery as a job row (the dedupe key and the durable
record in one insert) and hands it to the queue. If the database cannot take the row, it
answers 503 so the delivery shows as failed on GitHub and can be redelivered.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from undersign.github.webhooks import MalformedPayload, parse_delivery, verify_signature
from undersign.jobs.models import Job
from undersign.jobs.queue import get_queue, new_job, requeue_failed
from undersign.web import csrf
from undersign.web.bodylimit import read_up_to
from undersign.web.context import services

log = logging.getLogger(__name__)

#: GitHub sends nothing over 25 MB ("payloads are capped at 25 MB").
MAX_BODY = 25 * 1024 * 1024
_HEADER_VALUE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _answer(status: int, message: str, **extra: object) -> Response:
    response = jsonify({"message": message, **extra})
    response.status_code = status
    return response


def _read_body() -> bytes | None:
    """The raw body, or None when it is over the cap.

    Werkzeug silently truncates a chunked body at ``max_content_length`` (SECURITY.md F5), so
    read one byte more than allowed and refuse if it is there.
    """
    request.max_content_length = MAX_BODY + 1
    # One read() of a dechunking stream may return a single chunk: read until EOF or the cap.
    body = read_up_to(request.stream, MAX_BODY + 1)
    return None if len(body) > MAX_BODY else body


def _hook_key() -> str | None:
    """Which hook (or app installation target) sent this: part of the dedupe key, because the
    delivery GUID is shared by every hook receiving the same event (github/docs#32822)."""
    hook_id = request.headers.get("X-GitHub-Hook-ID")
    if hook_id:
        return hook_id if _HEADER_VALUE.fullmatch(hook_id) else None
    target_type = request.headers.get("X-GitHub-Hook-Installation-Target-Type", "")
    target_id = request.headers.get("X-GitHub-Hook-Installation-Target-ID", "")
    key = f"{target_type}:{target_id}"
    return key if target_type and target_id and _HEADER_VALUE.fullmatch(key) else None


@csrf.exempt
def receive() -> Response:
    body = _read_body()
    if body is None:
        return _answer(413, "the body is over 25 MB")
    settings = services().settings
    secrets = [s for s in (settings.webhook_secret, settings.webhook_secret_previous) if s]
    if not secrets:
        log.error("webhook refused: UNDERSIGN_WEBHOOK_SECRET is not set")
    signatures = request.headers.getlist("X-Hub-Signature-256")
    if len(signatures) != 1 or not verify_signature(secrets, body, signatures[0]):
        return _answer(401, "invalid or missing X-Hub-Signature-256")

    event_name = request.headers.get("X-GitHub-Event")
    try:
        event = parse_delivery(
            event_name,
            body,
            request.headers.get("Content-Type"),
            app_events=settings.app_mode,  # token mode has no installations nor check runs
        )
    except MalformedPayload as exc:
        return _answer(400, f"malformed payload: {exc.reason}")
    if event.kind == "ping":
        return _answer(200, "pong")
    if not event.relevant:
        log.info("webhook %s ignored: %s", event_name, event.ignored_because)
        return _answer(202, f"ignored: {event.ignored_because}")

    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    hook_key = _hook_key()
    if not _HEADER_VALUE.fullmatch(delivery_id) or hook_key is None:
        return _answer(400, "malformed payload: X-GitHub-Delivery or X-GitHub-Hook-ID is missing")

    database = services().database
    try:
        with database.session() as session:
            existing = session.scalar(
                select(Job.id).where(Job.hook_id == hook_key, Job.delivery_id == delivery_id)
            )
            if existing is not None:
                if not requeue_failed(session, existing, lease=settings.job_lease):
                    return _answer(
                        202, "duplicate: this delivery is already recorded", job=existing
                    )
                # GitHub's "Redeliver" keeps the GUID: an operator re-drives a job that gave up.
                job_id, message = existing, "requeued"
            else:
                message = "queued"
                job_id = new_job(
                    session,
                    "delivery",
                    event.to_json(),
                    lease=settings.job_lease,
                    hook_id=hook_key,
                    delivery_id=delivery_id,
                    event_name=event.kind,
                ).id
    except IntegrityError:
        # The same delivery arrived twice at once; the other request recorded it.
        return _answer(202, "duplicate: this delivery is already recorded")
    except SQLAlchemyError:
        log.exception("webhook %s could not be recorded", delivery_id)
        return _answer(503, "cannot record the delivery now; redeliver it later")

    # The row is committed: from here on the delivery will be processed even if this
    # process dies (the sweeper re-enqueues rows nobody picked up).
    get_queue(settings, database).enqueue_quietly([job_id])
    return _answer(202, message, job=job_id)


def register(app: Flask) -> None:
    app.add_url_rule("/webhooks/github", "webhooks.github", receive, methods=["POST"])
