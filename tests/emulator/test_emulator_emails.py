"""``GET /user/emails`` and the ``user:email`` scope, as GitHub answers them (REFERENCE 1.10,
5.2): every address listed with its own ``verified``, and a token without the scope refused
with GitHub's 404."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from emulator_support import CALLBACK, CLIENT_ID, CLIENT_SECRET

from undersign.emulator import GitHubEmulator

Api = Callable[..., httpx.Client]
EMAILS_DOCS = (
    "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user"
)


def _oauth_token(web: httpx.Client, state: GitHubEmulator, login: str, scope: str | None) -> dict:
    """A user token from the web flow, asking for ``scope`` (or none)."""
    state.auto_approve_as = login
    params = {"client_id": CLIENT_ID, "redirect_uri": CALLBACK}
    if scope is not None:
        params["scope"] = scope
    location = web.get("/login/oauth/authorize", params=params).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = web.post(
        "/login/oauth/access_token",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code},
        headers={"Accept": "application/json"},
    )
    token: dict = response.json()
    return token


def test_addresses_are_listed_with_their_own_verified_flag(api: Api, state: GitHubEmulator) -> None:
    state.add_email("alice", "Alice@Work.example", verified=True)
    state.add_email("alice", "old@elsewhere.example", verified=False)
    token = state.issue_token("alice", scopes=["user:email"])
    response = api(token).get("/user/emails")
    assert response.status_code == 200
    listed = {e["email"]: e for e in response.json()}
    assert listed["alice@example.com"]["primary"] is True
    assert listed["Alice@Work.example"] == {
        "email": "Alice@Work.example",
        "primary": False,
        "verified": True,
        "visibility": None,
    }
    assert listed["old@elsewhere.example"]["verified"] is False
    assert any(e.endswith("+alice@users.noreply.github.com") for e in listed)
    assert response.headers["X-OAuth-Scopes"] == "user:email"


def test_a_token_without_the_scope_gets_githubs_404(api: Api, state: GitHubEmulator) -> None:
    for scopes in ([], ["read:user"], ["repo"]):
        response = api(state.issue_token("alice", scopes=scopes)).get("/user/emails")
        assert response.status_code == 404, scopes
        assert response.json()["message"] == "Not Found"
        assert response.json()["documentation_url"] == EMAILS_DOCS
        assert response.headers["X-Accepted-OAuth-Scopes"] == "user, user:email"
    assert api(state.issue_token("alice", scopes=["user"])).get("/user/emails").status_code == 200
    assert api().get("/user/emails").status_code == 401


def test_the_web_flow_grants_what_was_asked_and_headers_say_so(
    web: httpx.Client, api: Api, state: GitHubEmulator
) -> None:
    plain = _oauth_token(web, state, "bob", None)
    assert plain["scope"] == ""
    refused = api(plain["access_token"]).get("/user/emails")
    assert refused.status_code == 404 and refused.headers["X-OAuth-Scopes"] == ""
    granted = _oauth_token(web, state, "bob", "user:email")
    assert granted["scope"] == "user:email"
    listed = api(granted["access_token"]).get("/user/emails")
    assert listed.status_code == 200 and listed.headers["X-OAuth-Scopes"] == "user:email"


def test_github_links_commits_to_verified_addresses_only(state: GitHubEmulator) -> None:
    state.add_email("carol", "carol@corp.example", verified=False)
    assert state.user_by_email("CAROL@corp.example") is None
    state.add_email("carol", "carol@corp.example", verified=True)
    found = state.user_by_email("CAROL@corp.example")
    assert found is not None and found.login == "carol"


def test_an_address_lives_on_one_account_at_a_time(state: GitHubEmulator) -> None:
    state.add_email("alice", "shared@corp.example")
    with pytest.raises(ValueError, match="already in use"):
        state.add_email("bob", "SHARED@corp.example")
    state.remove_email("alice", "shared@corp.example")
    state.add_email("bob", "shared@corp.example")
    found = state.user_by_email("shared@corp.example")
    assert found is not None and found.login == "bob"
