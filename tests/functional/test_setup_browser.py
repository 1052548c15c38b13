"""An instance admin registers the GitHub App from the setup page in a clean browser
(headless Chromium, axe-core on every page, the emulator's included): sign in, name the
app, confirm it on GitHub, come back to the install link, install it."""

from __future__ import annotations

import pytest
from tests.conftest import BrowserPage, LiveFactory

pytestmark = pytest.mark.browser


def test_an_admin_registers_and_installs_the_app(
    live_factory: LiveFactory, page: BrowserPage
) -> None:
    state = live_factory.emulator.state
    state.add_org("acme", admins=["carol"])
    admin = int(state.user("carol")["id"])
    live = live_factory(
        UNDERSIGN_GITHUB_TOKEN=state.issue_token("alice"), UNDERSIGN_ADMINS=str(admin)
    )
    tab = page.page
    state.auto_approve_as = "carol"
    tab.goto(f"{live.url}/login?next=/setup/")
    tab.wait_for_url(f"{live.url}/setup/")
    assert tab.locator("main h1").inner_text() == "Set up the GitHub App"
    tab.get_by_label("App name").fill("Acme CLA")
    tab.get_by_label("Organisation that owns the app").fill("acme")
    tab.get_by_role("button", name="Register a GitHub App").click()
    assert tab.locator("main h1").inner_text() == "Continue on GitHub"
    assert "checks" in tab.locator("table").inner_text()
    tab.get_by_role("button", name="Continue to GitHub").click()
    tab.wait_for_url(f"{live.emulator.url}/organizations/acme/settings/apps/new?state=*")
    assert "Create GitHub App for acme" in tab.locator("h1").inner_text()
    tab.get_by_role("button", name="Create GitHub App").click()
    tab.wait_for_url(f"{live.url}/setup/")
    assert "Registered: acme-cla" in tab.locator("main").inner_text()
    tab.get_by_role("link", name="Install acme-cla on GitHub").click()
    tab.wait_for_url(f"{live.emulator.url}/apps/acme-cla/installations/new")
    tab.get_by_label("acme").check()
    tab.get_by_role("button", name="Install").click()
    tab.wait_for_url(f"{live.emulator.url}/_emulator/?installed=*")
    [app] = [a for a in state.apps.apps.values() if a.slug == "acme-cla"]
    installed = [i for i in state.apps.installations.values() if i.app_id == app.id]
    assert [state.users[i.account_id].login for i in installed] == ["acme"]
    assert page.csp_violations == []
