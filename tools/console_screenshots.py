"""Regenerate the console's screenshots in docs/screenshots/ (run by hand, not by the tests).

Starts ``undersign demo`` on free ports with a fresh instance directory, lets bob sign the
demo agreement (so the signatures page has a row), signs in as alice (the owner of ``acme``
on the emulator) and saves 1280x800 PNGs of ``/admin/``, the agreement page, its
signatures page and the preview of a new version (nothing is published); then signs in as
frank, CLA manager of the demo's BigCorp Ltd, and saves its company page (full height).

Usage: .venv/bin/python tools/console_screenshots.py
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
AGREEMENT = "individual-cla"
VIEWPORT = {"width": 1280, "height": 800}
#: What ``undersign demo`` prints once its pull requests have their first verdicts.
READY = "undersign demo is ready"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(log: Path, demo: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Until the demo says it is ready (its pull requests got their first verdicts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            sys.exit(f"undersign demo stopped (exit {demo.returncode}); see {log}")
        if READY in log.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.3)
    sys.exit(f"undersign demo was not ready in {timeout:.0f} s; see {log}")


def sign_in_as(page: Page, app: str, login: str, path: str) -> None:
    """Through the emulator's approval page (no password), back to ``path``."""
    page.goto(f"{app}/login?next={path}")
    page.get_by_label(login).check()
    page.get_by_role("button", name="Authorize").click()
    for _ in range(300):  # the OAuth redirects, then the console asks GitHub
        if page.url.startswith(f"{app}{path}"):
            return
        page.wait_for_timeout(200)
    sys.exit(f"signing in as {login} ended on {page.url}")


def shoot(app: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_context(viewport=VIEWPORT).new_page()
        sign_in_as(page, app, "alice", "/admin/")
        signer = browser.new_context(viewport=VIEWPORT).new_page()
        signer.goto(f"{app}/sign/{AGREEMENT}?repo=acme/widgets&pr=1")
        signer.get_by_role("link", name="Sign in with GitHub to sign").click()
        signer.get_by_label("bob").check()
        signer.get_by_role("button", name="Authorize").click()
        signer.wait_for_url(f"{app}/sign/**")
        signer.fill("#name", "Bob Builder")
        signer.check("#agree")
        signer.click("#sign-button")
        signer.wait_for_url(f"{app}/sign/{AGREEMENT}/thanks/**")

        page.reload()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "console-index.png"))
        page.goto(f"{app}/admin/agreements/{AGREEMENT}")
        page.screenshot(path=str(SHOTS / "console-agreement.png"))
        page.goto(f"{app}/admin/agreements/{AGREEMENT}/signatures")
        page.screenshot(path=str(SHOTS / "console-signatures.png"))
        page.goto(f"{app}/admin/agreements/{AGREEMENT}/versions/new")
        text = page.get_by_label("Text (Markdown)")
        text.fill(text.input_value() + "\n## Patents\n\nYou also grant a **patent licence**.\n")
        page.get_by_label("Material: everyone signs again", exact=False).check()
        page.get_by_role("button", name="Preview").click()
        page.wait_for_url(f"{app}/admin/agreements/{AGREEMENT}/versions/preview")
        page.screenshot(path=str(SHOTS / "console-version-preview.png"))

        manager = browser.new_context(viewport=VIEWPORT).new_page()
        sign_in_as(manager, app, "frank", "/companies")
        manager.get_by_role("link", name="BigCorp Ltd").click()
        manager.wait_for_url(f"{app}/companies/*")
        manager.screenshot(path=str(SHOTS / "company-page.png"), full_page=True)
        browser.close()


def main() -> None:
    port, github_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as instance:
        log = Path(instance) / "demo.log"
        with log.open("wb") as output:
            demo = subprocess.Popen(  # noqa: S603 - our own command line, fixed arguments
                [
                    str(Path(sys.executable).with_name("undersign")),
                    "demo",
                    f"--port={port}",
                    f"--github-port={github_port}",
                ],
                env={**os.environ, "UNDERSIGN_INSTANCE_PATH": instance},
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_ready(log, demo)
            shoot(f"http://127.0.0.1:{port}")
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=15)
            except subprocess.TimeoutExpired:
                demo.kill()
    saved = sorted(p.name for p in [*SHOTS.glob("console-*.png"), *SHOTS.glob("company-*.png")])
    print(f"saved {', '.join(saved)} in {SHOTS}")


if __name__ == "__main__":
    main()
