"""``undersign worker`` killed with SIGKILL mid-job (SECURITY.md §4 "worker crash", plan item
59): its job row stays ``running`` under a lease; once the lease runs out another worker runs
it again, and the pull request ends with the right verdict and still one comment."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults_support import (
    WorkerProcess,
    assert_final_verdict,
    event,
    fault_taken,
    head,
    open_pr,
    our_comments,
    status_posts,
    wait_until,
    worker_env,
)
from tests.conftest import CLAFactory

from undersign.db import utcnow

# Where the first worker is held when it is killed, and what GitHub had accepted by then.
KILL_POINTS = {
    "listing commits": ("GET", r"/pulls/\d+/commits", 0, 0),
    "posting the status": ("POST", r"/statuses/", 1, 0),
    "posting the comment": ("POST", r"/issues/\d+/comments", 1, 1),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_mid_job_then_another_worker_finishes_it(
    fast_factory: CLAFactory, tmp_path: Path, point: str
) -> None:
    cla = fast_factory(start=False)
    method, path, statuses_before, comments_before = KILL_POINTS[point]
    pr = open_pr(cla, "bob")
    sha = head(cla, pr["number"])
    env = worker_env(cla, tmp_path)
    # GitHub holds the call for 2 s, then carries it out (to a client that is gone by then).
    cla.state.add_fault(method, path, status=None, delay=2.0, times=1)
    first = WorkerProcess(env, tmp_path / "worker-1.log")
    second: WorkerProcess | None = None
    try:
        assert cla.deliver("pull_request", event(cla, pr["number"]))[0] == 202
        wait_until(lambda: fault_taken(cla), 30, f"the worker to be {point}")
        first.kill()
        [job] = cla.jobs()
        assert job.status == "running"
        # What GitHub did with the call in flight, once its delay is over.
        wait_until(
            lambda: (
                len([c for c in status_posts(cla, sha) if c.status == 201]) == statuses_before
                and len(our_comments(cla, pr["number"])) == comments_before
            ),
            10,
            "the held call to finish",
        )
        wait_until(lambda: job.lease_until < utcnow(), 10, "the lease to run out")
        second = WorkerProcess(env, tmp_path / "worker-2.log")
        cla.wait_idle(30)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    [job] = cla.jobs()
    assert (job.status, job.attempts) == ("done", 2), second.log() if second else ""
    # At most one extra identical status (the re-run does not know the first one landed).
    assert_final_verdict(cla, pr["number"], "failure", comments=1, max_statuses=2)
