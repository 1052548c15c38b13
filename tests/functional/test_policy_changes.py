"""Changing policy from the command line re-evaluates the open pull requests it affects, with
no push: a material version turns signed authors red, the allowlist turns an unsigned author
green, a link change reaches the repositories it covers. The live app, the GitHub emulator, a
real Huey consumer; what GitHub sees is read back from the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from tests.conftest import AGREEMENT_SLUG, BOT_LOGIN, CLAService
from tests.support.pulls import REPO, deliver_pr, head, open_pr

from undersign.cli import CLIContext, main


def cli(cla: CLAService, *args: str) -> Result:
    result = CliRunner().invoke(
        main, list(args), obj=CLIContext(_settings=cla.settings, _database=cla.database)
    )
    assert result.exit_code == 0, result.output
    return result


def green_then(cla: CLAService, login: str) -> tuple[dict[str, Any], str]:
    """A pull request by ``login``, delivered and evaluated; its head sha."""
    pr = open_pr(cla, login)
    deliver_pr(cla, pr)
    sha = head(cla, pr)
    cla.wait_idle()
    return pr, sha


def state_of(cla: CLAService, sha: str, repo: str = REPO) -> object:
    status = cla.status(repo, sha)
    return status["state"] if status else None


def bot_comment(cla: CLAService, pr: dict[str, Any]) -> str:
    """The body of undersign's one comment on ``pr`` (empty before there is one)."""
    bodies = [
        str(c["body"])
        for c in cla.state.comments(REPO, int(pr["number"]))
        if c["user"]["login"] == BOT_LOGIN
    ]
    return bodies[-1] if bodies else ""


def text(tmp_path: Path, body: str) -> str:
    path = tmp_path / "cla.md"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_a_material_version_turns_a_signed_authors_pull_request_red(
    cla: CLAService, tmp_path: Path
) -> None:
    cla.sign("alice")
    pr, sha = green_then(cla, "alice")
    assert state_of(cla, sha) == "success"

    result = cli(
        cla,
        "agreement",
        "add",
        AGREEMENT_SLUG,
        "--title",
        "Individual CLA",
        "--file",
        text(tmp_path, "You agree to license it, and to more now."),
    )
    assert "re-evaluating 1 open pull request(s)" in result.output
    cla.wait_for(lambda: state_of(cla, sha) == "failure", what="red after a material version")
    # alice did sign: the comment says the agreement changed, not that she never signed.
    cla.wait_for(lambda: "signed an earlier version" in bot_comment(cla, pr), what="comment")
    comment = bot_comment(cla, pr)
    assert "**The agreement has changed:** @alice signed an earlier version" in comment
    assert "opened this pull request has not signed the current version." in comment
    # The status says so too, not "0 of 1 contributor has signed the CLA."
    status = cla.status(REPO, sha)
    assert status is not None and status["context"] == "license/cla"
    assert status["description"] == (
        "0 of 1 contributor has signed the current CLA; 1 signed an earlier version and must "
        "sign the new version."
    )


def test_an_editorial_version_queues_nothing_and_stays_green(
    cla: CLAService, tmp_path: Path
) -> None:
    cla.sign("alice")
    _, sha = green_then(cla, "alice")
    jobs_before = len(cla.jobs())

    result = cli(
        cla,
        "agreement",
        "add",
        AGREEMENT_SLUG,
        "--title",
        "Individual CLA",
        "--file",
        text(tmp_path, "You agree to license it (typo fixed)."),
        "--editorial",
    )
    assert "re-evaluating" not in result.output
    assert len(cla.jobs()) == jobs_before
    cla.wait_idle()
    assert state_of(cla, sha) == "success"


def test_allowlisting_an_unsigned_author_turns_the_pull_request_green_and_back(
    cla: CLAService,
) -> None:
    _, sha = green_then(cla, "bob")
    assert state_of(cla, sha) == "failure"

    cli(cla, "allowlist", "add", AGREEMENT_SLUG, "bo*", "--note", "the build robot")
    cla.wait_for(lambda: state_of(cla, sha) == "success", what="green once allowlisted")
    cla.wait_idle()

    cli(cla, "allowlist", "remove", AGREEMENT_SLUG, "bo*")
    cla.wait_for(lambda: state_of(cla, sha) == "failure", what="red once removed")


def test_linking_a_repository_to_another_agreement_reaches_only_that_repository(
    cla: CLAService, tmp_path: Path
) -> None:
    """``octo-org/gadgets`` gets an agreement alice has not signed: her pull request there
    turns red; the one in ``octo-org/widgets`` (still the org's agreement) is not touched."""
    gadgets = "octo-org/gadgets"
    cla.sign("alice")
    _, widgets_sha = green_then(cla, "alice")
    pr = open_pr(cla, "alice", repo=gadgets)
    deliver_pr(cla, pr, repo=gadgets)
    gadgets_sha = head(cla, pr, repo=gadgets)
    cla.wait_idle()
    assert state_of(cla, gadgets_sha, gadgets) == "success"
    statuses_before = len(cla.statuses(REPO, widgets_sha))
    jobs_before = len(cla.jobs())

    cli(
        cla,
        "agreement",
        "add",
        "corporate-cla",
        "--title",
        "Corporate",
        "--file",
        text(tmp_path, "Corp."),
    )
    cli(cla, "repo", "link", gadgets, "corporate-cla")
    cla.wait_for(lambda: state_of(cla, gadgets_sha, gadgets) == "failure", what="gadgets red")
    cla.wait_idle()
    new_jobs = cla.jobs()[jobs_before:]
    # The re-evaluation posts the status; its comment edit follows in a job of its own.
    assert [(j.kind, j.payload["repo"], j.payload.get("comment", False)) for j in new_jobs] == [
        ("evaluate", gadgets, False),
        ("evaluate", gadgets, True),
    ]
    assert len(cla.statuses(REPO, widgets_sha)) == statuses_before

    cli(cla, "repo", "unlink", gadgets)  # back to the org's agreement, which alice signed
    cla.wait_for(lambda: state_of(cla, gadgets_sha, gadgets) == "success", what="gadgets green")


def test_linking_an_org_to_another_agreement_reaches_its_open_pull_requests(
    cla: CLAService, tmp_path: Path
) -> None:
    cla.sign("alice")
    _, sha = green_then(cla, "alice")
    cli(
        cla,
        "agreement",
        "add",
        "corporate-cla",
        "--title",
        "Corporate",
        "--file",
        text(tmp_path, "Corp."),
    )
    cli(cla, "org", "link", "Octo-Org", "corporate-cla")
    cla.wait_for(lambda: state_of(cla, sha) == "failure", what="red under the new agreement")
    cla.wait_idle()
    cli(cla, "org", "link", "octo-org", AGREEMENT_SLUG)
    cla.wait_for(lambda: state_of(cla, sha) == "success", what="green again")


def test_unlinking_the_last_agreement_releases_a_red_pull_request(cla: CLAService) -> None:
    """Without any agreement left, a red status would block merges forever: it becomes a
    success that says why."""
    from undersign.enforcement.service import NOT_REQUIRED

    _, sha = green_then(cla, "bob")
    assert state_of(cla, sha) == "failure"

    cli(cla, "org", "unlink", "octo-org")
    cla.wait_for(lambda: state_of(cla, sha) == "success", what="released")
    status = cla.status(REPO, sha)
    assert status is not None
    assert status["description"] == NOT_REQUIRED
