"""A person signs in from a clean browser through the emulator's approval page."""

from __future__ import annotations

import pytest
from tests.conftest import BrowserPage, Live

pytestmark = pytest.mark.browser


def test_sign_in_from_a_browser(live: Live, page: BrowserPage):
    tab = page.page
    tab.goto(live.url + "/")
    tab.get_by_role("link", name="Sign in with GitHub").first.click()
    tab.wait_for_url(f"{live.emulator.url}/login/oauth/authorize*")
    tab.get_by_label("alice").check()
    tab.get_by_role("button", name="Authorize").click()
    tab.wait_for_url(live.url + "/")
    assert tab.get_by_role("heading", name="Hello, alice!").is_visible()
    tab.get_by_role("button", name="Sign out").click()
    tab.wait_for_load_state()
    assert tab.get_by_role("link", name="Sign in with GitHub").first.is_visible()
    assert page.csp_violations == []
