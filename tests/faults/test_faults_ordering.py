"""Deliveries duplicated, out of order, or overtaken by a force-push (SECURITY.md §4, plan
items 43, 60, 61): the verdict always lands on the pull request's current head, and an old
head's verdict never reaches the new one."""

from __future__ import annotations

import threading

from faults_support import (
    REPO,
    assert_final_verdict,
    event,
    fault_taken,
    head,
    open_pr,
    our_statuses,
    wait_until,
)
from tests.conftest import CLAService


def test_the_same_delivery_five_times_at_once_makes_one_job(fast: CLAService) -> None:
    pr = open_pr(fast, "bob")
    payload = event(fast, pr["number"])
    guid = "5f1e2d3c-0000-4000-8000-000000000043"
    answers: list[int | None] = []
    barrier = threading.Barrier(5)

    def send() -> None:
        barrier.wait()
        status, _ = fast.live.emulator.state.deliver_webhook(
            fast.hook_url,
            "pull_request",
            payload,
            secret=fast.settings.webhook_secret,
            hook_id=4242,
            delivery_id=guid,
        )
        answers.append(status)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [202] * 5
    fast.wait_idle()
    [job] = fast.jobs()
    assert (job.delivery_id, job.hook_id) == (guid, "4242")
    assert_final_verdict(fast, pr["number"], "failure")
    # A sixth redelivery, after it was processed: a 2xx no-op.
    assert fast.live.emulator.state.redeliver(guid) == 202
    fast.wait_idle()
    assert len(fast.jobs()) == 1
    assert_final_verdict(fast, pr["number"], "failure")


def test_synchronize_before_opened_ends_on_the_current_head(fast: CLAService) -> None:
    """``opened`` (head A, alice signed: would be green) arrives after ``synchronize`` (head B
    adds bob's unsigned commit). Evaluations read the live head, so A never gets a status and
    B is red throughout."""
    fast.sign("alice")
    pr = open_pr(fast, "alice")
    old = head(fast, pr["number"])
    opened = event(fast, pr["number"], "opened")
    fast.state.push_commits(REPO, pr["number"], n_commits=1, author_login="bob")
    synchronize = event(fast, pr["number"], "synchronize")
    assert fast.deliver("pull_request", synchronize)[0] == 202
    assert fast.deliver("pull_request", opened)[0] == 202
    fast.wait_idle()
    assert our_statuses(fast, old) == []
    assert_final_verdict(fast, pr["number"], "failure")


def test_force_push_during_the_commit_listing_gives_the_new_head_its_verdict(
    fast: CLAService,
) -> None:
    """The listing is held by GitHub while the branch is force-pushed (A -> C, C by unsigned
    bob); the listing then describes C, and only C gets a verdict."""
    fast.sign("alice")
    pr = open_pr(fast, "alice")
    old = head(fast, pr["number"])
    fast.state.add_fault("GET", r"/pulls/\d+/commits", status=None, delay=1.0, times=1)
    fast.deliver("pull_request", event(fast, pr["number"]))
    wait_until(lambda: fault_taken(fast), 10, "the listing to be held")
    forced = _force_push(fast, pr["number"], "bob")
    fast.deliver("pull_request", event(fast, pr["number"], "synchronize"))
    fast.wait_idle()
    assert head(fast, pr["number"]) == forced
    assert our_statuses(fast, old) == []
    assert_final_verdict(fast, pr["number"], "failure")


def test_force_push_while_the_old_heads_status_is_posted_never_greens_the_new_head(
    fast: CLAService,
) -> None:
    """The old head's verdict (green, alice signed) is being posted when the branch is
    force-pushed to C (bob, unsigned). The old verdict stays on the old sha; C ends red and
    never carried green."""
    fast.sign("alice")
    pr = open_pr(fast, "alice")
    old = head(fast, pr["number"])
    fast.state.add_fault("POST", r"/statuses/", status=None, delay=1.0, times=1)
    fast.deliver("pull_request", event(fast, pr["number"]))
    wait_until(lambda: fault_taken(fast), 10, "the old head's status to be held")
    forced = _force_push(fast, pr["number"], "bob")
    fast.deliver("pull_request", event(fast, pr["number"], "synchronize"))
    fast.wait_idle()
    assert [s["state"] for s in our_statuses(fast, old)] == ["success"]
    assert head(fast, pr["number"]) == forced
    assert_final_verdict(fast, pr["number"], "failure")


def _force_push(cla: CLAService, number: int, author_login: str) -> str:
    """Replace the pull request's commits by one new commit on its base (a force-push)."""
    state = cla.state
    with state.lock:
        pr = state.require_pull(REPO, number)
        base = pr.base_sha
    sha: str = state.add_commit(REPO, author_login=author_login, parents=[base])
    with state.lock:
        pr.before_sha, pr.head_sha = pr.head_sha, sha
        state.repos[pr.head_repo_id].branches[pr.head_ref] = sha
    return sha
