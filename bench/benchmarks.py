"""The five benchmarks of issue 6. Each returns its printed tables and headline figures.

Every figure is a ratio of two things measured in the same run on the same machine (or a
count compared with a formula), so it holds on a noisy or slow machine.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from bench.harness import (
    BOT_LOGIN,
    HOOK_ID,
    ORG,
    WEBHOOK_SECRET,
    BenchError,
    Proc,
    Stack,
    free_port,
    peak_rss_mb,
    percentile,
    redis_env,
    table,
    wait_http,
    wait_until,
)
from bench.loadgen import run_processes
from undersign.emulator.webhooks import encode_body

#: The ingest benchmark's second backend unless ``--pg`` says otherwise (the test server).
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Options:
    quick: bool = False
    db: str = "sqlite"
    scale: float = 1.0
    pg: str = ""  # ingest's PostgreSQL (+ Redis) backend; "" = DEFAULT_PG_URL, "none" = skip

    def __post_init__(self) -> None:
        if not self.pg:
            self.pg = self.db if self.db != "sqlite" else DEFAULT_PG_URL


@dataclass
class Result:
    name: str
    text: str
    headline: list[tuple[str, str, str]] = field(default_factory=list)  # figure, value, goal


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def webhook_request(body_file: str, name: str = "webhook", event: str = "pull_request") -> dict:
    """A load generator request: a signed delivery, headers as GitHub sends them."""
    return {
        "name": name,
        "method": "POST",
        "path": "/webhooks/github",
        "body_file": body_file,
        "webhook": True,
        "headers": {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/bench00",
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": HOOK_ID,
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "1",
        },
    }


def ok_count(kind: dict[str, Any]) -> int:
    return sum(n for code, n in kind["statuses"].items() if code.isdigit() and code[0] == "2")


def bad_count(kind: dict[str, Any]) -> int:
    return sum(n for code, n in kind["statuses"].items() if not (code.isdigit() and code[0] == "2"))


# --- 1. webhook ingest -------------------------------------------------------------------------


def _ingest_stack(name: str, db: str) -> Stack:
    """An installation serving webhooks only (no queue worker), with the benchmark's PR."""
    extra = redis_env(name) if db != "sqlite" else None
    stack = Stack.create(name, db=db, extra_env=extra)
    try:
        repo = f"{ORG}/ingest"
        stack.seed_agreement([repo])
        stack.add_people(["alice"])
        stack.state.add_pull_request(repo, user_login="alice", n_commits=1)
        stack.start_serve(embedded_worker=False)
    except BaseException:
        stack.close()
        raise
    return stack


def _recorded(stack: Stack, prefix: str) -> int:
    """Job rows whose delivery id the load generator made (``prefix`` + process + number)."""
    from undersign.jobs.models import Job

    with stack.database.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Job).where(Job.delivery_id.like(f"{prefix}%"))
            )
            or 0
        )


