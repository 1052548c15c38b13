"""The reconciler heals pull requests whose delivery never arrived, and costs nothing more
than the listing for pull requests already up to date."""

from __future__ import annotations

from typing import Any

from tests.conftest import BOT_LOGIN, CLAService
from tests.support.cli import run_reconcile

REPO = "octo-org/widgets"


def our_status(cla: CLAService, sha: str) -> dict[str, Any] | None:
    return cla.status(REPO, sha)


def test_a_pull_request_whose_webhook_never_came_gets_its_status(cla: CLAService) -> None:
    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    sha = state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert our_status(cla, sha) is None  # no delivery: nothing happened

    output = run_reconcile(cla)
    assert f"{REPO}#{pr['number']}: queued" in output
    cla.wait_idle()
    status = our_status(cla, sha)
    assert status is not None and status["state"] == "failure"
    assert [c for c in state.comments(REPO, pr["number"]) if c["user"]["login"] == BOT_LOGIN]

    # A push whose synchronize delivery was lost: the stored head is stale.
    state.push_commits(REPO, pr["number"], n_commits=1)
    new_sha = state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert new_sha != sha
    output = run_reconcile(cla, REPO)
    assert f"{REPO}#{pr['number']}: queued" in output
    cla.wait_idle()
    assert cla.status_state(REPO, new_sha) == "failure"


def test_an_up_to_date_pull_request_costs_no_write(cla: CLAService) -> None:
    state = cla.state
    cla.sign("alice")
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    payload = state.pull_request_event(REPO, pr["number"], "opened")
    assert cla.deliver("pull_request", payload)[0] == 202
    cla.wait_idle()
    sha = state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert cla.status_state(REPO, sha) == "success"

    state.clear_requests()
    output = run_reconcile(cla)
    cla.wait_idle()
    assert "queued" in output and f"{REPO}#{pr['number']}: queued" not in output
    assert state.api_calls("POST") == [] and state.api_calls("PATCH") == []
    # One listing of the organization's repositories, one of each repository's open pulls.
    paths = sorted(r.rest_path.split("?")[0] for r in state.api_calls("GET"))
    assert paths == [
        "/orgs/octo-org/repos",
        "/repos/octo-org/gadgets/pulls",
        "/repos/octo-org/widgets/pulls",
    ]


def test_a_pull_request_closed_while_deliveries_were_lost_is_forgotten(cla: CLAService) -> None:
    from sqlalchemy import select

    from undersign.enforcement.models import PullRequestCheck

    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    run_reconcile(cla)
    cla.wait_idle()
    state.set_pr_state(REPO, pr["number"], "closed")
    run_reconcile(cla)
    with cla.database.session() as session:
        check = session.scalar(
            select(PullRequestCheck).where(PullRequestCheck.number == pr["number"])
        )
    assert check is not None and check.is_open is False


def test_one_process_runs_each_interval(cla: CLAService) -> None:
    from undersign.enforcement.reconcile import take_turn

    ctx = cla.runtime.bot
    assert take_turn(ctx, 60) is True
    assert take_turn(ctx, 60) is False  # another worker fired the same periodic task


def test_a_pull_request_opened_during_the_listing_stays_open(cla: CLAService) -> None:
    """Opened and evaluated between the listing and the reading of the checks: missing from
    the (older) list, yet open; marking it closed would stop signatures re-evaluating it."""
    from sqlalchemy import select

    from undersign.db import utcnow
    from undersign.enforcement.models import PullRequestCheck
    from undersign.enforcement.reconcile import ReconcileReport, reconcile_repo

    state = cla.state
    queue = cla.runtime.queue
    ctx = queue.context()
    listed_at = utcnow()
    pulls = ctx.github.list_open_pulls("octo-org", "widgets")
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    payload = state.pull_request_event(REPO, pr["number"], "opened")
    assert cla.deliver("pull_request", payload)[0] == 202
    cla.wait_idle()
    report = ReconcileReport()
    reconcile_repo(ctx, queue, REPO, pulls, set(), report, listed_at)
    assert report.closed == []
    with cla.database.session() as session:
        check = session.scalar(
            select(PullRequestCheck).where(PullRequestCheck.number == pr["number"])
        )
    assert check is not None and check.is_open is True


def test_an_open_pull_request_marked_closed_is_evaluated_again(cla: CLAService) -> None:
    from sqlalchemy import select

    from undersign.enforcement.models import PullRequestCheck
    from undersign.enforcement.service import mark_closed

    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    run_reconcile(cla)
    cla.wait_idle()
    # An earlier run raced with its opening and marked it closed; GitHub still lists it.
    mark_closed(cla.runtime.bot, REPO, pr["number"])
    output = run_reconcile(cla)
    assert f"{REPO}#{pr['number']}: queued" in output
    cla.wait_idle()
    with cla.database.session() as session:
        check = session.scalar(
            select(PullRequestCheck).where(PullRequestCheck.number == pr["number"])
        )
    assert check is not None and check.is_open is True
    cla.sign("alice")  # signatures reach it again
    cla.wait_idle()
    sha = state.pull_request(REPO, pr["number"])["head"]["sha"]
    assert cla.status_state(REPO, sha) == "success"
