"""Render the emulator's records as GitHub's JSON objects.

Shapes follow GitHub's REST schema (githubkit-schemas v2026-03-10 models validate them in the
tests) and the recorded webhook payloads in ``shared/github/webhooks`` (beside the checkout).
URLs point at the emulator: ``{base}/api/v3/...`` for the API (GHES layout) and ``{base}/...``
for HTML pages.
All functions expect the caller to hold ``state.lock``.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

from undersign.emulator.models import (
    PERMISSION_LEVELS,
    CommentRec,
    CommitRec,
    PullRec,
    Repo,
    StatusRec,
    User,
)

if TYPE_CHECKING:
    from undersign.emulator.state import GitHubEmulator

JSON = dict[str, Any]


def iso(ts: float) -> str:
    """GitHub's timestamp format: UTC, second precision, ``Z`` suffix."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def node_id(kind: str, ident: int) -> str:
    """A legacy-format GraphQL node id, e.g. ``MDQ6VXNlcjE=`` for ``04:User1``."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


# --- users -------------------------------------------------------------------------------------


def simple_user(st: GitHubEmulator, user: User) -> JSON:
    api, base, login = st.api_url, st.base_url, user.login
    if user.type == "Bot":
        html_url = f"{base}/apps/{login.removesuffix('[bot]')}"
    else:
        html_url = f"{base}/{login}"
    return {
        "login": login,
        "id": user.id,
        "node_id": node_id(user.type if user.type in ("Bot", "Organization") else "User", user.id),
        "avatar_url": f"{base}/avatars/u/{user.id}?v=4",
        "gravatar_id": "",
        "url": f"{api}/users/{login}",
        "html_url": html_url,
        "followers_url": f"{api}/users/{login}/followers",
        "following_url": f"{api}/users/{login}/following{{/other_user}}",
        "gists_url": f"{api}/users/{login}/gists{{/gist_id}}",
        "starred_url": f"{api}/users/{login}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/users/{login}/subscriptions",
        "organizations_url": f"{api}/users/{login}/orgs",
        "repos_url": f"{api}/users/{login}/repos",
        "events_url": f"{api}/users/{login}/events{{/privacy}}",
        "received_events_url": f"{api}/users/{login}/received_events",
        "type": user.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def public_user(st: GitHubEmulator, user: User) -> JSON:
    public_repos = sum(1 for r in st.repos.values() if r.owner_id == user.id and not r.private)
    return {
        **simple_user(st, user),
        "name": user.name,
        "company": None,
        "blog": "",
        "location": None,
        # GitHub shows null here when the user keeps their address private (use /user/emails).
        "email": user.email if user.public_email else None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": public_repos,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.created_at),
    }


def private_user(st: GitHubEmulator, user: User) -> JSON:
    """``GET /user`` with ``read:user``/``user`` scope: the public object plus private counts."""
    owned_private = sum(1 for r in st.repos.values() if r.owner_id == user.id and r.private)
    return {
        **public_user(st, user),
        "private_gists": 0,
        "total_private_repos": owned_private,
        "owned_private_repos": owned_private,
        "disk_usage": 0,
        "collaborators": 0,
        "two_factor_authentication": True,
        "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
    }


def noreply_email(user: User) -> str:
    return f"{user.id}+{user.login}@users.noreply.github.com"


def emails(user: User) -> list[JSON]:
    """``GET /user/emails``: the primary address, the noreply one, then the others, each
    with GitHub's ``verified`` (an unverified address is listed too)."""
    out: list[JSON] = []
    if user.email:
        out.append(
            {
                "email": user.email,
                "primary": True,
                "verified": True,
                "visibility": "public" if user.public_email else "private",
            }
        )
    out.append(
        {"email": noreply_email(user), "primary": not out, "verified": True, "visibility": None}
    )
    out.extend(
        {"email": address, "primary": False, "verified": verified, "visibility": None}
        for address, verified in user.extra_emails.items()
    )
    return out


