"""The demo's proven-email pull request (issue 14), as a newcomer meets it: acme/widgets#2 by
dave carries his work address, which GitHub did not link; it turns green once dave has
signed and proved the address on /me/emails, in a browser (every page axe-scanned)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext
from tests.functional.test_demo import Demo, _wait_for, demo  # noqa: F401 - the fixture

from undersign.emulator.demo import WORK_ADDRESS

pytestmark = pytest.mark.browser


def _pull(demo: Demo) -> dict[str, Any]:
    pulls = httpx.get(f"{demo.github_url}/_emulator/pulls").json()
    found: dict[str, Any] = next(
        p for p in pulls if p["repo"] == "acme/widgets" and p["number"] == 2
    )
    return found


def test_proving_the_work_address_turns_the_demo_pull_request_green(
    demo: Demo,  # noqa: F811 - the fixture
    audited_context: Callable[..., BrowserContext],
) -> None:
    pull = _wait_for(
        lambda: (p := _pull(demo))["combined_state"] == "failure" and p["comments"] and p,
        60,
        "acme/widgets#2 to go red",
    )
    (comment,) = pull["comments"]
    assert WORK_ADDRESS in comment["body"]
    assert f"]({demo.app_url}/me/emails)" in comment["body"]
    _wait_for(lambda: "Try the loop" in demo.log.read_text(), 30, "the loop's steps")
    told = demo.log.read_text().split("Try the loop", 1)[1]
    assert f"{demo.app_url}/me/emails" in told and "acme/widgets#2" in told

    page = audited_context().new_page()
    sign_url = next(s for s in pull["statuses"] if s["context"] == "license/cla")["target_url"]
    page.goto(sign_url)
    page.get_by_role("link", name="Sign in with GitHub to sign").click()
    page.get_by_label("dave").check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{demo.app_url}/sign/**")
    page.get_by_label("Full name").fill("Dave Lister")
    page.get_by_label("I have read and agree", exact=False).check()
    page.get_by_role("button", name="Sign", exact=True).click()
    page.get_by_role("link", name="Back to pull request #2 in acme/widgets").wait_for()
    # Signed, but the commit's author is still nobody undersign knows: red.
    _wait_for(
        lambda: "@dave" not in (p := _pull(demo))["comments"][0]["body"] and p,
        15,
        "the comment to drop dave's signature request",
    )
    assert _pull(demo)["combined_state"] == "failure"

    page.goto(f"{demo.app_url}/me/emails")
    page.get_by_role("button", name="Link my verified addresses from GitHub").click()
    assert "user:email" in page.locator("body").inner_text()  # the emulator's consent page
    page.get_by_label("dave").check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{demo.app_url}/me/emails")
    assert WORK_ADDRESS in page.locator("main table").inner_text()
    assert "dave@old-job.example" not in page.locator("main table").inner_text()
    _wait_for(
        lambda: _pull(demo)["combined_state"] == "success",
        15,
        "acme/widgets#2 to turn green once dave proved the address",
    )
