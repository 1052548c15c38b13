"""Report mode (a rollout) and imports, end to end: the live app, the GitHub emulator, a real
Huey consumer. A link in report mode never blocks: its status is a success that says how
many have signed; it comments only when the link says so; switching it to enforce, or
importing signatures, re-evaluates the open pull requests. What GitHub sees is read back
from the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from click.testing import CliRunner, Result
from httpx import Client
from tests.conftest import AGREEMENT_SLUG, CLAService, sign_in
from tests.support.cli import agreement_commands
from tests.support.console import ALPHA, Console, signed_in
from tests.support.console import clients as clients  # a fixture
from tests.support.console import console as console  # a fixture
from tests.support.pulls import REPO, deliver_pr, head, open_pr, our_comments

from undersign.agreements.service import AgreementService
from undersign.enforcement.report import DESCRIPTION_LIMIT


def cli(cla: CLAService, *args: str) -> Result:
    """The command line, with the runtime its real self has (changes queue evaluations)."""
    result = CliRunner().invoke(
        agreement_commands,
        list(args),
        obj=SimpleNamespace(database=cla.database, runtime=cla.runtime),
    )
    return result


def report_mode(cla: CLAService, *, comments: bool = False) -> None:
    with cla.database.session() as session:
        AgreementService(session).link_org(
            "octo-org", AGREEMENT_SLUG, mode="report", report_comments=comments
        )


def test_report_mode_passes_with_the_real_count_and_no_comment(cla: CLAService) -> None:
    report_mode(cla)
    pr = open_pr(cla, "alice", 1)
    deliver_pr(cla, pr)
    sha = head(cla, pr)
    cla.wait_idle()
    status = cla.status(REPO, sha)
    assert status is not None
    assert status["state"] == "success"
    assert status["description"] == "report only: 0 of 1 have signed"
    assert our_comments(cla, pr) == []

    cla.sign("alice")
    cla.wait_for(
        lambda: (
            (cla.status(REPO, sha) or {}).get("description") == "report only: 1 of 1 have signed"
        ),
        what="the count to follow the signature",
    )
    cla.wait_idle()
    assert [s["state"] for s in cla.statuses(REPO, sha)] == ["success", "success"]
    assert our_comments(cla, pr) == []


def test_report_mode_comments_only_when_the_link_says_so(cla: CLAService) -> None:
    report_mode(cla, comments=True)
    pr = open_pr(cla, "alice", 1)
    deliver_pr(cla, pr)
    cla.wait_idle()
    assert cla.status_state(REPO, head(cla, pr)) == "success"
    [comment] = our_comments(cla, pr)
    assert "@alice" in comment["body"]


def test_switching_to_enforce_re_evaluates_the_open_pull_requests(cla: CLAService) -> None:
    assert cli(cla, "org", "link", "octo-org", AGREEMENT_SLUG, "--mode", "report").exit_code == 0
    pr = open_pr(cla, "alice", 1)
    deliver_pr(cla, pr)
    sha = head(cla, pr)
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == "success"

    result = cli(cla, "org", "link", "octo-org", AGREEMENT_SLUG, "--mode", "enforce")
    assert result.exit_code == 0, result.output
    assert "re-evaluating 1 open pull request(s)" in result.stderr
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red once enforced")
    cla.wait_idle()
    assert cla.status(REPO, sha)["description"] == "0 of 1 contributor has signed the CLA."  # type: ignore[index]
    [comment] = our_comments(cla, pr)  # enforce mode asks them to sign
    assert "@alice" in comment["body"]


def test_an_import_turns_the_imported_peoples_pull_requests_green(
    cla: CLAService, tmp_path: Path
) -> None:
    pr = open_pr(cla, "alice", 1)
    deliver_pr(cla, pr)
    sha = head(cla, pr)
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == "failure"

    lite = tmp_path / "cla.json"
    entry = {
        "name": "alice",
        "id": cla.state.user("alice")["id"],
        "comment_id": 1,
        "created_at": "2021-03-04T10:20:30Z",
        "repoId": 1,
        "pullRequestNo": 1,
    }
    lite.write_text(json.dumps({"signedContributors": [entry]}), encoding="utf-8")
    result = cli(cla, "import", "cla-assistant-lite", str(lite), "--agreement", AGREEMENT_SLUG)
    assert result.exit_code == 0, result.output
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="green after import")


def test_the_description_stays_within_githubs_limit() -> None:
    from undersign.enforcement.contributors import Contributor
    from undersign.enforcement.policy import Verdict
    from undersign.enforcement.report import report_description

    people = [Contributor("github", github_id=n, login=f"u{n}") for n in range(1, 10**4)]
    unknown = [Contributor("unknown", email=f"u{n}@example.com") for n in range(7)]
    verdict = Verdict(
        signed=people[:5000],
        exempt=[],
        unsigned=people[5000:],
        unknown=unknown,
        refused=people[:3],
        needs_human=True,
    )
    text = report_description(verdict)
    assert len(text) <= DESCRIPTION_LIMIT
    assert text.startswith("report only: 5000 of 10006 have signed; 7 must link")
    assert report_description(Verdict([], [], [], [])) == (
        "report only: no contributor needs to sign"
    )


def test_the_console_link_form_takes_the_mode(console: Console, clients: dict[str, Client]) -> None:
    client, csrf = signed_in(console, clients, "root")
    path = f"/admin/agreements/{ALPHA}/links/repo"
    refused = client.post(path, data={"csrf_token": csrf, "name": "acme/widgets", "mode": "loud"})
    assert refused.status_code == 400
    assert "The mode is enforce or report." in refused.text
    with console.live.database.session() as session:
        assert AgreementService(session).coverage_for_repo("acme/widgets").source == "org"  # type: ignore[union-attr]

    form = {"csrf_token": csrf, "name": "acme/widgets", "mode": "report", "report_comments": "on"}
    assert client.post(path, data=form).status_code == 303
    with console.live.database.session() as session:
        coverage = AgreementService(session).coverage_for_repo("acme/widgets")
        assert coverage is not None and coverage.source == "repo"
        assert coverage.report_only and coverage.report_comments
    page = client.get(f"/admin/agreements/{ALPHA}")
    assert "report only, with comments" in page.text
    assert "Switch to enforce" in page.text


def test_an_imported_signer_sees_it_marked_and_proving_no_text(
    cla: CLAService, tmp_path: Path
) -> None:
    entry = {"name": "alice", "id": cla.state.user("alice")["id"], "comment_id": 9}
    entry.update(created_at="2021-03-04T10:20:30Z", repoId=1, pullRequestNo=1)
    lite = tmp_path / "cla.json"
    lite.write_text(json.dumps({"signedContributors": [entry]}), encoding="utf-8")
    result = cli(cla, "import", "cla-assistant-lite", str(lite), "--agreement", AGREEMENT_SLUG)
    assert result.exit_code == 0, result.output
    with cla.live.client() as client:
        sign_in(cla.live, client, "alice")
        mine = client.get("/me/signatures")
        assert "(imported from cla-assistant-lite)" in mine.text
        signature_id = int(mine.text.split('id="signature-', 1)[1].split('"', 1)[0])
        thanks = client.get(f"/sign/{AGREEMENT_SLUG}/thanks/{signature_id}")
        assert thanks.status_code == 200
        assert "none: imported from cla-assistant-lite" in thanks.text
        receipt = client.get(f"/me/signatures/{signature_id}/receipt")
        assert receipt.status_code == 200
        assert "undersign did not witness it" in receipt.text
        assert "- Text SHA-256: none (imported signature)" in receipt.text
        page = client.get(f"/sign/{AGREEMENT_SLUG}")
        assert 'id="already-signed"' in page.text  # covered: nothing more to sign
