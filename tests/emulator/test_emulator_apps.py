"""GitHub Apps in the emulator: the JWT checked as GitHub checks it, installation tokens scoped
to their installation, check runs, expiring user tokens and the app-only webhooks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_support import SSL_CONTEXT, FakeClock, Receiver

from undersign.emulator import EmulatorServer, GitHubEmulator

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
APP_ID = 424242
APP_CLIENT_ID = "Iv23liEmulatorApp01"
APP_SECRET = "app-client-secret-0123456789"
APP_CALLBACK = "http://127.0.0.1:8000/login/callback"
Api = Callable[[str | None], httpx.Client]
Bearer = Callable[[str], httpx.Client]
#: The app's private key and another one (a wrong key).
Keys = tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]


@pytest.fixture(scope="module")
def keys() -> Keys:
    """The app's key and another one (a wrong key)."""
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def app(state: GitHubEmulator, keys: Keys) -> int:
    """App ``undersign`` installed on org ``octo-org`` for ``widgets`` only (``gizmos`` is
    the org's too, not selected); alice's ``private-stuff`` is elsewhere."""
    state.add_org("octo-org", members=["bob"])
    for repo in ("octo-org/widgets", "octo-org/gizmos", "alice/private-stuff"):
        state.add_repo(repo, private=repo.startswith("alice/"))
    state.apps.register_app(
        "undersign",
        public_pem(keys[0]),
        owner_login="octo-org",
        app_id=APP_ID,
        client_id=APP_CLIENT_ID,
        client_secret=APP_SECRET,
        callback_urls=[APP_CALLBACK],
    )
    return int(state.apps.install(APP_ID, "octo-org", repositories=["octo-org/widgets"])["id"])


@pytest.fixture
def clock(state: GitHubEmulator) -> FakeClock:
    fake = FakeClock(time.time())
    state.clock = fake
    return fake


def make_jwt(key: rsa.RSAPrivateKey, now: float, **claims: Any) -> str:
    body: dict[str, Any] = {"iat": int(now) - 60, "exp": int(now) + 540, "iss": APP_ID}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    # PyJWT's jwt.encode refuses an integer "iss"; GitHub's own examples send one.
    raw = json.dumps(body).encode()
    return jwt.api_jws.PyJWS().encode(raw, key, algorithm="RS256", headers={"typ": "JWT"})


@pytest.fixture
def bearer(emulator: EmulatorServer) -> Iterator[Bearer]:
    """``bearer(credential)`` -> an httpx client on the REST root sending ``Bearer ...``."""
    clients: list[httpx.Client] = []

    def make(credential: str) -> httpx.Client:
        client = httpx.Client(
            base_url=emulator.api_url,
            headers={"Authorization": f"Bearer {credential}"},
            timeout=10,
            verify=SSL_CONTEXT,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def as_app(app: int, bearer: Bearer, keys: Keys, clock: FakeClock) -> httpx.Client:
    """A client authenticated as the app itself (a fresh, valid JWT)."""
    return bearer(make_jwt(keys[0], clock.now))


@pytest.fixture
def installation_token(app: int, as_app: httpx.Client) -> str:
    """A fresh ``ghs_`` token of the app's installation on ``octo-org``."""
    response = as_app.post(f"/app/installations/{app}/access_tokens")
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest.fixture
def as_installation(api: Api, installation_token: str) -> httpx.Client:
    """A REST client acting as the installation (``token ghs_...``)."""
    return api(installation_token)


# --- the JWT --------------------------------------------------------------------------------


@pytest.mark.parametrize("iss", [APP_ID, str(APP_ID), APP_CLIENT_ID], ids=["int", "str", "client"])
def test_get_app_with_a_good_jwt_by_app_id_numeric_string_or_client_id(
    app: int, bearer: Bearer, keys: Keys, clock: FakeClock, iss: int | str
) -> None:
    response = bearer(make_jwt(keys[0], clock.now, iss=iss)).get("/app")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == APP_ID and body["slug"] == "undersign"
    assert body["client_id"] == APP_CLIENT_ID


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (lambda n: {"exp": n + 660}, "'Expiration time' claim ('exp') is too far in the future"),
        (lambda n: {"iat": n + 120}, "'Issued at' claim ('iat') must be an Integer"),
        (lambda n: {"iat": n - 60.5}, "'Issued at' claim ('iat') must be an Integer"),
        (lambda n: {"iat": None}, "'Issued at' claim ('iat') must be an Integer"),
        (lambda n: {"exp": n - 1}, "'Expiration time' claim ('exp') must be a numeric value"),
        (lambda n: {"exp": None}, "'Expiration time' claim ('exp') must be a numeric value"),
        (lambda n: {"iss": 999}, "A JSON web token could not be decoded"),
    ],
    ids=[
        "exp-too-far",
        "iat-in-future",
        "iat-not-integer",
        "iat-missing",
        "exp-past",
        "exp-missing",
        "unknown-issuer",
    ],
)
def test_jwt_claims_checked_like_github(
    app: int,
    bearer: Bearer,
    keys: Keys,
    clock: FakeClock,
    claims: Callable[[int], dict[str, Any]],
    message: str,
) -> None:
    token = make_jwt(keys[0], clock.now, **claims(int(clock.now)))
    response = bearer(token).get("/app")
    assert response.status_code == 401
    assert response.json()["message"].startswith(message)


