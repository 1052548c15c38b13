"""Two `undersign serve` and two `undersign worker` processes sharing PostgreSQL and Redis:
the deployment of issue 5, as real processes. Nothing may depend on in-process state.

The database is a fresh PostgreSQL schema migrated by `undersign db upgrade`; the queue is a
Redis queue with a name of this test's own; the GitHub emulator runs in the test process.
"""

from __future__ import annotations

import html
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import func, select
from tests.conftest import AGREEMENT_SLUG, BOT_LOGIN, CLIENT_ID, CLIENT_SECRET, redis_test_url
from tests.support.databases import throwaway_schema
from tests.support.processes import (
    Process,
    clean_env,
    free_port,
    run,
    start,
    start_serve,
    wait_ready,
)
from tests.support.redis_leaks import named_url

from undersign.agreements.service import AgreementService
from undersign.db import Database
from undersign.emulator import EmulatorServer
from undersign.jobs.models import Job

REPO = "octo-org/widgets"
WEBHOOK_SECRET = "many-processes-webhook-secret"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with throwaway_schema(prefix="mp") as url:
        yield url


@pytest.fixture
def queue_name() -> Iterator[str]:
    from huey import RedisHuey

    name = f"undersign-mp-{uuid.uuid4().hex[:12]}"
    yield name
    huey = RedisHuey(name, url=redis_test_url())
    huey.flush()  # leave no keys behind on the shared Redis
    huey.storage.close()


@pytest.fixture
def cluster(
    tmp_path: Path, emulator: EmulatorServer, pg_url: str, queue_name: str
) -> Iterator[dict[str, Any]]:
    state = emulator.state
    state.add_user(BOT_LOGIN, name="undersign", email="bot@undersign.invalid")
    state.add_org("octo-org", members=[])
    state.add_repo(REPO)
    state.add_collaborator(REPO, BOT_LOGIN, "write")
    port_a, port_b = free_port(), free_port()
    base = f"http://127.0.0.1:{port_a}"  # what a load balancer's public URL would be
    env = clean_env(
        UNDERSIGN_ENV="test",
        UNDERSIGN_BASE_URL=base,
        UNDERSIGN_SECRET_KEY="many-processes-secret-key-0123456789-abcdef",
        UNDERSIGN_DATABASE_URL=pg_url,
        UNDERSIGN_QUEUE_URL=named_url(redis_test_url()),  # the leak guard knows their clients
        UNDERSIGN_QUEUE_NAME=queue_name,
        UNDERSIGN_GITHUB_URL=emulator.url,
        UNDERSIGN_GITHUB_API_URL=emulator.api_url,
        UNDERSIGN_GITHUB_CLIENT_ID=CLIENT_ID,
        UNDERSIGN_GITHUB_CLIENT_SECRET=CLIENT_SECRET,
        UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT_LOGIN),
        UNDERSIGN_WEBHOOK_SECRET=WEBHOOK_SECRET,
        UNDERSIGN_JOB_RETRY_BASE_MS="50",
        UNDERSIGN_RECONCILE_INTERVAL="0",
    )
    state.add_oauth_client(CLIENT_ID, CLIENT_SECRET, [f"{base}/login/callback"])
    run(["db", "upgrade"], env)
    database = Database(pg_url)
    with database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update(AGREEMENT_SLUG, "Individual CLA", "You agree to license it.")
        agreements.link_org("octo-org", AGREEMENT_SLUG)

    processes: list[Process] = []
    try:
        web_a = start_serve(env, tmp_path / "a.log", port=port_a)
        web_b = start_serve(env, tmp_path / "b.log", port=port_b)
        processes += [web_a, web_b]
        for n in (1, 2):
            processes.append(start(["worker", "--workers", "2"], env, tmp_path / f"w{n}.log"))
        wait_ready(web_a)
        wait_ready(web_b)
        yield {"a": web_a, "b": web_b, "state": state, "database": database, "env": env}
    finally:
        for process in processes:
            process.stop()
        database.dispose()


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_idle(database: Database) -> None:
    def idle() -> bool:
        with database.session() as session:
            busy = session.scalar(
                select(func.count()).select_from(Job).where(Job.status.in_(("queued", "running")))
            )
        return busy == 0

    wait_for(idle, "the queue to drain")


