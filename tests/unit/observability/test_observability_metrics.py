"""Counters buffered per process, summed in the database: what /metrics shows is the total of
every process, whichever process is scraped."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from tests.support.databases import idle_connections

from undersign.db import Database
from undersign.observability.metrics import (
    GitHubObserver,
    MetricsBuffer,
    buffer_for,
    metric_route,
    record_webhook,
    render,
)
from undersign.runtime import GAUGES


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_two_processes_counts_add_up_and_gauges_keep_the_last_value(database_url: str) -> None:
    # Two Database objects and two buffers: what two processes have.
    one, two = Database(database_url), Database(database_url)
    try:
        a, b = MetricsBuffer(one, flush_seconds=3600), MetricsBuffer(two, flush_seconds=3600)
        labels = {"event": "pull_request", "outcome": "accepted"}
        for _ in range(3):
            a.inc("undersign_webhook_deliveries_total", labels)
        b.inc("undersign_webhook_deliveries_total", labels, 2)
        a.set("undersign_github_rate_limit_remaining", {"token": "abcd1234"}, 4990)
        b.observe(
            "undersign_job_latency_seconds",
            {"kind": "delivery", "status": "done"},
            0.3,
            (0.1, 0.5, 1.0),
        )
        assert a.flush() and b.flush()
        b.set("undersign_github_rate_limit_remaining", {"token": "abcd1234"}, 4980)
        assert b.flush()
        a.inc("undersign_webhook_deliveries_total", labels)  # not flushed: not visible yet
        # With the domain gauges the runtime registers (queue depth, signatures).
        reader = Database(database_url)
        found = samples(render(reader, GAUGES))
    finally:
        one.dispose()
        two.dispose()
        reader.dispose()
    key = (("event", "pull_request"), ("outcome", "accepted"))
    assert found[("undersign_webhook_deliveries_total", key)] == 5
    assert found[("undersign_github_rate_limit_remaining", (("token", "abcd1234"),))] == 4980
    latency = (("kind", "delivery"), ("status", "done"))
    assert found[("undersign_job_latency_seconds_count", latency)] == 1
    assert (
        found[("undersign_job_latency_seconds_bucket", (*latency[:1], ("le", "0.1"), *latency[1:]))]
        == 0
    )
    assert (
        found[("undersign_job_latency_seconds_bucket", (*latency[:1], ("le", "0.5"), *latency[1:]))]
        == 1
    )
    assert found[("undersign_queue_jobs", (("status", "queued"),))] == 0


def test_dispose_writes_the_buffered_counts_and_stops_the_flushing_thread(
    database_url: str,
) -> None:
    """Left running, the buffer's thread flushed on the disposed engine, which opened a
    new connection that stayed open on the server (and failed once the test's schema was
    gone): the PostgreSQL suite held dozens of connections nobody used."""
    database = Database(database_url)
    record_webhook(database, "ping", "accepted")
    buffer = buffer_for(database)
    thread = buffer._thread
    assert thread is not None and thread.is_alive()
    database.dispose()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert idle_connections(database.engine) == 0  # nothing opened again after dispose
    assert buffer_for(database) is not buffer  # counts from now on: a new buffer
    reader = Database(database_url)
    try:
        found = samples(render(reader))
    finally:
        database.dispose()
        reader.dispose()
    key = (("event", "ping"), ("outcome", "accepted"))
    assert found[("undersign_webhook_deliveries_total", key)] == 1


def test_unknown_event_names_are_one_label_value(database: Database) -> None:
    for name in ("x-1", "x-2", None):
        record_webhook(database, name, "ignored")
    found = samples(render(database))
    key = (("event", "other"), ("outcome", "ignored"))
    assert found[("undersign_webhook_deliveries_total", key)] == 3


def test_routes_have_no_shas_logins_or_numbers() -> None:
    assert metric_route("/repos/{owner}/{repo}/statuses/3f2a9c") == (
        "/repos/{owner}/{repo}/statuses/{}"
    )
    assert metric_route("/orgs/octo-org/members/alice") == "/orgs/{}/members/{}"
    assert metric_route("/repos/{owner}/{repo}/pulls/{n}/commits") == (
        "/repos/{owner}/{repo}/pulls/{n}/commits"
    )


def test_github_observer_counts_calls_and_keeps_the_rate_limit(database: Database) -> None:
    from undersign.github.client import RateLimitState

    observer = GitHubObserver(database, "f" * 64)
    observer.rate_limit = RateLimitState(remaining=41)
    observer("GET", "/repos/{owner}/{repo}/compare/a...b", 200)
    observer("GET", "/repos/{owner}/{repo}/compare/c...d", 200)
    found = samples(render(database))
    route = (("method", "GET"), ("route", "/repos/{owner}/{repo}/compare/{}"), ("status", "200"))
    assert found[("undersign_github_api_calls_total", route)] == 2
    assert found[("undersign_github_rate_limit_remaining", (("token", "ffffffff"),))] == 41
