"""The accessibility scan itself: it catches what it is there to catch, on a page of ours."""

from __future__ import annotations

import pytest
from playwright.sync_api import Route
from tests.conftest import BrowserPage, Live

from undersign.agreements.service import AgreementService

pytestmark = pytest.mark.browser

LONG_TEXT = "# CLA\n\n" + "\n\n".join(f"Clause {n}: you agree." for n in range(80))


def test_the_agreement_text_box_is_reachable_by_keyboard(live: Live, page: BrowserPage) -> None:
    """A long agreement scrolls inside its box; a keyboard user can focus the box and scroll."""
    with live.database.session() as session:
        AgreementService(session).add_or_update("cla", "Individual CLA", LONG_TEXT)
    tab = page.page
    tab.goto(f"{live.url}/sign/cla")
    assert page.accessibility.scan(tab) == []
    box = tab.locator("#agreement-text")
    assert box.evaluate("el => el.scrollHeight > el.clientHeight")  # it really scrolls
    for _ in range(20):  # Tab from the top of the page, in document order, until the box
        tab.keyboard.press("Tab")
        if box.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("the agreement text is not reachable with Tab")
    tab.keyboard.press("PageDown")
    # Scrolling may be smooth (animated): wait for it rather than read at once.
    tab.wait_for_function("() => document.getElementById('agreement-text').scrollTop > 0")


def test_the_scan_reports_an_unreachable_scrolling_box(live: Live, page: BrowserPage) -> None:
    """The same page as it was before the fix (no tabindex on the box): axe must say so,
    otherwise a clean scan proves nothing."""
    with live.database.session() as session:
        AgreementService(session).add_or_update("cla", "Individual CLA", LONG_TEXT)
    tab = page.page

    def without_tabindex(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace('tabindex="0" ', "")
        route.fulfill(response=response, body=body)

    tab.route(f"{live.url}/sign/cla", without_tabindex)
    tab.goto(f"{live.url}/sign/cla")
    found = page.accessibility.scan(tab)
    assert [v["id"] for v in found] == ["scrollable-region-focusable"]
    page.accessibility.violations.clear()  # seen and expected: do not fail the fixture
