"""Where an accepted delivery spends its time: ``python -m bench.profile [--db URL] [-n N]``.

Builds the ingest benchmark's installation (database upgraded, the same signed
``pull_request`` body), then sends ``N`` deliveries through the Flask app in this process
(Werkzeug's test client: no gunicorn, no sockets) under ``cProfile`` and prints the top
functions by own time and by cumulative time. With ``--db postgresql+psycopg://...`` the
queue is the local Redis, as in the benchmark.

Single-threaded, so it shows what each delivery costs, not lock waits under concurrency.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import io
import pstats
import time

from bench.harness import HOOK_ID, ORG, WEBHOOK_SECRET, Stack, redis_env
from undersign.emulator.webhooks import encode_body
from undersign.observability.metrics import flush_all
from undersign.web import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--db", default="sqlite", help="'sqlite' (default) or a PostgreSQL URL")
    parser.add_argument("-n", type=int, default=2000, help="deliveries to profile")
    parser.add_argument("--top", type=int, default=25, help="lines of each listing")
    args = parser.parse_args(argv)
    extra = redis_env("profile") if args.db != "sqlite" else None
    with Stack.create("profile", db=args.db, extra_env=extra) as stack:
        repo = f"{ORG}/ingest"
        stack.seed_agreement([repo])
        stack.add_people(["alice"])
        pr = stack.state.add_pull_request(repo, user_login="alice", n_commits=1)
        body = encode_body(stack.state.pull_request_event(repo, pr["number"], "opened"), "json")
        digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        app = create_app(stack.settings(), database=stack.database)
        client = app.test_client()

        def deliver(i: int) -> int:
            response = client.post(
                "/webhooks/github",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "pull_request",
                    "X-GitHub-Hook-ID": HOOK_ID,
                    "X-GitHub-Delivery": f"profile-{i}",
                    "X-Hub-Signature-256": f"sha256={digest}",
                },
            )
            return response.status_code

        for i in range(50):  # warm-up: imports, connections, caches
            assert deliver(-1 - i) == 202
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        codes = [deliver(i) for i in range(args.n)]
        profiler.disable()
        elapsed = time.perf_counter() - started
        flush_all()
        app.extensions["undersign"].close()  # the app's runtime: its queue connections
    accepted = sum(1 for code in codes if code == 202)
    print(f"{accepted}/{args.n} deliveries answered 202 in {elapsed:.2f} s under cProfile")
    print(f"({1000 * elapsed / args.n:.3f} ms each, profiler overhead included; db={args.db})")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(key).print_stats(args.top)
        text = out.getvalue()
        print(f"\n### top {args.top} by {key}\n")
        print(text[text.index("ncalls") :].rstrip())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_callees(
        r"\((receive|accept)\)"
    )
    print("\n### what the webhook view (receive before issue 12, accept after) calls\n")
    print(out.getvalue().strip())


if __name__ == "__main__":
    main()
