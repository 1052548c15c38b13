"""OAuth web flow against the emulator, following REFERENCE sections 1 and 7."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from emulator_support import CALLBACK, CLIENT_ID, CLIENT_SECRET, SSL_CONTEXT, FakeClock

from undersign.emulator import EmulatorServer, GitHubEmulator
from undersign.emulator.api.oauth import normalize_scopes, redirect_uri_matches

TOKEN_PATH = "/login/oauth/access_token"
JSON_ACCEPT = {"Accept": "application/json"}


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def _authorize(web: httpx.Client, **params: str) -> httpx.Response:
    return web.get("/login/oauth/authorize", params={"client_id": CLIENT_ID, **params})


def _code(web: httpx.Client, state: GitHubEmulator, login: str = "alice", **params: str) -> str:
    state.auto_approve_as = login
    response = _authorize(web, redirect_uri=CALLBACK, **params)
    assert response.status_code == 302, response.text
    return _query(response.headers["Location"])["code"]


def _challenge(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


# --- redirect_uri rules ------------------------------------------------------------------------

DOC_CALLBACK = "http://example.com/path"


@pytest.mark.parametrize(
    "candidate",
    [
        "http://example.com/path",
        "http://example.com/path/subdir/other",
        "http://oauth.example.com/path",
        "http://oauth.example.com/path/subdir/other",
    ],
)
def test_redirect_uri_good_cases_from_the_docs(candidate: str) -> None:
    assert redirect_uri_matches(DOC_CALLBACK, candidate, wildcard=True)


@pytest.mark.parametrize(
    "candidate",
    [
        "http://example.com/bar",
        "http://example.com/",
        "http://example.com:8080/path",
        "http://oauth.example.com:8080/path",
        "http://example.org",
        "http://example.com/pathology",
        "https://example.com/path",
        "http://evilexample.com/path",
        "http://example.com/path/../bar",
    ],
)
def test_redirect_uri_bad_cases_from_the_docs(candidate: str) -> None:
    assert not redirect_uri_matches(DOC_CALLBACK, candidate, wildcard=True)


def test_loopback_callback_accepts_any_port_but_not_another_host() -> None:
    callback = "http://127.0.0.1/path"
    assert redirect_uri_matches(callback, "http://127.0.0.1:1234/path", wildcard=True)
    assert redirect_uri_matches(callback, "http://127.0.0.1:1234/path", wildcard=False)
    assert redirect_uri_matches("http://[::1]:80/cb", "http://[::1]:5555/cb", wildcard=True)
    assert not redirect_uri_matches(callback, "http://127.0.0.2:1234/path", wildcard=True)
    assert not redirect_uri_matches(callback, "http://localhost:1234/path", wildcard=True)


def test_exact_matching_when_wildcard_is_off() -> None:
    assert redirect_uri_matches(DOC_CALLBACK, DOC_CALLBACK, wildcard=False)
    assert not redirect_uri_matches(DOC_CALLBACK, DOC_CALLBACK + "/sub", wildcard=False)
    assert not redirect_uri_matches(DOC_CALLBACK, "http://oauth.example.com/path", wildcard=False)


def test_mismatched_redirect_uri_shows_warning_page_without_redirect(web: httpx.Client) -> None:
    response = _authorize(web, redirect_uri="http://127.0.0.1:8000/elsewhere")
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Be careful!" in response.text
    assert "The redirect_uri is not associated with this application" in response.text


@pytest.mark.parametrize(
    "uri",
    [CALLBACK + "/deeper", "http://127.0.0.1:9999/auth/callback"],
    ids=["subdirectory", "other-loopback-port"],
)
def test_subdirectory_and_other_loopback_port_are_accepted(
    web: httpx.Client, state: GitHubEmulator, uri: str
) -> None:
    state.auto_approve_as = "alice"
    response = _authorize(web, redirect_uri=uri)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(uri + "?code=")


def test_exact_mode_client_refuses_subdirectory(web: httpx.Client, state: GitHubEmulator) -> None:
    state.add_oauth_client("exact-app", "s3cret", "https://app.example.com/cb", wildcard=False)
    state.auto_approve_as = "alice"
    params = {"client_id": "exact-app"}
    bad = web.get(
        "/login/oauth/authorize", params={**params, "redirect_uri": "https://app.example.com/cb/x"}
    )
    assert bad.status_code == 200 and "Be careful!" in bad.text
    good = web.get(
        "/login/oauth/authorize", params={**params, "redirect_uri": "https://app.example.com/cb"}
    )
    assert good.status_code == 302


def test_omitted_redirect_uri_uses_first_callback(web: httpx.Client, state: GitHubEmulator) -> None:
    state.auto_approve_as = "alice"
    response = _authorize(web)
    assert response.headers["Location"].startswith(CALLBACK + "?code=")


def test_unknown_client_id_is_404(web: httpx.Client) -> None:
    assert web.get("/login/oauth/authorize", params={"client_id": "nope"}).status_code == 404


# --- the callback ------------------------------------------------------------------------------


def test_state_is_echoed_verbatim_only_when_sent_and_iss_is_added(
    web: httpx.Client, state: GitHubEmulator, emulator: EmulatorServer
) -> None:
    state.auto_approve_as = "alice"
    odd_state = "a b/c?d=e&f+g%"
    with_state = _query(_authorize(web, state=odd_state, response_type="code").headers["Location"])
    assert with_state["state"] == odd_state
    assert with_state["iss"] == emulator.url + "/login/oauth"
    without = _query(_authorize(web).headers["Location"])
    assert "state" not in without and "code" in without


def test_denied_consent_redirects_with_githubs_error(
    web: httpx.Client, state: GitHubEmulator
) -> None:
    state.auto_deny = True
    location = _authorize(web, state="xyz").headers["Location"]
    params = _query(location)
    assert location.startswith(CALLBACK + "?error=access_denied")
    assert params["error_description"] == "The user has denied your application access."
    assert params["error_uri"].endswith(
        "troubleshooting-authorization-request-errors/#access-denied"
    )
    assert params["state"] == "xyz"


def test_consent_page_approve_and_deny(web: httpx.Client) -> None:
    page = _authorize(web, state="s1", scope="read:user user:email", login="bob")
    assert page.status_code == 200
    nonce = page.text.split('name="nonce" value="')[1].split('"')[0]
    assert 'value="bob"\n          checked' in page.text or 'value="bob"' in page.text
    approved = web.post(
        "/login/oauth/authorize", data={"nonce": nonce, "login": "bob", "decision": "approve"}
    )
    assert approved.status_code == 302
    assert set(_query(approved.headers["Location"])) == {"code", "state", "iss"}
    # The nonce is single use.
    again = web.post(
        "/login/oauth/authorize", data={"nonce": nonce, "login": "bob", "decision": "approve"}
    )
    assert again.status_code == 400

    page = _authorize(web, state="s2")
    nonce = page.text.split('name="nonce" value="')[1].split('"')[0]
    denied = web.post("/login/oauth/authorize", data={"nonce": nonce, "decision": "deny"})
    assert _query(denied.headers["Location"])["error"] == "access_denied"


# --- the token endpoint ------------------------------------------------------------------------


def test_token_endpoint_is_post_only(web: httpx.Client) -> None:
    assert web.get(TOKEN_PATH).status_code == 404


@pytest.mark.parametrize("transport", ["form", "json", "query", "basic"])
def test_client_credentials_accepted_four_ways(
    web: httpx.Client, state: GitHubEmulator, transport: str
) -> None:
    code = _code(web, state, scope="read:user user:email")
    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    params = {"code": code, "redirect_uri": CALLBACK}
    if transport == "form":
        response = web.post(TOKEN_PATH, data={**creds, **params}, headers=JSON_ACCEPT)
    elif transport == "json":
        response = web.post(TOKEN_PATH, json={**creds, **params}, headers=JSON_ACCEPT)
    elif transport == "query":
        response = web.post(TOKEN_PATH, params={**creds, **params}, headers=JSON_ACCEPT)
    else:
        response = web.post(
            TOKEN_PATH,
            data={**params, "grant_type": "authorization_code"},
            auth=(CLIENT_ID, CLIENT_SECRET),
            headers=JSON_ACCEPT,
        )
    body = response.json()
    assert response.status_code == 200
    assert body["access_token"].startswith("gho_")
    assert body["token_type"] == "bearer"
    assert body["scope"] == "read:user,user:email"  # comma-joined, unlike the request


def test_default_response_is_form_encoded_and_xml_on_request(
    web: httpx.Client, state: GitHubEmulator
) -> None:
    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    response = web.post(TOKEN_PATH, data={**creds, "code": _code(web, state, scope="repo gist")})
    assert response.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    parsed = parse_qs(response.text)
    assert parsed["token_type"] == ["bearer"] and parsed["scope"] == ["repo,gist"]
    assert "scope=repo%2Cgist" in response.text

    xml = web.post(
        TOKEN_PATH,
        data={**creds, "code": _code(web, state, login="bob")},
        headers={"Accept": "application/xml"},
    )
    assert xml.text.startswith("<OAuth><token_type>bearer</token_type><scope></scope>")


def test_returning_user_gets_union_of_granted_scopes(
    web: httpx.Client, state: GitHubEmulator
) -> None:
    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    first = web.post(TOKEN_PATH, data={**creds, "code": _code(web, state, scope="gist")})
    assert parse_qs(first.text)["scope"] == ["gist"]
    second = web.post(TOKEN_PATH, data={**creds, "code": _code(web, state, scope="read:user")})
    assert parse_qs(second.text)["scope"] == ["read:user,gist"]


def test_scopes_are_normalised() -> None:
    assert normalize_scopes("user user:email gist") == ["user", "gist"]
    assert normalize_scopes("read:user,user:email  repo:status repo") == [
        "read:user",
        "user:email",
        "repo",
    ]
    assert normalize_scopes("") == []


def test_errors_are_http_200_with_githubs_bodies(web: httpx.Client, state: GitHubEmulator) -> None:
    code = _code(web, state)
    wrong_secret = web.post(
        TOKEN_PATH,
        data={"client_id": CLIENT_ID, "client_secret": "wrong", "code": code},
        headers=JSON_ACCEPT,
    )
    assert wrong_secret.status_code == 200
    assert wrong_secret.json() == {
        "error": "incorrect_client_credentials",
        "error_description": "The client_id and/or client_secret passed are incorrect.",
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
        "troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials",
    }
    garbage = web.post(
        TOKEN_PATH,
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": "garbage"},
    )
    assert garbage.status_code == 200
    assert parse_qs(garbage.text)["error"] == ["bad_verification_code"]
    assert parse_qs(garbage.text)["error_description"] == [
        "The code passed is incorrect or expired."
    ]


def test_redirect_uri_must_match_the_one_used_at_authorize(
    web: httpx.Client, state: GitHubEmulator
) -> None:
    code = _code(web, state)
    body = web.post(
        TOKEN_PATH,
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "code": code,
            "redirect_uri": CALLBACK + "/other",
        },
        headers=JSON_ACCEPT,
    ).json()
    assert body["error"] == "redirect_uri_mismatch"


def test_code_is_single_use(web: httpx.Client, state: GitHubEmulator) -> None:
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": _code(web, state)}
    assert "access_token" in web.post(TOKEN_PATH, data=data, headers=JSON_ACCEPT).json()
    second = web.post(TOKEN_PATH, data=data, headers=JSON_ACCEPT).json()
    assert second["error"] == "bad_verification_code"


def test_code_expires_after_ten_minutes(web: httpx.Client, state: GitHubEmulator) -> None:
    clock = FakeClock()
    state.clock = clock
    fresh = _code(web, state)
    stale = _code(web, state)
    clock.advance(599)
    ok = web.post(
        TOKEN_PATH,
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": fresh},
        headers=JSON_ACCEPT,
    )
    assert "access_token" in ok.json()
    clock.advance(2)
    expired = web.post(
        TOKEN_PATH,
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": stale},
        headers=JSON_ACCEPT,
    )
    assert expired.json()["error"] == "bad_verification_code"


def test_code_of_another_client_is_refused(web: httpx.Client, state: GitHubEmulator) -> None:
    state.add_oauth_client("other", "other-secret", CALLBACK)
    code = _code(web, state)
    body = web.post(
        TOKEN_PATH,
        data={"client_id": "other", "client_secret": "other-secret", "code": code},
        headers=JSON_ACCEPT,
    ).json()
    assert body["error"] == "bad_verification_code"


# --- PKCE --------------------------------------------------------------------------------------


@pytest.mark.parametrize("verifier", [None, "wrong-verifier-wrong-verifier-wrong-verifier-1234"])
def test_pkce_missing_or_wrong_verifier(
    web: httpx.Client, state: GitHubEmulator, verifier: str | None
) -> None:
    real = secrets.token_urlsafe(48)
    code = _code(web, state, code_challenge=_challenge(real), code_challenge_method="S256")
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code}
    if verifier is not None:
        data["code_verifier"] = verifier
    body = web.post(TOKEN_PATH, data=data, headers=JSON_ACCEPT).json()
    assert body["error"] == "bad_verification_code"


def test_pkce_right_verifier_and_secret_still_required(
    web: httpx.Client, state: GitHubEmulator
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(web, state, code_challenge=_challenge(verifier), code_challenge_method="S256")
    no_secret = web.post(
        TOKEN_PATH,
        data={"client_id": CLIENT_ID, "code": code, "code_verifier": verifier},
        headers=JSON_ACCEPT,
    ).json()
    assert no_secret["error"] == "incorrect_client_credentials"
    ok = web.post(
        TOKEN_PATH,
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "code": code,
            "code_verifier": verifier,
        },
        headers=JSON_ACCEPT,
    ).json()
    assert ok["access_token"].startswith("gho_")


def test_pkce_plain_method_is_refused(web: httpx.Client, state: GitHubEmulator) -> None:
    state.auto_approve_as = "alice"
    response = _authorize(web, state="s", code_challenge="x" * 43, code_challenge_method="plain")
    params = _query(response.headers["Location"])
    assert params["error"] == "invalid_request" and "code" not in params
    assert params["state"] == "s"


# --- a real client end to end ------------------------------------------------------------------


def test_authlib_client_secret_basic_with_pkce(
    emulator: EmulatorServer, state: GitHubEmulator
) -> None:
    # The requests-based client is what Authlib's Flask integration uses.
    from authlib.integrations.requests_client import OAuth2Session

    state.auto_approve_as = "bob"
    with OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="read:user user:email",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
    ) as client:
        verifier = secrets.token_urlsafe(48)
        url, sent_state = client.create_authorization_url(
            emulator.url + "/login/oauth/authorize", code_verifier=verifier
        )
        location = httpx.get(url, verify=SSL_CONTEXT).headers["Location"]
        token = client.fetch_token(
            emulator.url + TOKEN_PATH, authorization_response=location, code_verifier=verifier
        )
    assert _query(location)["state"] == sent_state
    assert token["scope"] == "read:user,user:email"
    user = httpx.get(
        emulator.api_url + "/user",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        verify=SSL_CONTEXT,
    )
    assert user.json()["login"] == "bob"
    assert user.headers["X-OAuth-Scopes"] == "read:user, user:email"
    # Authlib authenticated with HTTP Basic: the credentials were not in the form.
    token_request = next(r for r in state.requests if r.path == TOKEN_PATH)
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert b"client_secret" not in token_request.body
