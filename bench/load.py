"""``make load``: signed webhook deliveries at a steady rate with the queue workers stopped,
then the workers started; then the sign page and the webhook under concurrent users.

What it checks (and prints): every delivery answered 2xx well under GitHub's 10 s (p50, p99,
max); every one processed afterwards (the jobs table all done, a status on every pull
request); no error under concurrent users. Bounded: ``LOAD_SECONDS`` (default 60) at
``LOAD_RATE`` a second (default 20), then ``LOAD_USERS`` threads (default 20) for
``LOAD_USERS_SECONDS`` (default 30); every wait has a deadline. Loopback only.

``python -m bench.load [--rate 20] [--seconds 60] [--users 20] [--users-seconds 30]
[--db postgresql+psycopg://...]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import ORG, SLUG, WEBHOOK_SECRET, BenchError, Stack, percentile, table
from bench.loadgen import run_processes
from undersign.emulator.webhooks import encode_body

GITHUB_DEADLINE = 10.0  # GitHub waits this long for a 2xx, then counts the delivery failed


@dataclass
class LoadOptions:
    rate: float = 20.0
    seconds: float = 60.0
    users: int = 20
    users_seconds: float = 30.0
    prs: int = 40
    repos: int = 4
    drain_timeout: float = 600.0

    def describe(self) -> str:
        return (
            f"{self.rate:g}/s for {self.seconds:g} s, then {self.users} users "
            f"for {self.users_seconds:g} s"
        )


@dataclass
class LoadReport:
    text: str
    ok: bool
    stack: Stack | None = None


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def _prepare(stack: Stack, opts: LoadOptions) -> tuple[list[tuple[str, int]], list[dict]]:
    """Repositories, signed authors, open pull requests and one payload file per PR."""
    from bench.benchmarks import webhook_request

    repos = [f"{ORG}/load-{i}" for i in range(opts.repos)]
    stack.seed_agreement(repos)
    stack.add_people(["alice", "bob"])
    for login in ("alice", "bob"):
        stack.sign(login, notify=False)
    prs, requests = [], []
    for i in range(opts.prs):
        repo = repos[i % len(repos)]
        author = ("alice", "bob")[i % 2]
        pr = stack.state.add_pull_request(
            repo, user_login=author, n_commits=1 + i % 3, head_ref=f"load-{i}"
        )
        number = int(pr["number"])
        prs.append((repo, number))
        body_file = stack.root / f"payload-{i}.json"
        payload = stack.state.pull_request_event(repo, number, "opened")
        body_file.write_bytes(encode_body(payload, "json"))
        requests.append(webhook_request(str(body_file), name="webhook"))
    return prs, requests


def run_load(opts: LoadOptions, *, db: str = "sqlite", keep_open: bool = False) -> LoadReport:
    """Run the three phases; with ``keep_open`` the stack is returned still running (for the
    memory benchmark) and the caller closes it."""
    stack = Stack.create("load", db=db)
    try:
        prs, requests = _prepare(stack, opts)
        stack.start_serve(embedded_worker=False)
        out: list[str] = []
        ok = True

        # Phase 1: a steady stream of deliveries, no queue worker running.
        threads = max(4, int(opts.rate))  # enough that a slow answer never delays the schedule
        spec = {
            "port": stack.port,
            "requests": requests,
            "secret": WEBHOOK_SECRET,
            "rate": opts.rate,
            "seconds": opts.seconds,
            "threads": threads,
            "max_requests": int(opts.rate * opts.seconds) + 1,
            "timeout": 30.0,
            "delivery_prefix": "steady",
        }
        print(f"[load] phase 1: {opts.rate:g} deliveries/s for {opts.seconds:g} s", flush=True)
        steady = run_processes(spec, 1)
        kind = steady["kinds"]["webhook"]
        lat = kind["latencies"]
        sent = sum(kind["statuses"].values())
        accepted = sum(n for c, n in kind["statuses"].items() if c in ("200", "202"))
        slow = sum(1 for v in lat if v >= GITHUB_DEADLINE)
        ok &= accepted == sent and slow == 0
        counts_before = stack.job_counts()

        # Phase 2: start the worker; everything recorded gets processed.
        print("[load] phase 2: undersign worker started; draining the queue", flush=True)
        started = time.monotonic()
        stack.start_worker()
        stack.wait_idle(opts.drain_timeout)
        drained = time.monotonic() - started
        counts_after = stack.job_counts()
        missing = [
            (repo, number)
            for repo, number in prs
            if (s := stack.our_status(repo, stack.head(repo, number))) is None
            or s["state"] != "success"
        ]
        ok &= counts_after.get("failed", 0) == 0 and not missing
        ok &= counts_after.get("done", 0) == sum(counts_before.values())
        out.append(
            table(
                f"Load phase 1-2: {opts.rate:g} signed deliveries/s for {opts.seconds:g} s, "
                "workers stopped, then started",
                ["figure", "value"],
                [
                    ("deliveries sent", sent),
                    ("answered 2xx", accepted),
                    ("answered otherwise / errors", sent - accepted),
                    ("latency p50 ms", _ms(lat, 50)),
                    ("latency p99 ms", _ms(lat, 99)),
                    ("latency max ms", _ms(lat, 100)),
                    ("answers at or over 10 s", slow),
                    ("generator schedule lag max ms", steady["max_lag"] * 1000),
                    ("jobs recorded before the worker started", sum(counts_before.values())),
                    ("jobs done after draining", counts_after.get("done", 0)),
                    ("jobs failed", counts_after.get("failed", 0)),
                    ("seconds from starting the worker to an empty queue", drained),
                    (
                        f"pull requests with a success status (of {len(prs)})",
                        len(prs) - len(missing),
                    ),
                ],
            )
        )

        # Phase 3: people on the sign page and GitHub on the webhook at the same time.
        print(
            f"[load] phase 3: {opts.users} users for {opts.users_seconds:g} s "
            "(sign page + webhook)",
            flush=True,
        )
        repo, number = prs[0]
        page = {
            "name": "sign page",
            "method": "GET",
            "path": f"/sign/{SLUG}?repo={repo}&pr={number}",
        }
        mixed: list[dict[str, Any]] = []
        for request in requests:
            mixed.extend([page, request])
        users = run_processes(
            {
                "port": stack.port,
                "requests": mixed,
                "secret": WEBHOOK_SECRET,
                "seconds": opts.users_seconds,
                "threads": max(1, opts.users // 2),
                "timeout": 30.0,
                "delivery_prefix": "users",
            },
            2 if opts.users >= 2 else 1,
        )
        stack.wait_idle(opts.drain_timeout)
        after_users = stack.job_counts()
        rows = []
        for name, data in users["kinds"].items():
            total = sum(data["statuses"].values())
            good = sum(n for c, n in data["statuses"].items() if c in ("200", "202"))
            ok &= good == total
            rows.append(
                (
                    name,
                    total,
                    good,
                    total - good,
                    total / users["elapsed"],
                    _ms(data["latencies"], 50),
                    _ms(data["latencies"], 99),
                    ", ".join(data["errors"][:2]) or "-",
                )
            )
        ok &= after_users.get("failed", 0) == 0
        out.append(
            table(
                f"Load phase 3: {opts.users} concurrent users for {opts.users_seconds:g} s",
                ["request", "sent", "2xx", "errors", "per s", "p50 ms", "p99 ms", "error sample"],
                rows,
            )
        )
        out.append(
            table(
                "Load phase 3: afterwards",
                ["figure", "value"],
                [
                    ("jobs done", after_users.get("done", 0)),
                    ("jobs failed", after_users.get("failed", 0)),
                    ("jobs queued or running", after_users.get("queued", 0)),
                ],
            )
        )
        out.append(f"\nload test: {'PASS' if ok else 'FAIL'}")
        report = LoadReport("\n".join(out), ok, stack if keep_open else None)
    except BaseException:
        stack.close()
        raise
    if not keep_open:
        stack.close()
    return report


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=float(env.get("LOAD_RATE", 20)))
    parser.add_argument("--seconds", type=float, default=float(env.get("LOAD_SECONDS", 60)))
    parser.add_argument("--users", type=int, default=int(env.get("LOAD_USERS", 20)))
    parser.add_argument(
        "--users-seconds", type=float, default=float(env.get("LOAD_USERS_SECONDS", 30))
    )
    parser.add_argument("--db", default="sqlite", help="'sqlite' or a PostgreSQL URL")
    parser.add_argument("--memory", action="store_true", help="also print peak RSS")
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 500 and 0 < args.seconds <= 900 and 0 < args.users_seconds <= 900):
        parser.error("rate must be in (0, 500], durations in (0, 900] seconds")
    opts = LoadOptions(
        rate=args.rate, seconds=args.seconds, users=args.users, users_seconds=args.users_seconds
    )
    try:
        report = run_load(opts, db=args.db, keep_open=args.memory)
    except BenchError as exc:
        print(f"load test could not run: {exc}", file=sys.stderr)
        return 2
    print(report.text)
    if report.stack is not None:
        from bench.harness import peak_rss_mb

        stack = report.stack
        try:
            rows = [(f"web worker {pid}", peak_rss_mb(pid)) for pid in stack.web_worker_pids()]
            rows.append(("queue worker", peak_rss_mb(stack.procs["worker"].pid)))
            print(table("Peak RSS (MB) after the load run", ["process", "MB"], rows))
        finally:
            stack.close()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
