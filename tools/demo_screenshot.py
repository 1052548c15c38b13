"""Regenerate docs/demo.png and docs/demo-github.png from a running `make demo`.

Usage: make demo (in another terminal), then .venv/bin/python tools/demo_screenshot.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

APP = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
GITHUB = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8001"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def main() -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{GITHUB}/_emulator/")
        page.screenshot(path=str(DOCS / "demo-github.png"), full_page=False)
        page.goto(f"{APP}/sign/individual-cla?repo=acme/widgets&pr=1")
        page.get_by_role("link", name="Sign in with GitHub to sign").click()
        page.get_by_label("bob").check()
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url(f"{APP}/sign/**")
        page.get_by_label("Full name").fill("Bob Builder")
        page.screenshot(path=str(DOCS / "demo.png"), full_page=False)
        browser.close()


if __name__ == "__main__":
    main()
