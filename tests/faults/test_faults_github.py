"""GitHub misbehaving: 5xx bursts, timeouts, primary and secondary rate limits (SECURITY.md §4,
plan items 50-53). Each ends with the right verdict on the current head, one comment, done
job rows, and no more status posts than the faults forced."""

from __future__ import annotations

import math
import time

from faults_support import (
    REPO,
    assert_final_verdict,
    event,
    fault_taken,
    head,
    open_pr,
    our_statuses,
    status_posts,
    wait_until,
)
from tests.conftest import BOT_LOGIN, CLAFactory, CLAService


def test_bursts_of_5xx_on_every_call_are_retried_to_one_status_and_one_comment(
    fast: CLAService,
) -> None:
    pr = open_pr(fast, "alice", 2)
    state = fast.state
    state.add_fault("GET", r"/pulls/\d+/commits", status=502, times=2)
    state.add_fault("POST", r"/statuses/", status=503, times=2)
    state.add_fault("POST", r"/issues/\d+/comments", status=500, times=2)
    assert fast.deliver("pull_request", event(fast, pr["number"]))[0] == 202
    fast.wait_idle(30)

    sha = assert_final_verdict(fast, pr["number"], "failure")
    posts = [call.status for call in status_posts(fast, sha)]
    # Two refused, one accepted; the comment's failures did not post the status again.
    assert posts == [503, 503, 201]
    comment_posts = [c.status for c in state.api_calls("POST", f"/repos/{REPO}/issues/")]
    assert comment_posts == [500, 500, 201]
    [job] = fast.jobs()
    assert job.attempts == 2 + 2 + 2 + 1


def test_a_burst_longer_than_the_attempts_ends_failed_with_an_error_status_then_recovers(
    fast_factory: CLAFactory,
) -> None:
    cla = fast_factory(job_max_attempts=3)
    pr = open_pr(cla, "alice")
    cla.state.add_fault("GET", r"/pulls/\d+/commits", status=502, times=3)
    cla.deliver("pull_request", event(cla, pr["number"]))
    cla.wait_idle(30)
    [job] = cla.jobs()
    assert (job.status, job.attempts) == ("failed", 3)
    assert "502" in str(job.last_error)
    sha = head(cla, pr["number"])
    assert [s["state"] for s in our_statuses(cla, sha)] == ["error"]

    # GitHub is back; the next trigger (a push, a recheck) gives the real verdict.
    cla.deliver("pull_request", event(cla, pr["number"], "synchronize"))
    cla.wait_idle(30)
    assert [s["state"] for s in our_statuses(cla, sha)] == ["failure", "error"]
    assert len(cla.state.comments(REPO, pr["number"])) == 1


def test_timeouts_free_the_worker_and_the_job_finishes_before_github_answers(
    fast: CLAService,
) -> None:
    """The client gives up after ``UNDERSIGN_HTTP_TIMEOUT`` (1 s here) while the emulator
    would hold the request for 8 s: the worker is free long before that."""
    fast.sign("alice")
    pr = open_pr(fast, "alice")
    state = fast.state
    delay = 8.0
    state.add_fault("GET", r"/pulls/\d+/commits", status=None, delay=delay, times=1)
    started = time.monotonic()
    fast.deliver("pull_request", event(fast, pr["number"]))
    wait_until(lambda: our_statuses(fast, head(fast, pr["number"])), 15, "a status")
    assert time.monotonic() - started < delay - 2
    fast.wait_idle()
    [job] = [j for j in fast.jobs() if j.kind == "delivery"]
    assert job.attempts == 2
    assert_final_verdict(fast, pr["number"], "success", comments=0)


