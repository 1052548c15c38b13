"""Webhook to commit status, end to end: the live app, the GitHub emulator, a real Huey
consumer on a SQLite queue. No mocks: what GitHub sees is read back from the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import BOT_LOGIN, CLAFactory, CLAService
from tests.support.pulls import (
    REPO,
    deliver_pr,
    evaluate_now,
    head,
    noreply,
    open_pr,
    our_comments,
)

FIXTURE_MERGE_GROUP = (
    Path(__file__).parent.parent / "fixtures" / "github" / "merge_group__checks_requested.json"
)


def test_unsigned_author_goes_red_with_one_comment_then_green_when_signing(cla: CLAService) -> None:
    pr = open_pr(cla, "alice", 2)
    deliver_pr(cla, pr)
    sha = head(cla, pr)
    cla.wait_idle()
    status = cla.status(REPO, sha)
    assert status is not None
    assert status["state"] == "failure"
    assert status["description"] == "0 of 1 contributor has signed the CLA."
    assert status["target_url"] == (
        f"{cla.live.url}/sign/individual-cla?repo=octo-org/widgets&pr={pr['number']}"
    )
    [comment] = our_comments(cla, pr)
    assert "@alice" in comment["body"]

    cla.sign("alice")
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="green")
    cla.wait_idle()
    [comment] = our_comments(cla, pr)
    assert "Thank you" in comment["body"]
    assert "@alice" not in comment["body"]


def test_300_commit_pull_request_with_one_unsigned_author_at_the_end(cla: CLAService) -> None:
    cla.sign("alice")
    pr = open_pr(cla, "alice", 299)
    last = cla.state.add_commit(REPO, author_login="bob", message="The last one")
    cla.state.push_commits(REPO, pr["number"], [last])
    cla.state.clear_requests()
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert status["description"] == "1 of 2 contributors have signed the CLA."
    paths = [r.rest_path for r in cla.state.api_calls("GET")]
    assert sum("/compare/" in p for p in paths) == 3  # 300 commits, 100 a page
    [comment] = our_comments(cla, pr)
    assert "@bob" in comment["body"] and "@alice" not in comment["body"]


def pr_co_authored_by(cla: CLAService, address: str) -> tuple[str, dict[str, Any]]:
    """A pull request by alice, who signed, with one commit co-authored by ``address``."""
    cla.sign("alice")
    sha = cla.state.add_commit(
        REPO, author_login="alice", message=f"Pair on it\n\nCo-authored-by: Bob <{address}>\n"
    )
    return sha, cla.state.add_pull_request(REPO, user_login="alice", commits=[sha])


def test_co_author_must_sign_too(cla: CLAService) -> None:
    sha, pr = pr_co_authored_by(cla, noreply(cla, "bob"))
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert status["description"] == "1 of 2 contributors have signed the CLA."
    cla.sign("bob")
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == "success"


def legacy_noreply(cla: CLAService, login: str) -> str:
    """The noreply address of an account made private before 18 July 2017: no id."""
    from undersign.enforcement.service import noreply_domain

    return f"{login}@{noreply_domain(cla.settings.github_url)}"


def test_co_author_with_an_old_style_noreply_address_signs_with_their_account(
    cla: CLAService,
) -> None:
    sha, pr = pr_co_authored_by(cla, legacy_noreply(cla, "Bob"))
    cla.state.clear_requests()
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert status["description"] == "1 of 2 contributors have signed the CLA."
    [comment] = our_comments(cla, pr)
    assert "/me/emails" not in comment["body"]  # not told to prove an address they cannot add
    assert [r.rest_path for r in cla.state.api_calls("GET", "/users/")] == ["/users/Bob"]

    cla.state.clear_requests()
    assert evaluate_now(cla, pr)["state"] == "failure"  # the same commits: asked no more
    assert cla.state.api_calls("GET", "/users/") == []

    cla.sign("bob")
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="green")


def test_old_style_noreply_lookups_are_capped_per_reading(cla: CLAService) -> None:
    from undersign.enforcement.service import LEGACY_NOREPLY_LOOKUPS

    logins = [f"nobody-{i}" for i in range(LEGACY_NOREPLY_LOOKUPS)] + ["bob"]
    trailers = "".join(f"Co-authored-by: X <{legacy_noreply(cla, x)}>\n" for x in logins)
    cla.sign("alice")
    cla.sign("bob")
    sha = cla.state.add_commit(REPO, author_login="alice", message=f"Work\n\n{trailers}")
    pr = cla.state.add_pull_request(REPO, user_login="alice", commits=[sha])
    cla.state.clear_requests()
    assert evaluate_now(cla, pr)["state"] == "failure"
    asked = [r.rest_path for r in cla.state.api_calls("GET", "/users/")]
    assert asked == [f"/users/{x}" for x in logins[:LEGACY_NOREPLY_LOOKUPS]]  # not bob's


def test_old_style_noreply_of_a_renamed_login_names_its_holder_today(cla: CLAService) -> None:
    """The documented trade-off: a login renamed and taken again names its new holder."""
    cla.state.rename_user("bob", "bobby")
    cla.state.add_user("bob")
    cla.sign("bobby")  # the old holder's signature does not count for the address
    sha, pr = pr_co_authored_by(cla, legacy_noreply(cla, "bob"))
    assert evaluate_now(cla, pr)["state"] == "failure"
    [comment] = our_comments(cla, pr)
    assert "@bob" not in comment["body"]  # never verified: the new holder is not notified
    cla.sign("bob")
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="green")


def test_old_style_noreply_author_github_did_not_link_is_the_login_holder(
    cla: CLAService,
) -> None:
    cla.sign("bob")
    sha = cla.state.add_commit(
        REPO, author={"name": "Bob", "email": legacy_noreply(cla, "bob")}, author_field="null"
    )
    pr = cla.state.add_pull_request(REPO, user_login="bob", commits=[sha])
    assert evaluate_now(cla, pr)["state"] == "success"


def test_old_style_noreply_of_no_person_stays_an_author_without_an_account(
    cla: CLAService,
) -> None:
    cla.state.add_user("helper[bot]", type="Bot")
    cla.sign("alice")
    trailers = "".join(
        f"Co-authored-by: X <{legacy_noreply(cla, login)}>\n"
        for login in ("octo-org", "helper[bot]", "nobody-by-this-name")
    )
    sha = cla.state.add_commit(REPO, author_login="alice", message=f"Work\n\n{trailers}")
    pr = cla.state.add_pull_request(REPO, user_login="alice", commits=[sha])
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert status["description"] == (
        "1 of 4 contributors have signed the CLA. 3 need to link their commit email."
    )
    [comment] = our_comments(cla, pr)
    for login in ("octo-org", "helper[bot]", "nobody-by-this-name"):
        assert f"`{legacy_noreply(cla, login)}`" in comment["body"]


def test_unknown_author_is_listed_with_the_fix(cla: CLAService) -> None:
    sha = cla.state.add_commit(
        REPO,
        author={"name": "Nobody Known", "email": "nobody@elsewhere.example"},
        author_field="null",
    )
    pr = cla.state.add_pull_request(REPO, user_login="alice", commits=[sha])
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert "link their commit email" in str(status["description"])
    [comment] = our_comments(cla, pr)
    assert "`nobody@elsewhere.example`" in comment["body"]
    assert (
        "if this address is yours, verify it on your GitHub account, then "
        f"[link it to undersign]({cla.live.url}/me/emails) and sign."
    ) in comment["body"]


def test_bot_author_is_exempt_by_id_from_the_default_list(cla: CLAService) -> None:
    cla.state.add_user(
        "dependabot[bot]", type="Bot", email="bot@dependabot.invalid", user_id=49699333
    )
    cla.sign("alice")
    bot_commit = cla.state.add_commit(REPO, author_login="dependabot[bot]")
    mine = cla.state.add_commit(REPO, author_login="alice")
    pr = cla.state.add_pull_request(REPO, user_login="alice", commits=[bot_commit, mine])
    status = evaluate_now(cla, pr)
    assert status["state"] == "success"
    assert our_comments(cla, pr) == []


def test_maintainer_rebase_does_not_sign_for_the_author(cla: CLAService) -> None:
    cla.sign("maint")
    rebased = cla.state.add_commit(
        REPO, author_login="alice", committer_login="maint", message="Rebased by a maintainer"
    )
    pr = cla.state.add_pull_request(REPO, user_login="alice", commits=[rebased])
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert status["description"] == "0 of 1 contributor has signed the CLA."
    [comment] = our_comments(cla, pr)
    assert "@alice" in comment["body"] and "@maint" not in comment["body"]


def test_one_signature_turns_three_pull_requests_in_two_repos_green(cla: CLAService) -> None:
    cla.state.content_creation_limit_per_minute = 80
    prs = [(REPO, open_pr(cla, "alice")), (REPO, open_pr(cla, "alice"))]
    prs.append(("octo-org/gadgets", open_pr(cla, "alice", repo="octo-org/gadgets")))
    other = open_pr(cla, "bob")
    for repo, pr in [*prs, (REPO, other)]:
        deliver_pr(cla, pr, repo=repo)
    cla.wait_idle()
    assert all(cla.status_state(r, head(cla, p, r)) == "failure" for r, p in prs)
    cla.state.clear_requests()

    cla.sign("alice")
    cla.wait_idle()
    for repo, pr in prs:
        assert cla.status_state(repo, head(cla, pr, repo)) == "success"
        assert len(our_comments(cla, pr, repo)) == 1
    # bob's pull request was not looked at: no listing of its commits.
    paths = [r.rest_path for r in cla.state.api_calls()]
    assert not any(f"/pulls/{other['number']}/" in p for p in paths if REPO in p)
    assert all(r.status != 403 for r in cla.state.api_calls())

    cla.revoke("alice")
    cla.wait_idle()
    for repo, pr in prs:
        assert cla.status_state(repo, head(cla, pr, repo)) == "failure"


def _write_order(cla: CLAService) -> tuple[list[int], list[int]]:
    """Positions, among the writes GitHub received, of the status posts and comment edits."""
    writes = [r for r in cla.state.api_calls() if r.method in ("POST", "PATCH")]
    statuses = [i for i, r in enumerate(writes) if "/statuses/" in r.rest_path]
    edits = [i for i, r in enumerate(writes) if r.method == "PATCH"]
    return statuses, edits


def test_a_burst_posts_every_status_before_the_comment_edits(cla: CLAService) -> None:
    """A signature re-evaluates many pull requests: their statuses (what gates a merge) go out
    first, the thank-you edits after, so the last status does not wait behind the edits. The
    two worker threads may overlap at the turn: at most one edit before the last status."""
    prs = [(repo, open_pr(cla, "alice", repo=repo)) for repo in [REPO, "octo-org/gadgets"] * 4]
    for repo, pr in prs:
        deliver_pr(cla, pr, repo=repo)
    cla.wait_idle()
    before = {pr["number"]: our_comments(cla, pr, repo)[0]["body"] for repo, pr in prs}
    cla.state.clear_requests()

    cla.sign("alice")
    cla.wait_idle()
    statuses, edits = _write_order(cla)
    assert len(statuses) == len(prs) and len(edits) == len(prs)
    assert sum(1 for i in edits if i < max(statuses)) <= 1
    for repo, pr in prs:
        assert cla.status_state(repo, head(cla, pr, repo)) == "success"
        [comment] = our_comments(cla, pr, repo)
        assert comment["body"] != before[pr["number"]] and "Thank you!" in comment["body"]

    cla.state.clear_requests()
    cla.revoke("alice")  # the same order the other way round
    cla.wait_idle()
    statuses, edits = _write_order(cla)
    assert len(statuses) == len(prs) and len(edits) == len(prs)
    assert sum(1 for i in edits if i < max(statuses)) <= 1


def test_comment_is_edited_in_place_never_repeated(cla: CLAService) -> None:
    sha = cla.state.add_commit(REPO, author_login="alice")
    sha2 = cla.state.add_commit(REPO, author_login="bob")
    pr = cla.state.add_pull_request(REPO, user_login="alice", commits=[sha, sha2])
    evaluate_now(cla, pr)
    [first] = our_comments(cla, pr)
    assert "@alice" in first["body"] and "@bob" in first["body"]
    cla.sign("alice")
    cla.wait_idle()
    cla.state.push_commits(REPO, pr["number"], n_commits=1, author_login="bob")
    evaluate_now(cla, pr)
    evaluate_now(cla, pr)
    [comment] = our_comments(cla, pr)
    assert comment["id"] == first["id"]
    assert "@bob" in comment["body"] and "@alice" not in comment["body"]
    assert len(cla.state.api_calls("POST", f"/repos/{REPO}/issues/")) == 1


def test_recheck_command_re_evaluates_and_bot_comments_are_ignored(cla: CLAService) -> None:
    from undersign.agreements.service import AgreementService, SignatureService

    pr = open_pr(cla, "alice")
    sha = head(cla, pr)
    evaluate_now(cla, pr)
    # Signed without the hook (e.g. by an admin import): only a recheck notices.
    user = cla.state.user("alice")
    with cla.database.session() as session:
        version = AgreementService(session).current_version("individual-cla")
        SignatureService(session).sign(
            "individual-cla",
            github_id=user["id"],
            login="alice",
            name="Alice",
            email="alice@example.com",
            version_sha256=version.text_sha256,
            agreed=True,
        )
    for body, login in [("/cla check", BOT_LOGIN), ("looks fine\n/cla  check-ish", "bob")]:
        payload = cla.state.issue_comment_event(REPO, pr["number"], body, login)
        cla.deliver("issue_comment", payload)
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == "failure"

    payload = cla.state.issue_comment_event(REPO, pr["number"], "Signed it.\n/CLA check\n", "alice")
    assert cla.deliver("issue_comment", payload)[0] == 202
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == "success"


def test_mention_of_the_bot_is_a_recheck(cla: CLAService) -> None:
    pr = open_pr(cla, "alice")
    sha = head(cla, pr)
    evaluate_now(cla, pr)
    cla.state.add_status(REPO, sha, state="pending", creator_login="carol", context="other")
    with cla.database.session() as session:
        from sqlalchemy import update

        from undersign.enforcement.models import PullRequestCheck

        session.execute(update(PullRequestCheck).values(status_state="forgotten"))
    payload = cla.state.issue_comment_event(REPO, pr["number"], f"@{BOT_LOGIN} check", "alice")
    cla.deliver("issue_comment", payload)
    cla.wait_idle()
    assert len(cla.statuses(REPO, sha)) == 2  # re-evaluated and re-posted


def test_merge_group_head_gets_the_verdict_of_its_pull_request(cla: CLAService) -> None:
    cla.sign("alice")
    signed, unsigned = open_pr(cla, "alice"), open_pr(cla, "bob")
    for pr, expected in ((signed, "success"), (unsigned, "failure")):
        group_head = cla.state.add_commit(REPO, author_login="alice", message="Merge group")
        payload = json.loads(FIXTURE_MERGE_GROUP.read_text())
        payload["repository"] = cla.state.repo(REPO)
        payload["merge_group"]["head_sha"] = group_head
        payload["merge_group"]["head_ref"] = (
            f"refs/heads/gh-readonly-queue/main/pr-{pr['number']}-{head(cla, pr)}"
        )
        assert cla.deliver("merge_group", payload)[0] == 202
        cla.wait_idle()
        status = cla.status(REPO, group_head)
        assert status is not None and status["state"] == expected


def test_call_budget_two_calls_then_one(cla: CLAService) -> None:
    cla.sign("alice")
    pr = open_pr(cla, "alice", 100)
    cla.state.clear_requests()
    evaluate_now(cla, pr)
    calls = [(r.method, r.rest_path.split("?")[0]) for r in cla.state.api_calls()]
    assert calls == [
        ("GET", f"/repos/{REPO}/pulls/{pr['number']}/commits"),
        ("POST", f"/repos/{REPO}/statuses/{head(cla, pr)}"),
    ]
    cla.state.clear_requests()
    evaluate_now(cla, pr)
    [only] = cla.state.api_calls()
    assert (only.method, only.status) == ("GET", 304)
    assert len(cla.statuses(REPO, head(cla, pr))) == 1


def test_sign_page_costs_no_github_call(cla: CLAService) -> None:
    cla.state.clear_requests()
    with cla.live.client() as client:
        client.get("/sign/individual-cla", params={"repo": REPO, "pr": "1"})
    assert cla.state.api_calls() == []


def test_primary_rate_limit_means_no_call_before_the_reset(cla: CLAService) -> None:
    import time

    cla.sign("alice")
    pr = open_pr(cla, "alice")
    reset = time.time() + 3
    cla.state.set_rate_limit(BOT_LOGIN, 0, reset_at=reset)
    cla.state.clear_requests()
    status = evaluate_now(cla, pr)
    assert status["state"] == "success"
    calls = cla.state.api_calls()
    assert calls[0].status == 403
    assert all(call.time >= int(reset) for call in calls[1:])
    # After the reset the evaluation completes once: one status, nothing refused again. (Not
    # an exact call count: on a loaded machine a re-queued job may list the commits again.)
    assert [c.status for c in calls[1:] if c.status >= 400] == []
    assert [c.method for c in calls].count("POST") == 1


def test_server_errors_are_retried(cla: CLAService) -> None:
    pr = open_pr(cla, "alice")
    cla.state.add_fault("GET", r"/pulls/\d+/commits", status=502, times=2)
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    [job] = [j for j in cla.jobs() if j.payload.get("action") == "synchronize"]
    assert (job.status, job.attempts) == ("done", 3)


def test_a_job_that_keeps_failing_ends_failed_with_an_error_status(cla: CLAService) -> None:
    pr = open_pr(cla, "alice")
    cla.state.add_fault("GET", r"/pulls/\d+/commits", status=503, times=10)
    deliver_pr(cla, pr)
    cla.wait_idle()
    [job] = cla.jobs()
    assert job.status == "failed"
    assert "503" in str(job.last_error)
    status = cla.status(REPO, head(cla, pr))
    assert status is not None and status["state"] == "error"
    assert len(str(status["description"])) <= 140


def test_repository_without_agreement_is_left_alone(cla: CLAService) -> None:
    cla.state.add_user("loner")
    cla.state.add_repo("loner/solo")
    pr = cla.state.add_pull_request("loner/solo", user_login="alice", n_commits=1)
    cla.state.clear_requests()
    deliver_pr(cla, pr, repo="loner/solo")
    cla.wait_idle()
    assert cla.state.api_calls() == []


def test_recheck_command_line(cla: CLAService) -> None:
    from click.testing import CliRunner

    from undersign.cli import CLIContext
    from undersign.cli.jobs import recheck

    pr = open_pr(cla, "alice")
    ctx = CLIContext(_settings=cla.settings, _database=cla.database)
    result = CliRunner().invoke(recheck, [REPO, str(pr["number"])], obj=ctx)
    assert result.exit_code == 0, result.output
    assert f"{REPO}#{pr['number']}: failure" in result.output
    result = CliRunner().invoke(recheck, [REPO], obj=ctx)
    assert result.exit_code == 0, result.output
    assert cla.status_state(REPO, head(cla, pr)) == "failure"


def test_revoking_from_the_command_line_turns_pull_requests_red_again(cla: CLAService) -> None:
    from click.testing import CliRunner

    from undersign.cli import CLIContext, main

    pr = open_pr(cla, "alice")
    cla.sign("alice")
    deliver_pr(cla, pr)
    sha = head(cla, pr)
    cla.wait_for(lambda: (cla.status(REPO, sha) or {}).get("state") == "success", what="green")
    result = CliRunner().invoke(
        main,
        ["signatures", "revoke", "individual-cla", "alice", "--reason", "left the company"],
        obj=CLIContext(_settings=cla.settings, _database=cla.database),
    )
    assert result.exit_code == 0, result.output
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red again")


def test_opened_pr_beyond_the_cap_and_unsigned_costs_the_floor_plus_one_comment(
    cla: CLAService,
) -> None:
    """The payload's commit count sends a 300-commit PR straight to compare (no capped
    list pages); a PR just opened cannot hold our comment yet, so none is looked for."""
    pr = open_pr(cla, "bob", 300)
    cla.state.clear_requests()
    deliver_pr(cla, pr, "opened")
    cla.wait_idle()
    calls = [(r.method, r.rest_path.split("?")[0]) for r in cla.state.api_calls()]
    number = pr["number"]
    assert [c for c in calls if c[1].endswith("/commits") and "/pulls/" in c[1]] == []
    assert calls.count(("GET", f"/repos/{REPO}/pulls/{number}")) == 1
    assert sum("/compare/" in path for _, path in calls) == 3
    assert [m for m, path in calls if "/comments" in path] == ["POST"]
    assert cla.status_state(REPO, head(cla, pr)) == "failure"


# --- the per pull request lock outlives long waits, and a job that lost it writes nothing ------


def _contexts(cla_factory: CLAFactory) -> tuple[CLAService, Any, Any]:
    """A service without workers, and two job contexts with tokens of their own (so one can
    wait in its pacer while the other writes freely)."""
    from undersign.jobs.context import JobContext

    cla = cla_factory(start=False, github_writes_per_minute=1)
    stale = JobContext.from_settings(cla.settings, cla.database)
    token = cla.state.issue_token(BOT_LOGIN)
    newer = JobContext.from_settings(
        cla.settings.replace(github_token=token, github_writes_per_minute=80), cla.database
    )
    return cla, stale, newer


def test_a_job_whose_lock_ran_out_while_pacing_does_not_post_its_stale_verdict(
    cla_factory: CLAFactory,
) -> None:
    import datetime as dt

    import pytest
    from sqlalchemy import delete, update

    from undersign.db import utcnow
    from undersign.enforcement import service
    from undersign.enforcement.models import PullRequestCheck
    from undersign.github.models import WriteSlot

    cla, stale, newer = _contexts(cla_factory)
    pr = open_pr(cla, "alice")
    sha = head(cla, pr)
    with cla.database.session() as session:  # this minute's one write is spent: it must wait
        session.add(WriteSlot(token_key=stale.token_key, created_at=utcnow()))

    def sleep(seconds: float) -> None:
        # While it waits, its lease runs out (a stalled process), alice signs, and a newer
        # evaluation takes the pull request and publishes green. Then the slot frees.
        with cla.database.session() as session:
            session.execute(
                update(PullRequestCheck).values(locked_until=utcnow() - dt.timedelta(seconds=1))
            )
        cla.sign("alice")
        assert service.evaluate_pull_request(newer, REPO, pr["number"]).state == "success"
        with cla.database.session() as session:
            session.execute(delete(WriteSlot).where(WriteSlot.token_key == stale.token_key))

    stale.pacer.sleep = sleep
    with pytest.raises(service.PullRequestBusy):
        service.evaluate_pull_request(stale, REPO, pr["number"])
    assert [s["state"] for s in cla.statuses(REPO, sha)] == ["success"]
    assert our_comments(cla, pr) == []


def test_a_long_wait_keeps_the_lock_so_no_one_else_evaluates_meanwhile(
    cla_factory: CLAFactory,
) -> None:
    import pytest
    from sqlalchemy import delete, select

    from undersign.db import utcnow
    from undersign.enforcement import service
    from undersign.enforcement.models import PullRequestCheck
    from undersign.github.models import WriteSlot

    cla, stale, newer = _contexts(cla_factory)
    pr = open_pr(cla, "alice")
    sha = head(cla, pr)
    with cla.database.session() as session:
        session.add(WriteSlot(token_key=stale.token_key, created_at=utcnow()))
    seen: list[object] = []

    def sleep(seconds: float) -> None:
        with cla.database.session() as session:
            seen.append(session.scalar(select(PullRequestCheck.locked_until)))
            if len(seen) >= 2:  # the window moves on after two waits
                session.execute(delete(WriteSlot).where(WriteSlot.token_key == stale.token_key))
        with pytest.raises(service.PullRequestBusy):
            service.evaluate_pull_request(newer, REPO, pr["number"])

    stale.pacer.sleep = sleep
    assert service.evaluate_pull_request(stale, REPO, pr["number"]).state == "failure"
    assert len(seen) >= 2
    assert seen[1] > seen[0]  # type: ignore[operator]  # extended at each wait
    assert [s["state"] for s in cla.statuses(REPO, sha)] == ["failure"]


def test_a_job_that_lost_its_lock_during_a_slow_read_writes_no_comment(
    cla_factory: CLAFactory,
) -> None:
    import threading

    from sqlalchemy import update

    from undersign.enforcement import service
    from undersign.enforcement.models import PullRequestCheck

    cla, stale, _ = _contexts(cla_factory)
    pr = open_pr(cla, "alice")
    sha = head(cla, pr)
    cla.state.add_fault("GET", r"/issues/\d+/comments", status=None, delay=1.5)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            service.evaluate_pull_request(stale, REPO, pr["number"])
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    cla.wait_for(lambda: cla.status(REPO, sha) is not None, what="the status")
    with cla.database.session() as session:  # meanwhile another evaluation took it over
        session.execute(update(PullRequestCheck).values(lock_owner="someone-else"))
    thread.join(10)
    assert [type(exc) for exc in raised] == [service.PullRequestBusy]
    assert our_comments(cla, pr) == []


def test_error_status_never_lands_over_a_newer_verdict(cla_factory: CLAFactory) -> None:
    import datetime as dt

    from sqlalchemy import update

    from undersign.db import utcnow
    from undersign.enforcement import service
    from undersign.enforcement.models import PullRequestCheck

    cla, ctx, _ = _contexts(cla_factory)
    ctx.settings = ctx.settings.replace(github_writes_per_minute=80)
    pr = open_pr(cla, "alice")
    sha = head(cla, pr)
    failed_job_created = utcnow()
    assert service.evaluate_pull_request(ctx, REPO, pr["number"]).state == "failure"
    service.post_error_status(ctx, REPO, pr["number"], "gave up", not_before=failed_job_created)
    assert [s["state"] for s in cla.statuses(REPO, sha)] == ["failure"]
    # An evaluation in progress elsewhere: its verdict will answer, no error meanwhile.
    with cla.database.session() as session:
        session.execute(
            update(PullRequestCheck).values(
                lock_owner="someone-else", locked_until=utcnow() + dt.timedelta(seconds=60)
            )
        )
    service.post_error_status(ctx, REPO, pr["number"], "gave up", not_before=utcnow())
    assert [s["state"] for s in cla.statuses(REPO, sha)] == ["failure"]
    with cla.database.session() as session:
        session.execute(update(PullRequestCheck).values(lock_owner=None, locked_until=None))
    # A job whose trigger came after the last evaluation, and nobody at work: error it is.
    service.post_error_status(ctx, REPO, pr["number"], "gave up", not_before=utcnow())
    assert [s["state"] for s in cla.statuses(REPO, sha)] == ["error", "failure"]


def test_a_pull_request_whose_fork_was_deleted_still_gets_its_verdict(cla: CLAService) -> None:
    """The contributor deleted their fork: GitHub keeps the pull request, with
    ``head.repo: null``, and its head commits in the base repository's network."""
    cla.state.add_repo("bob/widgets")
    shas = [cla.state.add_commit("bob/widgets", author_login="bob")]
    pr = cla.state.add_pull_request(REPO, user_login="bob", commits=shas, head_repo="bob/widgets")
    cla.state.delete_fork("bob/widgets")
    payload = cla.state.pull_request_event(REPO, pr["number"], "synchronize")
    assert payload["pull_request"]["head"]["repo"] is None
    assert cla.deliver("pull_request", payload)[0] == 202
    cla.wait_idle()
    sha = head(cla, pr)
    assert cla.status_state(REPO, sha) == "failure"
    # A re-check reads the pull request itself (``GET /pulls/{n}``), head.repo null and all.
    cla.sign("bob")
    cla.deliver(
        "issue_comment", cla.state.issue_comment_event(REPO, pr["number"], "/cla check", "bob")
    )
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == "success"
    assert [j.status for j in cla.jobs()] == ["done"] * len(cla.jobs())
