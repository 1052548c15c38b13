"""Proven email addresses (issue 14), end to end over HTTP: the second authorization asking
for ``user:email`` only then, what GitHub's ``verified`` decides, moving an address between
accounts, the audit log, and pull requests re-evaluated when an address is linked or removed.
No mocks: the live app, the GitHub emulator and a real queue consumer."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select
from tests.conftest import BOT_LOGIN, CLAService, Live, sign_in
from tests.support.emails import link_emails
from tests.support.pages import csrf_token

from undersign.accounts.models import ProvenEmail
from undersign.agreements.models import AuditEntry
from undersign.jobs.models import Job

REPO = "octo-org/widgets"
WORK = "Dave.Lister@Red-Dwarf.example"


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def proven(live: Live) -> dict[str, int]:
    with live.database.session() as session:
        return {r.address: r.github_id for r in session.scalars(select(ProvenEmail))}


def audit(live: Live) -> list[tuple[str, Any, Any]]:
    with live.database.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(r.action, r.before, r.after) for r in rows if r.action.startswith("email.")]


def test_sign_in_asks_no_scope_and_linking_asks_user_email_once(live: Live) -> None:
    state = live.emulator.state
    state.add_email("alice", "Alice@Work.example", verified=True)
    state.add_email("alice", "alice@old-job.example", verified=False)
    with live.client() as client:
        sign_in_url = client.get("/login").headers["location"]
        assert "scope" not in _query(sign_in_url)
        sign_in(live, client, "alice")
        page = client.get("/me/emails")
        to_github = client.post("/me/emails/link", data={"csrf_token": csrf_token(page.text)})
        query = _query(to_github.headers["location"])
        assert query["scope"] == ["user:email"]
        assert query["code_challenge_method"] == ["S256"] and query["state"][0]
        state.auto_approve_as = "alice"
        callback = httpx.get(to_github.headers["location"]).headers["location"]
        assert client.get(callback).status_code == 303
        listed = client.get("/me/emails").text
        # Replaying the same callback is refused: each state works once.
        assert client.get(callback).status_code == 400
    alice = state.user("alice")["id"]
    assert "alice@work.example" in listed
    assert "alice@old-job.example" not in listed  # listed but unverified on GitHub: nothing
    assert "not verified" in listed or "without being verified" in listed
    assert proven(live)["alice@work.example"] == alice
    assert "alice@old-job.example" not in proven(live)
    email_calls = [r for r in state.requests if r.path == "/api/v3/user/emails"]
    assert len(email_calls) == 1
    assert email_calls[0].headers["Authorization"].startswith("Bearer ")
    for recorded in state.requests:
        assert "access_token" not in recorded.query and "gho_" not in recorded.query
    assert ("email.link", None, {"address": "alice@work.example", "github_id": alice}) in audit(
        live
    )


def test_a_token_github_refuses_for_emails_links_nothing(live: Live) -> None:
    """The person approved as another account: nothing is linked to the one signed in."""
    state = live.emulator.state
    state.add_email("bob", "bob@work.example")
    with live.client() as client:
        sign_in(live, client, "alice")
        page = client.get("/me/emails")
        to_github = client.post("/me/emails/link", data={"csrf_token": csrf_token(page.text)})
        state.auto_approve_as = "bob"
        callback = httpx.get(to_github.headers["location"]).headers["location"]
        refused = client.get(callback)
    assert refused.status_code == 403
    assert "another GitHub account" in refused.text
    assert proven(live) == {}
    assert not [r for r in state.requests if r.path == "/api/v3/user/emails"]


def test_linking_needs_a_session_and_csrf(live: Live) -> None:
    with live.client() as client:
        anonymous = client.post("/me/emails/link")
        assert anonymous.status_code in (400, 401)
        sign_in(live, client, "alice")
        assert client.post("/me/emails/link").status_code == 400  # no CSRF token
        assert client.post("/me/emails/remove", data={"address": "a@b.example"}).status_code == 400
    assert proven(live) == {}


def test_an_address_moves_only_when_github_verified_it_on_the_other_account(live: Live) -> None:
    state = live.emulator.state
    state.add_email("alice", "shared@corp.example")
    alice, erin = state.user("alice")["id"], None
    with live.client() as client:
        sign_in(live, client, "alice")
        link_emails(live, client, "alice")
    assert proven(live)["shared@corp.example"] == alice
    state.remove_email("alice", "shared@corp.example")
    state.add_user("erin", email="erin@example.com")
    erin = state.user("erin")["id"]
    state.add_email("erin", "Shared@Corp.example", verified=False)
    with live.client() as client:
        sign_in(live, client, "erin")
        link_emails(live, client, "erin")
        assert proven(live)["shared@corp.example"] == alice  # unverified there: no move
        state.add_email("erin", "Shared@Corp.example", verified=True)
        page = link_emails(live, client, "erin")
    assert "shared@corp.example" in page.text
    assert proven(live)["shared@corp.example"] == erin
    assert (
        "email.move",
        {"address": "shared@corp.example", "github_id": alice},
        {"address": "shared@corp.example", "github_id": erin},
    ) in audit(live)
    with live.client() as client:  # alice cannot remove what is erin's now
        sign_in(live, client, "alice")
        page = client.get("/me/emails")
        gone = client.post(
            "/me/emails/remove",
            data={"csrf_token": csrf_token(page.text), "address": "shared@corp.example"},
        )
        assert gone.status_code == 404
        bad = client.post(
            "/me/emails/remove",
            data={"csrf_token": csrf_token(page.text), "address": "not an address"},
        )
        assert bad.status_code == 400 and "not an email address" in bad.text
    assert proven(live)["shared@corp.example"] == erin


def _pr_by(cla: CLAService, opener: str, email: str, name: str = "Dave Lister") -> dict[str, Any]:
    """A pull request by ``opener`` whose commit GitHub did not link (``author: null``)."""
    sha = cla.state.add_commit(
        REPO, author={"name": name, "email": email}, author_field="null", message="Fix the dwarf"
    )
    pr: dict[str, Any] = cla.state.add_pull_request(REPO, user_login=opener, commits=[sha])
    status, _ = cla.deliver("pull_request", cla.state.pull_request_event(REPO, pr["number"]))
    assert status == 202
    return pr


def _head(cla: CLAService, pr: dict[str, Any]) -> str:
    return str(cla.state.pull_request(REPO, pr["number"])["head"]["sha"])


def test_proving_a_work_address_turns_the_pull_request_green_and_removing_it_red(
    cla: CLAService,
) -> None:
    state = cla.state
    state.add_email("dave", WORK, verified=True)
    cla.sign("dave")
    pr = _pr_by(cla, "dave", WORK)
    other = _pr_by(cla, "dave", "someone@else.example", name="Someone")
    sha, other_sha = _head(cla, pr), _head(cla, other)
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red")
    cla.wait_idle()
    [comment] = [c for c in state.comments(REPO, pr["number"]) if c["user"]["login"] == BOT_LOGIN]
    assert f"]({cla.live.url}/me/emails)" in comment["body"]
    assert "if this address is yours" in comment["body"]
    jobs_before = {j.id for j in cla.jobs()}

    with cla.live.client() as client:
        sign_in(cla.live, client, "dave")
        page = link_emails(cla.live, client, "dave")
        assert WORK.casefold() in page.text
        cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="green")
        cla.wait_idle()
        new_jobs = [j for j in cla.jobs() if j.id not in jobs_before]
        evaluated = {(j.payload or {}).get("number") for j in new_jobs if j.kind == "evaluate"}
        assert evaluated == {pr["number"]}  # exactly the pull request with that address
        assert cla.status_state(REPO, other_sha) == "failure"
        assert "Thank you" in next(
            c["body"] for c in state.comments(REPO, pr["number"]) if c["user"]["login"] == BOT_LOGIN
        )

        page = client.get("/me/emails")
        removed = client.post(
            "/me/emails/remove", data={"csrf_token": csrf_token(page.text), "address": WORK}
        )
        assert removed.status_code == 303
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red again")
    assert WORK.casefold() not in proven(cla.live)
    dave = state.user("dave")["id"]
    assert ("email.remove", {"address": WORK.casefold(), "github_id": dave}, None) in audit(
        cla.live
    )


def test_commits_written_with_a_signers_proven_address_need_the_opener_covered(
    cla: CLAService,
) -> None:
    """A spoof: erin writes dave's proven address into her commit. The commit counts as
    dave's, who signed, but erin opened the pull request and has not: it stays red."""
    state = cla.state
    state.add_email("dave", WORK)
    with cla.database.session() as session:
        from undersign.agreements.emails import GitHubEmail, ProvenEmailService

        ProvenEmailService(session).link_verified(
            state.user("dave")["id"], [GitHubEmail(WORK.casefold(), True)]
        )
    cla.sign("dave")
    pr = _pr_by(cla, "erin", WORK)
    sha = _head(cla, pr)
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red")
    cla.wait_idle()
    status = cla.status(REPO, sha)
    assert (
        status is not None and status["description"] == "1 of 2 contributors have signed the CLA."
    )
    with cla.database.session() as session:
        jobs = list(session.scalars(select(Job).where(Job.status == "failed")))
    assert jobs == []
