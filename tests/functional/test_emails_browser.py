"""A person links the email addresses GitHub verified for them from a clean browser
(headless Chromium, every page scanned by axe-core, no CSP violation, no script error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext
from tests.conftest import Live

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
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{live.url}/me/emails")  # signed out: sign-in first, then back here
    page.wait_for_url(f"{live.url}/me/emails")
    assert page.locator("main h1").inner_text() == "My email addresses"
    assert "No address is linked" in page.locator("main").inner_text()

    page.get_by_role("button", name="Link my verified addresses from GitHub").click()
    page.wait_for_url(f"{live.url}/me/emails")
    status = page.get_by_role("status").inner_text()
    assert "GitHub verified" in status and "without being verified" in status
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
