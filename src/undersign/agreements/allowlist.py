"""The allowlist rule: which logins an allowlist entry exempts.

One rule for both sides: agreements validate and store entries with it, and the verdict
(``enforcement.policy.Exemptions``) matches contributors with it, so what an administrator
saves is exactly what the check applies. Depends on ``agreements.errors`` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from undersign.agreements.errors import InvalidInput

__all__ = [
    "ALLOWLIST_RE",
    "allowlist_matches",
    "compile_login_pattern",
    "normalize_allowlist_pattern",
]

ALLOWLIST_RE = re.compile(r"[a-z0-9_\-\[\]*]{1,100}")


def compile_login_pattern(entry: str) -> re.Pattern[str] | None:
    """Compile one allowlist entry; None for a blank entry.

    Matching is case-insensitive (GitHub logins are). ``*`` is the only wildcard (any run of
    characters, possibly empty); every other character is literal, in particular ``[``, ``]``
    and ``?``, so ``dependabot[bot]`` means exactly that login and ``*[bot]`` means "any login
    ending in ``[bot]``". A leading ``@`` is ignored so ``@alice`` works as people type it.
    """
    entry = entry.strip().removeprefix("@").strip().casefold()
    if not entry:
        return None
    regex = ".*".join(re.escape(part) for part in entry.split("*"))
    return re.compile(regex, re.DOTALL)


def normalize_allowlist_pattern(value: str) -> str:
    """The stored form of an entry (lowercased); InvalidInput for one that is not a login
    pattern, or that is only ``*`` (it would exempt everyone)."""
    pattern = value.strip().lower()
    if not ALLOWLIST_RE.fullmatch(pattern) or not pattern.strip("*"):
        raise InvalidInput(
            f"{value!r} is not an allowlist pattern: use a login such as dependabot[bot], "
            "optionally with * as a wildcard (a pattern of only * is refused)"
        )
    return pattern


def allowlist_matches(patterns: Iterable[str], login: str) -> bool:
    """Whether a login matches any pattern, with exactly the rule the verdict uses
    (`compile_login_pattern`: ``*`` is the only wildcard, so the brackets of
    ``dependabot[bot]`` are literal; case-insensitive)."""
    folded = login.casefold()
    for pattern in patterns:
        compiled = compile_login_pattern(pattern)
        if compiled is not None and compiled.fullmatch(folded):
            return True
    return False
