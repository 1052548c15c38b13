"""A maintainer imports another tool's signatures from a clean browser (headless Chromium,
axe-core on every page): choose the file, read the check, choose it again to import, and
find the person among the signatures, marked imported. GitHub (the emulator) resolves the
login the file has no id for."""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import FilePayload
from tests.conftest import BrowserPage, CLAFactory, LiveFactory
from tests.support.console import console_for

pytestmark = pytest.mark.browser

FILE = b"login,name,email,signed_at\nerin-old,Erin Imported,erin@example.org,2018-03-01T10:00:00Z\n"


def test_a_maintainer_checks_then_imports_a_file(
    cla_factory: CLAFactory, live_factory: LiveFactory, page: BrowserPage
) -> None:
    cla, console = console_for(cla_factory, live_factory)
    cla.state.add_user("erin-old", name="Erin", email="erin@example.org")
    upload: FilePayload = {"name": "old-cla.csv", "mimeType": "text/csv", "buffer": FILE}
    tab = page.page
    cla.state.auto_approve_as = "maint"
    tab.goto(f"{console.url}/admin/agreements/individual-cla")
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla")
    tab.get_by_label("Made by").select_option("csv")
    tab.get_by_label("File", exact=True).set_input_files(upload)
    tab.get_by_role("button", name="Check the file").click()
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla/import")
    summary = tab.locator("#import-summary").inner_text()
    assert "would import 1, already present 0, problems 0" in summary
    assert "Nothing was stored" in summary
    assert tab.locator("#import-sha256").inner_text() == hashlib.sha256(FILE).hexdigest()

    tab.get_by_label("Choose the same file again").set_input_files(upload)
    tab.get_by_role("button", name="Import 1 signature").click()
    tab.wait_for_url(f"{console.url}/admin/agreements/individual-cla/signatures")
    assert "imported 1, already present 0" in tab.locator(".notice").inner_text()
    row = tab.locator("tr", has_text="erin-old")
    assert "Erin Imported" in row.inner_text()
    assert "(imported from csv)" in row.inner_text()
    assert page.csp_violations == []
