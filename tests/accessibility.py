"""axe-core in every browser test: each page a test loads is scanned, and any violation fails
the test that loaded it, so pages added later are held to the same bar without anyone
remembering to add a check.

axe-core comes bundled with the ``axe-playwright-python`` package (no download at test time).
It is added to every page as an init script, which the browser runs outside the page's
Content-Security-Policy, so the scan needs no change to the CSP it also checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import axe_playwright_python
from playwright.sync_api import BrowserContext, ConsoleMessage, Page

AXE_SOURCE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(
    encoding="utf-8"
)
REPORT_PREFIX = "undersign-axe "

# Scans when the page has loaded; the promise is kept on window so a test can wait for it.
SCAN_ON_LOAD = """
(() => {
  const prefix = __PREFIX__;
  // Pages served over HTTP only: not the browser's own error pages (a refused frame, ...).
  if (!location.protocol.startsWith("http")) return;
  window.addEventListener("load", () => {
    window.__undersignAxe = window.axe
      .run(document, { resultTypes: ["violations"] })
      .then((result) => {
        const violations = result.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
        }));
        console.debug(prefix + JSON.stringify({ url: location.href, violations }));
        return violations;
      });
  });
})();
""".replace("__PREFIX__", json.dumps(REPORT_PREFIX))


@dataclass
class AccessibilityAudit:
    """What axe found on every page of one browser context."""

    scanned: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> BrowserContext:
        context.add_init_script(AXE_SOURCE)
        context.add_init_script(SCAN_ON_LOAD)
        context.on("console", self._on_console)
        return context

    def _on_console(self, message: ConsoleMessage) -> None:
        if not message.text.startswith(REPORT_PREFIX):
            return
        report = json.loads(message.text[len(REPORT_PREFIX) :])
        self.scanned.append(report["url"])
        for violation in report["violations"]:
            self.violations.append({"url": report["url"], **violation})

    def scan(self, page: Page) -> list[dict[str, Any]]:
        """Wait for the scan of the page shown now (pages a test leaves at once may otherwise
        go unscanned) and return its violations."""
        page.wait_for_load_state("load")
        page.wait_for_function("() => window.__undersignAxe !== undefined")
        found: list[dict[str, Any]] = page.evaluate("() => window.__undersignAxe")
        return found

    def assert_clean(self) -> None:
        assert not self.violations, "axe-core found accessibility problems:\n" + "\n".join(
            f"  {v['url']}: {v['id']} ({v['impact']}) {v['help']} at {v['targets']}"
            for v in self.violations
        )
