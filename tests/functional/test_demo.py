"""`undersign demo` as a newcomer meets it: a PR waits on bob, bob signs in a browser, it turns
green within seconds, with one comment edited in place."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext
from tests.support.demo import Demo, wait_for
from tests.support.demo import demo as demo  # the fixture

from undersign.emulator.demo import CORPORATE_ADDRESS, CORPORATE_DOMAIN, WORK_ADDRESS

pytestmark = pytest.mark.browser


def test_red_then_sign_then_green(demo: Demo, audited_context: Callable[..., BrowserContext]):
    pull = wait_for(
        lambda: (p := demo.pull())["combined_state"] == "failure" and p["comments"] and p,
        30,
        "the demo PR to go red with a comment",
    )
    (status,) = [s for s in pull["statuses"] if s["context"] == "license/cla"]
    assert "0 of 1" in status["description"]
    (comment,) = pull["comments"]
    assert "@bob" in comment["body"]
    sign_url = status["target_url"]
    assert sign_url.startswith(f"{demo.app_url}/sign/")

    wait_for(lambda: "Try the loop" in demo.log.read_text(), 30, "the loop's steps")
    told = demo.log.read_text().split("Try the loop", 1)[1]
    assert f"1. Open the GitHub emulator: {demo.github_url}/_emulator/" in told
    assert "choose bob" in told and "turns green" in told

    context = audited_context()  # axe-core scans every page below
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None,
    )
    page.goto(f"{demo.github_url}/_emulator/")
    page.get_by_role("link", name="acme/widgets#1").click()
    page.get_by_role("button", name="Pause auto-refresh").click()
    page.goto(sign_url)
    page.get_by_role("link", name="Sign in with GitHub to sign").click()
    page.get_by_label("bob").check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{demo.app_url}/sign/**")
    page.get_by_label("Full name").fill("Bob Builder")
    page.get_by_label("Email").fill("bob@example.com")
    page.get_by_label("I have read and agree", exact=False).check()
    signed_at = time.monotonic()
    page.get_by_role("button", name="Sign", exact=True).click()
    page.get_by_role("link", name="Back to pull request #1 in acme/widgets").wait_for()
    assert errors == []  # no 404 (favicon or other) on any page of the loop

    pull = wait_for(
        lambda: (
            (p := demo.pull())["combined_state"] == "success"
            and "@bob" not in p["comments"][0]["body"]
            and p
        ),
        15,
        "the demo PR to turn green after bob signed",
    )
    assert time.monotonic() - signed_at < 15
    (comment,) = pull["comments"]  # edited in place, never a second one
    assert "thank" in comment["body"].lower()

    # The demo's maintainer: alice owns acme on the emulator, so the console shows her both
    # demo agreements, bob's signature among them.
    assert f"The maintainers' console: {demo.app_url}/admin/" in told
    console = audited_context().new_page()
    console.goto(f"{demo.app_url}/admin/")
    console.get_by_label("alice").check()
    console.get_by_role("button", name="Authorize").click()
    console.wait_for_url(f"{demo.app_url}/admin/")
    console.get_by_role("link", name="Acme Individual CLA").click()
    console.get_by_role("link", name="Signatures", exact=True).click()
    assert "Bob Builder" in console.locator("table").inner_text()


def test_proving_the_work_address_turns_the_demo_pull_request_green(
    demo: Demo,
    audited_context: Callable[..., BrowserContext],
) -> None:
    """Issue 14: acme/widgets#2 by dave carries his work address, which GitHub did not
    link; it turns green once dave has signed and proved the address on /me/emails."""
    pull = wait_for(
        lambda: (p := demo.pull(2))["combined_state"] == "failure" and p["comments"] and p,
        60,
        "acme/widgets#2 to go red",
    )
    (comment,) = pull["comments"]
    assert WORK_ADDRESS in comment["body"]
    assert f"]({demo.app_url}/me/emails)" in comment["body"]
    wait_for(lambda: "Try the loop" in demo.log.read_text(), 30, "the loop's steps")
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
    wait_for(
        lambda: "@dave" not in (p := demo.pull(2))["comments"][0]["body"] and p,
        15,
        "the comment to drop dave's signature request",
    )
    assert demo.pull(2)["combined_state"] == "failure"

    page.goto(f"{demo.app_url}/me/emails")
    page.get_by_role("button", name="Link my verified addresses from GitHub").click()
    assert "user:email" in page.locator("body").inner_text()  # the emulator's consent page
    page.get_by_label("dave").check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{demo.app_url}/me/emails")
    assert WORK_ADDRESS in page.locator("main table").inner_text()
    assert "dave@old-job.example" not in page.locator("main table").inner_text()
    wait_for(
        lambda: demo.pull(2)["combined_state"] == "success",
        15,
        "acme/widgets#2 to turn green once dave proved the address",
    )


def test_a_company_approving_its_domain_and_erin_proving_her_address_turn_it_green(
    demo: Demo,
    audited_context: Callable[..., BrowserContext],
) -> None:
    """Issue 14: acme/widgets#3 by erin (of BigCorp, which signed the corporate CLA) stays
    red when frank, its CLA manager, approves bigcorp.example, and turns green once erin
    proves her address there."""
    pull = wait_for(
        lambda: (p := demo.pull(3))["combined_state"] == "failure" and p["comments"] and p,
        60,
        "acme/widgets#3 to go red",
    )
    (comment,) = pull["comments"]
    assert "ask your company's CLA manager" in comment["body"]
    wait_for(lambda: "Try the loop" in demo.log.read_text(), 30, "the loop's steps")
    assert "acme/widgets#3" in demo.log.read_text().split("Try the loop", 1)[1]

    context = audited_context()
    page = context.new_page()
    page.goto(f"{demo.app_url}/companies")
    page.get_by_label("frank").check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{demo.app_url}/companies")
    page.get_by_role("link", name="BigCorp Ltd").click()
    page.get_by_label("Kind").select_option("domain")
    page.get_by_label("Login, organisation or domain").fill(CORPORATE_DOMAIN)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{demo.app_url}/companies/*")
    assert CORPORATE_DOMAIN in page.locator("#approvals").inner_text()
    time.sleep(2)  # the re-evaluation has nothing to change: nobody proved an address there
    assert demo.pull(3)["combined_state"] == "failure"
    context.close()

    page = audited_context().new_page()
    page.goto(f"{demo.app_url}/me/emails")
    page.get_by_label("erin").check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{demo.app_url}/me/emails")
    page.get_by_role("button", name="Link my verified addresses from GitHub").click()
    page.get_by_label("erin").check()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{demo.app_url}/me/emails")
    assert CORPORATE_ADDRESS in page.locator("main table").inner_text()
    wait_for(
        lambda: demo.pull(3)["combined_state"] == "success",
        15,
        "acme/widgets#3 to turn green once erin proved her BigCorp address",
    )
