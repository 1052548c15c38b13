"""Reading the app's HTML pages as a browser would: a form's hidden fields, its CSRF token.

Shared so that every test reads a page the same way (and unescapes what the template escaped).
Depends on nothing of undersign."""

from __future__ import annotations

import html
import re


def field_value(page: str, name: str) -> str:
    """The value of the first field of ``page`` named ``name``, unescaped."""
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no {name} field on the page"
    return html.unescape(match.group(1))


def csrf_token(page: str) -> str:
    """The CSRF token of the first form of ``page``."""
    return field_value(page, "csrf_token")


def form_action(page: str) -> str:
    """Where the last POST form of ``page`` sends its answers."""
    actions = re.findall(r'<form method="post" action="([^"]+)"', page)
    return html.unescape(actions[-1])


def form_from(page: str, **values: str) -> dict[str, str]:
    """The hidden fields of the signing form plus valid answers, overridden by ``values``."""
    data = {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }
    data.update({"name": "Alice Example", "email": "alice@example.org", "agree": "yes"})
    data.update(values)
    return data