def ingest(opts: Options) -> Result:
    """Signed ``pull_request`` deliveries accepted per second by ``undersign serve`` (no embedded
    worker: acceptance only) on SQLite and on PostgreSQL + Redis, against a hello-world WSGI
    app under the same gunicorn settings: all three serve at once, the same generator sends to
    each in turn, round after round, so every ratio compares numbers taken side by side."""
    rounds, seconds = (1, 1.5) if opts.quick else (3, 6.0)
    processes, threads = 2, 4
    backends = [("undersign SQLite", "sqlite")]
    if opts.pg and opts.pg != "none":
        backends.append(("undersign PostgreSQL + Redis", opts.pg))
    stacks: dict[str, Stack] = {}
    try:
        for label, db in backends:
            _say(f"ingest: starting {label}")
            stacks[label] = _ingest_stack(f"ingest-{len(stacks)}", db)
        first = next(iter(stacks.values()))
        repo = f"{ORG}/ingest"
        payload = first.state.pull_request_event(repo, 1, "opened")
        body_file = first.root / "pull_request.json"
        body_file.write_bytes(encode_body(payload, "json"))
        hello_port = free_port()
        hello = Proc.start(
            "hello",
            [sys.executable, "-m", "bench.hello", "--port", str(hello_port)],
            first.env,
            first.root,
        )
        first.procs["hello"] = hello
        wait_http(f"http://127.0.0.1:{hello_port}/healthz", hello)
        targets = {"hello-world": hello_port, **{k: s.port for k, s in stacks.items()}}
        totals = {name: [0, 0.0, 0] for name in targets}  # accepted, seconds, refused
        spec_base = {
            "requests": [webhook_request(str(body_file))],
            "secret": WEBHOOK_SECRET,
            "threads": threads,
        }
        for index, port in enumerate(targets.values()):  # warm-up: imports, connections
            run_processes(
                {**spec_base, "port": port, "seconds": 0.5, "delivery_prefix": f"w{index}-"}, 1
            )
        rows = []
        for n in range(rounds):
            for index, (name, port) in enumerate(targets.items()):
                result = run_processes(
                    {
                        **spec_base,
                        "port": port,
                        "seconds": seconds,
                        "delivery_prefix": f"r{index}-{n}-",
                    },
                    processes,
                )
                kind = result["kinds"]["webhook"]
                accepted, refused = ok_count(kind), bad_count(kind)
                totals[name][0] += accepted
                totals[name][1] += result["elapsed"]
                totals[name][2] += refused
                rows.append(
                    (
                        n + 1,
                        name,
                        accepted,
                        refused,
                        accepted / result["elapsed"],
                        percentile(kind["latencies"], 50) * 1000,
                        percentile(kind["latencies"], 99) * 1000,
                    )
                )
        recorded = {
            name: _recorded(stacks[name], f"r{index}-")
            for index, name in enumerate(targets)
            if name in stacks
        }
    finally:
        for stack in stacks.values():
            stack.close()
    rate = {name: t[0] / t[1] for name, t in totals.items()}
    ratios = {label: rate[label] / rate["hello-world"] for label in stacks}
    text = table(
        "Webhook ingest (rounds alternate; same gunicorn: 2 workers x 4 threads, gthread)",
        ["round", "server", "2xx", "non-2xx", "per s", "p50 ms", "p99 ms"],
        rows,
    )
    summary: list[tuple[Any, ...]] = [
        ("hello-world requests per s (same body, same server config)", rate["hello-world"])
    ]
    for label in stacks:
        summary.extend(
            [
                (f"{label}: deliveries accepted per s", rate[label]),
                (f"{label}: ratio to hello-world (goal >= 0.5)", ratios[label]),
                (f"{label}: non-2xx answers", totals[label][2]),
                (
                    f"{label}: job rows recorded / deliveries answered 2xx",
                    f"{recorded[label]} / {totals[label][0]}",
                ),
            ]
        )
    summary.append(("load generator", f"{processes} processes x {threads} keep-alive threads"))
    text += table("Webhook ingest: summary", ["figure", "value"], summary)
    return Result(
        "ingest",
        text,
        [
            (
                f"ingest ({label.removeprefix('undersign ')}): accepted/s vs hello-world",
                f"{ratios[label]:.2f}",
                ">= 0.5",
            )
            for label in stacks
        ],
    )


# --- 2. GitHub calls per event -----------------------------------------------------------------


def _cla_assistant(n_commits: int, k: int, unsigned: bool) -> tuple[int, int]:
    """CLA assistant's calls for one pull request event, read from its source: (App, token)."""
    p, u = math.ceil(n_commits / 100), int(unsigned)
    return 6 * p + 3 * k + 16 + 3 * u, 2 * p + k + 6 + u


APP_ID = 424242
APP_SLUG = "undersign-bench"


