"""Rate limits, secondary limits and injected faults."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from emulator_support import FakeClock

from undersign.emulator import GitHubEmulator

Api = Callable[..., httpx.Client]


def test_primary_rate_limit(api: Api, state: GitHubEmulator) -> None:
    clock = FakeClock()
    state.clock = clock
    token = state.issue_token("alice")
    client = api(token)
    state.set_rate_limit(token, 1, reset_at=clock.now + 120)
    assert client.get("/user").status_code == 200
    refused = client.get("/user")
    assert refused.status_code == 403
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == str(int(clock.now + 120))
    user_id = state.user("alice")["id"]
    assert refused.json()["message"] == f"API rate limit exceeded for user ID {user_id}."
    # The limit is per user: another token of alice's is refused too; /rate_limit still answers.
    assert api(state.issue_token("alice")).get("/user").status_code == 403
    assert client.get("/rate_limit").json()["resources"]["core"]["remaining"] == 0
    clock.advance(121)
    assert client.get("/user").status_code == 200


def test_githubkit_classifies_the_primary_limit(emulator: object, state: GitHubEmulator) -> None:
    from githubkit import GitHub, TokenAuthStrategy
    from githubkit.exception import PrimaryRateLimitExceeded

    token = state.issue_token("alice")
    state.set_rate_limit("alice", 0)
    gh = GitHub(TokenAuthStrategy(token), base_url=state.api_url + "/", auto_retry=False)
    try:
        gh.rest.users.get_authenticated()
    except PrimaryRateLimitExceeded:
        pass
    else:
        raise AssertionError("expected PrimaryRateLimitExceeded")


def test_secondary_limit_on_content_creation(api: Api, state: GitHubEmulator) -> None:
    state.add_repo("alice/repo")
    state.add_pull_request("alice/repo", user_login="bob", n_commits=1)
    client = api(state.issue_token("alice"))
    state.secondary_limit(times=2, retry_after=30)
    assert client.get("/user").status_code == 200  # reads are not affected
    first = client.post("/repos/alice/repo/issues/1/comments", json={"body": "hi"})
    assert first.status_code == 403
    assert first.headers["Retry-After"] == "30"
    assert first.json()["message"].startswith("You have exceeded a secondary rate limit.")
    assert first.headers["X-RateLimit-Remaining"] != "0"
    assert (
        client.post("/repos/alice/repo/issues/1/comments", json={"body": "hi"}).status_code == 403
    )
    assert (
        client.post("/repos/alice/repo/issues/1/comments", json={"body": "hi"}).status_code == 201
    )
    state.secondary_limit(retry_after=None)
    no_hint = client.post("/repos/alice/repo/issues/1/comments", json={"body": "hi"})
    assert no_hint.status_code == 403 and "Retry-After" not in no_hint.headers


def test_content_creation_limit_per_minute(api: Api, state: GitHubEmulator) -> None:
    clock = FakeClock()
    state.clock = clock
    state.add_repo("alice/repo")
    state.add_pull_request("alice/repo", user_login="bob", n_commits=1)
    state.content_creation_limit_per_minute = 3
    client = api(state.issue_token("alice"))
    for _ in range(3):
        assert (
            client.post("/repos/alice/repo/issues/1/comments", json={"body": "x"}).status_code
            == 201
        )
        clock.advance(10)
    refused = client.post("/repos/alice/repo/issues/1/comments", json={"body": "x"})
    assert refused.status_code == 403 and refused.headers["Retry-After"] == "30"
    clock.advance(31)  # the first write left the 60 s window
    assert client.post("/repos/alice/repo/issues/1/comments", json={"body": "x"}).status_code == 201


def test_faults_status_body_times_and_method(api: Api, state: GitHubEmulator) -> None:
    client = api(state.issue_token("alice"))
    state.add_fault("GET", r"^/api/v3/user$", status=502, times=2)
    state.add_fault("POST", r"/statuses/", status=500, body={"message": "boom"})
    assert client.get("/user").status_code == 502
    assert client.get("/user").status_code == 502
    assert client.get("/user").status_code == 200
    assert client.get("/users/alice").status_code == 200
    state.add_fault(status=503, body="down", headers={"Retry-After": "5"})
    response = client.get("/users/alice")
    assert response.status_code == 503 and response.text == "down"
    assert response.headers["Retry-After"] == "5"
    assert [r.status for r in state.api_calls("GET", "/user")][:3] == [502, 502, 200]


def test_fault_delay_makes_clients_time_out(api: Api, state: GitHubEmulator) -> None:
    state.add_fault("GET", "/user", status=None, delay=0.5)
    client = api(state.issue_token("alice"))
    started = time.monotonic()
    try:
        client.get("/user", timeout=0.1)
    except httpx.TimeoutException:
        pass
    else:
        raise AssertionError("expected a timeout")
    assert time.monotonic() - started < 0.45
    assert client.get("/user").status_code == 200  # the fault was used up


def test_recorded_requests(api: Api, state: GitHubEmulator) -> None:
    state.clear_requests()
    client = api(state.issue_token("alice"))
    client.get("/user", params={"x": "1"})
    client.post("/user/nothing", json={"a": 1})
    calls = state.api_calls()
    assert [(c.method, c.path, c.query, c.status) for c in calls] == [
        ("GET", "/api/v3/user", "x=1", 200),
        ("POST", "/api/v3/user/nothing", "", 404),
    ]
    assert calls[1].body == b'{"a":1}'
    assert calls[0].headers["Authorization"].startswith("token ")
    assert state.api_calls("POST", "/user") == [calls[1]]
