"""Every page a person can reach, in headless Chromium: zero CSP violations, no script run
from stored input (SECURITY 6.B.22, 6.B.30).

The ``page`` fixture (tests/conftest.py) collects every console message about the Content
Security Policy; a ``dialog`` listener catches any alert() an injection would raise.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Dialog, Route
from tests.conftest import BrowserPage, Live

from undersign.agreements.service import AgreementService

pytestmark = pytest.mark.browser

XSS_NAME = "<script>alert('name')</script>"
XSS_COMPANY = "\"><img src=x onerror=alert('company')>"
TEXT_V1 = (
    "# CLA\n\nYou agree.\n\n<script>alert('text')</script>\n\n"
    "[click](javascript:alert('link')) <img src=x onerror=alert('img')>\n"
)
FIELDS = [
    {"name": "company", "label": "Company", "type": "text"},
    {"name": "website", "label": "Web site", "type": "url"},
]


def _record_and_dismiss(dialog: Dialog, seen: list[str]) -> None:
    """An injected ``alert()`` that ran: note its message, close it so the page goes on."""
    seen.append(dialog.message)
    dialog.dismiss()


def _publish(live: Live, text: str) -> None:
    with live.database.session() as session:
        AgreementService(session).add_or_update("cla", "Individual CLA", text, FIELDS)


def test_every_page_has_no_csp_violation_and_runs_no_injected_script(
    live: Live, page: BrowserPage
) -> None:
    """SECURITY 6.B.30: walk home, the sign page (anonymous, then signed in), a refused
    submission, the thank-you page, my signatures, the receipt, the revoke confirmation, the
    changes page after a material change, and the error pages (404, 405, each sign-in
    failure): no CSP violation anywhere. SECURITY 6.B.22: name/company/URL injections are
    shown as text, no dialog opens, no javascript: href is rendered. (There is no admin
    area yet, so the admin's view of 6.B.22 is the signer's own pages.)"""
    _publish(live, TEXT_V1)
    tab = page.page
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: _record_and_dismiss(dialog, dialogs))
    visited: list[str] = []

    def visit(path: str, status: int) -> None:
        response = tab.goto(live.url + path)
        assert response is not None and response.status == status, (path, response)
        visited.append(path)
        assert page.accessibility.scan(tab) == [], path  # axe-core, every page we walk

    visit("/", 200)
    visit("/sign/cla?repo=acme/widgets&pr=7", 200)
    assert "<script>alert('text')</script>" in tab.locator("#agreement-text").inner_text()
    visit("/nowhere", 404)
    visit("/logout", 405)
    visit("/sign/unknown", 404)
    visit("/login/callback", 400)  # no state
    visit("/login/callback?code=x&state=forged", 400)
    visit("/login/callback/extra/path", 404)

    live.emulator.state.auto_approve_as = "alice"
    tab.goto(live.url + "/sign/cla?repo=acme/widgets&pr=7")
    tab.get_by_role("link", name=re.compile("Sign in with GitHub")).first.click()
    tab.wait_for_url(live.url + "/sign/cla?repo=acme/widgets&pr=7")
    visited.append("sign page, signed in")

    # A refused submission (javascript: URL) re-renders the form with the hostile values.
    tab.fill("#name", XSS_NAME)
    tab.fill("#field_company", XSS_COMPANY)
    tab.fill("#field_website", "javascript:alert('url')")
    tab.check("#agree")
    tab.click("#sign-button")
    tab.wait_for_load_state()
    assert tab.locator("#name").input_value() == XSS_NAME
    visited.append("refused submission")

    tab.fill("#field_website", "https://example.org/")
    tab.check("#agree")
    tab.click("#sign-button")
    tab.wait_for_url(live.url + "/sign/cla/thanks/**")
    assert XSS_NAME in tab.locator("main").inner_text()
    visited.append("thanks")
    thanks_html = tab.content()
    assert "<script>alert(" not in thanks_html.replace("&lt;script&gt;", "")

    visit("/me/signatures", 200)
    signature_id = int(
        re.search(r"/me/signatures/(\d+)/revoke", tab.content()).group(1)  # type: ignore[union-attr]
    )
    with tab.expect_download():
        tab.get_by_role("link", name="Receipt").click()
    visit(f"/me/signatures/{signature_id}/revoke", 200)
    visit(f"/me/signatures/{signature_id + 1000}/revoke", 404)

    _publish(live, TEXT_V1 + "\nYou also grant a patent licence.\n")
    visit(f"/me/signatures/{signature_id}/changes", 200)
    visit("/sign/cla", 200)  # the diff shown above the new version
    visit("/me/signatures", 200)

    hrefs = tab.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    assert dialogs == []
    assert page.csp_violations == [], page.csp_violations
    assert len(visited) >= 16
    assert len(page.accessibility.scanned) >= 16  # each page was scanned, not only visited


def test_an_injected_inline_script_is_blocked_and_reported(live: Live, page: BrowserPage) -> None:
    """SECURITY 6.B.30, second half: the listener works. An inline script smuggled into a
    served page (here: by the test, rewriting the response) is blocked by the CSP and shows
    up as a violation, and does not run."""
    tab = page.page
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: _record_and_dismiss(dialog, dialogs))

    def inject(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace("</main>", "<script>alert('xss')</script></main>")
        route.fulfill(response=response, body=body)

    tab.route(live.url + "/", inject)
    tab.goto(live.url + "/")
    assert dialogs == []
    assert page.csp_violations, "the inline script was not reported"
