"""A verdict that cannot be gamed (issue 10), end to end on the emulator.

Each bypass a review found on the previous main is here as a test that failed there: an
unsigned contributor authoring as a bot, as a signer or as an exempt org member; a status on
the last listed commit rather than the head; a retargeted pull request keeping a stale
green; a ``/cla check`` on a closed pull request posting; a trailer making the bot mention a
stranger. Then bots by id and the AI agent policy, both ways.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from tests.conftest import CLAService
from tests.support.pulls import (
    REPO,
    deliver_pr,
    evaluate_now,
    head,
    noreply,
    our_comments,
)

from undersign.agreements.service import AgreementService
from undersign.cli import CLIContext, main
from undersign.enforcement.reconcile import reconcile
from undersign.enforcement.service import noreply_domain

COPILOT_ID = 198982749  # enforcement/agents.py KNOWN_AGENTS


def _state(cla: CLAService) -> Any:
    return cla.state


def _pr(cla: CLAService, opener: str, commits: list[str]) -> dict[str, Any]:
    pr: dict[str, Any] = _state(cla).add_pull_request(REPO, user_login=opener, commits=commits)
    return pr


def _cli(cla: CLAService, *args: str) -> Any:
    result = CliRunner().invoke(
        main, list(args), obj=CLIContext(_settings=cla.settings, _database=cla.database)
    )
    assert result.exit_code == 0, result.output
    return result


# --- the opener counts ---


@pytest.mark.parametrize(
    ("bot", "bot_id"),
    [("mallory-app[bot]", 7770001), ("dependabot[bot]", 49699333)],
    ids=["own-app", "default-listed-bot"],
)
def test_authoring_as_a_bot_does_not_turn_green(cla: CLAService, bot: str, bot_id: int) -> None:
    state = _state(cla)
    state.add_user("mallory", email="mallory@example.com")
    state.add_user(bot, type="Bot", user_id=bot_id, email=f"{bot_id}+{bot}@users.noreply")
    commit = state.add_commit(REPO, author_login=bot, message="Looks like a bot")
    pr = _pr(cla, "mallory", [commit])
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    [comment] = our_comments(cla, pr)
    assert "@mallory: [sign now]" in comment["body"]
    assert "opened this pull request" in comment["body"]


def test_authoring_as_a_signer_does_not_turn_green(cla: CLAService) -> None:
    state = _state(cla)
    state.add_user("mallory", email="mallory@example.com")
    cla.sign("alice")
    commit = state.add_commit(REPO, author_login="alice", message="Written by alice, or not")
    pr = _pr(cla, "mallory", [commit])
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert status["description"] == "1 of 2 contributors have signed the CLA."
    [comment] = our_comments(cla, pr)
    assert "The account that opened this pull request has not signed" in comment["body"]
    cla.sign("mallory")
    cla.wait_for(lambda: cla.status_state(REPO, head(cla, pr)) == "success", what="green")


def test_authoring_as_an_exempt_org_member_does_not_turn_green(cla: CLAService) -> None:
    state = _state(cla)
    state.add_user("mallory", email="mallory@example.com")
    state.add_org_member("octo-org", "carol", public=True)
    with cla.database.session() as session:
        AgreementService(session).link_org("octo-org", "individual-cla", exempt_org_members=True)
    commit = state.add_commit(REPO, author_login="carol", message="A member wrote this, or not")
    pr = _pr(cla, "mallory", [commit])
    assert evaluate_now(cla, pr)["state"] == "failure"
    # The member opening their own pull request is still exempt.
    own = _pr(cla, "carol", [state.add_commit(REPO, author_login="carol")])
    assert evaluate_now(cla, own)["state"] == "success"


# --- the head, the base, closed pull requests ---


def test_status_goes_on_the_head_not_on_the_last_listed_commit(cla: CLAService) -> None:
    """GitHub lists a PR's commits in date order: a commit made earlier but placed on top of
    the branch is the head, yet not last in the list."""
    state = _state(cla)
    tip_made_first = state.add_commit(REPO, author_login="alice", message="made first")
    below = state.add_commit(REPO, author_login="alice", message="made second")
    root = state.commit(REPO, below)  # parentless until chained below
    assert root["parents"] == []
    pr = _pr(cla, "alice", [below, tip_made_first])  # history: base <- below <- tip
    assert head(cla, pr) == tip_made_first
    assert state.pull_commits(REPO, pr["number"])[-1] == below  # listed last, not the head
    deliver_pr(cla, pr)
    cla.wait_idle()
    assert cla.status(REPO, tip_made_first) is not None
    assert cla.status(REPO, below) is None


def _retarget_scenario(cla: CLAService) -> tuple[dict[str, Any], dict[str, Any]]:
    """main already holds bob's commit; a PR of alice's (signed) goes green against main and
    takes bob's unsigned commit in once retargeted to ``release`` (older than main)."""
    state = _state(cla)
    cla.sign("alice")
    old_main = state.branch_sha(REPO, "main")
    state.set_branch(REPO, "release", old_main)
    bobs = state.add_commit(REPO, author_login="bob", message="bob's, merged", parents=[old_main])
    state.set_branch(REPO, "main", bobs)
    alices = state.add_commit(REPO, author_login="alice", message="alice's", parents=[bobs])
    pr = _pr(cla, "alice", [alices])
    assert evaluate_now(cla, pr)["state"] == "success"
    changes: dict[str, Any] = state.retarget_pull_request(REPO, pr["number"], "release")
    return pr, changes


