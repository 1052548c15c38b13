"""undersign: a self-hostable Contributor License Agreement service for GitHub."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__version__ = "0.1.0"


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """The app factory (kept lazy so domain code can import undersign without Flask)."""
    from undersign.web import create_app as _create_app

    return _create_app(*args, **kwargs)