def organization(st: GitHubEmulator, org_user: User) -> JSON:
    api, login = st.api_url, org_user.login
    return {
        "login": login,
        "id": org_user.id,
        "node_id": node_id("Organization", org_user.id),
        "url": f"{api}/orgs/{login}",
        "repos_url": f"{api}/orgs/{login}/repos",
        "events_url": f"{api}/orgs/{login}/events",
        "hooks_url": f"{api}/orgs/{login}/hooks",
        "issues_url": f"{api}/orgs/{login}/issues",
        "members_url": f"{api}/orgs/{login}/members{{/member}}",
        "public_members_url": f"{api}/orgs/{login}/public_members{{/member}}",
        "avatar_url": f"{st.base_url}/avatars/u/{org_user.id}?v=4",
        "description": "",
    }


# --- repositories ------------------------------------------------------------------------------


def repository(
    st: GitHubEmulator,
    repo: Repo,
    *,
    api_version: str = "2022-11-28",
    viewer_id: int | None = None,
    webhook: bool = False,
) -> JSON:
    """The full repository object (a superset of Repository/FullRepository/MinimalRepository)."""
    owner = st.users[repo.owner_id]
    full = f"{owner.login}/{repo.name}"
    api = f"{st.api_url}/repos/{full}"
    html = f"{st.base_url}/{full}"
    host = st.base_url.split("://", 1)[-1]
    obj: JSON = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": full,
        "private": repo.private,
        "owner": simple_user(st, owner),
        "html_url": html,
        "description": repo.description,
        "fork": False,
        "url": api,
        "forks_url": f"{api}/forks",
        "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "teams_url": f"{api}/teams",
        "hooks_url": f"{api}/hooks",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "events_url": f"{api}/events",
        "assignees_url": f"{api}/assignees{{/user}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "tags_url": f"{api}/tags",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "languages_url": f"{api}/languages",
        "stargazers_url": f"{api}/stargazers",
        "contributors_url": f"{api}/contributors",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "commits_url": f"{api}/commits{{/sha}}",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "merges_url": f"{api}/merges",
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{api}/downloads",
        "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}",
        "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments",
        "created_at": iso(repo.created_at),
        "updated_at": iso(repo.created_at),
        "pushed_at": iso(repo.created_at),
        "git_url": f"git://{host}/{full}.git",
        "ssh_url": f"git@{host}:{full}.git",
        "clone_url": f"{html}.git",
        "svn_url": html,
        "homepage": None,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": repo.archived,
        "disabled": False,
        "open_issues_count": sum(
            1 for p in st.pulls.values() if p.repo_id == repo.id and p.state == "open"
        ),
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if repo.private else "public",
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": repo.default_branch,
    }
    obj["open_issues"] = obj["open_issues_count"]
    if webhook:
        obj["custom_properties"] = {}
    else:
        obj["subscribers_count"] = 0
        obj["network_count"] = 0
        if st.orgs.get(repo.owner_id) is not None:
            obj["organization"] = simple_user(st, owner)
    if viewer_id is not None and not webhook:
        perm = st.permission(repo, viewer_id)
        level = -1 if perm is None else PERMISSION_LEVELS.index(perm)
        obj["permissions"] = {
            "admin": level >= 4,
            "maintain": level >= 3,
            "push": level >= 2,
            "triage": level >= 1,
            "pull": level >= 0 or not repo.private,
        }
    if api_version >= "2026-03-10" and not webhook:
        # 2026-03-10 breaking change: has_downloads was removed from repository objects.
        del obj["has_downloads"]
    return obj


# --- commits -----------------------------------------------------------------------------------


def _top_level_account(
    st: GitHubEmulator, user_id: int | None, email: str, mode: str
) -> JSON | None:
    """Top-level ``author``/``committer``: SimpleUser, ``{}``, or null (e-mail not linked)."""
    if mode == "empty":
        return {}
    if mode == "null":
        return None
    user = st.users.get(user_id) if user_id is not None else st.user_by_email(email)
    return simple_user(st, user) if user is not None else None


