"""Rolling restart behind nginx: how many requests fail while the web processes restart?

    python -m bench.rolling_restart [--rounds 2] [--db postgresql+psycopg://...]

Starts nginx (Debian's, installed when missing and root) with deploy/nginx.conf.example on
loopback ports, in a folder of its own, in front of two ``undersign serve`` processes; probes
it continuously over HTTPS (GET /healthz and signed ``pull_request`` webhook deliveries, each
one a job row); and restarts the two upstreams one at a time exactly as docs/deploy.md
section 8 does with systemd: stop (SIGTERM to the whole process group, as systemd's
``KillMode=control-group`` does), start again on the same port, wait until its /readyz
answers 200, then the next. Reports every request that did not get its normal answer (goal:
0). Everything is bounded in time and count, on 127.0.0.1 only; it stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench import nginx_setup
from bench.harness import (
    HOOK_ID,
    UNDERSIGN,
    WEBHOOK_SECRET,
    BenchError,
    Proc,
    Stack,
    free_port,
    table,
    wait_until,
)
from undersign.emulator import signatures

REPO = "bench-org/rolling"
PROBE_THREADS = 4
MAX_REQUESTS = 200_000  # a bound on the probe loops, far above what a run sends
MAX_SECONDS = 300.0


@dataclass
class ProbeLog:
    """Every probe request's outcome: normal, or what went wrong."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, problem: str | None) -> None:
        with self.lock:
            self.sent[kind] += 1
            if problem is not None:
                self.failed[f"{kind}: {problem}"] += 1

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    @property
    def failures(self) -> int:
        return sum(self.failed.values())


def _probe(base: str, payload: bytes, stop: threading.Event, log: ProbeLog) -> None:
    """One client of nginx, alternating a health check and a webhook delivery."""
    deadline = time.monotonic() + MAX_SECONDS
    with httpx.Client(base_url=base, verify=False, timeout=10) as client:  # noqa: S501 - loopback, self-signed
        for n in range(MAX_REQUESTS):
            if stop.is_set() or time.monotonic() > deadline:
                return
            if n % 2:
                kind, expected = "GET /healthz", {200}
                request = client.build_request("GET", "/healthz")
            else:
                kind, expected = "POST /webhooks/github", {202}
                request = client.build_request(
                    "POST",
                    "/webhooks/github",
                    content=payload,
                    headers={
                        "Content-Type": "application/json",
                        "X-GitHub-Event": "pull_request",
                        "X-GitHub-Delivery": str(uuid.uuid4()),
                        "X-GitHub-Hook-ID": HOOK_ID,
                        "X-Hub-Signature-256": signatures(WEBHOOK_SECRET, payload)[0],
                    },
                )
            try:
                status = client.send(request).status_code
                log.record(kind, None if status in expected else f"HTTP {status}")
            except httpx.HTTPError as exc:
                log.record(kind, type(exc).__name__)


def _start_web(stack: Stack, name: str, port: int, env: dict[str, str]) -> Proc:
    cmd = [UNDERSIGN, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    proc = Proc.start(name, [*cmd, "--threads", "4", "--no-embedded-worker"], env, stack.root)
    stack.procs[name] = proc
    return proc


def _ready(proc: Proc, port: int) -> bool:
    proc.check()
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Result:
    requests: int
    failures: int
    failed: dict[str, int]
    sent: dict[str, int]
    restarts: list[tuple[str, float]]
    text: str


def run(rounds: int = 2, db: str = "sqlite", queue: str | None = None) -> Result:
    nginx = nginx_setup.ensure_nginx()
    queue_env = (
        {"UNDERSIGN_QUEUE_URL": queue, "UNDERSIGN_QUEUE_NAME": f"rolling-{uuid.uuid4().hex[:8]}"}
        if queue
        else {}
    )
    with Stack.create("rolling", db=db, extra_env=queue_env) as stack:
        state = stack.state
        state.add_repo(REPO)
        pull = state.add_pull_request(REPO, user_login="undersign-bot", n_commits=1)
        number = pull["number"] if isinstance(pull, dict) else int(pull)
        event = state.pull_request_event(REPO, number, "opened")
        payload = json.dumps(event, separators=(",", ":")).encode("utf-8")

        ports = (free_port(), free_port())
        https_port, http_port = free_port(), free_port()
        env = {
            **stack.env,
            "UNDERSIGN_BASE_URL": f"https://127.0.0.1:{https_port}",
            "UNDERSIGN_TRUSTED_PROXIES": "1",
        }
        main = nginx_setup.standalone(
            stack.root / "nginx", http_port=http_port, https_port=https_port, upstreams=ports
        )
        checked = nginx_setup.check_config(nginx, main)
        if checked.returncode != 0:
            raise BenchError(f"nginx -t failed:\n{checked.stderr}")
        proxy = subprocess.Popen(
            [nginx, "-p", f"{main.parent}/", "-c", str(main), "-e", "stderr", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        stop = threading.Event()
        log = ProbeLog()
        threads: list[threading.Thread] = []
        restarts: list[tuple[str, float]] = []
        try:
            webs = {f"web-{p}": _start_web(stack, f"web-{p}", p, env) for p in ports}
            for name, port in zip(webs, ports, strict=True):
                wait_until(lambda n=name, p=port: _ready(stack.procs[n], p), 60, f"{name} ready")
            base = f"https://127.0.0.1:{https_port}"
            wait_until(lambda: _through_nginx(base), 30, "nginx answering")
            threads = [
                threading.Thread(target=_probe, args=(base, payload, stop, log), daemon=True)
                for _ in range(PROBE_THREADS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(2.0)  # a baseline before the first restart
            for _round in range(rounds):
                for name, port in zip(webs, ports, strict=True):
                    started = time.monotonic()
                    # systemctl restart undersign-web@PORT: stop (and wait), then start ...
                    stack.procs[name].stop(timeout=30)
                    _start_web(stack, name, port, env)
                    # ... and the documented wait for /readyz before the next one.
                    wait_until(lambda n=name, p=port: _ready(stack.procs[n], p), 60, name)
                    restarts.append((name, time.monotonic() - started))
                time.sleep(1.0)
            time.sleep(2.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=15)
            proxy.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proxy.wait(timeout=10)
            if proxy.poll() is None:
                proxy.kill()
                proxy.wait(timeout=5)
    rows = [[kind, count] for kind, count in sorted(log.sent.items())]
    rows += [[f"failed {what}", count] for what, count in sorted(log.failed.items())]
    rows.append(["restarts", ", ".join(f"{n} {s:.1f} s" for n, s in restarts)])
    text = table(
        f"rolling restart: {rounds} round(s) of 2 upstreams behind nginx; "
        f"{log.total} requests, {log.failures} failed",
        ["what", "count"],
        rows,
    )
    return Result(log.total, log.failures, dict(log.failed), dict(log.sent), restarts, text)


def _through_nginx(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", verify=False, timeout=2).status_code == 200  # noqa: S501
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rolling_restart")
    parser.add_argument("--rounds", type=int, default=2, help="restarts of each upstream")
    parser.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--queue", default=None, help="a redis:// URL (default: SQLite file)")
    args = parser.parse_args(argv)
    result = run(rounds=max(1, min(args.rounds, 10)), db=args.db, queue=args.queue)
    print(result.text)
    print(f"failed requests: {result.failures} of {result.requests}")
    return 0 if result.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
