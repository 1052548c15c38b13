"""A maintainer uses the console from a clean browser (headless Chromium, axe-core on
every page): sign in, revoke a contributor's signature, watch their pull request turn red,
see it waiting, export the signatures as CSV. The console runs with the bot's token and
shares the workers' queue; GitHub is the emulator.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from tests.conftest import BrowserPage, CLAFactory, CLAService, LiveFactory
from tests.support.console import console_for

pytestmark = pytest.mark.browser

REPO = "octo-org/widgets"


def green_pull_request_of_dave(cla: CLAService) -> tuple[int, str]:
    """dave signs and opens a pull request, which turns green: its number and head."""
    state = cla.state
    cla.sign("dave")
    pr = state.add_pull_request(REPO, user_login="dave", n_commits=1)
    number = int(pr["number"])
    status, _ = cla.deliver("pull_request", state.pull_request_event(REPO, number, "opened"))
    assert status == 202
    sha = str(state.pull_request(REPO, number)["head"]["sha"])
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="green")
    cla.wait_idle()
    return number, sha


def test_a_maintainer_revokes_a_signature_and_the_pull_request_turns_red(
    cla_factory: CLAFactory, live_factory: LiveFactory, page: BrowserPage
) -> None:
    cla, console = console_for(cla_factory, live_factory)
    state = cla.state
    number, sha = green_pull_request_of_dave(cla)

    tab = page.page
    state.auto_approve_as = "maint"
    tab.goto(f"{console.url}/admin/")
    tab.wait_for_url(f"{console.url}/admin/")
    tab.get_by_role("link", name="Individual CLA").click()
    assert tab.locator("main h1").inner_text() == "Individual CLA"
    tab.get_by_role("link", name="Signatures", exact=True).click()
    tab.get_by_label("Reason to revoke dave").fill("Left the company; their employer signs now.")
    tab.get_by_role("button", name="Revoke").click()
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla/signatures")
    assert "revoked" in tab.locator(".notice").inner_text()

    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red")
    cla.wait_idle()
    tab.get_by_role("link", name="Waiting pull requests").click()
    row = tab.locator("tr", has_text=f"{REPO}#{number}")
    assert "dave" in row.inner_text()
    assert "failure" in row.inner_text()

    tab.get_by_role("link", name="Signatures", exact=True).click()
    with tab.expect_download() as download_info:
        tab.get_by_role("link", name="CSV").click()
    download = download_info.value
    assert download.suggested_filename == "individual-cla-signatures.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [(r["login"], r["revocation_reason"]) for r in rows] == [
        ("dave", "Left the company; their employer signs now.")
    ]
    assert rows[0]["revoked_by"].startswith("maintainer maint")
    assert page.csp_violations == []


def test_a_maintainer_links_a_repository_of_their_organisation(
    cla_factory: CLAFactory, live_factory: LiveFactory, page: BrowserPage
) -> None:
    """An owner of octo-org links one of its repositories, with collaborators exempt; the
    audit log names them. A repository of another owner is refused and nothing changes."""
    cla, console = console_for(cla_factory, live_factory)
    state = cla.state
    state.add_user("stranger", name="Stranger", email="stranger@example.com")
    state.add_repo("stranger/tools")
    tab = page.page
    state.auto_approve_as = "maint"
    tab.goto(f"{console.url}/admin/agreements/individual-cla")
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    tab.get_by_label("Repository (OWNER/REPO)").fill("octo-org/gadgets")
    tab.get_by_label("Repository collaborators need not sign").first.check()
    tab.get_by_role("button", name="Link repository").click()
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    assert "octo-org/gadgets is covered by individual-cla" in tab.locator(".notice").inner_text()
    row = tab.locator("tr", has_text="repository octo-org/gadgets")
    assert row.locator("td").nth(2).inner_text() == "yes"
    assert "repo.link" in tab.locator("table", has_text="repo.link").inner_text()

    tab.get_by_label("Repository (OWNER/REPO)").fill("stranger/tools")
    tab.get_by_role("button", name="Link repository").click()
    assert "GitHub does not say you administer the repository stranger/tools" in (
        tab.locator("main").inner_text()
    )
    tab.goto(f"{console.url}/admin/agreements/individual-cla")
    assert tab.locator("tr", has_text="stranger/tools").count() == 0
    assert page.csp_violations == []


def test_a_maintainer_publishes_a_new_version_after_a_preview_and_the_pull_request_turns_red(
    cla_factory: CLAFactory, live_factory: LiveFactory, page: BrowserPage
) -> None:
    """A material change: the preview shows the text as signers will read it and the diff;
    once published, the sign page shows version 2, dave's signature no longer counts and
    his pull request turns red. The audit log names the maintainer and exports as JSON."""
    cla, console = console_for(cla_factory, live_factory)
    state = cla.state
    number, sha = green_pull_request_of_dave(cla)

    tab = page.page
    state.auto_approve_as = "maint"
    tab.goto(f"{console.url}/admin/agreements/individual-cla")
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    chart = tab.get_by_role("img", name="New signatures per month")
    assert chart.locator("rect.bar").count() == 12
    tab.get_by_role("link", name="Publish a new version").click()
    text = tab.get_by_label("Text (Markdown)")
    text.fill(text.input_value() + "\n## Patents\n\nYou also grant a **patent licence**.\n")
    tab.get_by_label("Material: everyone signs again", exact=False).check()
    tab.get_by_role("button", name="Preview").click()
    assert tab.locator("main h1").inner_text() == "Preview of version 2 of Individual CLA"
    assert "+You also grant a **patent licence**." in tab.locator("pre.diff").inner_text()
    preview = tab.get_by_role("region", name="Preview of the new text")
    assert preview.locator("strong", has_text="patent licence").count() == 1
    tab.get_by_role("button", name="Publish version 2 (material)").click()
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    assert "Version 2 (material)" in tab.locator(".notice").inner_text()
    versions = tab.locator("table", has_text="SHA-256")
    assert versions.locator("tbody tr").first.locator("td").nth(1).inner_text() == "material"

    cla.wait_for(lambda: cla.status_state(REPO, sha) == "failure", what="red")
    cla.wait_idle()
    tab.get_by_role("link", name="Waiting pull requests").click()
    assert "dave" in tab.locator("tr", has_text=f"{REPO}#{number}").inner_text()

    tab.get_by_role("link", name="Overview").click()
    with tab.expect_download() as download_info:
        tab.get_by_role("link", name="audit JSON").click()
    download = download_info.value
    assert download.suggested_filename == "individual-cla-audit.json"
    rows = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    published = [row for row in rows if row["action"] == "version.publish"]
    assert published[-1]["after"]["version"] == 2
    assert published[-1]["actor"] == str(state.user("maint")["id"])

    tab.goto(f"{console.url}/sign/individual-cla")
    assert tab.get_by_role("heading", name="Patents").count() == 1
    assert page.csp_violations == []