def app_mode_available() -> bool:
    """Whether this undersign can act as a GitHub App (``UNDERSIGN_GITHUB_APP_ID``)."""
    from undersign.config import VARIABLES

    return any(v.name == "UNDERSIGN_GITHUB_APP_ID" for v in VARIABLES)


def _app_key() -> tuple[str, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _calls_stack(opts: Options, mode: str) -> Stack:
    """A stack acting with a token, or as a GitHub App registered on the emulator."""
    if mode == "token":
        return Stack.create("calls", db=opts.db)
    private, public = _app_key()
    stack = Stack.create(
        "calls-app",
        db=opts.db,
        extra_env={
            "UNDERSIGN_GITHUB_APP_ID": str(APP_ID),
            "UNDERSIGN_GITHUB_APP_PRIVATE_KEY": private,
        },
    )
    stack.env.pop("UNDERSIGN_GITHUB_TOKEN", None)
    stack.state.apps.register_app(APP_SLUG, public, owner_login=ORG, app_id=APP_ID)
    return stack


def _calls_cases(opts: Options) -> list[tuple[int, int, bool]]:
    if opts.quick:  # one small and one over GitHub's 250-commit cap
        return [(n, k, u) for n, k in ((1, 1), (300, 10)) for u in (False, True)]
    return [
        (n, k, unsigned)
        for n in (1, 100, 300, 1000)
        for k in (1, 10)
        if k <= n
        for unsigned in (False, True)
    ]


def _calls_run(opts: Options, mode: str) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    people = [f"author{i}" for i in range(1, 11)]
    rows: list[tuple[Any, ...]] = []
    worst = {"floor": 0.0, "token": 0.0, "app": 0.0}
    stack = _calls_stack(opts, mode)
    with stack:
        repo = f"{ORG}/calls"
        stack.seed_agreement([repo])
        stack.add_people([*people, "stranger"])
        for login in people:
            stack.sign(login, notify=False)
        stack.start_serve(embedded_worker=False)
        stack.start_worker()
        state = stack.state
        installation: int | None = None
        if mode == "app":
            installation = int(state.apps.install(APP_ID, ORG)["id"])
            status, _guid = state.deliver_webhook(
                stack.hook_url,
                "installation",
                state.apps.installation_event(installation, "created"),
                secret=WEBHOOK_SECRET,
                target_type="integration",
                target_id=APP_ID,
            )
            if status != 202:
                raise BenchError(f"the installation webhook answered {status}")
            stack.wait_idle(60)

        def event(number: int, action: str) -> list[Any]:
            state.clear_requests()
            payload = state.pull_request_event(repo, number, action, installation_id=installation)
            status, guid = stack.deliver("pull_request", payload)
            if status != 202:
                raise BenchError(f"the webhook answered {status}")
            wait_until(lambda: stack.job_status(guid) in ("done", "failed"), 120, f"job of {guid}")
            if stack.job_status(guid) != "done":
                raise BenchError(f"the job of {guid} failed")
            return list(state.api_calls())

        # One warm-up event: one-time calls (who the bot is, the installation token).
        warm = state.add_pull_request(repo, user_login="stranger", n_commits=1, head_ref="warm")
        warm_calls = event(warm["number"], "opened")
        one_time = sorted(
            {r.rest_path for r in warm_calls if r.rest_path == "/user" or "/app" in r.rest_path}
        )
        started = time.time()
        for index, (n, k, unsigned) in enumerate(_calls_cases(opts)):
            authors = people[:k]
            if unsigned:
                authors = [*authors[:-1], "stranger"]
            # Round robin; the unsigned author (last of ``authors``) makes the last commit.
            sequence = [authors[(i - n - 1) % k] for i in range(1, n + 1)]
            shas = [
                state.add_commit(repo, author_login=login, message=f"Change {i + 1}")
                for i, login in enumerate(sequence)
            ]
            pr = state.add_pull_request(
                repo, user_login=authors[0], commits=shas, head_ref=f"case-{index}"
            )
            first = event(pr["number"], "opened")
            again = event(pr["number"], "synchronize")  # nothing changed since
            verdict = stack.our_status(repo, stack.head(repo, pr["number"]))
            expected = "failure" if unsigned else "success"
            if verdict is None or verdict["state"] != expected:
                raise BenchError(f"N={n} K={k}: expected {expected}, GitHub shows {verdict}")
            reads = sum(1 for r in first if r.method == "GET")
            writes = len(first) - reads
            p = math.ceil(n / 100)
            # The floor: the commit pages and the status (+ the check run of an App), and
            # creating the one comment when someone has not signed.
            floor = p + (2 if mode == "app" else 1) + (1 if unsigned else 0)
            app, token = _cla_assistant(n, k, unsigned)
            worst["floor"] = max(worst["floor"], len(first) / floor)
            worst["token"] = max(worst["token"], len(first) / token)
            worst["app"] = max(worst["app"], len(first) / app)
            conditional = sum(1 for r in again if r.status == 304)
            rows.append(
                (
                    mode,
                    n,
                    k,
                    "one" if unsigned else "none",
                    len(first),
                    f"{reads}/{writes}",
                    floor,
                    len(first) / floor,
                    token,
                    len(first) / token,
                    app,
                    len(first) / app,
                    f"{len(again)} ({conditional} x 304)",
                )
            )
        hours = max((time.time() - started) / 3600, 1e-9)
        token_requests = sum(state.apps.token_requests.values()) if mode == "app" else 0
    notes = {
        "one_time": ", ".join(one_time) or "-",
        "token_requests": token_requests,
        "hours": hours,
        **worst,
    }
    return rows, notes


def calls(opts: Options) -> Result:
    """Calls at the emulator for one ``opened`` delivery of a PR of N commits by K authors,
    with a token and, when this undersign supports it, as a GitHub App."""
    modes = ["token", "app"] if app_mode_available() else ["token"]
    rows: list[tuple[Any, ...]] = []
    notes: dict[str, dict[str, Any]] = {}
    for mode in modes:
        _say(f"calls: {mode} mode")
        mode_rows, notes[mode] = _calls_run(opts, mode)
        rows.extend(mode_rows)
    text = table(
        "GitHub calls for one pull_request event (counted at the emulator)",
        [
            "mode",
            "N",
            "K",
            "unsigned",
            "calls",
            "GET/write",
            "floor",
            "x floor",
            "CLA-a token",
            "x token",
            "CLA-a App",
            "x App",
            "same event again",
        ],
        rows,
    )
    note_rows: list[tuple[Any, ...]] = []
    for mode in modes:
        n = notes[mode]
        note_rows.extend(
            [
                (f"{mode}: one-time calls at the first event", n["one_time"]),
                (f"{mode}: worst ratio to the floor", n["floor"]),
                (f"{mode}: worst ratio to CLA assistant, token mode (2P+K+6+u)", n["token"]),
                (f"{mode}: worst ratio to CLA assistant, App mode (6P+3K+16+3u)", n["app"]),
            ]
        )
    if "app" in notes:
        note_rows.append(
            ("app: installation-token requests in the whole run", notes["app"]["token_requests"])
        )
    else:
        note_rows.append(("app mode", "not measured: UNDERSIGN_GITHUB_APP_ID is not supported"))
    text += table("GitHub calls: notes", ["figure", "value"], note_rows)
    headline = []
    for mode in modes:
        cla_mode = "App" if mode == "app" else "token"
        headline.extend(
            [
                (
                    f"calls ({mode}): worst ratio to the floor",
                    f"{notes[mode]['floor']:.2f}",
                    "1.00",
                ),
                (
                    f"calls ({mode}): worst ratio to CLA assistant ({cla_mode} mode)",
                    f"{notes[mode]['app' if mode == 'app' else 'token']:.2f}",
                    "<= 0.15",
                ),
            ]
        )
    if "app" in notes:
        headline.append(
            (
                "calls (app): installation-token requests",
                str(notes["app"]["token_requests"]),
                "<= 1/h",
            )
        )
    return Result("calls", text, headline)


# --- 3. time to green --------------------------------------------------------------------------


def _window_floor(writes: int, per_minute: int) -> float:
    """Least time from the first to the last of ``writes`` writes under a sliding 60 s window
    of ``per_minute`` (a full window's worth may go at once; the next one a minute later)."""
    return 60.0 * ((writes - 1) // per_minute) if writes > 0 else 0.0


def green(opts: Options) -> Result:
    """One signature unblocks P open pull requests in R repositories; the emulator refuses over
    80 writes a minute, the worker runs with the product's defaults (70/min, 450/h). Measured:
    until the last success status (what gates a merge), against the least time the statuses
    alone can take; and until the last comment edit."""
    scale = 0.1 if opts.quick and opts.scale == 1.0 else opts.scale
    n_prs, n_repos = max(1, round(100 * scale)), max(1, round(10 * scale))
    repos = [f"{ORG}/green-{i}" for i in range(n_repos)]
    with Stack.create("green", db=opts.db) as stack:
        stack.seed_agreement(repos)
        stack.add_people(["contrib"])
        state = stack.state
        prs = []
        for i in range(n_prs):
            repo = repos[i % n_repos]
            pr = state.add_pull_request(
                repo, user_login="contrib", n_commits=1, head_ref=f"topic-{i}"
            )
            prs.append((repo, int(pr["number"])))
        # Before: every pull request evaluated once (red, with its comment), by the same code
        # in this process with a second token of the bot and no pacing, so the measured
        # worker starts with its own fresh write budget.
        from undersign.enforcement.service import evaluate_pull_request
        from undersign.jobs.context import JobContext

        setup_token = state.issue_token(BOT_LOGIN)
        setup = JobContext.from_settings(
            stack.settings().replace(
                github_token=setup_token,
                github_writes_per_minute=100_000,
                github_writes_per_hour=100_000,
            ),
            stack.database,
        )
        for repo, number in prs:
            if evaluate_pull_request(setup, repo, number).state != "failure":
                raise BenchError("set-up: the pull request should be red")
        setup.github.close()
        stack.start_worker()
        state.content_creation_limit_per_minute = 80  # GitHub's secondary limit
        state.clear_requests()
        heads = [(repo, stack.head(repo, number)) for repo, number in prs]
        settings = stack.settings()
        budget = 60.0 * (2 * n_prs / settings.github_writes_per_minute + 2) + 60
        started = time.time()
        stack.sign("contrib")

        def all_green() -> bool:
            stack.procs["worker"].check()
            return all(
                (s := stack.our_status(repo, sha)) is not None and s["state"] == "success"
                for repo, sha in heads
            )

        wait_until(all_green, budget, "every pull request to turn green", poll=0.1)
        stack.wait_idle(budget)  # the comment edits follow the statuses
        calls_made = state.api_calls()
        writes = [r for r in calls_made if r.method in ("POST", "PATCH", "PUT", "DELETE")]
        refused = [r for r in calls_made if r.status in (403, 429)]
        success_posts = [
            (i, r)
            for i, r in enumerate(writes)
            if r.rest_path.split("/")[4:5] == ["statuses"]
            and json.loads(r.body or b"{}").get("state") == "success"
        ]
        edits = [(i, r) for i, r in enumerate(writes) if r.method == "PATCH"]
        if len(success_posts) < n_prs or len(edits) < n_prs:
            raise BenchError(
                f"{len(success_posts)} success statuses and {len(edits)} comment edits for "
                f"{n_prs} pull requests"
            )
        last_index, last = success_posts[-1]
        elapsed = last.time - started
        last_edit = edits[-1][1].time - started
        edits_first = sum(1 for i, _ in edits if i < last_index)
    floor = _window_floor(n_prs, 80)
    all_floor = _window_floor(n_prs + len(edits), 80)
    rows: list[tuple[Any, ...]] = [
        (
            "last success status",
            elapsed,
            f"{n_prs} statuses at 80/min (window)",
            floor,
            (elapsed / floor) if floor > 0 else "n/a (under one window)",
        ),
        (
            "last comment edit",
            last_edit,
            f"{n_prs + len(edits)} writes at 80/min (window)",
            all_floor,
            (last_edit / all_floor) if all_floor > 0 else "n/a (under one window)",
        ),
    ]
    text = table(
        f"Time to green: 1 signature -> {n_prs} pull requests in {n_repos} repositories",
        ["until", "seconds", "floor", "floor s", "measured / floor"],
        rows,
    )
    text += table(
        "Time to green: run",
        ["figure", "value"],
        [
            ("signature committed -> last success status (s)", elapsed),
            ("signature committed -> last comment edit (s)", last_edit),
            ("writes up to the last success status", last_index + 1),
            ("comment edits before the last success status", edits_first),
            ("writes in all (statuses + comment edits)", len(writes)),
            ("comment edits", len(edits)),
            ("calls refused by GitHub (403/429)", len(refused)),
            ("all calls", len(calls_made)),
            ("304 answers (free of rate limit)", sum(1 for r in calls_made if r.status == 304)),
        ],
    )
    headline_ratio = f"{elapsed / floor:.2f}" if floor > 0 else "n/a"
    return Result(
        "green",
        text,
        [
            (
                f"green: {n_prs} PRs, last status / statuses-only window floor",
                headline_ratio,
                "<= 1.1",
            ),
            ("green: refused calls", str(len(refused)), "0"),
            (
                f"green: last comment edit lands (s after signing; {n_prs} edits)",
                f"{last_edit:.0f}",
                "reported",
            ),
        ],
    )


# --- 4. scale of the signature table -----------------------------------------------------------


def _latency_sample(stack: Stack, repo: str, number: int) -> float:
    """Push a commit, deliver ``synchronize``, time until the new head's status is visible."""
    state = stack.state
    pr = state.push_commits(repo, number, n_commits=1, author_login="alice")
    sha = str(pr["head"]["sha"])
    payload = state.pull_request_event(repo, number, "synchronize")
    started = time.monotonic()
    status, _ = stack.deliver("pull_request", payload)
    if status != 202:
        raise BenchError(f"the webhook answered {status}")

    def visible() -> bool:
        return stack.our_status(repo, sha) is not None

    wait_until(visible, 60, "the status of the new head", poll=0.002)
    return time.monotonic() - started


def scale(opts: Options) -> Result:
    """Webhook-to-status time with a small and a huge signature table, two installations side
    by side, measured in alternating batches (the first sample of each batch discarded: it
    wakes a queue worker from its idle back-off)."""
    small, big = (100, 5000) if opts.quick else (1000, 1_000_000)
    batches, per_batch = (1, 2) if opts.quick else (4, 8)
    stacks: dict[int, Stack] = {}
    samples: dict[int, list[float]] = {small: [], big: []}
    inserted: dict[int, float] = {}
    repo = f"{ORG}/scale"
    try:
        for size in (small, big):
            stack = Stack.create(f"scale{size}", db=opts.db)
            stacks[size] = stack
            stack.seed_agreement([repo])
            stack.add_people(["alice"])
            stack.sign("alice", notify=False)
            _say(f"scale: inserting {size - 1:,} signatures")
            inserted[size] = stack.bulk_signatures(size - 1)
            stack.start_serve(embedded_worker=False)
            stack.start_worker()
        numbers = {}
        for size, stack in stacks.items():
            pr = stack.state.add_pull_request(repo, user_login="alice", n_commits=1)
            numbers[size] = int(pr["number"])
            _latency_sample(stack, repo, numbers[size])  # first evaluation of the PR
        for _ in range(batches):
            for size, stack in stacks.items():
                _latency_sample(stack, repo, numbers[size])  # wakes the worker
                samples[size].extend(
                    _latency_sample(stack, repo, numbers[size]) for _ in range(per_batch)
                )
        counts = {size: stack.signature_count() for size, stack in stacks.items()}
    finally:
        for stack in stacks.values():
            stack.close()
    med = {size: statistics.median(values) for size, values in samples.items()}
    ratio = med[big] / med[small]
    rows = [
        (
            f"{counts[size]:,}",
            len(samples[size]),
            med[size] * 1000,
            percentile(samples[size], 90) * 1000,
            max(samples[size]) * 1000,
            inserted[size],
        )
        for size in (small, big)
    ]
    backend = "SQLite" if opts.db == "sqlite" else "PostgreSQL"
    text = table(
        f"Scale of the signature table ({backend}): webhook -> status visible at GitHub",
        ["signatures", "samples", "median ms", "p90 ms", "max ms", "bulk insert s"],
        rows,
    )
    text += table(
        "Scale: summary",
        ["figure", "value"],
        [(f"median with {big:,} / median with {small:,} (goal <= 1.2)", ratio)],
    )
    return Result(
        "scale",
        text,
        [(f"scale: {big:,} vs {small:,} signatures ({backend})", f"{ratio:.2f}", "<= 1.2")],
    )


# --- 5. memory ---------------------------------------------------------------------------------


def hello_worker_rss(stack: Stack, requests: int = 300) -> float:
    """Peak RSS of a hello-world gunicorn worker under the same settings (the baseline)."""
    import httpx
    import psutil

    port = free_port()
    hello = Proc.start(
        "hello-mem",
        [sys.executable, "-m", "bench.hello", "--port", str(port)],
        stack.env,
        stack.root,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", hello)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(requests):
                client.post("/webhooks/github", content=b"{}" * 1000)
        children = psutil.Process(hello.pid).children()
        return max(peak_rss_mb(child.pid) for child in children)
    finally:
        hello.stop()


def memory(opts: Options) -> Result:
    """Peak RSS of a web worker and of ``undersign worker`` after a (short) load run."""
    from bench.load import LoadOptions, run_load

    load_opts = (
        LoadOptions(rate=20, seconds=2, users=6, users_seconds=2, prs=6)
        if opts.quick
        else LoadOptions(rate=20, seconds=20, users=20, users_seconds=10)
    )
    report = run_load(load_opts, db=opts.db, keep_open=True)
    stack = report.stack
    assert stack is not None
    try:
        web = [peak_rss_mb(pid) for pid in stack.web_worker_pids()]
        worker = peak_rss_mb(stack.procs["worker"].pid)
        master = peak_rss_mb(stack.procs["serve"].pid)
        baseline = hello_worker_rss(stack)
    finally:
        stack.close()
    rows = [
        ("web worker (gunicorn worker of undersign serve), max of " + str(len(web)), max(web)),
        ("undersign serve master (no embedded worker)", master),
        ("queue worker (undersign worker, 2 threads)", worker),
        ("hello-world gunicorn worker (baseline, same settings)", baseline),
    ]
    text = table(
        f"Memory: peak RSS (VmHWM) after the load run ({load_opts.describe()})",
        ["process", "MB"],
        rows,
    )
    text += table(
        "Memory: ratios",
        ["figure", "value"],
        [
            ("web worker / hello-world worker", max(web) / baseline),
            ("queue worker / hello-world worker", worker / baseline),
        ],
    )
    return Result(
        "memory",
        report.text + text,
        [
            ("memory: web worker peak RSS (MB)", f"{max(web):.0f}", "reported"),
            ("memory: queue worker peak RSS (MB)", f"{worker:.0f}", "reported"),
        ],
    )


BENCHMARKS: dict[str, Callable[[Options], Result]] = {
    "ingest": ingest,
    "calls": calls,
    "green": green,
    "scale": scale,
    "memory": memory,
}