def test_exp_exactly_ten_minutes_ahead_is_accepted(
    app: int, bearer: Bearer, keys: Keys, clock: FakeClock
) -> None:
    token = make_jwt(keys[0], clock.now, iat=int(clock.now), exp=int(clock.now) + 600)
    assert bearer(token).get("/app").status_code == 200


def test_wrong_key_or_algorithm_is_refused(
    app: int, bearer: Bearer, keys: Keys, clock: FakeClock
) -> None:
    wrong = make_jwt(keys[1], clock.now)
    response = bearer(wrong).get("/app")
    assert response.status_code == 401
    assert response.json()["message"] == "A JSON web token could not be decoded"
    claims = {"iat": int(clock.now) - 60, "exp": int(clock.now) + 60, "iss": str(APP_ID)}
    hs = jwt.encode(claims, "x" * 32)
    assert bearer(hs).get("/app").status_code == 401


def test_jwt_only_on_app_routes(app: int, as_app: httpx.Client) -> None:
    client = as_app
    assert client.get("/repos/octo-org/widgets/pulls").status_code == 401
    assert client.get("/user").status_code == 401
    assert client.get("/repos/octo-org/widgets/installation").json()["id"] == app
    assert client.get("/orgs/octo-org/installation").json()["id"] == app
    assert client.get("/repos/octo-org/gizmos/installation").status_code == 404
    assert client.get("/repos/alice/private-stuff/installation").status_code == 404
    listed = client.get("/app/installations").json()
    assert [i["id"] for i in listed] == [app]
    assert listed[0]["account"]["login"] == "octo-org"
    assert listed[0]["repository_selection"] == "selected"


def test_app_routes_refuse_other_tokens(app: int, api: Api, state: GitHubEmulator) -> None:
    token = state.issue_token("alice")
    assert api(token).get("/app").status_code == 401
    assert api(token).post(f"/app/installations/{app}/access_tokens").status_code == 401


# --- installation tokens ----------------------------------------------------------------------


def test_installation_token_lasts_an_hour_and_reaches_only_its_repos(
    app: int, as_app: httpx.Client, api: Api, clock: FakeClock, state: GitHubEmulator
) -> None:
    response = as_app.post(f"/app/installations/{app}/access_tokens")
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("ghs_")
    assert body["repository_selection"] == "selected"
    assert [r["full_name"] for r in body["repositories"]] == ["octo-org/widgets"]
    expires = time.mktime(time.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (clock.now + 3600)) < 2
    client = api(body["token"])
    sha = state.repo("octo-org/widgets")  # exists
    assert sha["full_name"] == "octo-org/widgets"
    assert client.get("/repos/octo-org/widgets/pulls").status_code == 200
    assert client.get("/repos/octo-org/gizmos/pulls").status_code == 404
    assert client.get("/repos/alice/private-stuff").status_code == 404
    assert client.get("/user").status_code == 403
    assert client.get("/user").json()["message"] == "Resource not accessible by integration"
    head = state.add_commit("octo-org/widgets", author_login="alice")
    created = client.post(
        f"/repos/octo-org/widgets/statuses/{head}", json={"state": "success", "context": "x"}
    )
    assert created.status_code == 201
    assert created.json()["creator"]["login"] == "undersign[bot]"
    clock.advance(3600)
    assert client.get("/repos/octo-org/widgets/pulls").status_code == 401
    assert state.apps.token_requests[app] == 1


