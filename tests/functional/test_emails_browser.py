"""A person links the email addresses GitHub verified for them from a clean browser
(headless Chromium, every page scanned by axe-core, no CSP violation, no script error)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext
from tests.conftest import Live, page_errors

pytestmark = pytest.mark.browser


def test_a_person_links_and_removes_their_verified_addresses(
    live: Live, audited_context: Callable[..., BrowserContext]
) -> None:
    state = live.emulator.state
    state.add_email("alice", "Alice@Work.example", verified=True)
    state.add_email("alice", "alice@pending.example", verified=False)
    state.auto_approve_as = "alice"
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)

    page.goto(f"{live.url}/me/emails")  # signed out: sign-in first, then back here
    page.wait_for_url(f"{live.url}/me/emails")
    assert page.locator("main h1").inner_text() == "My email addresses"
    assert "No address is linked" in page.locator("main").inner_text()

    page.get_by_role("button", name="Link my verified addresses from GitHub").click()
    page.wait_for_url(f"{live.url}/me/emails")
    status = page.get_by_role("status").inner_text()
    assert "GitHub verified" in status and "without being verified" in status
    assert "1 more is listed" in status and "verify it on GitHub" in status
    rows = page.locator("main table tbody tr")
    assert rows.count() == 3  # the primary, the noreply and the work address
    text = page.locator("main table").inner_text()
    assert "alice@work.example" in text and "alice@pending.example" not in text

    page.get_by_role("button", name="Remove alice@work.example").click()
    page.wait_for_url(f"{live.url}/me/emails")
    assert "alice@work.example is no longer linked" in page.get_by_role("status").inner_text()
    assert "alice@work.example" not in page.locator("main table").inner_text()
    assert page.locator("main table tbody tr").count() == 2
    context.close()
    assert problems == []


def test_github_is_asked_for_the_signed_in_account(
    live: Live, audited_context: Callable[..., BrowserContext]
) -> None:
    """GitHub's page suggests the account signed in here (its ``login`` hint), so the person
    approves as themselves: an approval as anyone else proves nothing and is refused."""
    state = live.emulator.state
    state.add_user("dave", name="Dave Lister", email="dave@example.com")
    state.add_email("dave", "dave.lister@reddwarf.example", verified=True)
    state.auto_approve_as = "dave"
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)
    page.goto(f"{live.url}/me/emails")
    page.wait_for_url(f"{live.url}/me/emails")

    state.auto_approve_as = None  # GitHub's own page this time, as a person sees it
    page.get_by_role("button", name="Link my verified addresses from GitHub").click()
    page.wait_for_url(f"{live.emulator.url}/login/oauth/authorize?*")
    assert page.locator("input[name=login]:checked").get_attribute("value") == "dave"
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{live.url}/me/emails")
    assert "dave.lister@reddwarf.example" in page.locator("main table").inner_text()
    context.close()
    assert problems == []
