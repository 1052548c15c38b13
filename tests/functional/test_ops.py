"""What operators rely on: /readyz, /metrics, request ids, JSON logs without secrets, and
trusted proxy headers (SECURITY.md O14). Real HTTP, real processes where it matters."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from tests.conftest import (
    BOT_LOGIN,
    CLIENT_ID,
    CLIENT_SECRET,
    CLAService,
    Live,
    LiveFactory,
    sign_in,
)
from tests.support.docs import replace_all, shell_block
from tests.support.pages import csrf_token, form_from
from tests.support.processes import clean_env, free_port, run, start, start_serve, wait_ready
from tests.support.signing import publish

from undersign.agreements.models import Signature
from undersign.agreements.service import AgreementService
from undersign.db import Database
from undersign.emulator import EmulatorServer

REPO = "octo-org/widgets"


# -- readiness ---------------------------------------------------------------------------------


def test_readyz_checks_the_database_and_the_queue(live_factory: LiveFactory) -> None:
    live = live_factory()
    with live.client() as client:
        ok = client.get("/readyz")
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}

    # A Redis nobody listens on: the web process must not take traffic.
    broken = live_factory(UNDERSIGN_QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")
    with broken.client() as client:
        refused = client.get("/readyz")
        alive = client.get("/healthz")
    assert refused.status_code == 503
    assert refused.json() == {"status": "unavailable", "failed": ["queue"]}
    assert alive.status_code == 200  # alive, just not ready


def test_readyz_names_the_database_when_it_is_down(
    tmp_path: Path, live_factory: LiveFactory
) -> None:
    missing = Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'db.sqlite3'}")
    live = live_factory(database=missing)
    with live.client() as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


# -- request ids -------------------------------------------------------------------------------


def test_request_id_is_generated_and_a_client_supplied_one_is_ignored_without_proxies(
    live_factory: LiveFactory,
) -> None:
    live = live_factory()
    with live.client() as client:
        first = client.get("/healthz").headers["X-Request-ID"]
        second = client.get("/healthz").headers["X-Request-ID"]
        spoofed = client.get("/healthz", headers={"X-Request-ID": "attacker-chosen-id"})
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second
    assert spoofed.headers["X-Request-ID"] != "attacker-chosen-id"


def test_trusted_proxy_request_id_is_kept_only_when_well_formed(live_factory: LiveFactory) -> None:
    live = live_factory(UNDERSIGN_TRUSTED_PROXIES="1")
    with live.client() as client:
        kept = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.9:1"})
        bad = client.get("/healthz", headers={"X-Request-ID": "<script>" + "a" * 200})
    assert kept.headers["X-Request-ID"] == "lb-7f3a.9:1"
    assert bad.headers["X-Request-ID"] != "<script>" + "a" * 200
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["X-Request-ID"])


# -- metrics -----------------------------------------------------------------------------------


def scrape(client: httpx.Client, **headers: str) -> dict[tuple[str, frozenset[Any]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def delivered(found: dict[tuple[str, frozenset[Any]], float], event: str, outcome: str) -> float:
    key = (
        "undersign_webhook_deliveries_total",
        frozenset({("event", event), ("outcome", outcome)}),
    )
    return found.get(key, 0.0)


def test_metrics_count_deliveries_jobs_github_calls_and_signatures(cla: CLAService) -> None:
    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    payload = state.pull_request_event(REPO, pr["number"], "opened")
    status, guid = cla.deliver("pull_request", payload)
    assert status == 202
    assert cla.deliver("pull_request", payload, delivery_id=guid)[0] == 202  # duplicate
    bad = state.deliver_webhook(cla.hook_url, "pull_request", payload, secret="wrong-secret")
    assert bad[0] == 401
    closed = state.pull_request_event(REPO, pr["number"], "labeled")
    assert cla.deliver("pull_request", closed)[0] == 202  # ignored action
    cla.wait_idle()
    cla.sign("bob")
    # The workers' counts reach the database within FLUSH_SECONDS; do not wait that long.
    from undersign.observability.metrics import flush_all

    flush_all()

    with cla.live.client() as client:
        found = scrape(client)
    assert delivered(found, "pull_request", "accepted") == 1
    assert delivered(found, "pull_request", "duplicate") == 1
    assert delivered(found, "pull_request", "invalid_signature") == 1
    assert delivered(found, "pull_request", "ignored") == 1
    assert found[("undersign_queue_jobs", frozenset({("status", "failed")}))] == 0
    assert found[("undersign_signatures_active", frozenset({("agreement", "individual-cla")}))] == 1
    latency = frozenset({("kind", "delivery"), ("status", "done")})
    assert found[("undersign_job_latency_seconds_count", latency)] >= 1
    statuses = [
        value
        for (name, labels), value in found.items()
        if name == "undersign_github_api_calls_total"
        and ("route", "/repos/{owner}/{repo}/statuses/{}") in labels
        and ("status", "201") in labels
    ]
    assert statuses == [1.0]
    remaining = [v for (n, _), v in found.items() if n == "undersign_github_rate_limit_remaining"]
    assert len(remaining) == 1 and 0 < remaining[0] <= 5000


def test_metrics_token_is_required_when_set(live_factory: LiveFactory) -> None:
    live = live_factory(UNDERSIGN_METRICS_TOKEN="scrape-token-0123456789")
    with live.client() as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "undersign_queue_jobs" in str(
            scrape(client, Authorization="Bearer scrape-token-0123456789")
        )


# -- trusted proxies (SECURITY.md O14) ---------------------------------------------------------


def _sign_through(live: Live, headers: dict[str, str]) -> httpx.Response:
    publish(live.database, "# CLA\n\nYou agree.\n", slug="cla")
    with live.client() as client:
        sign_in(live, client, "alice")
        page = client.get("/sign/cla")
        assert page.status_code == 200
        form = form_from(page.text, csrf_token=csrf_token(page.text))
        return client.post("/sign/cla", data=form, headers=headers)


SPOOF = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "Referer": "http://evil.example/",
}


def test_without_trusted_proxies_forwarded_headers_change_nothing(
    live_factory: LiveFactory,
) -> None:
    live = live_factory(UNDERSIGN_TRUSTED_PROXIES="0")
    response = _sign_through(live, SPOOF)
    assert response.status_code == 303, response.text
    with live.database.session() as session:
        [signature] = session.scalars(select(Signature))
    assert signature.ip_address == "127.0.0.1"  # the evidence is the real peer


def test_with_one_trusted_proxy_forwarded_for_and_proto_count(live_factory: LiveFactory) -> None:
    live = live_factory(UNDERSIGN_TRUSTED_PROXIES="1")
    # Proto counts: the request is HTTPS now, so CSRF's strict referrer check applies and a
    # cross-site Referer is refused.
    refused = _sign_through(live, SPOOF)
    assert refused.status_code == 400
    with live.database.session() as session:
        assert list(session.scalars(select(Signature))) == []
    same_site = {**SPOOF, "Referer": f"https://{urlsplit(live.url).netloc}/sign/cla"}
    accepted = _sign_through(live, same_site)
    assert accepted.status_code == 303, accepted.text
    with live.database.session() as session:
        [signature] = session.scalars(select(Signature))
    assert signature.ip_address == "203.0.113.9"


# -- JSON logs of real processes -----------------------------------------------------------------


def test_serve_and_worker_logs_are_json_lines_without_secrets(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    state = emulator.state
    state.add_user(BOT_LOGIN, name="undersign", email="bot@undersign.invalid")
    state.add_org("octo-org", members=[])
    state.add_repo(REPO)
    state.add_collaborator(REPO, BOT_LOGIN, "write")
    bot_token = state.issue_token(BOT_LOGIN)
    port_env = tmp_path / "db.sqlite3"
    env = clean_env(
        UNDERSIGN_ENV="production",
        UNDERSIGN_LOG_FORMAT="json",
        UNDERSIGN_INSTANCE_PATH=str(tmp_path / "instance"),
        UNDERSIGN_SECRET_KEY="production-secret-key-0123456789-abcdefghij",
        UNDERSIGN_GITHUB_CLIENT_ID=CLIENT_ID,
        UNDERSIGN_GITHUB_CLIENT_SECRET=CLIENT_SECRET,
        UNDERSIGN_WEBHOOK_SECRET="prod-webhook-secret-abc",
        UNDERSIGN_GITHUB_TOKEN=bot_token,
        UNDERSIGN_GITHUB_URL=emulator.url,
        UNDERSIGN_GITHUB_API_URL=emulator.api_url,
        UNDERSIGN_DATABASE_URL=f"sqlite:///{port_env}",
        UNDERSIGN_LOG_LEVEL="DEBUG",
        UNDERSIGN_JOB_RETRY_BASE_MS="50",
        UNDERSIGN_METRICS_TOKEN="prod-metrics-token-0123456789",
    )
    run(["db", "upgrade"], env)
    database = Database(env["UNDERSIGN_DATABASE_URL"])
    with database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update("individual-cla", "Individual CLA", "You agree.")
        agreements.link_org("octo-org", "individual-cla")
    database.dispose()

    port = free_port()
    env["UNDERSIGN_BASE_URL"] = f"http://127.0.0.1:{port}"
    web = start_serve(env, tmp_path / "web.log", port=port)
    worker = start(["worker", "--workers", "1"], env, tmp_path / "worker.log")
    secrets_seen: list[str] = [bot_token, CLIENT_SECRET, env["UNDERSIGN_WEBHOOK_SECRET"]]
    try:
        assert web.url is not None
        state.add_oauth_client(CLIENT_ID, CLIENT_SECRET, [f"{web.url}/login/callback"])
        wait_ready(web)
        with httpx.Client(base_url=web.url, timeout=10) as client:
            state.auto_approve_as = "alice"
            to_github = client.get("/login")
            back = client.get(to_github.headers["location"])
            callback = back.headers["location"]
            query = parse_qs(urlsplit(callback).query)
            secrets_seen += [query["code"][0], query["state"][0]]
            landed = client.get(callback)
            assert landed.status_code == 302, landed.text
            cookie = client.cookies.get("session") or ""
            if cookie:
                secrets_seen.append(cookie)
            assert client.get("/").status_code == 200

        pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
        payload = state.pull_request_event(REPO, pr["number"], "opened")
        status, guid = state.deliver_webhook(
            f"{web.url}/webhooks/github",
            "pull_request",
            payload,
            secret=env["UNDERSIGN_WEBHOOK_SECRET"],
        )
        assert status == 202
        sha = state.pull_request(REPO, pr["number"])["head"]["sha"]
        _wait(lambda: any(s["context"] == "license/cla" for s in state.statuses(REPO, sha)))
    finally:
        web.stop()
        worker.stop()

    entries = []
    for proc in (web, worker):
        for line in proc.output().splitlines():
            if line.strip():
                entries.append(json.loads(line))  # every line is one JSON object
    text = web.output() + worker.output()
    for secret in secrets_seen:
        assert secret not in text
    assert "@example.com" not in text and "bot@undersign.invalid" not in text
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert any(e.get("path") == "/login/callback" for e in access)
    assert all(re.fullmatch(r"[0-9a-f]{32}", str(e.get("request_id"))) for e in access)
    assert any(e.get("delivery_id") == guid for e in entries if e["logger"] != "gunicorn.access")
    # The web side of the delivery shows too: its access line carries the delivery id.
    [webhook_access] = [e for e in access if e.get("path") == "/webhooks/github"]
    assert webhook_access["delivery_id"] == guid and webhook_access["status"] == 202
    _follow_the_delivery_as_documented(tmp_path, web.output() + worker.output(), guid)


# What `journalctl -u` prints besides the services' own lines: systemd's, not JSON.
SYSTEMD_LINES = [
    "Started undersign-web@8000.service - undersign web on port 8000 (CLA service for GitHub).",
    "Started undersign-worker.service - undersign queue worker.",
    "Stopping undersign-worker.service - undersign queue worker...",
    "undersign-worker.service: Deactivated successfully.",
]


def _follow_the_delivery_as_documented(tmp_path: Path, output: str, guid: str) -> None:
    """docs/deploy.md section 13's commands, on a journal as ``journalctl -u ... -o cat``
    shows it: the services' JSON lines among systemd's own plain ones."""
    jq = shutil.which("jq")
    assert jq, "jq is needed (apt-get install jq), as docs/deploy.md section 2 installs it"
    journal = tmp_path / "journal.txt"
    lines = output.splitlines()
    journal.write_text("\n".join(SYSTEMD_LINES[:2] + lines + SYSTEMD_LINES[2:]) + "\n")
    script = replace_all(
        shell_block("deploy.md", "logs"),
        [
            ("sudo journalctl -u 'undersign-*' -o cat", f"cat {journal}"),
            ("sudo journalctl -u undersign-worker -o cat", f"cat {journal}"),
            ("DELIVERY-ID", guid),
        ],
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    delivery = [e for e in found if "logger" in e]
    assert delivery and all(e["delivery_id"] == guid for e in delivery)
    loggers = {e["logger"] for e in delivery}
    assert "gunicorn.access" in loggers and "undersign.jobs.runner" in loggers, loggers
    verdicts = [e for e in found if "logger" not in e]
    summary = {"time", "repository", "pull_request", "verdict"}
    assert verdicts and all(set(e) == summary for e in verdicts)
    assert {e["repository"] for e in verdicts} == {REPO}


def _wait(predicate: Any, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_favicon_is_served_where_browsers_ask_and_where_pages_link(live: Live) -> None:
    """Browsers ask for /favicon.ico by themselves; every page also links the SVG. Neither
    may be a 404 (it showed in the console on every page of the demo)."""
    with live.client() as client:
        asked = client.get("/favicon.ico")
        linked = client.get("/static/favicon.svg")
        home = client.get("/")
    assert asked.status_code == 200 and asked.headers["content-type"].startswith("image/svg+xml")
    assert asked.content == linked.content and asked.content.startswith(b"<svg")
    assert 'rel="icon" href="/static/favicon.svg"' in home.text
