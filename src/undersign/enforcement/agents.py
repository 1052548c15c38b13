"""Known bots and AI coding agents: the one place undersign keeps their identities.

Everything here is matched by GitHub's numeric account id, or, for ``Co-authored-by:``
trailers of agents that have no account, by the exact (casefolded) trailer address. A login
is never matched: anyone can register ``something[bot]``-looking names, and logins change.

Each entry records where its id or address was found, so it can be checked again. The same
list is documented in docs/agents.md; keep the two together.

Why agents are not bots: a bot such as Dependabot writes changes nobody asked it for line by
line, and a project may well accept them without a signature. An agent writes code because a
person asked it to, and that person is who the agreement must cover (an agent cannot sign).
See ``policy.evaluate`` for how the agent policy of an agreement applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from undersign.enforcement.contributors import Contributor

__all__ = [
    "AGENT_POLICIES",
    "DEFAULT_BOTS",
    "DEFAULT_BOT_IDS",
    "KNOWN_AGENTS",
    "AgentPolicy",
    "KnownAgent",
    "KnownBot",
    "agent_of",
]

AgentPolicy = Literal["require-human", "refuse"]
#: ``require-human`` (the default): agent work needs no signature of its own, the person who
#: asked for it must be covered. ``refuse``: any agent-authored commit fails the check.
AGENT_POLICIES: tuple[AgentPolicy, ...] = ("require-human", "refuse")


@dataclass(frozen=True)
class KnownBot:
    """A well-known GitHub App bot account, exempt by default (``type: Bot`` and this id)."""

    github_id: int
    login: str
    source: str


@dataclass(frozen=True)
class KnownAgent:
    """An AI coding agent: its GitHub accounts (by id) and its trailer addresses."""

    name: str
    github_ids: tuple[int, ...]
    trailer_emails: tuple[str, ...]
    source: str


#: Exempt unless an agreement sets its own list (``undersign agreement bots``). The ids are
#: the ones in each bot's ``ID+login@users.noreply.github.com`` commit address.
DEFAULT_BOTS: tuple[KnownBot, ...] = (
    KnownBot(
        49699333,
        "dependabot[bot]",
        "commit author 49699333+dependabot[bot]@users.noreply.github.com on Dependabot commits",
    ),
    KnownBot(
        41898282,
        "github-actions[bot]",
        "41898282+github-actions[bot]@users.noreply.github.com, the GITHUB_TOKEN commit identity",
    ),
    KnownBot(
        29139614,
        "renovate[bot]",
        "Co-authored-by: renovate[bot] <29139614+renovate[bot]@users.noreply.github.com>",
    ),
    KnownBot(
        66853113,
        "pre-commit-ci[bot]",
        "Co-authored-by: pre-commit-ci[bot] <66853113+pre-commit-ci[bot]@users.noreply.github.com>",
    ),
)
DEFAULT_BOT_IDS: frozenset[int] = frozenset(bot.github_id for bot in DEFAULT_BOTS)

KNOWN_AGENTS: tuple[KnownAgent, ...] = (
    KnownAgent(
        "GitHub Copilot coding agent",
        (198982749,),
        (),
        "opens pull requests as Copilot (type Bot); commits by "
        "copilot-swe-agent[bot] <198982749+Copilot@users.noreply.github.com>",
    ),
    KnownAgent(
        "Claude",
        (209825114,),
        ("noreply@anthropic.com",),
        "Claude Code adds Co-Authored-By: Claude <noreply@anthropic.com>; the Claude GitHub "
        "App commits as claude[bot] <209825114+claude[bot]@users.noreply.github.com>",
    ),
    KnownAgent(
        "Cursor",
        (206951365,),
        ("cursoragent@cursor.com",),
        "Co-authored-by: Cursor <cursoragent@cursor.com>; "
        "cursor[bot] <206951365+cursor[bot]@users.noreply.github.com>",
    ),
    KnownAgent(
        "Devin",
        (158243242,),
        (),
        "Co-Authored-By: Devin <158243242+devin-ai-integration[bot]@users.noreply.github.com>",
    ),
    KnownAgent(
        "OpenAI Codex",
        (199175422,),
        (),
        "chatgpt-codex-connector[bot] "
        "<199175422+chatgpt-codex-connector[bot]@users.noreply.github.com>",
    ),
)

_BY_ID = {github_id: agent for agent in KNOWN_AGENTS for github_id in agent.github_ids}
_BY_EMAIL = {email.casefold(): agent for agent in KNOWN_AGENTS for email in agent.trailer_emails}


def agent_of(contributor: Contributor) -> KnownAgent | None:
    """The known agent this contributor is, by account id or by trailer address; else None.

    An id parsed from a noreply address counts as much as one GitHub linked: claiming to be an
    agent only ever removes a signature *of the agent*; the people around it still count.
    """
    if contributor.github_id is not None:
        return _BY_ID.get(contributor.github_id)
    if contributor.email:
        return _BY_EMAIL.get(contributor.email.strip().casefold())
    return None


def describe_bots(ids: Iterable[int]) -> list[str]:
    """``id (login)`` for known default bots, ``id`` for the others: for listings."""
    known = {bot.github_id: bot.login for bot in DEFAULT_BOTS}
    return [f"{i} ({known[i]})" if i in known else str(i) for i in sorted(set(ids))]


__all__ += ["describe_bots"]
