"""Sign in with GitHub over real HTTP against the emulator: the happy path and every failure."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import update
from tests.conftest import CLIENT_ID, Live, LiveFactory, sign_in

from undersign.auth.models import WebSession
from undersign.db import utcnow


def _authorize_url(client: httpx.Client, next_path: str | None = None) -> str:
    response = client.get("/login", params={"next": next_path} if next_path else None)
    assert response.status_code == 302
    return response.headers["location"]


def _approve(live: Live, authorize_url: str, login: str = "alice") -> str:
    """Let the emulator approve and return the callback URL it sends the browser to."""
    live.emulator.state.auto_approve_as = login
    response = httpx.get(authorize_url, follow_redirects=False)
    assert response.status_code == 302
    return response.headers["location"]


def _token_requests(live: Live) -> list:
    return [r for r in live.emulator.state.requests if r.path == "/login/oauth/access_token"]


def _callback_path(callback_url: str, **changes: str | None) -> str:
    parts = urlsplit(callback_url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return f"{parts.path}?{urlencode(query)}"


def test_login_redirects_to_github_with_state_and_pkce(live: Live):
    with live.client() as client:
        url = _authorize_url(client)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{live.emulator.url}/login/oauth/authorize"
    )
    query = parse_qs(parts.query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"{live.url}/login/callback"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 22
    assert "scope" not in query or query["scope"] == [""]


def test_each_login_gets_its_own_state(live: Live):
    with live.client() as client:
        states = {parse_qs(urlsplit(_authorize_url(client)).query)["state"][0] for _ in range(3)}
    assert len(states) == 3


def test_sign_in_greets_the_user_by_login(live: Live):
    with live.client() as client:
        page = sign_in(live, client, "alice")
        assert page.status_code == 200
        assert "Hello, alice!" in page.text
        assert 'class="avatar"' in page.text
        assert "Sign out" in page.text


def test_token_exchange_follows_github_conventions(live: Live):
    with live.client() as client:
        sign_in(live, client, "alice")
    (token_request,) = _token_requests(live)
    assert token_request.method == "POST"
    body = parse_qs(token_request.body.decode())
    assert body["client_id"] == [CLIENT_ID]
    assert "client_secret" in body
    assert len(body["code_verifier"][0]) >= 43
    assert "application/json" in token_request.headers.get("Accept", "")
    user_calls = [r for r in live.emulator.state.requests if r.path == "/api/v3/user"]
    assert len(user_calls) == 1
    assert user_calls[0].headers["Authorization"].startswith("Bearer ")
    for recorded in live.emulator.state.requests:
        assert "access_token" not in recorded.query
        assert "gho_" not in recorded.query


def test_user_is_stored_by_numeric_id_and_login_follows_renames(live: Live):
    from undersign.accounts.models import User

    state = live.emulator.state
    with live.client() as client:
        sign_in(live, client, "alice")
    state.rename_user("alice", "alice-renamed")
    with live.client() as client:
        page = sign_in(live, client, "alice-renamed")
        assert "Hello, alice-renamed!" in page.text
    with live.database.session() as db:
        users = db.query(User).all()
        assert [(u.login) for u in users if u.login.startswith("alice")] == ["alice-renamed"]


def test_forged_state_is_refused_without_exchanging_the_code(live: Live):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        response = client.get(_callback_path(callback, state="forged-state-value"))
    assert response.status_code == 400
    assert "does not match" in response.text
    assert "Try again" in response.text
    assert _token_requests(live) == []


def test_missing_state_is_refused(live: Live):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        response = client.get(_callback_path(callback, state=None))
    assert response.status_code == 400
    assert _token_requests(live) == []


def test_a_used_state_cannot_be_replayed(live: Live):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        path = _callback_path(callback)
        assert client.get(path).status_code == 302
        replay = client.get(path)
    assert replay.status_code == 400
    assert len(_token_requests(live)) == 1


def test_state_older_than_ten_minutes_is_refused(live: Live, monkeypatch: pytest.MonkeyPatch):
    import undersign.web.auth as auth_module

    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        real_time = auth_module.time.time
        monkeypatch.setattr(auth_module.time, "time", lambda: real_time() + 601)
        response = client.get(_callback_path(callback))
    assert response.status_code == 400
    assert "10 minutes" in response.text
    assert _token_requests(live) == []


def test_a_replayed_code_is_refused(live: Live):
    with live.client() as client:
        first = _approve(live, _authorize_url(client))
        code = parse_qs(urlsplit(first).query)["code"][0]
        assert client.get(_callback_path(first)).status_code == 302
    with live.client() as attacker:
        second = _approve(live, _authorize_url(attacker))
        response = attacker.get(_callback_path(second, code=code))
        assert response.status_code == 400
        assert "already used or expired" in response.text
        assert "Hello" not in attacker.get("/").text


def test_a_code_from_another_session_fails_pkce(live: Live):
    with live.client() as victim:
        victim_callback = _approve(live, _authorize_url(victim))
    stolen_code = parse_qs(urlsplit(victim_callback).query)["code"][0]
    with live.client() as attacker:
        attacker_callback = _approve(live, _authorize_url(attacker), login="bob")
        response = attacker.get(_callback_path(attacker_callback, code=stolen_code))
        assert response.status_code == 400
        assert "Hello" not in attacker.get("/").text


def test_foreign_issuer_is_refused_and_missing_issuer_accepted(live: Live):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        response = client.get(_callback_path(callback, iss="https://evil.example/login/oauth"))
        assert response.status_code == 400
        assert _token_requests(live) == []
        callback = _approve(live, _authorize_url(client))
        assert "iss" in parse_qs(urlsplit(callback).query)
        assert client.get(_callback_path(callback, iss=None)).status_code == 302


@pytest.mark.parametrize("name", ["code", "state"])
def test_duplicated_parameters_are_refused(live: Live, name: str):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        value = parse_qs(urlsplit(callback).query)[name][0]
        response = client.get(f"{_callback_path(callback)}&{name}={value}")
    assert response.status_code == 400
    assert _token_requests(live) == []


def test_access_denied_has_its_own_page(live: Live):
    with live.client() as client:
        url = _authorize_url(client)
        live.emulator.state.auto_deny = True
        denied = httpx.get(url, follow_redirects=False).headers["location"]
        assert "error=access_denied" in denied
        response = client.get(_callback_path(denied))
    assert response.status_code == 403
    assert "Sign-in cancelled" in response.text
    assert "Try again" in response.text


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("bad_verification_code", "already used or expired"),
        ("incorrect_client_credentials", "client credentials"),
        ("redirect_uri_mismatch", "callback address"),
    ],
)
def test_github_200_error_answers_each_get_a_page(live: Live, error: str, expected: str):
    live.emulator.state.add_fault(
        "POST",
        r"^/login/oauth/access_token$",
        status=200,
        body={"error": error, "error_description": "from GitHub", "error_uri": "https://docs"},
    )
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        response = client.get(_callback_path(callback))
    assert response.status_code == 400
    assert expected in response.text
    assert "Try again" in response.text


def test_wrong_client_secret_is_reported(live_factory: LiveFactory):
    live = live_factory(
        oauth_secret="the-real-secret", UNDERSIGN_GITHUB_CLIENT_SECRET="not-the-secret"
    )
    with live.client() as client:
        response = client.get(_callback_path(_approve(live, _authorize_url(client))))
    assert response.status_code == 400
    assert "client credentials" in response.text


def test_401_from_user_endpoint(live: Live):
    live.emulator.state.add_fault(
        "GET", r"^/api/v3/user$", status=401, body={"message": "Bad credentials"}
    )
    with live.client() as client:
        response = client.get(_callback_path(_approve(live, _authorize_url(client))))
    assert response.status_code == 401
    assert "Try again" in response.text


def test_github_timeout_gives_502(live: Live):
    live.emulator.state.add_fault(
        "POST", r"^/login/oauth/access_token$", status=200, delay=live.settings.http_timeout + 1
    )
    with live.client() as client:
        response = client.get(_callback_path(_approve(live, _authorize_url(client))))
    assert response.status_code == 502
    assert "could not be reached" in response.text


def test_github_unreachable_gives_502(live_factory: LiveFactory):
    live = live_factory(
        oauth_secret=None,
        replace={"github_url": "http://127.0.0.1:9", "github_api_url": "http://127.0.0.1:9/api/v3"},
    )
    with httpx.Client(base_url=live.url, follow_redirects=False) as client:
        url = client.get("/login").headers["location"]
        state = parse_qs(urlsplit(url).query)["state"][0]
        response = client.get("/login/callback", params={"code": "abc", "state": state})
    assert response.status_code == 502


def test_session_that_expired_mid_flow(live: Live):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
    with live.client() as other_browser:
        response = other_browser.get(_callback_path(callback))
    assert response.status_code == 400
    assert "expired" in response.text
    assert _token_requests(live) == []


NEXT_ATTACKS = [
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "/%0d%0aSet-Cookie:x=1",
    "/\tevil.example",
    "http:/evil.example",
    "evil.example",
    "/%2F%2Fevil.example",
]


@pytest.mark.parametrize("next_value", NEXT_ATTACKS)
def test_malicious_next_lands_on_the_home_page(live: Live, next_value: str):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client, next_value))
        response = client.get(_callback_path(callback))
    assert response.status_code == 302
    assert response.headers["location"] == "/"


def test_next_path_on_this_site_is_followed(live: Live):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client, "/me/signatures?x=1"))
        response = client.get(_callback_path(callback))
    assert response.headers["location"] == "/me/signatures?x=1"


def _csrf_token(client: httpx.Client) -> str:
    page = client.get("/").text
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_logout_requires_post_and_csrf_and_really_ends_the_session(live: Live):
    with live.client() as client:
        sign_in(live, client, "alice")
        saved_cookies = dict(client.cookies)
        assert client.get("/logout").status_code == 405
        assert client.post("/logout").status_code == 400
        assert "Hello, alice!" in client.get("/").text
        response = client.post("/logout", data={"csrf_token": _csrf_token(client)})
        assert response.status_code == 302
        assert "Hello" not in client.get("/").text
    with httpx.Client(base_url=live.url, cookies=saved_cookies) as replay:
        page = replay.get("/")
        assert "Hello, alice!" not in page.text
        assert "Sign in with GitHub" in page.text


def test_sign_in_issues_a_new_session_id(live: Live):
    with live.client() as client:
        client.get("/login")
        before = dict(client.cookies)
        assert before, "the flow stores state server-side under a cookie"
        sign_in(live, client, "alice")
        after = dict(client.cookies)
    assert before != after
    with httpx.Client(base_url=live.url, cookies=before) as fixation:
        assert "Hello, alice!" not in fixation.get("/").text


def test_sessions_expire(live: Live):
    with live.client() as client:
        sign_in(live, client, "alice")
        with live.database.session() as db:
            db.execute(update(WebSession).values(expires_at=utcnow()))
        assert "Hello, alice!" not in client.get("/").text


def test_cookie_flags(live: Live):
    with live.client() as client:
        response = client.get("/login")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http base URL on loopback


def test_callback_subpaths_do_not_exist(live: Live):
    with live.client() as client:
        assert client.get("/login/callback/extra").status_code == 404


def test_no_code_state_or_token_in_logs(live: Live, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        query = parse_qs(urlsplit(callback).query)
        client.get(_callback_path(callback))
    # httpx/httpcore are the test's own browser; everything else is the service's side.
    text = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "sign-in succeeded" in text
    assert query["code"][0] not in text
    assert query["state"][0] not in text
    assert "gho_" not in text


def test_healthz(live: Live):
    with live.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/", "/healthz", "/does-not-exist", "/login/callback"])
def test_security_headers_on_every_response(live: Live, path: str):
    with live.client() as client:
        response = client.get(path)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"]


def test_replay_with_the_pre_callback_cookie_is_refused(live: Live):
    with live.client() as client:
        callback = _approve(live, _authorize_url(client))
        pre_callback_cookies = dict(client.cookies)
        assert client.get(_callback_path(callback)).status_code == 302
    with httpx.Client(base_url=live.url, cookies=pre_callback_cookies) as restored:
        assert restored.get(_callback_path(callback)).status_code == 400
    assert len(_token_requests(live)) == 1


def test_spoofed_host_headers_do_not_change_the_redirect_uri(live: Live):
    with live.client() as client:
        response = client.get(
            "/login", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        )
    redirect_uri = parse_qs(urlsplit(response.headers["location"]).query)["redirect_uri"]
    assert redirect_uri == [f"{live.url}/login/callback"]


def test_csrf_token_from_before_sign_in_is_rejected_after(live: Live):
    """Anonymous pages carry no form, so the token comes from an earlier sign-in."""
    with live.client() as client:
        sign_in(live, client, "bob")
        earlier_token = _csrf_token(client)
        sign_in(live, client, "alice")
        refused = client.post("/logout", data={"csrf_token": earlier_token})
        assert refused.status_code == 400
        assert "Hello, alice!" in client.get("/").text
