"""Getting an organisation onto undersign, in a clean browser (headless Chromium, axe-core on
every page): signatures imported from CLA Assistant Lite are marked as imported in the
console and on the person's own page; a repository linked in report mode passes with the
real count, and switching it to enforce from the console turns its pull request red.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from tests.conftest import BrowserPage, CLAFactory, LiveFactory
from tests.support.cli import agreement_commands
from tests.support.console import console_for

pytestmark = pytest.mark.browser

REPO = "octo-org/gadgets"


def test_import_then_report_mode_then_enforce(
    cla_factory: CLAFactory, live_factory: LiveFactory, page: BrowserPage, tmp_path: Path
) -> None:
    cla, console = console_for(cla_factory, live_factory)
    state = cla.state
    lite = tmp_path / "cla.json"
    entry = {"name": "dave", "id": state.user("dave")["id"], "comment_id": 7}
    entry.update(created_at="2022-07-08T16:05:00Z", repoId=1, pullRequestNo=3)
    lite.write_text(json.dumps({"signedContributors": [entry]}, indent=2), encoding="utf-8")
    imported = CliRunner().invoke(
        agreement_commands,
        ["import", "cla-assistant-lite", str(lite), "--agreement", "individual-cla"],
        obj=SimpleNamespace(database=cla.database, runtime=cla.runtime),
    )
    assert imported.exit_code == 0, imported.output

    tab = page.page
    state.auto_approve_as = "maint"
    tab.goto(f"{console.url}/admin/agreements/individual-cla")
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    tab.get_by_role("link", name="Signatures", exact=True).click()
    row = tab.locator("tr", has_text="dave")
    assert "imported from cla-assistant-lite" in row.inner_text()

    # Link a repository in report mode: a pull request by someone who never signed passes.
    tab.get_by_role("link", name="Overview").click()
    tab.get_by_label("Repository (OWNER/REPO)").fill(REPO)
    tab.locator("#repo-mode").select_option("report")
    tab.get_by_role("button", name="Link repository").click()
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    assert "covered by individual-cla (report only)" in tab.locator(".notice").inner_text()
    pr = state.add_pull_request(REPO, user_login="erin", n_commits=1)
    status, _ = cla.deliver("pull_request", state.pull_request_event(REPO, pr["number"], "opened"))
    assert status == 202
    sha = str(state.pull_request(REPO, pr["number"])["head"]["sha"])
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="report-only success")
    cla.wait_idle()
    assert cla.status(REPO, sha)["description"] == "report only: 0 of 1 have signed"  # type: ignore[index]
    assert state.comments(REPO, pr["number"]) == []

    # Switch it to enforce: the open pull request is evaluated again and turns red.
    tab.get_by_role("button", name=f"Enforce the CLA on {REPO}").click()
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    link_row = tab.locator("tr", has_text=f"repository {REPO}")
    assert "enforce" in link_row.inner_text()
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red once enforced")
    cla.wait_idle()

    # The imported person sees the marker on their own page.
    state.auto_approve_as = "dave"
    tab.context.clear_cookies()  # signed out; signing in again approves as dave
    tab.goto(f"{console.url}/me/signatures")
    tab.wait_for_url(f"{console.url}/me/signatures")
    mine = tab.locator("tr", has_text="Individual CLA")
    assert "imported from cla-assistant-lite" in mine.inner_text()
    assert page.csp_violations == []
