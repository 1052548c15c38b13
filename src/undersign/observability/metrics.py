"""Prometheus metrics that stay true with many web and worker processes, on many machines.

Where the numbers live, and why:

* **Computed from the database at scrape time**: queue depth (``jobs`` rows by status) and
  active signatures. They are facts the database already holds, so every process that
  answers ``/metrics`` gives the same answer and nothing needs recording. Their queries are
  the runtime's (``render(database, gauges)``): this module knows no domain table.
* **Counters in the ``metric_samples`` table**: webhook deliveries by event and outcome,
  GitHub API calls by route and status, the job latency histogram, the last rate limit
  GitHub reported. Each process adds to an in-memory buffer (no I/O on the hot path: a
  GitHub call never costs a database write) and a background thread flushes it every
  ``FLUSH_SECONDS`` in one short transaction of upserts (``value = value + delta``), plus once
  more at exit and before every scrape. So the counters are totals over every gunicorn
  worker, every ``undersign worker`` and every machine, whichever process is scraped.

Not ``prometheus_client``'s multiprocess mode: it keeps files in a directory of one machine,
so web and worker processes on different hosts (and the embedded consumer) would each need
scraping, and gunicorn's worker recycling needs manual clean-up. Not Redis either: SQLite
installations have none. The price: counts made in the last few seconds before a crash are
lost, which a counter (not a ledger) can afford.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from undersign.db import Database, utcnow
from undersign.observability.models import MetricSample

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

WEBHOOK_DELIVERIES = "undersign_webhook_deliveries_total"
GITHUB_CALLS = "undersign_github_api_calls_total"
GITHUB_RATE_REMAINING = "undersign_github_rate_limit_remaining"
JOB_LATENCY = "undersign_job_latency_seconds"
JOB_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0)

WEBHOOK_OUTCOMES = (
    "accepted",
    "duplicate",
    "ignored",
    "invalid_signature",
    "malformed",
    "unavailable",
)
#: Only these event names become label values (bounded cardinality); the rest are "other".
KNOWN_EVENTS = frozenset(
    {
        "ping",
        "pull_request",
        "pull_request_target",
        "issue_comment",
        "merge_group",
        "check_run",
        "check_suite",
        "installation",
        "installation_repositories",
        "installation_target",
        "organization",
        "push",
        "repository",
        "status",
    }
)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _encode(labels: Labels) -> str:
    return json.dumps(labels, separators=(",", ":"))


def _decode(text: str) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in json.loads(text)}
    except (ValueError, TypeError):
        return {}


class MetricsBuffer:
    """One process's not-yet-flushed counts for one database."""

    def __init__(self, database: Database, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._database = weakref.ref(database)
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._counters: dict[tuple[str, Labels], float] = {}
        self._gauges: dict[tuple[str, Labels], float] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording (cheap: a dict update under a lock) --------------------------------------

    def inc(self, name: str, labels: Mapping[str, str], amount: float = 1.0) -> None:
        key = (name, _labels(labels))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0.0) + amount
        self._ensure_thread()

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        with self._lock:
            self._gauges[(name, _labels(labels))] = float(value)
        self._ensure_thread()

    def observe(
        self, name: str, labels: Mapping[str, str], value: float, buckets: Iterable[float]
    ) -> None:
        """A histogram observation, kept as cumulative ``_bucket``/``_sum``/``_count``."""
        value = max(float(value), 0.0)
        for bound in [*buckets, float("inf")]:
            if value <= bound:
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                self.inc(f"{name}_bucket", {**labels, "le": le})
        self.inc(f"{name}_sum", labels, value)
        self.inc(f"{name}_count", labels)

    # -- flushing ---------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._loop, name="undersign-metrics", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._wake.wait(self._flush_seconds):
            if self._database() is None:
                return
            self.flush()

    def stop(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Write what is buffered and stop the thread (``Database.dispose`` calls it); the
        next count for this database starts a new buffer."""
        self.stop()
        self.flush()
        database = self._database()
        with _buffers_lock:
            if database is not None and _buffers.get(id(database)) is self:
                del _buffers[id(database)]

    def flush(self) -> bool:
        """Write the buffered counts in one transaction; on failure keep them for next time."""
        database = self._database()
        if database is None:
            return False
        with self._flush_lock:
            with self._lock:
                counters, self._counters = self._counters, {}
                gauges, self._gauges = self._gauges, {}
            if not counters and not gauges:
                return True
            try:
                _upsert(database, counters, gauges)
            except Exception as exc:
                with self._lock:
                    for key, amount in counters.items():
                        self._counters[key] = self._counters.get(key, 0.0) + amount
                    for key, value in gauges.items():
                        self._gauges.setdefault(key, value)
                log.warning("metrics not flushed yet: %s", type(exc).__name__)
                return False
            return True


def _upsert(
    database: Database,
    counters: Mapping[tuple[str, Labels], float],
    gauges: Mapping[tuple[str, Labels], float],
) -> None:
    dialect = database.engine.dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    table = MetricSample.__table__
    with database.session() as session:
        # Sorted, so two processes flushing at once take row locks in the same order.
        for (name, labels), amount in sorted(counters.items()):
            stmt = insert(table).values(name=name, labels=_encode(labels), value=amount)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name", "labels"],
                    set_={"value": table.c.value + stmt.excluded.value, "updated_at": now},
                ).values(updated_at=now)
            )
        for (name, labels), value in sorted(gauges.items()):
            stmt = insert(table).values(name=name, labels=_encode(labels), value=value)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name", "labels"],
                    set_={"value": stmt.excluded.value, "updated_at": now},
                ).values(updated_at=now)
            )


# -- one buffer per database per process (a fork starts afresh) -------------------------------

_buffers: dict[int, MetricsBuffer] = {}
_buffers_pid = os.getpid()
_buffers_lock = threading.Lock()


def buffer_for(database: Database) -> MetricsBuffer:
    global _buffers_pid
    with _buffers_lock:
        if _buffers_pid != os.getpid():
            # Inherited from the parent across a fork: its thread is not running here, and
            # its counts belong to the parent, which flushes them itself.
            _buffers.clear()
            _buffers_pid = os.getpid()
        buffer = _buffers.get(id(database))
        if buffer is None or buffer._database() is not database:
            buffer = MetricsBuffer(database)
            _buffers[id(database)] = buffer
            database.on_dispose(buffer.close)
        return buffer


def flush_all() -> None:
    with _buffers_lock:
        buffers = list(_buffers.values()) if _buffers_pid == os.getpid() else []
    for buffer in buffers:
        buffer.flush()


atexit.register(flush_all)


# -- what the product records ----------------------------------------------------------------


def record_webhook(database: Database, event: str | None, outcome: str) -> None:
    name = event if event in KNOWN_EVENTS else "other"
    buffer_for(database).inc(WEBHOOK_DELIVERIES, {"event": name, "outcome": outcome})


def record_job_finished(database: Database, kind: str, seconds: float, status: str) -> None:
    """Latency from the job's creation (the delivery arriving) to its end, done or failed."""
    buffer_for(database).observe(
        JOB_LATENCY, {"kind": kind, "status": status}, seconds, JOB_LATENCY_BUCKETS
    )


#: Literal path segments of the GitHub routes undersign calls; any other segment (a sha, a
#: login, an org) becomes ``{}`` so a route label never multiplies per pull request or person.
ROUTE_WORDS = frozenset(
    {
        "repos",
        "repositories",
        "pulls",
        "commits",
        "issues",
        "comments",
        "statuses",
        "status",
        "compare",
        "collaborators",
        "permission",
        "orgs",
        "members",
        "public_members",
        "memberships",
        "users",
        "user",
        "emails",
        "rate_limit",
        "app",
        "apps",
        "installation",
        "installations",
        "access_tokens",
        "check-runs",
        "check-suites",
        "check_runs",
        "rerequest",
        "hooks",
        "deliveries",
        "attempts",
        "login",
        "oauth",
        "access_token",
    }
)


def metric_route(route: str) -> str:
    """``/repos/{owner}/{repo}/statuses/3f2a...`` -> ``/repos/{owner}/{repo}/statuses/{}``."""
    parts = route.split("?", 1)[0].split("/")
    return "/".join(
        p if (not p or p in ROUTE_WORDS or (p.startswith("{") and p.endswith("}"))) else "{}"
        for p in parts
    )[:200]


class GitHubObserver:
    """The ``GitHubClient`` observer: counts calls; keeps the last reported rate limit.

    ``rate_limit`` is the client's ``RateLimitState`` (set after the client is built); the
    client updates it before calling the observer."""

    def __init__(self, database: Database, token_key: str) -> None:
        self.database = database
        # A prefix of the token's SHA-256: tells tokens apart, reveals nothing.
        self.token = token_key[:8]
        self.rate_limit: Any = None

    def __call__(self, method: str, route: str, status: int) -> None:
        buffer = buffer_for(self.database)
        labels = {"method": method, "route": metric_route(route), "status": str(status)}
        buffer.inc(GITHUB_CALLS, labels)
        remaining = getattr(self.rate_limit, "remaining", None)
        if remaining is not None:
            buffer.set(GITHUB_RATE_REMAINING, {"token": self.token}, float(remaining))


# -- the scrape ---------------------------------------------------------------------------------


#: A domain gauge, registered from above (the runtime): computed from the database at
#: scrape time, in the scrape's session, so observability knows no domain table.
GaugeSource = Callable[[Session], Iterable[Metric]]


class _DatabaseCollector:
    def __init__(self, database: Database, gauges: Iterable[GaugeSource]) -> None:
        self.database = database
        self.gauges = tuple(gauges)

    def collect(self) -> Iterator[Metric]:
        with self.database.session() as session:
            samples = list(
                session.execute(select(MetricSample.name, MetricSample.labels, MetricSample.value))
            )
            domain = [metric for gauge in self.gauges for metric in gauge(session)]
        yield from domain
        yield from _stored_families(samples)


def _stored_families(samples: list[Any]) -> Iterator[Metric]:
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in samples:
        series.setdefault(name, []).append((_decode(labels), float(value)))

    for name, help_text, label_names in (
        (
            WEBHOOK_DELIVERIES,
            "Webhook deliveries received, by event and outcome",
            ["event", "outcome"],
        ),
        (
            GITHUB_CALLS,
            "Calls to the GitHub API, by method, route and HTTP status",
            ["method", "route", "status"],
        ),
    ):
        family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=label_names)
        for labels, value in series.get(name, []):
            family.add_metric([labels.get(k, "") for k in label_names], value)
        yield family

    remaining = GaugeMetricFamily(
        GITHUB_RATE_REMAINING,
        "Requests left in the current GitHub rate limit window, as GitHub last reported",
        labels=["token"],
    )
    for labels, value in series.get(GITHUB_RATE_REMAINING, []):
        remaining.add_metric([labels.get("token", "")], value)
    yield remaining

    yield from _histograms(series)