def test_each_installation_has_its_own_primary_rate_limit(
    app: int, as_app: httpx.Client, api: Api, state: GitHubEmulator, clock: FakeClock
) -> None:
    """docs "Rate limits for the REST API": installation tokens are limited per installation
    (at least 5,000 an hour), and the refusal names the installation."""
    other = int(state.apps.install(APP_ID, "alice")["id"])
    tokens = {
        installation: as_app.post(f"/app/installations/{installation}/access_tokens").json()[
            "token"
        ]
        for installation in (app, other)
    }
    state.set_installation_rate_limit(app, 0, reset_at=clock.now + 600)
    refused = api(tokens[app]).get("/repos/octo-org/widgets")
    assert refused.status_code == 403
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.json()["message"] == f"API rate limit exceeded for installation ID {app}."
    served = api(tokens[other]).get("/repos/alice/private-stuff")
    assert served.status_code == 200
    assert served.headers["X-RateLimit-Limit"] == "5000"
    assert served.headers["X-RateLimit-Remaining"] == "4999"


def test_installation_token_permissions_are_enforced(
    app: int, as_installation: httpx.Client, state: GitHubEmulator
) -> None:
    state.apps.installations[app].permissions.pop("statuses")
    head = state.add_commit("octo-org/widgets", author_login="alice")
    response = as_installation.post(
        f"/repos/octo-org/widgets/statuses/{head}", json={"state": "success"}
    )
    assert response.status_code == 403
    assert response.json()["message"] == "Resource not accessible by integration"


def test_installation_token_sees_private_org_members(
    emulator: EmulatorServer, installation_token: str
) -> None:
    client = httpx.Client(
        base_url=emulator.api_url,
        headers={"Authorization": f"token {installation_token}"},
        follow_redirects=False,
        verify=SSL_CONTEXT,
    )
    with client:
        assert client.get("/orgs/octo-org/members/bob").status_code == 204
        assert client.get("/orgs/octo-org/members/alice").status_code == 404


def test_installation_token_reads_org_memberships(
    emulator: EmulatorServer, state: GitHubEmulator, installation_token: str
) -> None:
    """As GitHub: an installation with Members: read reads any member's membership (its
    role and state) though the bot is no member; a non-member is 404."""
    state.add_org_member("octo-org", "carol", admin=True)
    client = httpx.Client(
        base_url=emulator.api_url,
        headers={"Authorization": f"token {installation_token}"},
        follow_redirects=False,
        verify=SSL_CONTEXT,
    )
    with client:
        owner = client.get("/orgs/octo-org/memberships/carol")
        member = client.get("/orgs/octo-org/memberships/bob")
        outsider = client.get("/orgs/octo-org/memberships/alice")
    assert owner.status_code == 200 and owner.json()["role"] == "admin"
    assert owner.json()["state"] == "active"
    assert member.status_code == 200 and member.json()["role"] == "member"
    assert outsider.status_code == 404


def test_stateless_token_format_on_request(app: int, as_app: httpx.Client, api: Api) -> None:
    response = as_app.post(
        f"/app/installations/{app}/access_tokens",
        headers={"X-GitHub-Stateless-S2S-Token": "enabled"},
    )
    token = response.json()["token"]
    assert token.startswith(f"ghs_{APP_ID}_") and "." in token and len(token) > 255
    assert api(token).get("/repos/octo-org/widgets/pulls").status_code == 200
    other = as_app.post(
        f"/app/installations/{app}/access_tokens",
        headers={"X-GitHub-Stateless-S2S-Token": "yes please"},  # ignored
    )
    assert "." not in other.json()["token"]


def test_uninstalled_app_tokens_stop_working(
    app: int, as_app: httpx.Client, as_installation: httpx.Client, state: GitHubEmulator
) -> None:
    state.apps.uninstall(app)
    assert as_installation.get("/repos/octo-org/widgets").status_code == 401
    gone = as_app.post(f"/app/installations/{app}/access_tokens")
    assert gone.status_code == 404


def test_get_an_installation_for_the_authenticated_app(
    app: int, as_app: httpx.Client, as_installation: httpx.Client, state: GitHubEmulator
) -> None:
    """``GET /app/installations/{installation_id}`` (JWT only): 200 with the installation
    (the schema's required fields, and its ``client_id``), 404 "Not Found" once it is
    removed (the one error GitHub documents for it); an installation token may not ask."""
    shown = as_app.get(f"/app/installations/{app}")
    assert shown.status_code == 200
    body = shown.json()
    required = {
        "access_tokens_url", "account", "app_id", "app_slug", "created_at", "events",
        "html_url", "id", "permissions", "repositories_url", "repository_selection",
        "single_file_name", "suspended_at", "suspended_by", "target_id", "target_type",
        "updated_at",
    }  # fmt: skip
    assert required <= set(body)
    assert (body["id"], body["app_id"], body["client_id"]) == (app, APP_ID, APP_CLIENT_ID)
    assert as_installation.get(f"/app/installations/{app}").status_code == 403
    state.apps.uninstall(app)
    gone = as_app.get(f"/app/installations/{app}")
    assert gone.status_code == 404
    assert gone.json()["message"] == "Not Found"
    assert gone.json()["documentation_url"].endswith(
        "#get-an-installation-for-the-authenticated-app"
    )


