"""Registering the GitHub App from ``/setup/`` takes effect without a restart: real
``undersign serve`` (two gunicorn workers) and ``undersign worker`` processes, started on a
first run with no GitHub credentials at all, act as the app registered through them.

The database (SQLite, or PostgreSQL with ``--db``) is migrated by ``undersign db upgrade``;
the queue is the instance's SQLite file, or Redis under ``UNDERSIGN_TEST_QUEUE=redis``; the
GitHub emulator runs in the test process. Every process reads the registration again at most
every ``RECHECK_INTERVAL`` seconds, and only when it needs the credentials, so the tests
wait that long after registering before a request may reach any process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from huey import RedisHuey
from tests.conftest import AGREEMENT_SLUG, queue_env_for_tests, redis_test_url
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
from tests.support.registration import start_setup, through_github

from undersign.agreements.service import AgreementService
from undersign.db import Database
from undersign.emulator import EmulatorServer
from undersign.emulator.models import Delivery
from undersign.github.registration import RECHECK_INTERVAL

ORG = "octo-org"
REPO = f"{ORG}/widgets"


@dataclass
class FirstRun:
    """A first run: serve and a worker, no GitHub credentials in their environment."""

    web: Process
    worker: Process
    emulator: EmulatorServer
    database: Database

    @property
    def state(self) -> Any:
        return self.emulator.state

    def register(self, client: httpx.Client) -> Any:
        """Register the app on ``/setup/`` as a browser does; the emulator's record of it.
        Returns once every process is due to read the registration again."""
        back = through_github(self.emulator.url, start_setup(client))
        done = client.get(back)
        assert done.status_code == 302, done.text
        registered = time.monotonic()
        [app] = [a for a in self.state.apps.apps.values() if a.slug == "acme-cla"]
        time.sleep(max(0.0, registered + RECHECK_INTERVAL - time.monotonic()))
        return app

    def install(self, app: Any) -> Delivery:
        """Install the app on the organisation from the emulator's page, as a person does;
        the ``installation`` delivery GitHub sent to undersign then."""
        with httpx.Client(base_url=self.emulator.url, timeout=10) as browser:
            done = browser.post(f"/apps/{app.slug}/installations/new", data={"account": ORG})
        assert done.status_code == 302, done.text
        [delivery] = [d for d in self.state.deliveries if d.event == "installation"]
        return delivery


@pytest.fixture
def first_run(tmp_path: Path, emulator: EmulatorServer, db_backend: str) -> Iterator[FirstRun]:
    state = emulator.state
    state.add_org(ORG, admins=["alice"])
    state.add_repo(REPO)
    with contextlib.ExitStack() as cleanup:
        if db_backend == "sqlite":
            database_url = f"sqlite:///{tmp_path / 'first-run.sqlite3'}"
        else:
            database_url = cleanup.enter_context(throwaway_schema(db_backend, prefix="live"))
        port = free_port()
        queue = queue_env_for_tests()
        if queue:
            cleanup.callback(_flush_queue, queue["UNDERSIGN_QUEUE_NAME"])
        env = clean_env(
            UNDERSIGN_ENV="development",
            UNDERSIGN_BASE_URL=f"http://127.0.0.1:{port}",
            UNDERSIGN_SECRET_KEY="first-run-secret-key-0123456789-abcdefghij",
            UNDERSIGN_INSTANCE_PATH=str(tmp_path / "instance"),
            UNDERSIGN_DATABASE_URL=database_url,
            UNDERSIGN_GITHUB_URL=emulator.url,
            UNDERSIGN_GITHUB_API_URL=emulator.api_url,
            UNDERSIGN_JOB_RETRY_BASE_MS="50",
            UNDERSIGN_RECONCILE_INTERVAL="0",
            **queue,
        )
        run(["db", "upgrade"], env)
        database = Database(database_url)
        cleanup.callback(database.dispose)
        with database.session() as session:
            agreements = AgreementService(session)
            agreements.add_or_update(AGREEMENT_SLUG, "Individual CLA", "You agree to license it.")
            agreements.link_org(ORG, AGREEMENT_SLUG)
        web = start_serve(env, tmp_path / "serve.log", workers=2, port=port)
        cleanup.callback(web.stop)
        worker = start(["worker", "--workers", "2"], env, tmp_path / "worker.log")
        cleanup.callback(worker.stop)
        wait_ready(web)
        yield FirstRun(web, worker, emulator, database)


def _flush_queue(name: str) -> None:
    """Leave no keys on the shared Redis."""
    huey = RedisHuey(name, url=redis_test_url())
    huey.flush()
    huey.storage.close()


def _sign_in(run: FirstRun, client: httpx.Client, login: str) -> tuple[str, httpx.Response]:
    """The OAuth web flow against the serve process, approved on the emulator as ``login``:
    the client id GitHub was asked with, and the page the person lands on."""
    run.state.auto_approve_as = login
    to_github = client.get("/login")
    assert to_github.status_code == 302, to_github.text
    client_id = parse_qs(urlsplit(to_github.headers["location"]).query)["client_id"][0]
    back = client.get(to_github.headers["location"])
    assert back.status_code == 302, back.text
    landed = client.get(back.headers["location"])
    assert landed.status_code == 302, landed.text
    return client_id, client.get(landed.headers["location"])


def test_serve_signs_in_and_takes_webhooks_as_the_app_registered_through_it(
    first_run: FirstRun,
) -> None:
    web = first_run.web
    with httpx.Client(base_url=str(web.url), timeout=10) as client:
        refused = client.get("/login")
        assert refused.status_code == 503 and "Sign-in is not configured" in refused.text
        app = first_run.register(client)
        # Both gunicorn workers, unrestarted: the app's sign-in client, whichever answers.
        for _ in range(4):
            with httpx.Client(base_url=str(web.url), timeout=10) as browser:
                client_id, page = _sign_in(first_run, browser, "alice")
            assert client_id == app.client_id
            assert page.status_code == 200 and "alice" in page.text.lower()
    # GitHub's installation webhook, signed with the app's secret: taken, not refused.
    delivery = first_run.install(app)
    assert delivery.status_code == 202, delivery.response_body
    assert web.popen.poll() is None


def test_a_worker_started_before_the_registration_acts_as_the_app(first_run: FirstRun) -> None:
    state = first_run.state
    pull = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    sha = pull["head"]["sha"]
    with httpx.Client(base_url=str(first_run.web.url), timeout=10) as client:
        app = first_run.register(client)
    delivery = first_run.install(app)
    assert delivery.status_code == 202, delivery.response_body

    # The worker evaluates the organisation's open pull request as the app: a red status
    # and a check run, both by the app's bot, with the app's installation token.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not state.apps.list_check_runs(REPO, sha):
        time.sleep(0.1)
    runs = state.apps.list_check_runs(REPO, sha)
    assert len(runs) == 1, f"no check run; the worker said:\n{first_run.worker.output()[-3000:]}"
    [check_run] = runs
    assert check_run["conclusion"] == "action_required"
    [status] = [s for s in state.statuses(REPO, sha) if s["context"] == "license/cla"]
    assert status["state"] == "failure"
    assert status["creator"]["login"] == f"{app.slug}[bot]"
    assert first_run.worker.popen.poll() is None, first_run.worker.output()