def test_a_base_change_re_evaluates(cla: CLAService) -> None:
    pr, changes = _retarget_scenario(cla)
    payload = _state(cla).pull_request_event(REPO, pr["number"], "edited", changes=changes)
    assert cla.deliver("pull_request", payload)[0] == 202
    cla.wait_idle()
    status = cla.status(REPO, head(cla, pr))
    assert status is not None and status["state"] == "failure"
    # A title edit (no base in changes) is still ignored.
    payload = _state(cla).pull_request_event(
        REPO, pr["number"], "edited", changes={"title": {"from": "x"}}
    )
    before = len(_state(cla).api_calls())
    cla.deliver("pull_request", payload)
    cla.wait_idle()
    assert len(_state(cla).api_calls()) == before


def test_the_reconciler_notices_a_retarget_whose_delivery_was_lost(cla: CLAService) -> None:
    pr, _ = _retarget_scenario(cla)
    report = reconcile(cla.runtime.bot, cla.runtime.queue, [REPO])
    assert (REPO, pr["number"]) in report.queued
    cla.wait_idle()
    assert cla.status_state(REPO, head(cla, pr)) == "failure"


def test_recheck_on_a_closed_pull_request_changes_nothing(cla: CLAService) -> None:
    state = _state(cla)
    pr = _pr(cla, "alice", [state.add_commit(REPO, author_login="alice")])
    assert evaluate_now(cla, pr)["state"] == "failure"
    state.set_pr_state(REPO, pr["number"], "closed")
    deliver_pr(cla, pr, "closed")
    cla.sign("alice")  # a signature re-evaluates open pull requests only
    cla.wait_idle()
    statuses = len(cla.statuses(REPO, head(cla, pr)))
    [before] = our_comments(cla, pr)
    state.clear_requests()
    payload = state.issue_comment_event(REPO, pr["number"], "/cla check", "alice")
    assert cla.deliver("issue_comment", payload)[0] == 202
    cla.wait_idle()
    assert [c.method for c in state.api_calls()] == ["GET"]  # the pull request, nothing else
    assert len(cla.statuses(REPO, head(cla, pr))) == statuses
    assert our_comments(cla, pr) == [before]


# --- mentions ---


def test_a_trailer_cannot_make_the_bot_mention_a_stranger(cla: CLAService) -> None:
    state = _state(cla)
    cla.sign("alice")
    domain = noreply_domain(cla.settings.github_url)
    message = (
        f"Work\n\nCo-authored-by: Someone <987654321+carol@{domain}>\n"
        f"Co-authored-by: Bob <{noreply(cla, 'bob')}>\n"
    )
    pr = _pr(cla, "alice", [state.add_commit(REPO, author_login="alice", message=message)])
    assert evaluate_now(cla, pr)["state"] == "failure"
    [comment] = our_comments(cla, pr)
    assert "@carol" not in comment["body"]
    assert "GitHub account `carol` (id 987654321)" in comment["body"]
    # A real account's noreply address in a trailer is still only a claim: text, no mention.
    assert "@bob" not in comment["body"] and "GitHub account `bob`" in comment["body"]


