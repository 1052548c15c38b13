"""``POST /webhooks/github`` over real HTTP (SECURITY.md §3 and plan D): signature, limits,
malformed bodies, ignored events, dedupe, redelivery, durability."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from tests.conftest import CLAFactory, CLAService, Live, LiveFactory

from undersign.db import utcnow
from undersign.jobs.models import Job
from undersign.jobs.queue import start_embedded_consumer
from undersign.runtime import build_runtime
from undersign.web import create_app
from undersign.web.context import RUNTIME
from undersign.web.webhooks import RECORDER, receive

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
REPO = "octo-org/widgets"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(
    cla: CLAService,
    body: bytes,
    *,
    event: str = "pull_request",
    signature: str | bool | None = True,
    extra: dict[str, str] | None = None,
    delivery: str | None = None,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "4242",
    }
    if signature is True:
        headers["X-Hub-Signature-256"] = sign(str(cla.settings.webhook_secret), body)
    elif isinstance(signature, str):
        headers["X-Hub-Signature-256"] = signature
    headers.update(extra or {})
    with cla.live.client() as client:
        return client.post("/webhooks/github", content=body, headers=headers)


def pr_payload(cla: CLAService, login: str = "alice") -> tuple[dict[str, Any], dict[str, Any]]:
    pr = cla.state.add_pull_request(REPO, user_login=login, n_commits=1)
    payload = cla.state.pull_request_event(REPO, pr["number"], "opened")
    return pr, payload


def encoded(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.fixture
def idle(cla_factory: CLAFactory) -> CLAService:
    """The service with no consumer running: what is queued stays visible."""
    return cla_factory(start=False)


# --- signature ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "sha256=",
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        "sha256=" + "g" * 64,
        "sha256=" + "a" * 63,
    ],
    ids=["missing", "empty", "wrong", "sha1", "not-hex", "short"],
)
def test_bad_signature_is_401_and_queues_nothing(idle: CLAService, signature: str | None) -> None:
    _, payload = pr_payload(idle)
    response = post(idle, encoded(payload), signature=signature)
    assert response.status_code == 401
    assert idle.jobs() == []


def test_valid_sha1_only_signature_is_refused(idle: CLAService) -> None:
    _, payload = pr_payload(idle)
    body = encoded(payload)
    sha1 = "sha1=" + hmac.new(str(idle.settings.webhook_secret).encode(), body, "sha1").hexdigest()
    response = post(idle, body, signature=None, extra={"X-Hub-Signature": sha1})
    assert response.status_code == 401
    assert idle.jobs() == []


def test_uppercase_hex_and_reserialized_body_are_refused(idle: CLAService) -> None:
    _, payload = pr_payload(idle)
    body = encoded(payload)
    good = sign(str(idle.settings.webhook_secret), body)
    assert post(idle, body, signature="sha256=" + good[7:].upper()).status_code == 401
    # Signed over the raw bytes, sent re-serialized: must not verify.
    pretty = json.dumps(payload, indent=2).encode()
    assert post(idle, pretty, signature=good).status_code == 401
    assert idle.jobs() == []


def test_previous_secret_is_accepted_during_rotation(
    cla_factory: CLAFactory, live: Live, live_factory: LiveFactory
) -> None:
    service = cla_factory(start=False)
    rotated = live_factory(
        replace={
            "webhook_secret": "new-secret",
            "webhook_secret_previous": live.settings.webhook_secret,
        }
    )
    _, payload = pr_payload(service)
    body = encoded(payload)
    for secret in ("new-secret", str(live.settings.webhook_secret)):
        response = httpx.post(
            f"{rotated.url}/webhooks/github",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-GitHub-Hook-ID": "1",
                "X-Hub-Signature-256": sign(secret, body),
            },
        )
        assert response.status_code == 202, response.text
    response = httpx.post(
        f"{rotated.url}/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": sign("old", body)},
    )
    assert response.status_code == 401


# --- limits and malformed bodies ---------------------------------------------------------------


def test_body_over_25_mb_is_413_without_queueing(idle: CLAService) -> None:
    body = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    response = post(idle, body, signature="sha256=" + "0" * 64)
    assert response.status_code == 413
    assert idle.jobs() == []


def test_chunked_body_over_25_mb_is_refused(idle: CLAService) -> None:
    chunk = b" " * (1024 * 1024)

    def stream() -> Any:
        yield b"{"
        for _ in range(26):
            yield chunk
        yield b"}"

    with httpx.Client(timeout=30) as client:
        response = client.post(
            f"{idle.live.url}/webhooks/github",
            content=stream(),
            headers={"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "sha256=" + "0" * 64},
        )
    assert response.status_code in (401, 413)
    assert idle.jobs() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"action": "opened", "number": 1}', "repository"),
    ],
)
def test_signed_malformed_payload_is_400_saying_why(
    idle: CLAService, body: bytes, reason: str
) -> None:
    response = post(idle, body)
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert idle.jobs() == []


def test_ping_is_200(idle: CLAService) -> None:
    assert post(idle, fixture("ping__default.json"), event="ping").status_code == 200
    assert idle.jobs() == []


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("pull_request", "pull_request__closed.json"),  # recorded, but no evaluation needed
        ("issue_comment", "issue_comment__created.json"),  # on an issue, not a PR
        ("issue_comment", "issue_comment__edited.json"),
        ("check_run", "check_run__rerequested.json"),
        ("installation", "installation__created.json"),
    ],
)
def test_unused_events_and_actions_are_202_and_queue_no_evaluation(
    idle: CLAService, event: str, name: str
) -> None:
    response = post(idle, fixture(name), event=event)
    assert response.status_code == 202
    jobs = idle.jobs()
    if name == "pull_request__closed.json":
        assert [j.payload["action"] for j in jobs] == ["closed"]
    else:
        assert jobs == []
        assert "ignored" in response.json()["message"]


def test_form_encoded_delivery_is_read_like_json(idle: CLAService) -> None:
    _, payload = pr_payload(idle)
    status, _ = idle.live.emulator.state.deliver_webhook(
        idle.hook_url,
        "pull_request",
        payload,
        secret=idle.settings.webhook_secret,
        content_type="form",
    )
    assert status == 202
    assert len(idle.jobs()) == 1


# --- dedupe, redelivery, durability ------------------------------------------------------------


def test_redelivery_of_a_recorded_delivery_does_nothing_again(cla: CLAService) -> None:
    _, payload = pr_payload(cla)
    status, guid = cla.deliver("pull_request", payload)
    assert status == 202
    cla.wait_idle()
    calls = len(cla.state.api_calls())
    assert cla.state.redeliver(guid) == 202
    assert cla.state.deliveries[-1].response_body.find(b"duplicate") >= 0
    cla.wait_idle()
    assert len(cla.jobs()) == 1
    assert len(cla.state.api_calls()) == calls


def test_same_delivery_sent_concurrently_is_one_job(idle: CLAService) -> None:
    _, payload = pr_payload(idle)
    body = encoded(payload)
    guid = str(uuid.uuid4())
    answers: list[int] = []

    def send() -> None:
        answers.append(post(idle, body, delivery=guid).status_code)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * 5
    assert len(idle.jobs()) == 1


def test_same_guid_from_two_hooks_is_two_jobs(idle: CLAService) -> None:
    _, payload = pr_payload(idle)
    body = encoded(payload)
    guid = str(uuid.uuid4())
    assert post(idle, body, delivery=guid).status_code == 202
    response = post(idle, body, delivery=guid, extra={"X-GitHub-Hook-ID": "999"})
    assert response.status_code == 202
    assert len(idle.jobs()) == 2


def test_delivery_refused_while_the_database_fails_is_processed_on_redelivery(
    cla: CLAService,
) -> None:
    pr, payload = pr_payload(cla)
    with cla.database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE jobs RENAME TO jobs_offline"))
    status, guid = cla.deliver("pull_request", payload)
    assert status == 503
    with cla.database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE jobs_offline RENAME TO jobs"))
    assert cla.jobs() == []
    assert cla.state.redeliver(guid) == 202
    cla.wait_idle()
    sha = cla.state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert cla.status_state(REPO, sha) == "failure"
    assert cla.state.redeliver(guid) == 202
    assert len(cla.jobs()) == 1


def test_a_job_whose_worker_died_is_picked_up_by_the_sweeper(cla_factory: CLAFactory) -> None:
    """The durability rule: 202 was answered, the worker died mid-job (row left 'running',
    Huey's message gone); once the lease runs out the sweeper hands it to a worker again."""
    from datetime import timedelta

    from undersign.jobs.runner import sweep

    idle = cla_factory(start=False)
    pr, payload = pr_payload(idle)
    status, _ = idle.deliver("pull_request", payload)
    assert status == 202
    # The worker that took it died: Huey's queue (the live app's storage) is empty, the row
    # says running.
    idle.runtime.queue.huey.flush()
    with idle.database.session() as session:
        job = session.query(Job).one()
        job.status, job.attempts = "running", 1
        job.lease_until = utcnow() + timedelta(seconds=60)
    worker = cla_factory()
    worker_queue = worker.runtime.queue
    assert sweep(worker_queue) == 0  # still leased: maybe alive, leave it
    with idle.database.session() as session:
        session.query(Job).update({"lease_until": utcnow() - timedelta(seconds=1)})
    assert sweep(worker_queue) == 1
    worker.wait_idle()
    [job] = worker.jobs()
    assert job.status == "done"
    assert job.attempts == 2
    sha = worker.state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert worker.status_state(REPO, sha) == "failure"


def test_queued_job_never_handed_to_huey_runs_after_a_restart(cla_factory: CLAFactory) -> None:
    idle = cla_factory(start=False)
    pr, payload = pr_payload(idle)
    assert idle.deliver("pull_request", payload)[0] == 202
    idle.runtime.queue.huey.flush()  # the enqueue (to the live app's storage) was lost
    worker = cla_factory()  # start-up sweep
    worker.wait_idle()
    sha = worker.state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert worker.status(REPO, sha) is not None


@pytest.mark.redis
def test_redis_queue(live: Live, live_factory: LiveFactory, cla_repo: str) -> None:
    import redis

    url = "redis://127.0.0.1:6379/13"
    client = redis.Redis.from_url(url)
    client.flushdb()
    state = live.emulator.state
    on_redis = live_factory(
        replace={
            "queue_url": url,
            "github_token": state.issue_token("undersign-bot"),
            "job_retry_base_ms": 50,
        }
    )
    settings = on_redis.settings
    runtime = build_runtime(settings, live.database)  # its queue shares the app's Redis queue
    consumer = start_embedded_consumer(runtime.queue, workers=1)
    try:
        service = CLAService(live, settings, consumer, runtime)
        pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
        payload = state.pull_request_event(REPO, pr["number"], "opened")
        status, _ = state.deliver_webhook(
            f"{on_redis.url}/webhooks/github",
            "pull_request",
            payload,
            secret=settings.webhook_secret,
        )
        assert status == 202
        service.wait_idle()
        assert service.status_state(REPO, pr["head"]["sha"]) == "failure"
    finally:
        consumer.stop()
        runtime.close()
        client.flushdb()
        client.close()


def test_redelivery_of_a_failed_delivery_runs_it_again(cla: CLAService) -> None:
    """GitHub's "Redeliver" keeps the GUID: after the job gave up (GitHub failing), an
    operator's redelivery must re-drive it, not be answered "duplicate"."""
    pr, payload = pr_payload(cla)
    cla.state.add_fault("GET", r"/pulls/\d+/commits", status=503, times=10)
    status, guid = cla.deliver("pull_request", payload)
    assert status == 202
    cla.wait_idle()
    [job] = cla.jobs()
    assert job.status == "failed"
    sha = cla.state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert cla.status_state(REPO, sha) == "error"
    cla.state.clear_faults()
    assert cla.state.redeliver(guid) == 202
    answer = json.loads(cla.state.deliveries[-1].response_body)
    assert (answer["message"], answer["job"]) == ("requeued", job.id)
    cla.wait_idle()
    [job] = cla.jobs()
    assert (job.status, job.attempts, job.finished_at is not None) == ("done", 1, True)
    assert cla.status_state(REPO, sha) == "failure"
    # Done now: a further redelivery is a duplicate again.
    assert cla.state.redeliver(guid) == 202
    assert b"duplicate" in cla.state.deliveries[-1].response_body
    assert len(cla.jobs()) == 1


class ChunkAtATime(io.RawIOBase):
    """What a WSGI server's dechunking ``wsgi.input`` may do: each read() returns at most
    one chunk, however much was asked for."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self._pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pieces:
            return 0
        piece = self._pieces.pop(0)
        if len(piece) > len(buffer):
            piece, rest = piece[: len(buffer)], piece[len(buffer) :]
            self._pieces.insert(0, rest)
        buffer[: len(piece)] = piece
        return len(piece)


def test_chunked_delivery_read_one_chunk_at_a_time_is_read_whole(
    idle: CLAService, request: pytest.FixtureRequest
) -> None:
    """The signature is over the whole body: reading only its first chunk gave a 401."""
    from werkzeug.datastructures import Headers
    from werkzeug.test import EnvironBuilder, TestResponse, run_wsgi_app
    from werkzeug.wrappers import Request

    from undersign.web import create_app

    _, payload = pr_payload(idle)
    body = encoded(payload)
    assert len(body) > 3 * 512
    app = create_app(idle.live.settings, database=idle.database)
    request.addfinalizer(app.extensions[RUNTIME].close)
    headers = Headers(
        {
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "4242",
            "X-Hub-Signature-256": sign(str(idle.settings.webhook_secret), body),
        }
    )
    environ = EnvironBuilder(path="/webhooks/github", method="POST", headers=headers).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": ChunkAtATime(body, 512), "wsgi.input_terminated": True})
    response = TestResponse(*run_wsgi_app(app, environ), request=Request(environ))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["message"] == "queued"
    [job] = idle.jobs()
    assert job.payload["repo"] == REPO


def test_the_sweeper_does_not_hand_out_the_same_backlog_every_minute(
    cla_factory: CLAFactory,
) -> None:
    from datetime import timedelta

    from undersign.jobs.runner import sweep

    idle = cla_factory(start=False)
    for _ in range(3):
        _, payload = pr_payload(idle)
        assert idle.deliver("pull_request", payload)[0] == 202
    queue = idle.runtime.queue  # the live app's storage
    assert idle.live.app.extensions[RECORDER].flush()  # the messages went out: now lose them
    queue.huey.flush()  # the enqueues were lost
    with idle.database.session() as session:
        session.query(Job).update({"lease_until": utcnow() - timedelta(seconds=1)})
    assert sweep(queue) == 3
    assert queue.huey.pending_count() == 3
    assert sweep(queue) == 0  # a minute later, nobody has run them yet: not added again
    assert queue.huey.pending_count() == 3


def test_a_repeated_signature_header_is_refused_on_both_paths(
    idle: CLAService, request: pytest.FixtureRequest
) -> None:
    """One valid and one extra ``X-Hub-Signature-256``: refused, whether the delivery is
    answered by the WSGI front (the live server) or by the Flask view behind it. (WSGI joins
    a repeated header into one value, which no signature matches.)"""
    _, payload = pr_payload(idle)
    body = encoded(payload)
    good = sign(str(idle.settings.webhook_secret), body)
    headers = [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "pull_request"),
        ("X-GitHub-Delivery", str(uuid.uuid4())),
        ("X-GitHub-Hook-ID", "4242"),
        ("X-Hub-Signature-256", good),
        ("X-Hub-Signature-256", "sha256=" + "0" * 64),
    ]
    with idle.live.client() as client:
        assert client.post("/webhooks/github", content=body, headers=headers).status_code == 401
    app = create_app(idle.settings)  # a database of its own, which its runtime disposes
    request.addfinalizer(app.extensions[RUNTIME].close)
    with app.test_request_context("/webhooks/github", method="POST", data=body, headers=headers):
        assert receive().status_code == 401
    assert idle.jobs() == []
