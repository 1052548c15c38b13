"""The CLA verdict: given the contributors of a pull request, who has signed, who is exempt and
who still has to act. Pure: the caller supplies the signatures and exemptions it looked up.

Decisions:

* Each contributor lands in exactly one bucket, checked in this order: ``signed`` (a valid
  signature held by their account id), ``exempt``, ``unsigned`` (a GitHub account that must
  sign), ``unknown`` (no GitHub account: cannot sign until the commit email is linked). A
  member who also signed is reported as signed: the signature is the stronger fact.
* Exempt people are not counted in "x of y": ``total`` is signed + unsigned + unknown.
* The state is ``failure`` as soon as anyone is unsigned or unknown, ``success`` otherwise.
  A pull request without any contributor (no commits) or with only exempt ones is
  ``success``; it is not silent, though: the status description says so explicitly
  (see ``report.status_description``). Failing it would block nothing worth blocking, since a
  pull request without commits cannot be merged anyway.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal

from undersign.enforcement.contributors import Contributor

__all__ = [
    "ExemptionReason",
    "Exemptions",
    "State",
    "Verdict",
    "compile_login_pattern",
    "evaluate",
]

State = Literal["success", "failure"]
ExemptionReason = Literal["bot", "allowlist", "member"]


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


@dataclass(frozen=True)
class Exemptions:
    """Who does not need to sign.

    * ``bot_ids``: GitHub App bot accounts exempt by id. Both must hold: the account id is
      listed *and* GitHub reported ``type == "Bot"`` for it. Set ``all_bots`` to exempt every
      account GitHub reports as a bot. Neither ever looks at the login.
    * ``allowlist``: logins or ``*`` patterns (see `compile_login_pattern`). Only logins that
      came from GitHub's API count (``Contributor.login_verified``): a login parsed from a
      noreply email is free text anyone can write.
    * ``member_ids``: account ids exempt because they are org members / collaborators; the
      caller computes them.
    """

    bot_ids: frozenset[int] = frozenset()
    all_bots: bool = False
    allowlist: tuple[str, ...] = ()
    member_ids: frozenset[int] = frozenset()
    _patterns: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, hash=False, default=()
    )

    def __post_init__(self) -> None:
        # Accept any iterable/collection from callers but store immutable values.
        object.__setattr__(self, "bot_ids", frozenset(self.bot_ids))
        object.__setattr__(self, "member_ids", frozenset(self.member_ids))
        allowlist = (self.allowlist,) if isinstance(self.allowlist, str) else self.allowlist
        object.__setattr__(self, "allowlist", tuple(allowlist))
        patterns = (compile_login_pattern(entry) for entry in self.allowlist)
        object.__setattr__(self, "_patterns", tuple(p for p in patterns if p is not None))

    def allowlisted(self, login: str) -> bool:
        """Whether ``login`` matches an allowlist entry (case-insensitive)."""
        folded = login.casefold()
        return any(pattern.fullmatch(folded) for pattern in self._patterns)

    def reason(self, contributor: Contributor) -> ExemptionReason | None:
        """Why ``contributor`` is exempt, or None."""
        if contributor.kind != "github" or contributor.github_id is None:
            return None
        if contributor.is_bot and (self.all_bots or contributor.github_id in self.bot_ids):
            return "bot"
        if contributor.github_id in self.member_ids:
            return "member"
        if contributor.login_verified and contributor.login and self.allowlisted(contributor.login):
            return "allowlist"
        return None


@dataclass(frozen=True)
class Verdict:
    """The outcome for one pull request head; every contributor is in exactly one list."""

    signed: list[Contributor]
    exempt: list[Contributor]
    unsigned: list[Contributor]
    unknown: list[Contributor]

    @property
    def total(self) -> int:
        """People who count in "x of y have signed": everyone but the exempt."""
        return len(self.signed) + len(self.unsigned) + len(self.unknown)

    @property
    def passed(self) -> bool:
        """Nobody has anything left to do."""
        return not self.unsigned and not self.unknown

    @property
    def state(self) -> State:
        """The commit status state for ``license/cla``."""
        return "success" if self.passed else "failure"

    @property
    def contributors(self) -> list[Contributor]:
        """Everyone, signed, exempt, unsigned and unknown, in that order."""
        return [*self.signed, *self.exempt, *self.unsigned, *self.unknown]


def evaluate(
    contributors: Iterable[Contributor],
    signed_ids: Collection[int],
    exemptions: Exemptions | None = None,
) -> Verdict:
    """Sort contributors into signed / exempt / unsigned / unknown, keeping input order.

    ``signed_ids`` are the account ids holding a valid signature for the agreement in force;
    signatures are matched by id only, so a renamed account keeps its signature. A contributor
    whose identity (``Contributor.key``) was already seen is skipped, so nobody counts twice
    even if the caller did not deduplicate.
    """
    exemptions = exemptions or Exemptions()
    signed_set = frozenset(signed_ids)
    signed: list[Contributor] = []
    exempt: list[Contributor] = []
    unsigned: list[Contributor] = []
    unknown: list[Contributor] = []
    seen: set[tuple[str, int | str]] = set()
    for contributor in contributors:
        if contributor.key in seen:
            continue
        seen.add(contributor.key)
        if contributor.kind != "github":
            unknown.append(contributor)
        elif contributor.github_id in signed_set:
            signed.append(contributor)
        elif exemptions.reason(contributor) is not None:
            exempt.append(contributor)
        else:
            unsigned.append(contributor)
    return Verdict(signed=signed, exempt=exempt, unsigned=unsigned, unknown=unknown)