def commit(st: GitHubEmulator, c: CommitRec, repo: Repo) -> JSON:
    full = st.full_name(repo)
    api = f"{st.api_url}/repos/{full}"
    return {
        "sha": c.sha,
        "node_id": node_id("Commit", c.seq),
        "commit": {
            "author": {"name": c.author_name, "email": c.author_email, "date": iso(c.author_date)},
            "committer": {
                "name": c.committer_name,
                "email": c.committer_email,
                "date": iso(c.committer_date),
            },
            "message": c.message,
            "tree": {"sha": _tree_sha(c), "url": f"{api}/git/trees/{_tree_sha(c)}"},
            "url": f"{api}/git/commits/{c.sha}",
            "comment_count": 0,
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "url": f"{api}/commits/{c.sha}",
        "html_url": f"{st.base_url}/{full}/commit/{c.sha}",
        "comments_url": f"{api}/commits/{c.sha}/comments",
        "author": _top_level_account(st, c.author_user_id, c.author_email, c.author_field),
        "committer": _top_level_account(
            st, c.committer_user_id, c.committer_email, c.committer_field
        ),
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{st.base_url}/{full}/commit/{p}"}
            for p in c.parents
        ],
    }


def _tree_sha(c: CommitRec) -> str:
    return c.sha[::-1]


# --- pull requests / issues --------------------------------------------------------------------


def _branch_end(
    st: GitHubEmulator, repo: Repo, ref: str, sha: str, *, webhook: bool, deleted: bool = False
) -> JSON:
    """``head``/``base``; a deleted fork's ``repo`` is null (rest-api-description#161).
    GUESS: ``label`` and ``user`` stay as they were while the owner's account exists
    (githubkit#56 reports them null only for a deleted branch)."""
    owner = st.users[repo.owner_id]
    return {
        "label": f"{owner.login}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": simple_user(st, owner),
        "repo": None if deleted else repository(st, repo, webhook=webhook),
    }


def author_association(st: GitHubEmulator, repo: Repo, user_id: int) -> str:
    if user_id == repo.owner_id:
        return "OWNER"
    org = st.orgs.get(repo.owner_id)
    if org is not None and user_id in org.members:
        return "MEMBER"
    if user_id in repo.collaborators:
        return "COLLABORATOR"
    return "NONE"


def pull_request(
    st: GitHubEmulator, pr: PullRec, *, simple: bool = False, webhook: bool = False
) -> JSON:
    """``GET /pulls/{n}`` (full) or the ``PullRequestSimple`` items of ``GET /pulls``."""
    repo = st.repos[pr.repo_id]
    head_repo = st.head_repo(pr)
    fork_deleted = head_repo is None
    if head_repo is None:
        head_repo = st.deleted_repos[pr.head_repo_id]
    full = st.full_name(repo)
    api = f"{st.api_url}/repos/{full}"
    html = f"{st.base_url}/{full}/pull/{pr.number}"
    user = st.users[pr.user_id]
    obj: JSON = {
        "url": f"{api}/pulls/{pr.number}",
        "id": pr.id,
        "node_id": node_id("PullRequest", pr.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{api}/issues/{pr.number}",
        "number": pr.number,
        "state": pr.state,
        "locked": False,
        "title": pr.title,
        "user": simple_user(st, user),
        "body": pr.body,
        "created_at": iso(pr.created_at),
        "updated_at": iso(pr.updated_at),
        "closed_at": iso(pr.closed_at) if pr.closed_at else None,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "labels": [],
        "milestone": None,
        "draft": pr.draft,
        "commits_url": f"{api}/pulls/{pr.number}/commits",
        "review_comments_url": f"{api}/pulls/{pr.number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{pr.number}/comments",
        "statuses_url": f"{api}/statuses/{pr.head_sha}",
        "head": _branch_end(
            st, head_repo, pr.head_ref, pr.head_sha, webhook=webhook, deleted=fork_deleted
        ),
        "base": _branch_end(st, repo, pr.base_ref, pr.base_sha, webhook=webhook),
        "_links": {
            "self": {"href": f"{api}/pulls/{pr.number}"},
            "html": {"href": html},
            "issue": {"href": f"{api}/issues/{pr.number}"},
            "comments": {"href": f"{api}/issues/{pr.number}/comments"},
            "review_comments": {"href": f"{api}/pulls/{pr.number}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/pulls/{pr.number}/commits"},
            "statuses": {"href": f"{api}/statuses/{pr.head_sha}"},
        },
        "author_association": author_association(st, repo, pr.user_id),
        "auto_merge": None,
        "active_lock_reason": None,
    }
    if simple:
        return obj
    n_commits = len(st.pull_commit_shas(pr))
    obj.update(
        {
            "merged": False,
            # GitHub computes mergeability in the background; null means "not known yet".
            "mergeable": True if pr.state == "open" else None,
            "rebaseable": True if pr.state == "open" else None,
            "mergeable_state": "clean" if pr.state == "open" else "unknown",
            "merged_by": None,
            "comments": sum(
                1
                for c in st.comment_records.values()
                if c.repo_id == repo.id and c.issue_number == pr.number
            ),
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": n_commits,
            "additions": n_commits,
            "deletions": 0,
            "changed_files": min(n_commits, 1),
        }
    )
    return obj


def issue_for_pull(st: GitHubEmulator, pr: PullRec) -> JSON:
    """The issue side of a PR: what ``issue_comment`` payloads carry (with ``pull_request``)."""
    repo = st.repos[pr.repo_id]
    full = st.full_name(repo)
    api = f"{st.api_url}/repos/{full}"
    html = f"{st.base_url}/{full}/pull/{pr.number}"
    return {
        "url": f"{api}/issues/{pr.number}",
        "repository_url": api,
        "labels_url": f"{api}/issues/{pr.number}/labels{{/name}}",
        "comments_url": f"{api}/issues/{pr.number}/comments",
        "events_url": f"{api}/issues/{pr.number}/events",
        "html_url": html,
        "id": pr.id + 1_000_000_000,
        "node_id": node_id("Issue", pr.id),
        "number": pr.number,
        "title": pr.title,
        "user": simple_user(st, st.users[pr.user_id]),
        "labels": [],
        "state": pr.state,
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": sum(
            1
            for c in st.comment_records.values()
            if c.repo_id == repo.id and c.issue_number == pr.number
        ),
        "created_at": iso(pr.created_at),
        "updated_at": iso(pr.updated_at),
        "closed_at": iso(pr.closed_at) if pr.closed_at else None,
        "author_association": author_association(st, repo, pr.user_id),
        "active_lock_reason": None,
        "draft": pr.draft,
        # The key that tells a PR conversation comment apart from a plain issue comment.
        "pull_request": {
            "url": f"{api}/pulls/{pr.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": None,
        },
        "body": pr.body,
        "reactions": _reactions(f"{api}/issues/{pr.number}/reactions"),
        "timeline_url": f"{api}/issues/{pr.number}/timeline",
        "performed_via_github_app": None,
        "state_reason": None,
    }


