"""Fidelity: real clients and GitHub's own schemas accept what the emulator serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from undersign.emulator import EmulatorServer, GitHubEmulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"


@pytest.fixture
def seeded(state: GitHubEmulator) -> GitHubEmulator:
    state.add_user("dependabot[bot]", type="Bot")
    state.add_org("acme", admins=["alice"], members=["carol"])
    state.add_repo("acme/widgets")
    shas = [
        state.add_commit("acme/widgets", author_login="bob"),
        state.add_commit("acme/widgets", author={"name": "X", "email": "x@unknown.test"}),
        state.add_commit("acme/widgets", author_login="bob", author_field="empty"),
    ]
    state.add_pull_request("acme/widgets", user_login="bob", commits=shas, title="Widgets")
    return state


def test_githubkit_reads_user_and_pull_commits(
    emulator: EmulatorServer, seeded: GitHubEmulator
) -> None:
    from githubkit import GitHub, TokenAuthStrategy
    from githubkit_schemas.latest.models import EmptyObject

    token = seeded.issue_token("alice")
    with GitHub(TokenAuthStrategy(token), base_url=emulator.api_url + "/") as gh:
        me = gh.rest.users.get_authenticated().parsed_data
        assert me.login == "alice"
        commits = gh.rest.pulls.list_commits("acme", "widgets", 1).parsed_data
        assert commits[0].author is not None and commits[0].author.login == "bob"
        assert commits[1].author is None
        assert isinstance(commits[2].author, EmptyObject)
        pr = gh.rest.pulls.get("acme", "widgets", 1).parsed_data
        assert pr.commits == 3
        status = gh.rest.repos.create_commit_status(
            "acme", "widgets", pr.head.sha, state="failure", context="cla", description="sign"
        ).parsed_data
        assert status.creator is not None and status.creator.login == "alice"
        combined = gh.rest.repos.get_combined_status_for_ref("acme", "widgets", pr.head.sha)
        assert combined.parsed_data.state == "failure"
        comment = gh.rest.issues.create_comment("acme", "widgets", 1, body="Please sign")
        assert comment.parsed_data.user is not None
        perm = gh.rest.repos.get_collaborator_permission_level("acme", "widgets", "bob")
        assert perm.parsed_data.permission == "read"
        compare = gh.rest.repos.compare_commits(
            "acme", "widgets", f"{pr.base.sha}...{pr.head.sha}"
        ).parsed_data
        assert compare.total_commits == 3
        membership = gh.rest.orgs.get_membership_for_user("acme", "carol").parsed_data
        assert membership.role == "member"
    calls = seeded.api_calls()
    assert calls and all(c.headers.get("X-Github-Api-Version") == "2026-03-10" for c in calls)


def _validate(model: str, data: Any) -> None:
    from githubkit_schemas.v2026_03_10 import models

    getattr(models, model).model_validate(data)


def test_rest_objects_validate_against_githubs_schema(
    emulator: EmulatorServer, seeded: GitHubEmulator, api: Any
) -> None:
    token = seeded.issue_token("alice")
    client = api(token)
    pr = client.get("/repos/acme/widgets/pulls/1").json()
    sha = pr["head"]["sha"]
    client.post(f"/repos/acme/widgets/statuses/{sha}", json={"state": "success"})
    client.post("/repos/acme/widgets/issues/1/comments", json={"body": "hello"})
    _validate("PrivateUser", client.get("/user").json())
    _validate("PublicUser", client.get("/users/bob").json())
    _validate("FullRepository", client.get("/repos/acme/widgets").json())
    _validate("PullRequest", pr)
    for item in client.get("/repos/acme/widgets/pulls").json():
        _validate("PullRequestSimple", item)
    for item in client.get("/repos/acme/widgets/pulls/1/commits").json():
        _validate("Commit", item)
    _validate(
        "CommitComparison",
        client.get(f"/repos/acme/widgets/compare/{pr['base']['sha']}...{sha}").json(),
    )
    for item in client.get(f"/repos/acme/widgets/commits/{sha}/statuses").json():
        _validate("Status", item)
    _validate(
        "CombinedCommitStatus", client.get(f"/repos/acme/widgets/commits/{sha}/status").json()
    )
    for item in client.get("/repos/acme/widgets/issues/1/comments").json():
        _validate("IssueComment", item)
    _validate(
        "RepositoryCollaboratorPermission",
        client.get("/repos/acme/widgets/collaborators/bob/permission").json(),
    )
    _validate("OrgMembership", client.get("/orgs/acme/memberships/alice").json())
    _validate("RateLimitOverview", client.get("/rate_limit").json())
    for item in client.get("/user/emails").json():
        _validate("Email", item)


def _keys(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / path).read_text())
    return data


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "closed"])
def test_pull_request_payload_matches_real_shape(seeded: GitHubEmulator, action: str) -> None:
    from githubkit.webhooks import parse_obj

    if action == "closed":
        seeded.set_pr_state("acme/widgets", 1, "closed")
    if action == "synchronize":
        seeded.push_commits("acme/widgets", 1, n_commits=1)
    payload = seeded.pull_request_event("acme/widgets", 1, action, installation_id=99)
    real = _keys(f"pull_request__{action}.json")
    assert set(real) - {"enterprise"} <= set(payload)
    assert set(real["pull_request"]) <= set(payload["pull_request"])
    assert set(real["repository"]) <= set(payload["repository"])
    assert set(real["sender"]) <= set(payload["sender"])
    parsed = parse_obj("pull_request", payload)
    assert parsed.action == action


def test_issue_comment_payload_matches_real_shape(seeded: GitHubEmulator) -> None:
    from githubkit.webhooks import parse_obj

    payload = seeded.issue_comment_event("acme/widgets", 1, "I have read the CLA", "bob")
    real = _keys("issue_comment__created__with_organization.json")
    assert set(real) <= set(payload)
    assert set(real["issue"]) | {"pull_request"} <= set(payload["issue"])
    assert set(real["comment"]) <= set(payload["comment"])
    assert set(real["organization"]) <= set(payload["organization"])
    parsed = parse_obj("issue_comment", payload)
    assert parsed.issue.pull_request is not None
