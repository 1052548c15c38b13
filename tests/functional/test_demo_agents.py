"""The demo's seed data shows the AI agent policy both ways (without the demo's fixed ports):
the demo's GitHub on a free port, the demo's agreements, the evaluation a delivery runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import make_settings, sign_quietly
from tests.support.emulator import running_emulator

from undersign.db import Database
from undersign.demo import seed_demo
from undersign.emulator import EmulatorServer
from undersign.emulator.demo import AGENT_REPO, NO_AGENTS_REPO, build_demo_state
from undersign.enforcement.service import evaluate_pull_request
from undersign.jobs.context import JobContext


@pytest.fixture
def demo_github() -> Iterator[EmulatorServer]:
    with running_emulator(build_demo_state()) as server:
        yield server


def test_the_demo_shows_both_agent_policies(
    demo_github: EmulatorServer, database_url: str, database: Database, tmp_path: Path
) -> None:
    state = demo_github.state
    settings = make_settings(
        tmp_path,
        "http://127.0.0.1:9",
        demo_github,
        UNDERSIGN_DATABASE_URL=database_url,
        UNDERSIGN_GITHUB_TOKEN=state.issue_token("undersign-bot"),
    )
    seed_demo(settings)
    ctx = JobContext.from_settings(settings, database)

    # require-human: Copilot opened it for carol; the agent needs no signature, carol does.
    outcome = evaluate_pull_request(ctx, AGENT_REPO, 1)
    assert outcome.state == "failure" and outcome.verdict is not None
    assert [c.login for c in outcome.verdict.agents] == ["Copilot"]
    assert [c.login for c in outcome.verdict.unsigned] == ["carol"]
    sign_quietly(database, "individual-cla", "carol", state.user("carol")["id"])
    assert evaluate_pull_request(ctx, AGENT_REPO, 1).state == "success"

    # refuse: acme/handmade's agreement accepts no agent-written code, signed or not.
    sign_quietly(database, "handmade-cla", "alice", state.user("alice")["id"])
    refused = evaluate_pull_request(ctx, NO_AGENTS_REPO, 1)
    assert refused.state == "failure" and refused.verdict is not None
    assert refused.head_sha is not None
    assert [c.email for c in refused.verdict.refused] == ["noreply@anthropic.com"]
    status = state.combined_status(NO_AGENTS_REPO, refused.head_sha)["statuses"][0]
    assert "accepts no AI agent commits" in status["description"]
