"""The write pacer: never more than the limit inside any window, shared through the database."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from undersign.db import Database
from undersign.github.errors import RateLimited
from undersign.github.models import WriteSlot
from undersign.github.pacing import WritePacer, token_key


def test_token_key_hides_the_token() -> None:
    key = token_key("ghp_secret")
    assert "secret" not in key and len(key) == 64


def test_writes_stay_within_a_sliding_window(database: Database) -> None:
    """5 writes per (scaled) 0.5 s window; 12 writes from 3 threads, as 3 processes would."""
    pacers = [WritePacer(database, "k", per_minute=5, per_hour=1000, minute=0.5) for _ in range(3)]
    stamps: list[float] = []
    lock = threading.Lock()

    def work(pacer: WritePacer) -> None:
        for _ in range(4):
            pacer.before_request("POST")
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work, args=(p,)) for p in pacers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 12
    # The times the pacer decided on (taken under its lock), not when each thread got to run
    # again: on a loaded machine a thread may append its stamp late.
    with database.session() as session:
        slots = sorted(
            session.scalars(select(WriteSlot.created_at).where(WriteSlot.token_key == "k"))
        )
    assert len(slots) == 12
    for i in range(len(slots) - 5):
        # the 6th write waits for the 1st to leave the 0.5 s window
        assert (slots[i + 5] - slots[i]).total_seconds() >= 0.5
    assert (slots[-1] - slots[0]).total_seconds() >= 1.0
    assert sum(p.waited for p in pacers) > 0


def test_reads_are_not_paced(database: Database) -> None:
    pacer = WritePacer(database, "k", per_minute=1, per_hour=1, minute=60)
    pacer.before_request("POST")
    started = time.monotonic()
    for _ in range(5):
        pacer.before_request("GET")
    assert time.monotonic() - started < 1


def test_hour_window_is_enforced_too(database: Database) -> None:
    slept: list[float] = []
    pacer = WritePacer(
        database, "k", per_minute=100, per_hour=2, minute=60, hour=3600, sleep=slept.append
    )
    pacer.before_request("POST")
    pacer.before_request("POST")
    assert pacer._try_acquire() > 3000
    assert slept == []


def test_an_installations_gate_shuts_that_installation_only(database: Database) -> None:
    """App mode: one installation's primary limit ran out; the app's gate and the other
    installations' stay open, in every process."""
    first = WritePacer(database, "app", per_minute=10, per_hour=10)
    other = WritePacer(database, "app", per_minute=10, per_hour=10)
    first.block(30, "API rate limit exceeded for installation ID 7.", "installation:7")
    with pytest.raises(RateLimited) as caught:
        other.check_gate("installation:7")
    assert caught.value.scope == "installation:7" and 25 < caught.value.retry_after <= 30
    other.check_gate("installation:8")
    other.before_request("GET")  # the app's own gate is open
    assert other.scoped_key("installation:7") not in ("app", other.scoped_key("installation:8"))


def test_gate_blocks_every_pacer_of_the_token(database: Database) -> None:
    first = WritePacer(database, "k", per_minute=10, per_hour=10)
    other = WritePacer(database, "k", per_minute=10, per_hour=10)
    unrelated = WritePacer(database, "other", per_minute=10, per_hour=10)
    assert first.block(-5, "garbage retry-after") == 1.0  # clamped to [1 s, 1 h]
    assert first.block(10**9, "reset far away") == 3600.0
    with pytest.raises(RateLimited) as caught:
        other.before_request("GET")
    assert 3500 < caught.value.retry_after <= 3600
    unrelated.before_request("GET")
