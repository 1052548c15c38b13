"""Anti-automation on sign-in (SECURITY O13, 6.A.18, 6.B.31 for the client IP key)."""

from __future__ import annotations

import secrets
import time
import uuid

import httpx
from tests.conftest import Live, LiveFactory

from undersign.db import Database
from undersign.web import ratelimit
from undersign.web.ratelimit import SIGN_IN_LIMIT, count_hit


def _token_requests(live: Live) -> list[object]:
    return [r for r in live.emulator.state.requests if r.path == "/login/oauth/access_token"]


def _early_in_a_window(needed: float = 20.0) -> None:
    """The budget counts per fixed window (``SIGN_IN_PERIOD``): a burst that straddles the turn
    of a window is counted from zero again halfway. Start it with ``needed`` seconds of the
    window left (a loaded machine once took the burst across a minute boundary)."""
    left = ratelimit.SIGN_IN_PERIOD - time.time() % ratelimit.SIGN_IN_PERIOD
    if left < needed:
        time.sleep(left + 0.05)


def test_bogus_callbacks_make_no_token_request_and_hit_429(live: Live) -> None:
    """SECURITY 6.A.18: more than the budget of /login/callback with random code and state
    from one IP -> 400 (no outbound token request) then 429 with Retry-After on the error
    page with the security headers; /login shares the budget."""
    statuses: list[int] = []
    _early_in_a_window()
    with live.client() as client:
        for _ in range(SIGN_IN_LIMIT + 5):
            response = client.get(
                "/login/callback",
                params={"code": secrets.token_hex(10), "state": secrets.token_urlsafe(16)},
            )
            statuses.append(response.status_code)
        limited = client.get("/login")
    assert set(statuses[:SIGN_IN_LIMIT]) == {400}
    assert set(statuses[SIGN_IN_LIMIT:]) == {429}
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= ratelimit.SIGN_IN_PERIOD
    assert "Too many sign-in attempts" in limited.text
    assert "frame-ancestors 'none'" in limited.headers["content-security-policy"]
    assert _token_requests(live) == []
    with live.client() as client:  # other routes are not limited
        assert client.get("/").status_code == 200


def test_the_count_is_shared_through_the_database(database: Database) -> None:
    """Two processes see one count: the budget lives in the database, not in memory
    (a second Database object stands for a second worker process)."""
    other = Database(database.url)
    key = f"sign-in:{uuid.uuid4()}"
    try:
        assert count_hit(database, key, 60, now=1200.0) == 1
        assert count_hit(other, key, 60, now=1201.0) == 2
        assert count_hit(database, key, 60, now=1259.0) == 3
        assert count_hit(other, key, 60, now=1260.0) == 1  # next window
    finally:
        other.dispose()


def test_spoofed_forwarded_for_does_not_escape_the_limit(live_factory: LiveFactory) -> None:
    """SECURITY 6.B.31 / ASVS 15.3.4: behind one trusted proxy, a client rotating its own
    X-Forwarded-For values is still one client (ProxyFix takes only the proxy's entry)."""
    live = live_factory(UNDERSIGN_TRUSTED_PROXIES="1")
    statuses = []
    _early_in_a_window()
    with httpx.Client(base_url=live.url, timeout=10) as client:
        for n in range(SIGN_IN_LIMIT + 3):
            # The proxy appends the real client (203.0.113.7) after what the client sent.
            forwarded = f"198.51.100.{n % 250}, 203.0.113.7"
            response = client.get(
                "/login/callback?code=x&state=y", headers={"X-Forwarded-For": forwarded}
            )
            statuses.append(response.status_code)
        other_client = client.get(
            "/login/callback?code=x&state=y", headers={"X-Forwarded-For": "203.0.113.8"}
        )
    assert statuses[-1] == 429
    assert other_client.status_code == 400  # a different real client has its own budget
