"""A small HTTP load generator, run as its own process so it never shares a GIL with the server
it measures: ``python -m bench.loadgen spec.json`` prints a JSON result.

Threads with keep-alive connections (``http.client``, the cheapest client in the standard
library). Two modes, both bounded in time and in request count:

* ``closed``: every thread sends back to back (throughput);
* ``rate``: requests leave on a fixed schedule, ``rate`` a second (latency under a steady
  load), whatever the answers take.

Webhook requests carry a unique ``X-GitHub-Delivery`` each and the HMAC of their body.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HARD_MAX_SECONDS = 900.0
HARD_MAX_REQUESTS = 2_000_000


@dataclass
class _Kind:
    name: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    webhook: bool


@dataclass
class _Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _kinds(spec: dict[str, Any]) -> list[_Kind]:
    kinds = []
    for item in spec["requests"]:
        body = Path(item["body_file"]).read_bytes() if item.get("body_file") else b""
        headers = dict(item.get("headers") or {})
        if item.get("webhook"):
            digest = hmac.new(spec["secret"].encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
            headers.setdefault("Content-Type", "application/json")
        kinds.append(
            _Kind(
                item.get("name", item["path"]),
                item.get("method", "GET"),
                item["path"],
                body,
                headers,
                bool(item.get("webhook")),
            )
        )
    return kinds


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load as ``spec`` says; returns counts and latencies per request kind."""
    host, port = spec.get("host", "127.0.0.1"), int(spec["port"])
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load generator only talks to loopback")
    kinds = _kinds(spec)
    threads = int(spec.get("threads", 4))
    seconds = min(float(spec.get("seconds", 5.0)), HARD_MAX_SECONDS)
    max_requests = min(int(spec.get("max_requests", HARD_MAX_REQUESTS)), HARD_MAX_REQUESTS)
    rate = float(spec.get("rate", 0.0))
    prefix = str(spec.get("delivery_prefix", "bench"))
    timeout = float(spec.get("timeout", 30.0))

    start_at = float(spec.get("start_at", 0.0))
    if start_at > time.time():
        time.sleep(min(start_at - time.time(), 30.0))
    start = time.monotonic()
    end = start + seconds
    counter = itertools.count()
    lock = threading.Lock()
    tallies = {k.name: _Tally() for k in kinds}
    max_lag = [0.0]

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            with lock:
                i = next(counter)
            if i >= max_requests:
                break
            if rate > 0:
                planned = start + i / rate
                if planned >= end:
                    break
                wait = planned - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    with lock:
                        max_lag[0] = max(max_lag[0], -wait)
            elif time.monotonic() >= end:
                break
            kind = kinds[i % len(kinds)]
            headers = dict(kind.headers)
            if kind.webhook:
                headers["X-GitHub-Delivery"] = f"{prefix}-{i}"
            tally = tallies[kind.name]
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request(kind.method, kind.path, body=kind.body or None, headers=headers)
                response = conn.getresponse()
                response.read()
                elapsed = time.monotonic() - sent
                with lock:
                    tally.statuses[str(response.status)] += 1
                    tally.latencies.append(elapsed)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    tally.statuses["error"] += 1
                    if len(tally.errors) < 5:
                        tally.errors.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + timeout + 5)
    elapsed = time.monotonic() - start
    return {
        "elapsed": elapsed,
        "max_lag": max_lag[0],
        "kinds": {
            name: {
                "statuses": dict(t.statuses),
                "latencies": t.latencies,
                "errors": t.errors,
            }
            for name, t in tallies.items()
        },
    }


def run_processes(spec: dict[str, Any], processes: int) -> dict[str, Any]:
    """The same ``spec`` in ``processes`` generator processes started together; merged."""
    spec = {**spec, "start_at": time.time() + 1.0 + 0.2 * processes}
    procs: list[subprocess.Popen[bytes]] = []
    spec_files: list[Path] = []
    for n in range(processes):
        part = {**spec, "delivery_prefix": f"{spec.get('delivery_prefix', 'bench')}-p{n}"}
        if "max_requests" in spec:
            part["max_requests"] = max(1, int(spec["max_requests"]) // processes)
        if spec.get("rate"):
            part["rate"] = float(spec["rate"]) / processes
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(part, handle)
        spec_files.append(Path(handle.name))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", handle.name],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=str(Path(__file__).resolve().parent.parent),
            )
        )
    limit = float(spec.get("seconds", 5.0)) + float(spec.get("timeout", 30.0)) + 60
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {err.decode(errors='replace')[-2000:]}")
        results.append(json.loads(out))
    for path in spec_files:
        path.unlink(missing_ok=True)
    merged: dict[str, Any] = {
        "elapsed": max(r["elapsed"] for r in results),
        "max_lag": max(r["max_lag"] for r in results),
        "kinds": {},
    }
    for result in results:
        for name, data in result["kinds"].items():
            into = merged["kinds"].setdefault(
                name, {"statuses": Counter(), "latencies": [], "errors": []}
            )
            into["statuses"].update(data["statuses"])
            into["latencies"].extend(data["latencies"])
            into["errors"].extend(data["errors"])
    for data in merged["kinds"].values():
        data["statuses"] = dict(data["statuses"])
    return merged


def main() -> None:
    source = Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else sys.stdin.read()
    spec = json.loads(source)
    json.dump(run(spec), sys.stdout)


if __name__ == "__main__":
    main()
