"""Where a sign-in may send the browser afterwards.

An open redirector on a sign-in flow hands attackers a trusted-looking link to anywhere,
so ``next`` is only ever a path on this site.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

MAX_NEXT_LENGTH = 2000


def safe_next_path(value: str | None, default: str = "/") -> str:
    """Return ``value`` if it is a same-site path, else ``default``.

    Refused: absolute URLs, any scheme, protocol-relative ``//host``, ``/\\host`` and any
    backslash (browsers treat ``\\`` as ``/``), control and format characters (TAB, CR,
    LF, bidi overrides) also in percent-encoded form, and anything very long.
    """
    if not value or len(value) > MAX_NEXT_LENGTH:
        return default
    for candidate in (value, unquote(value)):
        if not candidate.startswith("/") or candidate.startswith("//"):
            return default
        if "\\" in candidate:
            return default
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in candidate):
            return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value
