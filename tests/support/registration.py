"""Registering the GitHub App through first-run setup (``/setup/``) and GitHub's manifest flow,
as a browser does it, against the emulator.

Depends on httpx, ``tests.support.pages`` and ``tests/conftest.py``'s ``Live`` (for types)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from tests.support.pages import field_value, form_action

if TYPE_CHECKING:
    from tests.conftest import Live


def start_setup(client: httpx.Client, name: str = "Acme CLA", org: str = "") -> httpx.Response:
    """Open /setup/ and submit the form: the page that posts the manifest to GitHub."""
    page = client.get("/setup/")
    assert page.status_code == 200, page.text
    return client.post(
        "/setup/",
        data={"csrf_token": field_value(page.text, "csrf_token"), "name": name, "org": org},
    )


def through_github(live: Live | str, page: httpx.Response, login: str = "alice") -> str:
    """What the browser does on GitHub (``live``'s emulator, or the emulator at that URL):
    post the manifest, confirm as ``login``; returns the URL GitHub sends the browser back
    to."""
    github_url = live if isinstance(live, str) else live.emulator.url
    assert page.status_code == 200, page.text
    action = form_action(page.text)
    assert action.startswith(github_url + "/")
    with httpx.Client(timeout=10, follow_redirects=False) as browser:
        shown = browser.post(action, data={"manifest": field_value(page.text, "manifest")})
        assert shown.status_code == 200, shown.text
        form = {
            key: field_value(shown.text, key)
            for key in ("manifest", "state")
            if f'name="{key}"' in shown.text
        }
        if 'name="org"' in shown.text:
            form["org"] = field_value(shown.text, "org")
        form.update({"login": login, "name": field_value(shown.text, "name")})
        back = browser.post(github_url + "/settings/apps/new/confirm", data=form)
    assert back.status_code == 302, back.text
    return back.headers["location"]
