"""Fixtures of the fault suite: the live app, the emulator and a queue worker, all with short
timeouts, leases and backoffs so every fault resolves in seconds."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import CLAFactory, CLAService, Live, LiveFactory

#: What the workers run with in this suite (production: 10 s, 2 s, 120 s, 60 s).
FAST: dict[str, Any] = {
    "http_timeout": 1,
    "job_retry_base_ms": 50,
    "job_max_attempts": 8,
    "job_lease": 3,
    "github_secondary_wait": 2,
    # The periodic reconciler re-evaluates on its own schedule; these tests count only what
    # the deliveries they send cause.
    "reconcile_interval": 0,
}


@pytest.fixture
def live(live_factory: LiveFactory) -> Live:
    """The live app of tests/conftest.py, without the periodic reconciler (see FAST)."""
    return live_factory(UNDERSIGN_RECONCILE_INTERVAL="0")


@pytest.fixture
def fast_factory(cla_factory: CLAFactory) -> CLAFactory:
    def build(start: bool = True, **changes: Any) -> CLAService:
        return cla_factory(start=start, **{**FAST, **changes})

    return build


@pytest.fixture
def fast(fast_factory: CLAFactory) -> CLAService:
    """The CLA service with an embedded consumer (2 worker threads) and FAST settings."""
    return fast_factory()
