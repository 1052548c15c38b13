"""Planted bug for rule markup-outside-sanitizer: never imported."""

from markupsafe import Markup


def greeting(name: str) -> Markup:
    return Markup(f"<b>Hello {name}</b>")
