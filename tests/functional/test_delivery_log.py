"""Following one delivery through the logs: every job's last line carries the delivery id,
the job id, the repository, the pull request and the verdict (or the error), as JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import CLAService

from undersign.observability.logging import configure_logging

REPO = "octo-org/widgets"


@pytest.fixture
def json_log(cla: CLAService) -> Iterator[io.StringIO]:
    """undersign's JSON handler on the root logger, writing to a buffer, as in production."""
    stream = io.StringIO()
    handler = configure_logging(cla.settings.replace(log_format="json"), stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_a_delivery_can_be_followed_to_its_verdict(cla: CLAService, json_log: io.StringIO) -> None:
    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    status, delivery = cla.deliver(
        "pull_request", state.pull_request_event(REPO, pr["number"], "opened")
    )
    assert status == 202
    cla.wait_idle()

    mine = [line for line in _lines(json_log) if line.get("delivery_id") == delivery]
    [done] = [line for line in mine if "verdict" in line]
    assert done["verdict"] == "failure"  # alice has not signed
    assert done["repository"] == REPO
    assert done["pull_request"] == pr["number"]
    assert isinstance(done["job_id"], int)
    assert done["job_kind"] == "delivery"
    assert done["message"] == f"job {done['job_id']} done: failure"

    cla.sign("alice")
    cla.wait_idle()
    verdicts = [line for line in _lines(json_log) if line.get("verdict") is not None]
    [person] = [line for line in verdicts if line["job_kind"] == "person"]
    assert person["verdict"] == "1 pull request(s) to re-evaluate"
    # The re-evaluation posts its status, then its comment edit runs as a job of its own
    # (a burst posts every status before any comment edit).
    status_job, comment_job = verdicts[verdicts.index(person) + 1 :]
    for evaluation in (status_job, comment_job):
        assert evaluation["job_kind"] == "evaluate"
        assert (evaluation["repository"], evaluation["pull_request"]) == (REPO, pr["number"])
    assert status_job["verdict"] == "success (comment edit queued)"
    assert comment_job["verdict"] == "success"


def test_a_failing_job_logs_its_error_with_the_delivery(
    cla: CLAService, json_log: io.StringIO
) -> None:
    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    state.add_fault("GET", r"/pulls/\d+/commits", status=503, times=10)
    status, delivery = cla.deliver(
        "pull_request", state.pull_request_event(REPO, pr["number"], "opened")
    )
    assert status == 202
    cla.wait_idle()
    mine = [line for line in _lines(json_log) if line.get("delivery_id") == delivery]
    retries = [
        line for line in mine if line["message"].startswith("job ") and "retries" in line["message"]
    ]
    assert retries and all("503" in line["error"] for line in retries)
    [failed] = [line for line in mine if line["level"] == "WARNING" and "error" in line]
    assert failed["message"].startswith(f"job {failed['job_id']} failed")
    assert "503" in failed["error"]
    assert (failed["repository"], failed["pull_request"]) == (REPO, pr["number"])
