"""Proving email addresses as a person does it: the second authorization on the emulator.

Depends on ``tests/conftest.py``'s ``Live`` (the live app and its emulator)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from tests.support.pages import csrf_token

if TYPE_CHECKING:
    from tests.conftest import Live


def link_emails(live: Live, client: httpx.Client, login: str) -> httpx.Response:
    """Press "Link" on /me/emails as ``login`` and approve on the emulator; the page after."""
    page = client.get("/me/emails")
    assert page.status_code == 200, page.text
    to_github = client.post("/me/emails/link", data={"csrf_token": csrf_token(page.text)})
    assert to_github.status_code == 303, to_github.text
    authorize = to_github.headers["location"]
    live.emulator.state.auto_approve_as = login
    back = httpx.get(authorize, follow_redirects=False)
    assert back.status_code == 302
    landed = client.get(back.headers["location"])
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == "/me/emails"
    return client.get("/me/emails")
