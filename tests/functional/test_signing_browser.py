"""A contributor signs an agreement from a clean browser (headless Chromium).

The whole path a person takes from a pull request's link: read the text, sign in with
GitHub (the emulator approves), fill in the form, sign, download the receipt, go back to
the pull request. No page may trigger a Content-Security-Policy violation or run script.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext
from tests.conftest import Live, page_errors, sign_quietly

from undersign.agreements.service import AgreementService

TEXT = (
    "# Individual Contributor License Agreement\n\n"
    "1. You grant the project a licence to your contributions.\n"
    "2. <script>document.title='pwned'</script> is shown as text.\n"
)

pytestmark = pytest.mark.browser


def test_a_contributor_signs_from_a_clean_browser(
    live: Live, audited_context: Callable[..., BrowserContext]
) -> None:
    with live.database.session() as session:
        AgreementService(session).add_or_update(
            "cla",
            "Individual CLA",
            TEXT,
            [{"name": "country", "label": "Country", "type": "country", "required": True}],
        )
    live.emulator.state.auto_approve_as = "alice"
    digest = hashlib.sha256(TEXT.encode()).hexdigest()

    context = audited_context(accept_downloads=True)  # no cookies, no storage
    page = context.new_page()
    problems = page_errors(page)

    page.goto(f"{live.url}/sign/cla?repo=acme/widgets&pr=7")
    assert page.locator("article > h1").inner_text() == "Individual CLA"
    assert "<script>document.title='pwned'</script>" in page.locator("#agreement-text").inner_text()
    assert page.title() != "pwned"
    assert page.locator("#text-sha256").inner_text() == digest

    page.get_by_role("link", name="Sign in with GitHub to sign").click()
    page.wait_for_url(f"{live.url}/sign/cla?repo=acme/widgets&pr=7")
    assert page.locator("#email").input_value() == "alice@example.com"
    assert not page.locator("#agree").is_checked()

    page.fill("#name", "Alice Liddell")
    page.select_option("#field_country", "GB")
    page.check("#agree")
    page.click("#sign-button")
    page.wait_for_url(f"{live.url}/sign/cla/thanks/**")
    assert "Thank you, Alice Liddell" in page.locator("main h1").inner_text()
    assert digest in page.content()

    with page.expect_download() as download_info:
        page.click("#download-receipt")
    download = download_info.value
    assert download.suggested_filename.startswith("undersign-receipt-cla-v1-")
    receipt = Path(download.path()).read_text(encoding="utf-8")
    assert f"- Text SHA-256: {digest}" in receipt
    assert "- Full name: Alice Liddell" in receipt
    assert "- Country: United Kingdom (GB)" in receipt

    back = page.locator("#back-to-pr")
    assert back.get_attribute("href") == f"{live.emulator.url}/acme/widgets/pull/7"

    page.goto(f"{live.url}/me/signatures")
    assert page.get_by_role("link", name="Individual CLA").count() == 1
    context.close()
    assert problems == []


def test_what_changed_since_a_signature_is_reachable_by_keyboard(
    live: Live, audited_context: Callable[..., BrowserContext]
) -> None:
    """A material change with a line wider than the page: the diff shown to the person who
    must sign again scrolls, and a scrolling box must take the keyboard's focus (axe-core
    scans the page; the test fails on any violation)."""
    long_line = "You grant us a licence " + "and more rights " * 40 + "."
    with live.database.session() as session:
        AgreementService(session).add_or_update("cla", "Individual CLA", "# CLA\n\nYou agree.\n")
    alice = int(live.emulator.state.user("alice")["id"])
    sign_quietly(live.database, "cla", "alice", alice)
    with live.database.session() as session:
        AgreementService(session).add_or_update(
            "cla", "Individual CLA", f"# CLA\n\nYou agree.\n\n{long_line}\n", change_type="material"
        )
    live.emulator.state.auto_approve_as = "alice"
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)
    page.goto(f"{live.url}/login?next=/sign/cla")
    page.wait_for_url(f"{live.url}/sign/cla")
    diff = page.locator("#changes-since pre.diff")
    assert long_line in diff.inner_text()
    assert diff.evaluate("box => box.scrollWidth > box.clientWidth")  # it does scroll
    diff.focus()
    assert diff.evaluate("box => box === document.activeElement")
    context.close()
    assert problems == []