def test_a_status_post_that_times_out_is_retried_to_the_same_verdict(fast: CLAService) -> None:
    """GitHub may apply a write whose answer never arrived (here: 3 s later, after the retry).
    The late copy is identical, so the verdict on the head is unchanged: at most one extra."""
    pr = open_pr(fast, "bob")
    fast.state.add_fault("POST", r"/statuses/", status=None, delay=3.0, times=1)
    fast.deliver("pull_request", event(fast, pr["number"]))
    sha = head(fast, pr["number"])
    fast.wait_idle(20)
    wait_until(lambda: len(status_posts(fast, sha)) == 2, 10, "the late status to land")
    assert_final_verdict(fast, pr["number"], "failure", max_statuses=2)


def test_primary_rate_limit_stops_every_job_on_the_token_until_the_reset(
    fast: CLAService,
) -> None:
    fast.sign("alice")
    first, second = open_pr(fast, "alice"), open_pr(fast, "bob")
    reset = math.ceil(time.time()) + 3
    fast.state.set_rate_limit(BOT_LOGIN, 0, reset_at=reset)
    fast.state.clear_requests()
    fast.deliver("pull_request", event(fast, first["number"]))
    wait_until(lambda: fast.state.api_calls(), 10, "the first refused call")
    # The second job starts while the gate is shut: it must not spend a call either.
    fast.deliver("pull_request", event(fast, second["number"]))
    fast.wait_idle(30)

    calls = fast.state.api_calls()
    refused = [c for c in calls if c.status == 403]
    assert len(refused) == 1, [(c.method, c.path, c.status) for c in calls]
    assert all(c.time >= reset for c in calls if c is not refused[0])
    assert_final_verdict(fast, first["number"], "success", comments=0)
    assert_final_verdict(fast, second["number"], "failure")


def test_secondary_limit_with_retry_after_is_honoured(fast: CLAService) -> None:
    pr = open_pr(fast, "bob")
    fast.state.secondary_limit(times=1, retry_after=2)
    fast.state.clear_requests()
    fast.deliver("pull_request", event(fast, pr["number"]))
    fast.wait_idle(30)
    calls = fast.state.api_calls()
    [refused] = [c for c in calls if c.status == 403]
    later = calls[calls.index(refused) + 1 :]
    assert later and all(c.time >= refused.time + 2 for c in later)
    assert_final_verdict(fast, pr["number"], "failure")
    assert [c.status for c in status_posts(fast)] == [403, 201]


def test_secondary_limit_without_retry_after_waits_the_minimum(fast: CLAService) -> None:
    """No ``retry-after`` and calls left: GitHub says wait at least a minute; the minimum is
    ``UNDERSIGN_GITHUB_SECONDARY_WAIT`` (2 s in this suite, 60 s by default)."""
    pr = open_pr(fast, "bob")
    fast.state.secondary_limit(times=1, retry_after=None)
    fast.state.clear_requests()
    fast.deliver("pull_request", event(fast, pr["number"]))
    fast.wait_idle(30)
    calls = fast.state.api_calls()
    [refused] = [c for c in calls if c.status == 403]
    later = calls[calls.index(refused) + 1 :]
    assert later and all(c.time >= refused.time + 2 for c in later)
    assert_final_verdict(fast, pr["number"], "failure")


def test_the_secondary_minimum_wait_defaults_to_githubs_minute() -> None:
    from undersign.config import load_settings

    assert load_settings({"UNDERSIGN_ENV": "test"}).github_secondary_wait == 60


def test_a_held_request_is_really_in_flight_when_fault_taken_says_so(fast: CLAService) -> None:
    """The suite's own probe: ``fault_taken`` turns true while the delayed call is held."""
    pr = open_pr(fast, "bob")
    fast.state.add_fault("GET", r"/pulls/\d+/commits", status=None, delay=1.5, times=1)
    assert not fault_taken(fast)
    fast.deliver("pull_request", event(fast, pr["number"]))
    wait_until(lambda: fault_taken(fast), 10, "the delayed call")
    assert our_statuses(fast, head(fast, pr["number"])) == []
    fast.wait_idle()
    assert_final_verdict(fast, pr["number"], "failure")
