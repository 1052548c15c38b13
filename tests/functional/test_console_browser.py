"""A maintainer uses the console from a clean browser (headless Chromium, axe-core on
every page): sign in, revoke a contributor's signature, watch their pull request turn red,
see it waiting, export the signatures as CSV. The console runs with the bot's token and
shares the workers' queue; GitHub is the emulator.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from tests.conftest import BOT_LOGIN, BrowserPage, CLAFactory, LiveFactory

pytestmark = pytest.mark.browser

REPO = "octo-org/widgets"


def test_a_maintainer_revokes_a_signature_and_the_pull_request_turns_red(
    cla_factory: CLAFactory, live_factory: LiveFactory, page: BrowserPage
) -> None:
    cla = cla_factory()
    state = cla.state
    # The bot reads memberships as an org member; ``maint`` owns the org the CLA covers.
    state.add_org_member("octo-org", BOT_LOGIN)
    state.add_org_member("octo-org", "maint", admin=True)
    console = live_factory(
        UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT_LOGIN),
        replace={
            "instance_path": cla.live.settings.instance_path,  # the workers' SQLite queue
            "queue_name": cla.live.settings.queue_name,  # or their Redis queue
        },
    )
    cla.sign("dave")
    pr = state.add_pull_request(REPO, user_login="dave", n_commits=1)
    status, _ = cla.deliver("pull_request", state.pull_request_event(REPO, pr["number"], "opened"))
    assert status == 202
    sha = str(state.pull_request(REPO, pr["number"])["head"]["sha"])
    cla.wait_for(lambda: cla.status_state(REPO, sha) == "success", what="green")
    cla.wait_idle()

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
    row = tab.locator("tr", has_text=f"{REPO}#{pr['number']}")
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
    cla = cla_factory()
    state = cla.state
    state.add_org_member("octo-org", BOT_LOGIN)
    state.add_org_member("octo-org", "maint", admin=True)
    state.add_user("stranger", name="Stranger", email="stranger@example.com")
    state.add_repo("stranger/tools")
    console = live_factory(
        UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT_LOGIN),
        replace={
            "instance_path": cla.live.settings.instance_path,
            "queue_name": cla.live.settings.queue_name,
        },
    )
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