def on(url: str, other: str) -> str:
    """``url`` sent to instance ``other`` instead (what a load balancer may do)."""
    parts, target = urlsplit(url), urlsplit(other)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def deliver(state: Any, web: Process, event: str, payload: Any, **kwargs: Any) -> tuple[int, str]:
    return state.deliver_webhook(
        f"{web.url}/webhooks/github", event, payload, secret=WEBHOOK_SECRET, **kwargs
    )


def ours(state: Any, sha: str) -> list[dict[str, Any]]:
    return [s for s in state.statuses(REPO, sha) if s["context"] == "license/cla"]


def bot_comments(state: Any, number: int) -> list[dict[str, Any]]:
    return [c for c in state.comments(REPO, number) if c["user"]["login"] == BOT_LOGIN]


def test_two_web_and_two_worker_processes_share_everything(cluster: dict[str, Any]) -> None:
    a, b, state, database = cluster["a"], cluster["b"], cluster["state"], cluster["database"]

    # 1. A pull request by alice, delivered through A: red.
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    status, _ = deliver(
        state, a, "pull_request", state.pull_request_event(REPO, pr["number"], "opened")
    )
    assert status == 202
    sha = state.pull_request(REPO, pr["number"])["head"]["sha"]
    wait_for(lambda: bool(ours(state, sha)), "alice's status")
    assert ours(state, sha)[0]["state"] == "failure"

    # 2. The same delivery sent to A and B at once: recorded and processed once.
    pr2 = state.add_pull_request(REPO, user_login="carol", n_commits=1)
    payload = state.pull_request_event(REPO, pr2["number"], "opened")
    guid = str(uuid.uuid4())
    answers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda web=web: answers.append(
                deliver(state, web, "pull_request", payload, delivery_id=guid, hook_id=77)[0]
            )
        )
        for web in (a, b, a, b)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202, 202, 202, 202]
    sha2 = state.pull_request(REPO, pr2["number"])["head"]["sha"]
    wait_idle(database)
    with database.session() as session:
        rows = session.scalar(select(func.count()).select_from(Job).where(Job.delivery_id == guid))
    assert rows == 1
    assert len(ours(state, sha2)) == 1
    assert len(bot_comments(state, pr2["number"])) == 1

    # 3. A burst of pushes on one pull request, deliveries spread over both instances.
    pr3 = state.add_pull_request(REPO, user_login="bob", n_commits=1)
    for i in range(6):
        if i:
            state.push_commits(REPO, pr3["number"], n_commits=1)
        action = "opened" if i == 0 else "synchronize"
        event = state.pull_request_event(REPO, pr3["number"], action)
        assert deliver(state, (a, b)[i % 2], "pull_request", event)[0] == 202
    wait_idle(database)
    head3 = state.pull_request(REPO, pr3["number"])["head"]["sha"]
    assert ours(state, head3) and ours(state, head3)[0]["state"] == "failure"
    assert len(bot_comments(state, pr3["number"])) == 1

    # 4. alice signs in on A (the OAuth callback lands on B), then signs on B.
    with httpx.Client(timeout=10) as client:
        state.auto_approve_as = "alice"
        to_github = client.get(f"{a.url}/login", params={"next": f"/sign/{AGREEMENT_SLUG}"})
        assert to_github.status_code == 302
        back = client.get(to_github.headers["location"])
        landed = client.get(on(back.headers["location"], b.url))
        assert landed.status_code == 302, landed.text
        page = client.get(f"{b.url}/sign/{AGREEMENT_SLUG}")
        assert page.status_code == 200
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        form = {k: html.unescape(v) for k, v in fields.items()}
        form.update({"name": "Alice Example", "email": "alice@example.org", "agree": "yes"})
        signed = client.post(f"{b.url}/sign/{AGREEMENT_SLUG}", data=form)
        assert signed.status_code == 303, signed.text
        # The session made on B is the one A sees too.
        assert "alice" in client.get(f"{a.url}/").text.lower()

    # The pull request delivered through A turns green.
    wait_for(lambda: ours(state, sha)[0]["state"] == "success", "alice's PR to turn green")
    wait_idle(database)
    assert all(not proc.popen.poll() for proc in (a, b))