def _histograms(series: Mapping[str, list[tuple[dict[str, str], float]]]) -> Iterator[Metric]:
    family = HistogramMetricFamily(
        JOB_LATENCY,
        "Seconds from a job's creation to its end (done or failed)",
        labels=["kind", "status"],
    )
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for labels, value in series.get(f"{JOB_LATENCY}_bucket", []):
        key = (labels.get("kind", ""), labels.get("status", ""))
        groups.setdefault(key, {"buckets": {}, "sum": 0.0})["buckets"][labels.get("le")] = value
    for labels, value in series.get(f"{JOB_LATENCY}_sum", []):
        key = (labels.get("kind", ""), labels.get("status", ""))
        groups.setdefault(key, {"buckets": {}, "sum": 0.0})["sum"] = value
    for (kind, status), group in sorted(groups.items()):
        bounds = [repr(float(b)) for b in JOB_LATENCY_BUCKETS] + ["+Inf"]
        buckets = [(le, float(group["buckets"].get(le, 0.0))) for le in bounds]
        family.add_metric([kind, status], buckets, float(group["sum"]))
    yield family


def render(database: Database, gauges: Iterable[GaugeSource] = ()) -> bytes:
    """The Prometheus text exposition of everything above and of ``gauges`` (this process
    flushed first)."""
    buffer_for(database).flush()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DatabaseCollector(database, gauges))
    return generate_latest(registry)