def test_a_suspended_installation_gets_no_token_until_unsuspended(
    app: int, as_app: httpx.Client, as_installation: httpx.Client, state: GitHubEmulator
) -> None:
    """GitHub: 403 "This installation has been suspended" to the token request; the
    installation object and the ``installation suspend`` webhook say when and by whom."""
    assert as_app.put(f"/app/installations/{app}/suspended").status_code == 204
    refused = as_app.post(f"/app/installations/{app}/access_tokens")
    assert refused.status_code == 403
    assert refused.json()["message"] == "This installation has been suspended"
    assert as_installation.get("/repos/octo-org/widgets").status_code == 403
    listed = as_app.get(f"/app/installations/{app}").json()
    assert listed["suspended_at"] is not None
    assert listed["suspended_by"]["login"] == "octo-org"  # the app's owner suspended it
    event = state.apps.installation_event(app, "suspend")
    assert event["installation"]["suspended_at"] == listed["suspended_at"]
    assert event["installation"]["suspended_by"]["login"] == "octo-org"

    assert as_app.delete(f"/app/installations/{app}/suspended").status_code == 204
    assert as_app.get(f"/app/installations/{app}").json()["suspended_at"] is None
    assert state.apps.installation_event(app, "unsuspend")["installation"]["suspended_by"] is None
    assert as_app.post(f"/app/installations/{app}/access_tokens").status_code == 201
    assert as_installation.get("/repos/octo-org/widgets").status_code == 200


# --- check runs -----------------------------------------------------------------------------


def check_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "license/cla",
        "head_sha": "",
        "status": "completed",
        "conclusion": "action_required",
        "details_url": "http://127.0.0.1:8000/sign/cla",
        "output": {"title": "1 must sign", "summary": "- @alice"},
        "actions": [
            {"label": "Re-check", "description": "Check the CLA again", "identifier": "recheck"}
        ],
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("login", "prefix"), [("octo-org", "ghp_"), ("alice", "gho_")], ids=["pat", "oauth"]
)
def test_check_run_refused_for_non_app_tokens(
    app: int, api: Api, state: GitHubEmulator, login: str, prefix: str
) -> None:
    head = state.add_commit("octo-org/widgets", author_login="alice")
    token = state.issue_token(login, prefix=prefix)
    response = api(token).post("/repos/octo-org/widgets/check-runs", json=check_body(head_sha=head))
    assert response.status_code == 403
    assert response.json()["message"] == "You must authenticate via a GitHub App."


def test_check_run_created_updated_and_listed(
    as_installation: httpx.Client, state: GitHubEmulator
) -> None:
    pr = state.add_pull_request("octo-org/widgets", user_login="alice", n_commits=1)
    head = pr["head"]["sha"]
    client = as_installation
    created = client.post("/repos/octo-org/widgets/check-runs", json=check_body(head_sha=head))
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["status"] == "completed" and run["conclusion"] == "action_required"
    assert run["app"]["id"] == APP_ID and run["output"]["title"] == "1 must sign"
    patched = client.patch(
        f"/repos/octo-org/widgets/check-runs/{run['id']}",
        json={"conclusion": "success", "output": {"title": "ok", "summary": "all signed"}},
    )
    assert patched.status_code == 200
    listed = client.get(f"/repos/octo-org/widgets/commits/{head}/check-runs").json()
    assert listed["total_count"] == 1
    assert listed["check_runs"][0]["conclusion"] == "success"
    assert [h["method"] for h in state.apps.check_run_history(run["id"])] == ["POST", "PATCH"]
    page = httpx.get(state.base_url + "/_emulator/", verify=SSL_CONTEXT).text
    assert "license/cla" in page and "(undersign)" in page
    assert run["pull_requests"][0]["number"] == pr["number"]


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "waiting"},
        {"conclusion": "stale"},
        {"status": "completed", "conclusion": None},
        {"actions": [{"label": "x" * 21, "description": "d", "identifier": "i"}]},
        {"actions": [{"label": "l", "description": "d" * 41, "identifier": "i"}]},
        {"actions": [{"label": "l", "description": "d", "identifier": "i" * 21}]},
        {"actions": [{"label": "l", "description": "d", "identifier": "i"}] * 4},
        {"output": {"title": "t", "summary": "s" * 65536}},
        {"name": ""},
    ],
    ids=[
        "actions-only-status",
        "stale-conclusion",
        "completed-without-conclusion",
        "action-label-too-long",
        "action-description-too-long",
        "action-identifier-too-long",
        "four-actions",
        "summary-too-long",
        "empty-name",
    ],
)
def test_check_run_limits(
    as_installation: httpx.Client, state: GitHubEmulator, changes: dict[str, Any]
) -> None:
    head = state.add_commit("octo-org/widgets", author_login="alice")
    body = check_body(head_sha=head, **changes)
    body = {k: v for k, v in body.items() if v is not None}
    response = as_installation.post("/repos/octo-org/widgets/check-runs", json=body)
    assert response.status_code == 422, response.text


