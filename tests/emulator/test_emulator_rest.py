"""REST behaviour under /api/v3 (REFERENCE section 2)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from emulator_support import SSL_CONTEXT

from undersign.emulator import EmulatorServer, GitHubEmulator

Api = Callable[..., httpx.Client]


@pytest.fixture
def repo(state: GitHubEmulator) -> str:
    state.add_org("acme", admins=["alice"], members=["carol"])
    state.add_repo("acme/widgets")
    return "acme/widgets"


def _get(
    url: str, headers: dict[str, str] | None = None, *, follow_redirects: bool = False
) -> httpx.Response:
    return httpx.get(url, headers=headers, follow_redirects=follow_redirects, verify=SSL_CONTEXT)


def _links(response: httpx.Response) -> dict[str, str]:
    return {
        rel: url
        for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers.get("Link", ""))
    }


# --- auth ----------------------------------------------------------------------------------------


def test_rest_is_only_under_api_v3(emulator: EmulatorServer, state: GitHubEmulator) -> None:
    token = state.issue_token("alice")
    headers = {"Authorization": f"token {token}"}
    assert _get(emulator.url + "/user", headers=headers).status_code == 404
    assert _get(emulator.api_url + "/user", headers=headers).status_code == 200


@pytest.mark.parametrize("scheme", ["token", "Bearer", "bearer"])
def test_token_and_bearer_schemes(api: Api, state: GitHubEmulator, scheme: str) -> None:
    token = state.issue_token("alice")
    response = api().get("/user", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200 and response.json()["login"] == "alice"


@pytest.mark.parametrize("revoked", [True, False], ids=["revoked", "unknown"])
def test_bad_and_revoked_tokens_get_githubs_401(
    api: Api, state: GitHubEmulator, revoked: bool
) -> None:
    credential = "gho_doesnotexist"
    if revoked:
        credential = state.issue_token("alice")
        state.revoke_token(credential)
    response = api(credential).get("/repos/whatever/thing")
    assert response.status_code == 401
    assert response.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }


def test_unauthenticated_user_request_is_401(api: Api) -> None:
    response = api().get("/user")
    assert response.status_code == 401
    assert response.json()["message"] == "Requires authentication"
    assert response.headers["X-RateLimit-Limit"] == "60"


def test_query_parameter_credentials_are_not_honoured(api: Api, state: GitHubEmulator) -> None:
    token = state.issue_token("alice")
    response = api().get("/user", params={"access_token": token})
    assert response.status_code == 401
    state.add_repo("alice/private-thing", private=True)
    hidden = api().get(
        "/repos/alice/private-thing",
        params={"client_id": "Iv1.testclient00001", "client_secret": "test-client-secret-0001"},
    )
    assert hidden.status_code == 404


def test_user_objects_and_emails(api: Api, state: GitHubEmulator) -> None:
    state.add_user("erin", email="erin@example.com", public_email=False)
    token = state.issue_token("erin")
    me = api(token).get("/user").json()
    assert me["email"] is None  # private address: null on /user
    assert me["type"] == "User" and isinstance(me["id"], int)
    assert "two_factor_authentication" in me  # private fields with the `user` scope
    emails = api(token).get("/user/emails").json()
    primary = next(e for e in emails if e["primary"])
    assert primary == {
        "email": "erin@example.com",
        "primary": True,
        "verified": True,
        "visibility": "private",
    }
    narrow = state.issue_token("erin", scopes=["read:user"])
    assert api(narrow).get("/user/emails").status_code == 404
    assert api().get("/users/erin").json()["login"] == "erin"
    assert api().get("/users/nobody").status_code == 404


def test_rename_keeps_the_id(api: Api, state: GitHubEmulator) -> None:
    before = state.user("bob")
    state.rename_user("bob", "robert")
    assert api().get("/users/bob").status_code == 404
    assert api().get("/users/robert").json()["id"] == before["id"]


# --- headers, versions, etags --------------------------------------------------------------------


def test_standard_headers(api: Api, state: GitHubEmulator) -> None:
    response = api(state.issue_token("alice")).get("/user")
    h = response.headers
    assert h["Content-Type"] == "application/json; charset=utf-8"
    assert h["X-GitHub-Api-Version-Selected"] == "2022-11-28"
    assert h["X-GitHub-Request-Id"]
    assert h["ETag"].startswith('W/"')
    assert h["X-RateLimit-Limit"] == "5000" and h["X-RateLimit-Used"] == "1"
    assert h["X-RateLimit-Resource"] == "core" and int(h["X-RateLimit-Reset"]) > 0


def test_api_versions(api: Api, state: GitHubEmulator) -> None:
    client = api(state.issue_token("alice"))
    new = client.get("/user", headers={"X-GitHub-Api-Version": "2026-03-10"})
    assert new.headers["X-GitHub-Api-Version-Selected"] == "2026-03-10"
    bad = client.get("/user", headers={"X-GitHub-Api-Version": "2021-01-01"})
    assert bad.status_code == 400


def test_if_none_match_gives_304_that_is_not_counted(api: Api, state: GitHubEmulator) -> None:
    client = api(state.issue_token("alice"))
    first = client.get("/user")
    assert first.headers["X-RateLimit-Remaining"] == "4999"
    cached = client.get("/user", headers={"If-None-Match": first.headers["ETag"]})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["X-RateLimit-Remaining"] == "4999"
    assert client.get("/user").headers["X-RateLimit-Remaining"] == "4998"
    assert client.get("/rate_limit").json()["resources"]["core"]["remaining"] == 4998


# --- pulls, commits, pagination ------------------------------------------------------------------


def test_pull_request_object(api: Api, state: GitHubEmulator, repo: str) -> None:
    pr = state.add_pull_request(repo, user_login="bob", n_commits=3, head_ref="bob/fix")
    client = api(state.issue_token("alice"))
    full = client.get(f"/repos/{repo}/pulls/{pr['number']}").json()
    assert full["commits"] == 3
    assert full["user"]["login"] == "bob"
    assert full["head"]["ref"] == "bob/fix" and full["base"]["ref"] == "main"
    assert full["head"]["sha"] == state.pull_commits(repo, 1)[-1]
    assert full["base"]["repo"]["full_name"] == repo
    listed = client.get(f"/repos/{repo}/pulls").json()
    assert [p["number"] for p in listed] == [1] and "commits" not in listed[0]
    state.set_pr_state(repo, 1, "closed")
    assert client.get(f"/repos/{repo}/pulls").json() == []
    assert len(client.get(f"/repos/{repo}/pulls", params={"state": "all"}).json()) == 1
    assert client.get(f"/repos/{repo}/pulls", params={"state": "bogus"}).status_code == 422
    assert client.get(f"/repos/{repo}/pulls/99").json()["message"] == "Not Found"


def test_pagination_links(api: Api, state: GitHubEmulator, repo: str) -> None:
    state.add_pull_request(repo, user_login="bob", n_commits=7)
    repo_id = state.repo(repo)["id"]
    client = api(state.issue_token("alice"))
    page1 = client.get(f"/repos/{repo}/pulls/1/commits", params={"per_page": 3})
    assert len(page1.json()) == 3
    assert list(_links(page1)) == ["next", "last"]
    assert _links(page1)["next"] == (
        f"{state.api_url}/repositories/{repo_id}/pulls/1/commits?per_page=3&page=2"
    )
    page2 = client.get(_links(page1)["next"])
    assert list(_links(page2)) == ["prev", "next", "last", "first"]
    last = client.get(_links(page1)["last"])
    assert list(_links(last)) == ["prev", "first"] and len(last.json()) == 1
    everything = client.get(f"/repos/{repo}/pulls/1/commits")
    assert "Link" not in everything.headers and len(everything.json()) == 7
    capped = client.get(f"/repos/{repo}/pulls/1/commits", params={"per_page": 1000})
    assert len(capped.json()) == 7  # per_page is clamped to 100, one page


def test_pull_commits_are_capped_at_250_and_compare_pages_past_it(
    api: Api, state: GitHubEmulator, repo: str
) -> None:
    pr = state.add_pull_request(repo, user_login="bob", n_commits=300)
    client = api(state.issue_token("alice"))
    full = client.get(f"/repos/{repo}/pulls/1").json()
    assert full["commits"] == 300  # the true count reveals truncation
    seen: list[str] = []
    url: str | None = f"/repos/{repo}/pulls/1/commits?per_page=100"
    while url:
        response = client.get(url)
        seen += [c["sha"] for c in response.json()]
        url = _links(response).get("next")
    assert len(seen) == 250 and seen == state.pull_commits(repo, 1)[:250]

    basehead = f"{pr['base']['sha']}...{pr['head']['sha']}"
    unpaged = client.get(f"/repos/{repo}/compare/{basehead}").json()
    assert unpaged["total_commits"] == 300 and len(unpaged["commits"]) == 250
    assert unpaged["status"] == "ahead" and unpaged["ahead_by"] == 300
    assert unpaged["merge_base_commit"]["sha"] == pr["base"]["sha"]
    compared: list[str] = []
    url = f"/repos/{repo}/compare/{basehead}?per_page=100"
    while url:
        response = client.get(url)
        compared += [c["sha"] for c in response.json()["commits"]]
        url = _links(response).get("next")
    assert compared == state.pull_commits(repo, 1)


def test_commit_author_variants(api: Api, state: GitHubEmulator, repo: str) -> None:
    shas = [
        state.add_commit(repo, author_login="bob", message="linked"),
        state.add_commit(repo, author={"name": "Ghost", "email": "ghost@nowhere.test"}),
        state.add_commit(repo, author_login="bob", author_field="null"),
        state.add_commit(repo, author_login="bob", author_field="empty"),
        state.add_commit(repo, author={"name": "Carol", "email": "carol@example.com"}),
        state.add_commit(
            repo,
            author_login="bob",
            message="Fix\n\nCo-authored-by: Carol <carol@example.com>",
        ),
    ]
    state.add_pull_request(repo, user_login="bob", commits=shas)
    commits = api(state.issue_token("alice")).get(f"/repos/{repo}/pulls/1/commits").json()
    authors = [c["author"] for c in commits]
    assert authors[0]["login"] == "bob"
    assert authors[1] is None  # e-mail not linked to an account
    assert authors[2] is None
    assert authors[3] == {}
    assert authors[4]["login"] == "carol"  # linked through the e-mail address
    assert commits[5]["commit"]["message"].endswith("Co-authored-by: Carol <carol@example.com>")
    assert commits[1]["commit"]["author"]["email"] == "ghost@nowhere.test"
    assert commits[1]["parents"][0]["sha"] == commits[0]["sha"]


def test_push_changes_head_and_compare(api: Api, state: GitHubEmulator, repo: str) -> None:
    pr = state.add_pull_request(repo, user_login="bob", n_commits=1)
    updated = state.push_commits(repo, 1, n_commits=2, author_login="carol")
    assert updated["head"]["sha"] != pr["head"]["sha"] and updated["commits"] == 3
    client = api(state.issue_token("alice"))
    assert client.get(f"/repos/{repo}/pulls/1").json()["head"]["sha"] == updated["head"]["sha"]


# --- statuses ------------------------------------------------------------------------------------


def test_statuses(api: Api, state: GitHubEmulator, repo: str) -> None:
    pr = state.add_pull_request(repo, user_login="bob", n_commits=1)
    sha = pr["head"]["sha"]
    bot = state.add_user("undersign-bot")
    client = api(state.issue_token("undersign-bot"))
    state.add_collaborator(repo, "undersign-bot", "write")
    too_long = client.post(
        f"/repos/{repo}/statuses/{sha}", json={"state": "failure", "description": "x" * 141}
    )
    assert too_long.status_code == 422
    assert too_long.json()["errors"] == [
        {
            "resource": "Status",
            "code": "custom",
            "field": "description",
            "message": "description is too long (maximum is 140 characters)",
        }
    ]
    assert too_long.json()["message"] == "Validation Failed"
    assert client.post(f"/repos/{repo}/statuses/{sha}", json={"state": "green"}).status_code == 422
    ok = client.post(
        f"/repos/{repo}/statuses/{sha}",
        json={"state": "pending", "description": "x" * 140, "target_url": "https://cla.test/x"},
    )
    assert ok.status_code == 201
    assert ok.json()["context"] == "default"
    assert ok.json()["creator"]["id"] == bot["id"]
    assert ok.headers["Location"].endswith(f"/statuses/{sha}")
    client.post(f"/repos/{repo}/statuses/{sha}", json={"state": "failure", "context": "CLA"})
    client.post(f"/repos/{repo}/statuses/{sha}", json={"state": "success", "context": "cla"})
    listed = client.get(f"/repos/{repo}/commits/{sha}/statuses").json()
    assert [s["state"] for s in listed] == ["success", "failure", "pending"]  # newest first
    combined = client.get(f"/repos/{repo}/commits/{sha}/status").json()
    assert combined["total_count"] == 2  # "CLA" and "cla" are the same context
    assert combined["state"] == "pending"
    assert "creator" not in combined["statuses"][0]
    assert state.combined_status(repo, sha)["state"] == "pending"
    missing = client.post(f"/repos/{repo}/statuses/{'0' * 40}", json={"state": "success"})
    assert missing.status_code == 422


def test_status_needs_push_access(api: Api, state: GitHubEmulator, repo: str) -> None:
    pr = state.add_pull_request(repo, user_login="bob", n_commits=1)
    response = api(state.issue_token("bob")).post(
        f"/repos/{repo}/statuses/{pr['head']['sha']}", json={"state": "success"}
    )
    assert response.status_code == 404
    assert api().post(f"/repos/{repo}/statuses/{pr['head']['sha']}", json={}).status_code == 401


def test_statuses_per_context_cap(api: Api, state: GitHubEmulator, repo: str) -> None:
    pr = state.add_pull_request(repo, user_login="bob", n_commits=1)
    sha = pr["head"]["sha"]
    for _ in range(1000):
        state.add_status(repo, sha, state="pending", creator_login="alice", context="cla")
    refused = api(state.issue_token("alice")).post(
        f"/repos/{repo}/statuses/{sha}", json={"state": "success", "context": "CLA"}
    )
    assert refused.status_code == 422
    assert "maximum number of statuses" in refused.json()["errors"][0]["message"]


# --- comments ------------------------------------------------------------------------------------


def test_issue_comments(api: Api, state: GitHubEmulator, repo: str) -> None:
    state.add_pull_request(repo, user_login="bob", n_commits=1)
    alice = api(state.issue_token("alice"))
    created = alice.post(f"/repos/{repo}/issues/1/comments", json={"body": "first"})
    assert created.status_code == 201
    comment = created.json()
    assert comment["user"]["login"] == "alice" and comment["author_association"] == "MEMBER"
    state.add_comment(repo, 1, "second", "bob")
    listed = alice.get(f"/repos/{repo}/issues/1/comments").json()
    assert [c["body"] for c in listed] == ["first", "second"]  # ascending
    edited = alice.patch(f"/repos/{repo}/issues/comments/{comment['id']}", json={"body": "edited"})
    assert edited.json()["body"] == "edited"
    assert alice.get(f"/repos/{repo}/issues/comments/{comment['id']}").json()["body"] == "edited"
    too_long = alice.post(f"/repos/{repo}/issues/1/comments", json={"body": "x" * 65537})
    assert too_long.status_code == 422
    assert (
        too_long.json()["errors"][0]["message"] == "body is too long (maximum is 65536 characters)"
    )
    bob = api(state.issue_token("bob"))
    assert (
        bob.patch(
            f"/repos/{repo}/issues/comments/{comment['id']}", json={"body": "hijack"}
        ).status_code
        == 403
    )
    assert alice.delete(f"/repos/{repo}/issues/comments/{comment['id']}").status_code == 204
    assert [c["body"] for c in state.comments(repo, 1)] == ["second"]
    assert alice.post(f"/repos/{repo}/issues/42/comments", json={"body": "x"}).status_code == 404


# --- collaborators and orgs ----------------------------------------------------------------------


def test_collaborator_permission(api: Api, state: GitHubEmulator, repo: str) -> None:
    state.add_collaborator(repo, "bob", "maintain")
    alice = api(state.issue_token("alice"))
    bob_perm = alice.get(f"/repos/{repo}/collaborators/bob/permission").json()
    assert bob_perm["permission"] == "write" and bob_perm["role_name"] == "maintain"
    assert alice.get(f"/repos/{repo}/collaborators/bob").status_code == 204
    state.add_user("zed")
    assert alice.get(f"/repos/{repo}/collaborators/zed").status_code == 404
    assert alice.get(f"/repos/{repo}/collaborators/zed/permission").json()["permission"] == "read"
    zed = api(state.issue_token("zed"))
    assert zed.get(f"/repos/{repo}/collaborators/bob").status_code == 403


def test_org_membership_trio(emulator: EmulatorServer, state: GitHubEmulator, repo: str) -> None:
    state.add_org_member("acme", "bob")  # private membership
    member = {"Authorization": f"token {state.issue_token('alice')}"}
    outsider = {"Authorization": f"token {state.issue_token('carol')}"}
    state.add_user("zed")
    stranger = {"Authorization": f"token {state.issue_token('zed')}"}
    base = emulator.api_url + "/orgs/acme"
    assert _get(f"{base}/members/bob", headers=member).status_code == 204
    assert _get(f"{base}/members/zed", headers=member).status_code == 404
    moved = _get(f"{base}/members/bob", headers=stranger)
    assert moved.status_code == 302
    assert moved.headers["Location"] == f"{base}/public_members/bob"
    # A client that follows the redirect sees 404 for a private member (githubkit's trap).
    assert _get(f"{base}/members/bob", headers=stranger, follow_redirects=True).status_code == 404
    assert _get(f"{base}/public_members/alice").status_code == 404  # alice is not public
    assert _get(f"{base}/members/carol", headers=outsider).status_code == 204
    membership = _get(f"{base}/memberships/alice", headers=member).json()
    assert membership["role"] == "admin" and membership["state"] == "active"
    assert _get(f"{base}/memberships/bob", headers=stranger).status_code == 403


def test_private_repo_hidden_from_outsiders(api: Api, state: GitHubEmulator) -> None:
    state.add_repo("alice/secret", private=True)
    assert api(state.issue_token("alice")).get("/repos/alice/secret").status_code == 200
    assert api(state.issue_token("bob")).get("/repos/alice/secret").status_code == 404
    narrow = state.issue_token("alice", scopes=["read:user"])
    assert api(narrow).get("/repos/alice/secret").status_code == 404


def test_check_runs_need_a_github_app(api: Api, state: GitHubEmulator, repo: str) -> None:
    response = api(state.issue_token("alice")).post(f"/repos/{repo}/check-runs", json={})
    assert response.status_code == 403
    assert response.json()["message"] == "You must authenticate via a GitHub App."


# --- renamed and transferred repositories ---------------------------------------------------


def test_a_renamed_repositorys_old_name_redirects_to_its_id(
    api: Api, state: GitHubEmulator, repo: str
) -> None:
    """octokit/fixtures rename-repository: 301 for a GET, 307 otherwise, to
    ``/repositories/{id}``, with ``{"message": "Moved Permanently", "url"}``."""
    sha = state.add_commit(repo, author_login="alice")
    changes = state.rename_repo(repo, "gizmos")
    assert changes == {"repository": {"name": {"from": "widgets"}}}
    client = api(state.issue_token("alice"))
    repo_id = client.get("/repos/acme/gizmos").json()["id"]
    moved = client.get("/repos/acme/widgets/pulls", params={"state": "all"})
    location = f"{state.api_url}/repositories/{repo_id}/pulls?state=all"
    assert (moved.status_code, moved.headers["Location"]) == (301, location)
    assert moved.json()["message"] == "Moved Permanently"
    assert moved.json()["url"] == location
    post = client.post(f"/repos/acme/widgets/statuses/{sha}", json={"state": "success"})
    assert post.status_code == 307
    assert post.headers["Location"] == f"{state.api_url}/repositories/{repo_id}/statuses/{sha}"
    # Followed, the redirect lands on the repository under its new name.
    assert client.get("/repos/acme/widgets", follow_redirects=True).json()["full_name"] == (
        "acme/gizmos"
    )
    # A new repository taking the old name ends the redirect.
    state.add_repo("acme/widgets")
    assert client.get("/repos/acme/widgets").json()["id"] != repo_id


def test_a_transferred_repository_redirects_and_says_where_from(
    api: Api, state: GitHubEmulator, repo: str
) -> None:
    state.add_org("newco", admins=["alice"])
    changes = state.transfer_repo(repo, "newco")
    assert changes["owner"]["from"]["organization"]["login"] == "acme"
    payload = state.repository_event("newco/widgets", "transferred", changes, sender_login="alice")
    assert payload["action"] == "transferred"
    assert payload["repository"]["full_name"] == "newco/widgets"
    assert payload["changes"] == changes
    moved = api(state.issue_token("alice")).get("/repos/acme/widgets")
    assert moved.status_code == 301
    assert moved.headers["Location"].endswith(f"/repositories/{payload['repository']['id']}")


def test_a_private_repositorys_old_name_is_a_404_to_strangers(
    api: Api, state: GitHubEmulator
) -> None:
    state.add_org("acme", admins=["alice"])
    state.add_repo("acme/secret", private=True)
    state.rename_repo("acme/secret", "hidden")
    assert api(state.issue_token("bob")).get("/repos/acme/secret").status_code == 404
    assert api(state.issue_token("alice")).get("/repos/acme/secret").status_code == 301


def test_a_pull_request_from_a_deleted_fork_has_a_null_head_repo(
    api: Api, state: GitHubEmulator, repo: str
) -> None:
    """rest-api-description#161 / #1811: ``head.repo`` is null in the pull request and in
    the listing once the fork is gone; the head commits stay readable."""
    state.add_repo("bob/widgets")
    sha = state.add_commit("bob/widgets", author_login="bob")
    pr = state.add_pull_request(repo, user_login="bob", commits=[sha], head_repo="bob/widgets")
    state.delete_fork("bob/widgets")
    client = api(state.issue_token("alice"))
    one = client.get(f"/repos/{repo}/pulls/{pr['number']}").json()
    assert one["head"]["repo"] is None and one["head"]["sha"] == sha
    assert one["base"]["repo"]["full_name"] == repo
    [listed] = client.get(f"/repos/{repo}/pulls").json()
    assert listed["head"]["repo"] is None
    assert client.get(f"/repos/{repo}/pulls", params={"head": "bob:feature"}).json() == []
    assert [c["sha"] for c in client.get(f"/repos/{repo}/pulls/{pr['number']}/commits").json()] == [
        sha
    ]
    assert client.get("/repos/bob/widgets").status_code == 404
    with pytest.raises(ValueError, match="not a fork"):
        state.delete_fork(repo)
