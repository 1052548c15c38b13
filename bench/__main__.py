"""``python -m bench [ingest calls green scale memory] [--quick] [--db URL] [--scale F]``

Runs the chosen benchmarks (all by default) one after the other and prints their tables,
then a summary of the headline ratios. ``--quick`` runs each in seconds (the smoke test).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from bench.benchmarks import BENCHMARKS, Options, Result
from bench.harness import BenchError, table


def machine() -> str:
    import os

    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPU ({cpu}), {memory:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes (smoke)")
    parser.add_argument("--db", default="sqlite", help="'sqlite' (default) or a PostgreSQL URL")
    parser.add_argument(
        "--pg",
        default="",
        help="ingest's second backend: a PostgreSQL URL (queue on the local Redis); 'none' to"
        " skip; default: --db if it is PostgreSQL, else the local test server",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="time to green: fraction of 100 PRs / 10 repos"
    )
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {list(BENCHMARKS)}")
    if not 0 < args.scale <= 1.0:
        parser.error("--scale must be in (0, 1]")
    opts = Options(quick=args.quick, db=args.db, scale=args.scale, pg=args.pg)
    print(f"machine: {machine()}")
    print(f"command: python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}")
    results: list[Result] = []
    failed: list[str] = []
    for name in names:
        started = time.monotonic()
        print(f"\n## {name}", flush=True)
        try:
            result = BENCHMARKS[name](opts)
        except BenchError as exc:
            print(f"{name} could not run: {exc}", flush=True)
            failed.append(name)
            continue
        print(result.text)
        print(f"\n({name}: {time.monotonic() - started:.0f} s)", flush=True)
        results.append(result)
    rows = [row for result in results for row in result.headline]
    print(table("Summary", ["figure", "measured", "goal"], rows))
    if failed:
        print(f"\nnot run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