# --- user tokens (GitHub App sign-in) --------------------------------------------------------


def exchange(web: httpx.Client, data: dict[str, str]) -> dict[str, Any]:
    response = web.post(
        "/login/oauth/access_token", data=data, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_expiring_user_tokens_and_the_refresh_grant(
    app: int, state: GitHubEmulator, web: httpx.Client, api: Api, clock: FakeClock
) -> None:
    state.auto_approve_as = "alice"
    back = web.get(
        "/login/oauth/authorize",
        params={"client_id": APP_CLIENT_ID, "redirect_uri": APP_CALLBACK, "state": "s"},
    )
    code = httpx.URL(back.headers["location"]).params["code"]
    creds = {"client_id": APP_CLIENT_ID, "client_secret": APP_SECRET}
    first = exchange(web, {**creds, "code": code})
    assert first["access_token"].startswith("ghu_")
    assert first["expires_in"] == 28800 and first["refresh_token_expires_in"] == 15811200
    assert first["refresh_token"].startswith("ghr_") and first["scope"] == ""
    assert api(first["access_token"]).get("/user").json()["login"] == "alice"

    second = exchange(
        web, {**creds, "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert api(first["access_token"]).get("/user").status_code == 401  # the old pair is dead
    again = exchange(
        web, {**creds, "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert again["error"] == "bad_refresh_token"
    assert api(second["access_token"]).get("/user").status_code == 200
    clock.advance(28800)
    assert api(second["access_token"]).get("/user").status_code == 401


# --- app webhooks -----------------------------------------------------------------------------


def keys_of(name: str) -> list[str]:
    return list(json.loads((FIXTURES / name).read_text()))


def test_app_webhook_payloads_and_headers(
    app: int, as_installation: httpx.Client, state: GitHubEmulator
) -> None:
    created = state.apps.installation_event(app, "created")
    assert list(created) == keys_of("installation__created.json")
    assert [r["full_name"] for r in created["repositories"]] == ["octo-org/widgets"]
    fixture_inst = json.loads((FIXTURES / "installation__created.json").read_text())
    assert set(fixture_inst["installation"]) <= set(created["installation"])
    added = state.apps.installation_repositories_event(app, "added", ["octo-org/gizmos"])
    assert list(added) == keys_of("installation_repositories__added.json")
    head = state.add_commit("octo-org/widgets", author_login="alice")
    run = as_installation.post(
        "/repos/octo-org/widgets/check-runs", json=check_body(head_sha=head)
    ).json()
    rerequested = state.apps.check_run_event(run["id"], "rerequested", sender_login="alice")
    assert list(rerequested) == keys_of("check_run__rerequested.json")
    action = state.apps.check_run_event(
        run["id"], "requested_action", sender_login="alice", identifier="recheck"
    )
    assert list(action) == keys_of("check_run__requested_action.json")
    assert action["requested_action"] == {"identifier": "recheck"}
    assert action["installation"]["id"] == app
    with pytest.raises(ValueError, match="no action"):
        state.apps.check_run_event(
            run["id"], "requested_action", sender_login="alice", identifier="nope"
        )
    receiver = Receiver()
    try:
        status, _guid = state.apps.deliver(APP_ID, receiver.url, "check_run", action, secret="s")
        assert status == 200
        headers = {k.lower(): v for k, v in receiver.received[0][0].items()}
        assert headers["x-github-hook-installation-target-type"] == "integration"
        assert headers["x-github-hook-installation-target-id"] == str(APP_ID)
    finally:
        receiver.close()