def _reactions(url: str) -> JSON:
    return {
        "url": url,
        "total_count": 0,
        "+1": 0,
        "-1": 0,
        "laugh": 0,
        "hooray": 0,
        "confused": 0,
        "heart": 0,
        "rocket": 0,
        "eyes": 0,
    }


def comment(st: GitHubEmulator, c: CommentRec) -> JSON:
    repo = st.repos[c.repo_id]
    full = st.full_name(repo)
    api = f"{st.api_url}/repos/{full}"
    return {
        "url": f"{api}/issues/comments/{c.id}",
        "html_url": f"{st.base_url}/{full}/pull/{c.issue_number}#issuecomment-{c.id}",
        "issue_url": f"{api}/issues/{c.issue_number}",
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "user": simple_user(st, st.users[c.user_id]),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "author_association": author_association(st, repo, c.user_id),
        "body": c.body,
        "reactions": _reactions(f"{api}/issues/comments/{c.id}/reactions"),
        "performed_via_github_app": None,
    }


# --- statuses ----------------------------------------------------------------------------------


def status(st: GitHubEmulator, s: StatusRec, *, with_creator: bool = True) -> JSON:
    repo = st.repos[s.repo_id]
    creator = st.users[s.creator_id]
    obj: JSON = {
        "url": f"{st.api_url}/repos/{st.full_name(repo)}/statuses/{s.sha}",
        "avatar_url": f"{st.base_url}/avatars/u/{creator.id}?v=4",
        "id": s.id,
        "node_id": node_id("StatusContext", s.id),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
    }
    if with_creator:
        obj["creator"] = simple_user(st, creator)
    return obj


def combine_states(states: list[str]) -> str:
    """GitHub's combined state: failure wins, then pending (also when empty), else success."""
    if any(s in ("error", "failure") for s in states):
        return "failure"
    if not states or any(s == "pending" for s in states):
        return "pending"
    return "success"