# --- bots by id ---


def test_bots_are_exempt_by_listed_id_and_all_bots_is_an_explicit_opt_in(cla: CLAService) -> None:
    state = _state(cla)
    state.add_user("helper[bot]", type="Bot", user_id=5550001, email="5550001+helper@x.invalid")
    cla.sign("alice")
    commits = [
        state.add_commit(REPO, author_login="helper[bot]"),
        state.add_commit(REPO, author_login="alice"),
    ]
    pr = _pr(cla, "alice", commits)
    assert evaluate_now(cla, pr)["state"] == "failure"  # a Bot, but not a listed one

    _cli(cla, "agreement", "bots", "individual-cla", "--add", "5550001")
    cla.wait_idle()
    assert evaluate_now(cla, pr)["state"] == "success"

    _cli(cla, "agreement", "bots", "individual-cla", "--remove", "5550001")
    cla.wait_idle()
    assert evaluate_now(cla, pr)["state"] == "failure"

    result = _cli(cla, "agreement", "bots", "individual-cla", "--all-bots")
    assert "WARNING every bot account is exempt" in result.stderr
    listing = _cli(cla, "agreement", "list")
    assert "bots: ALL (risky)" in listing.stdout and "WARNING" in listing.stderr
    cla.wait_idle()
    assert evaluate_now(cla, pr)["state"] == "success"


# --- AI agents ---


def _copilot_pr(cla: CLAService, co_author: str | None) -> dict[str, Any]:
    state = _state(cla)
    state.add_user(
        "Copilot",
        type="Bot",
        user_id=COPILOT_ID,
        email=f"{COPILOT_ID}+Copilot@users.noreply.github.com",
    )
    trailer = f"\n\nCo-authored-by: Alice <{noreply(cla, co_author)}>\n" if co_author else ""
    commit = state.add_commit(REPO, author_login="Copilot", message=f"Fix the bug{trailer}")
    return _pr(cla, "Copilot", [commit])


def test_agent_opened_pr_requires_the_human_who_asked(cla: CLAService) -> None:
    pr = _copilot_pr(cla, "alice")
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    [comment] = our_comments(cla, pr)
    assert "GitHub account `alice`" in comment["body"] and "@Copilot" not in comment["body"]
    cla.sign("alice")
    cla.wait_for(lambda: cla.status_state(REPO, head(cla, pr)) == "success", what="green")


def test_agent_work_alone_never_passes(cla: CLAService) -> None:
    pr = _copilot_pr(cla, None)
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert str(status["description"]).startswith("Opened by an AI agent")
    [comment] = our_comments(cla, pr)
    assert "An AI agent opened this pull request" in comment["body"]


def test_agent_co_author_needs_no_signature_unless_the_agreement_refuses(cla: CLAService) -> None:
    state = _state(cla)
    cla.sign("alice")
    message = "Refactor\n\nCo-authored-by: Claude <noreply@anthropic.com>\n"
    pr = _pr(cla, "alice", [state.add_commit(REPO, author_login="alice", message=message)])
    assert evaluate_now(cla, pr)["state"] == "success"

    _cli(cla, "agreement", "policy", "individual-cla", "--agents", "refuse")
    cla.wait_idle()
    status = cla.status(REPO, head(cla, pr))
    assert status is not None and status["state"] == "failure"
    assert "accepts no AI agent commits" in str(status["description"])
    [comment] = our_comments(cla, pr)
    assert "This project accepts no code written by AI agents" in comment["body"]
    assert "`noreply@anthropic.com`" in comment["body"]

    _cli(cla, "agreement", "policy", "individual-cla", "--agents", "require-human")
    cla.wait_idle()
    assert cla.status_state(REPO, head(cla, pr)) == "success"


def test_refuse_fails_an_agent_opened_pull_request(cla: CLAService) -> None:
    cla.sign("alice")
    _cli(cla, "agreement", "policy", "individual-cla", "--agents", "refuse")
    pr = _copilot_pr(cla, "alice")
    status = evaluate_now(cla, pr)
    assert status["state"] == "failure"
    assert "accepts no AI agent commits" in str(status["description"])
