"""The CLA verdict: given the contributors of a pull request, who has signed, who is exempt and
who still has to act. Pure: the caller supplies the signatures and exemptions it looked up.

Decisions:

* Each contributor lands in exactly one bucket, checked in this order: ``signed`` (a valid
  signature held by their account id), ``exempt``, ``unsigned`` (a GitHub account that must
  sign), ``unknown`` (no GitHub account: cannot sign until the commit email is linked). A
  member who also signed is reported as signed: the signature is the stronger fact.
* Exempt people are not counted in "x of y": ``total`` is signed + unsigned + unknown.
* **The opener counts.** A commit's author is a claim anyone can write (GitHub attributes a
  commit to whichever account lists its email); the account that opened the pull request is
  the one identity GitHub authenticates. It must be covered like every author and co-author,
  so no combination of commit metadata can turn a pull request green for an uncovered
  opener.
* **AI agents** (``agents.agent_of``) never sign. Under ``require-human`` their commits and
  co-authorships need no signature, and when an agent opened the pull request at least one
  person among the authors and co-authors must be covered (the pull request cannot pass on
  agent work alone); under ``refuse`` every agent contribution fails the check.
* The state is ``failure`` as soon as anyone is unsigned, unknown or refused, or a person is
  needed for an agent's work; ``success`` otherwise.
  A pull request without any contributor (no commits) or with only exempt ones is
  ``success``; it is not silent, though: the status description says so explicitly
  (see ``report.status_description``). Failing it would block nothing worth blocking, since a
  pull request without commits cannot be merged anyway.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal

from undersign.agreements.allowlist import compile_login_pattern
from undersign.enforcement.agents import AgentPolicy, agent_of
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


@dataclass(frozen=True)
class Exemptions:
    """Who does not need to sign.

    * ``bot_ids``: GitHub App bot accounts exempt by id. Both must hold: the account id is
      listed *and* GitHub reported ``type == "Bot"`` for it. ``all_bots`` (an explicit,
      risky opt-in of an agreement: anyone can register an App) exempts every account GitHub
      reports as a bot. Neither ever looks at the login.
    * ``allowlist``: logins or ``*`` patterns (the rule of ``agreements.allowlist``). Only
      logins that came from GitHub's API count (``Contributor.login_verified``): a login
      parsed from a noreply email is free text anyone can write.
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
    #: AI agents whose work needs no signature of their own (policy ``require-human``).
    agents: list[Contributor] = field(default_factory=list)
    #: AI agents whose work the agreement does not accept (policy ``refuse``).
    refused: list[Contributor] = field(default_factory=list)
    #: The account that opened the pull request, when known (also in one of the lists).
    opener: Contributor | None = None
    #: An agent opened the pull request and no person among its authors is covered.
    needs_human: bool = False

    @property
    def total(self) -> int:
        """People who count in "x of y have signed": everyone but the exempt and agents."""
        return len(self.signed) + len(self.unsigned) + len(self.unknown)

    @property
    def passed(self) -> bool:
        """Nobody has anything left to do."""
        return not (self.unsigned or self.unknown or self.refused or self.needs_human)

    @property
    def opener_missing(self) -> bool:
        """The opener is among those who still have to sign."""
        return self.opener is not None and any(c.key == self.opener.key for c in self.unsigned)

    @property
    def state(self) -> State:
        """The commit status state for ``license/cla``."""
        return "success" if self.passed else "failure"

    @property
    def contributors(self) -> list[Contributor]:
        """Everyone, signed, exempt, agents, unsigned, unknown and refused, in that order."""
        return [
            *self.signed,
            *self.exempt,
            *self.agents,
            *self.unsigned,
            *self.unknown,
            *self.refused,
        ]


def _with_opener(
    contributors: Iterable[Contributor], opener: Contributor | None
) -> list[Contributor]:
    """The contributors, deduplicated, with the opener merged in (or added last)."""
    people: dict[tuple[str, int | str], Contributor] = {}
    for contributor in contributors:
        people.setdefault(contributor.key, contributor)
    if opener is not None:
        seen = people.get(opener.key)
        if seen is None:
            people[opener.key] = dataclasses.replace(opener, sources=("opener",))
        else:  # GitHub's facts about the opener are verified: they win over commit text
            people[opener.key] = dataclasses.replace(
                seen,
                login=opener.login or seen.login,
                account_type=opener.account_type or seen.account_type,
                login_verified=opener.login_verified or seen.login_verified,
                sources=(*seen.sources, "opener"),
            )
    return list(people.values())


def evaluate(
    contributors: Iterable[Contributor],
    signed_ids: Collection[int],
    exemptions: Exemptions | None = None,
    *,
    opener: Contributor | None = None,
    agent_policy: AgentPolicy = "require-human",
) -> Verdict:
    """Sort contributors into signed / exempt / agents / unsigned / unknown / refused, keeping
    input order.

    ``signed_ids`` are the account ids holding a valid signature for the agreement in force;
    signatures are matched by id only, so a renamed account keeps its signature. A contributor
    whose identity (``Contributor.key``) was already seen is skipped, so nobody counts twice
    even if the caller did not deduplicate. ``opener`` (the pull request's ``user``, from
    GitHub's API) must be covered like everyone else; see the module docstring for agents.
    """
    exemptions = exemptions or Exemptions()
    signed_set = frozenset(signed_ids)
    buckets: dict[str, list[Contributor]] = {
        name: [] for name in ("signed", "exempt", "agents", "unsigned", "unknown", "refused")
    }
    for contributor in _with_opener(contributors, opener):
        if agent_of(contributor) is not None:
            bucket = "refused" if agent_policy == "refuse" else "agents"
        elif contributor.kind != "github":
            bucket = "unknown"
        elif contributor.github_id in signed_set:
            bucket = "signed"
        elif exemptions.reason(contributor) is not None:
            bucket = "exempt"
        else:
            bucket = "unsigned"
        buckets[bucket].append(contributor)
    needs_human = False
    if opener is not None and agent_of(opener) is not None and agent_policy != "refuse":
        # No authenticated "who asked" exists: a covered person must have written or
        # co-written the work (docs/agents.md). Bots do not count as that person.
        needs_human = not any(not c.is_bot for c in (*buckets["signed"], *buckets["exempt"]))
    opener_seen = next(
        (c for c in (v for b in buckets.values() for v in b) if opener and c.key == opener.key),
        None,
    )
    return Verdict(
        signed=buckets["signed"],
        exempt=buckets["exempt"],
        unsigned=buckets["unsigned"],
        unknown=buckets["unknown"],
        agents=buckets["agents"],
        refused=buckets["refused"],
        opener=opener_seen,
        needs_human=needs_human,
    )
