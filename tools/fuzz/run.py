"""``make fuzz``: each target for FUZZ_SECONDS (default 30) under atheris (libFuzzer).

Each target runs in its own process (atheris.Fuzz() never returns). Without atheris, the
same targets get a plain-Python replay: the seeds, then random mutations of them, for the
same time. Exit status is non-zero when any target found a failing input (printed).
Usage: python tools/fuzz/run.py [target ...]   (targets: next signature markdown co_authors)
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _child(name: str, seconds: int) -> None:
    """In the child process: hand one target to atheris."""
    import atheris

    # Instrument undersign as it is imported, so libFuzzer sees coverage of the parsers.
    with atheris.instrument_imports(include=["undersign", "targets"]):
        from targets import SEEDS, TARGETS
    target = TARGETS[name]
    corpus = tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    for index, seed in enumerate(SEEDS[name]):
        Path(corpus, f"seed{index}").write_bytes(seed)
    atheris.Setup(
        [sys.argv[0], f"-max_total_time={seconds}", "-max_len=4096", "-timeout=10", corpus],
        target,
    )
    atheris.Fuzz()


def _mutate(seed: bytes, rng: random.Random) -> bytes:
    from targets import SEEDS

    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        position = rng.randint(0, len(data))
        if choice < 0.4 or not data:
            data[position:position] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 4)))
        elif choice < 0.7:
            del data[min(position, len(data) - 1)]
        else:
            other = rng.choice([s for seeds in SEEDS.values() for s in seeds])
            data[position:position] = other
    return bytes(data)


def replay(name: str, seconds: float) -> int:
    """Plain Python: seeds, then mutations, until the time is up. Returns inputs tried."""
    from targets import SEEDS, TARGETS

    rng = random.Random(0)  # noqa: S311 - reproducible mutations, not crypto
    target = TARGETS[name]
    tried = 0
    deadline = time.monotonic() + seconds
    inputs = list(SEEDS[name])
    while True:
        data = inputs.pop() if inputs else _mutate(rng.choice(SEEDS[name]), rng)
        try:
            target(data)
        except Exception:
            print(f"{name}: failing input {data!r}", file=sys.stderr)
            raise
        tried += 1
        if not inputs and time.monotonic() > deadline:
            return tried


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--child":
        _child(argv[2], int(os.environ.get("FUZZ_SECONDS", "30")))
        return 0
    seconds = int(os.environ.get("FUZZ_SECONDS", "30"))
    names = argv[1:] or ["next", "signature", "markdown", "co_authors"]
    failed = []
    for name in names:
        if _atheris_available():
            print(f"== {name}: atheris for {seconds}s", flush=True)
            done = subprocess.run(  # noqa: S603 - our own interpreter and script
                [sys.executable, __file__, "--child", name], check=False
            )
            if done.returncode != 0:
                failed.append(name)
        else:
            print(f"== {name}: atheris missing, plain replay for {seconds}s", flush=True)
            try:
                print(f"   {replay(name, seconds)} inputs, no failure")
            except Exception:
                failed.append(name)
    if failed:
        print(f"fuzz: failures in {', '.join(failed)}", file=sys.stderr)
        return 1
    print("fuzz: no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
