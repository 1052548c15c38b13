"""What undersign tells GitHub about a verdict: the ``license/cla`` status description and the
single pull request comment. Pure rendering: strings out, no I/O.

Safety rules, and why:

* Status descriptions are at most 140 characters, always: GitHub answers 422 beyond that and
  the status would be lost. They use counts, never names.
* Names and emails of commit authors are attacker-controlled git metadata. They are rendered
  only inside Markdown code spans (fenced with more backticks than they contain, control and
  format characters removed, length capped): GitHub renders no Markdown, no HTML, no
  @mentions and no issue references inside code spans.
* The hidden `COMMENT_MARKER` opens every body undersign writes; `is_own_comment` only accepts
  it there, because commit metadata rendered further down may contain the same text. Anyone can
  post a comment that starts with the marker, so the caller must also check the comment author.
* Logins are @mentioned only when GitHub's API linked them to the account
  (``Contributor.login_verified``) and they have the exact shape of a GitHub login. A login
  read from a ``ID+login@users.noreply...`` address in a trailer is text anyone can write: it
  is shown in a code span, so nobody can make the bot notify strangers.
* The comment stays below GitHub's 65536-character cap however many people are listed: each
  list shows at most `MAX_LISTED` entries and stops early when the size budget (counted in
  UTF-8 bytes, which is never less than characters) is spent, ending with "and N more".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit

from undersign.enforcement.agents import agent_of
from undersign.enforcement.contributors import Contributor, is_valid_login
from undersign.enforcement.policy import Verdict

__all__ = [
    "COMMENT_LIMIT",
    "COMMENT_MARKER",
    "DESCRIPTION_LIMIT",
    "MAX_LISTED",
    "RECHECK_COMMAND",
    "STATUS_CONTEXT",
    "agent_paragraphs",
    "comment_body",
    "comment_needed",
    "is_own_comment",
    "mention",
    "people_signed_earlier_paragraph",
    "report_description",
    "signed_earlier_count",
    "status_description",
    "unknown_line",
]

STATUS_CONTEXT = "license/cla"
COMMENT_MARKER = "<!-- undersign:cla -->"
RECHECK_COMMAND = "/cla check"
DESCRIPTION_LIMIT = 140
COMMENT_LIMIT = 65536
MAX_LISTED = 100

# Room kept free below COMMENT_LIMIT for the footer and the "and N more" lines.
_COMMENT_BUDGET = COMMENT_LIMIT - 2048
_NAME_LIMIT = 100
_EMAIL_LIMIT = 320
_ELLIPSIS = "\u2026"


# --------------------------------------------------------------------------------------------
# Status description
# --------------------------------------------------------------------------------------------


def _plural(count: int, singular: str, plural: str) -> str:
    return singular if count == 1 else plural


def _fit(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """Hard guarantee of the length limit (ASCII "..." so it is 3 characters everywhere)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def signed_earlier_count(verdict: Verdict, people_signed_earlier: frozenset[int]) -> int:
    """How many of the unsigned signed a version a material change replaced (GitHub ids in
    ``people_signed_earlier``): they did sign, and must sign the current version."""
    return sum(1 for c in verdict.unsigned if c.github_id in people_signed_earlier)


def status_description(
    verdict: Verdict, *, people_signed_earlier: frozenset[int] = frozenset()
) -> str:
    """One-line summary for the ``license/cla`` commit status, at most 140 characters.

    ``people_signed_earlier`` as for `comment_body`: those people are counted apart, so the
    status says what the comment says (sign the new version), not that they never signed."""
    signed, total = len(verdict.signed), verdict.total
    if verdict.refused:
        count = len(verdict.refused)
        return _fit(
            f"This CLA accepts no AI agent commits: {count} agent "
            f"{_plural(count, 'contribution', 'contributions')} found."
        )
    if verdict.needs_human and not verdict.unsigned and not verdict.unknown:
        return (
            "Opened by an AI agent: the person who asked for it must author or co-author "
            "a commit and sign the CLA."
        )
    if verdict.passed:
        if total == 0 and not verdict.exempt:
            return "No commits to check: this pull request has no contributors."
        if total == 0:
            return "No signature needed: every contributor is exempt."
        if signed == 1:
            return _fit("The contributor has signed the CLA.")
        return _fit(f"All {signed} contributors have signed the CLA.")
    again = signed_earlier_count(verdict, people_signed_earlier)
    has = _plural(total, "contributor has", "contributors have")
    if again:
        text = (
            f"{signed} of {total} {has} signed the current CLA; {again} signed an earlier "
            "version and must sign the new version."
        )
    else:
        text = f"{signed} of {total} {has} signed the CLA."
    unknown = len(verdict.unknown)
    if unknown:
        text += f" {unknown} {_plural(unknown, 'needs', 'need')} to link their commit email."
        if len(text) > DESCRIPTION_LIMIT:
            text = (
                f"{signed} of {total} signed the current CLA; {again} must sign the new "
                f"version; {unknown} must link their commit email."
                if again
                else f"{signed} of {total} signed the CLA; {unknown} must link their commit email."
            )
    return _fit(text)


def report_description(
    verdict: Verdict, *, people_signed_earlier: frozenset[int] = frozenset()
) -> str:
    """The status description of a link in report mode (a rollout): the state is always
    success, so the description carries the real count, and what else would fail."""
    signed, total = len(verdict.signed), verdict.total
    text = (
        f"report only: {signed} of {total} have signed"
        if total
        else "report only: no contributor needs to sign"
    )
    again = signed_earlier_count(verdict, people_signed_earlier)
    if again:
        text += f"; {again} signed an earlier version and must sign the new version"
    if verdict.unknown:
        text += f"; {len(verdict.unknown)} must link their commit email"
    if verdict.refused:
        text += f"; {len(verdict.refused)} AI agent commit(s) the CLA refuses"
    if verdict.needs_human:
        text += "; opened by an AI agent without a covered person"
    return _fit(text)


# --------------------------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------------------------


def _clean(text: str, limit: int) -> str:
    """Single-line, printable, bounded text: what is safe to put in a code span."""
    chars: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cf":  # bidi overrides, zero-width characters: invisible trickery
            continue
        if category in ("Cc", "Zl", "Zp", "Zs"):
            chars.append(" ")
        elif category in ("Cs", "Co", "Cn"):  # lone surrogates cannot even be encoded
            chars.append("\ufffd")
        else:
            chars.append(ch)
    cleaned = " ".join("".join(chars).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + _ELLIPSIS
    return cleaned


def _code(text: str, limit: int) -> str:
    """``text`` as an inert Markdown code span (CommonMark rules for backticks inside)."""
    cleaned = _clean(text, limit) or "?"
    longest = run = 0
    for ch in cleaned:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if cleaned.startswith("`") or cleaned.endswith("`") else ""
    return f"{fence}{pad}{cleaned}{pad}{fence}"


_MARKDOWN_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _escape_text(text: str, limit: int = 200) -> str:
    """Plain Markdown text for trusted-but-configurable strings (the agreement title).

    Every ASCII punctuation character is backslash-escaped (CommonMark renders it literally,
    so no links, emphasis or HTML), and a zero-width space after ``@`` prevents mentions.
    """
    out: list[str] = []
    for ch in _clean(text, limit):
        if ch in _MARKDOWN_PUNCTUATION:
            out.append("\\" + ch)
            if ch == "@":
                out.append("\u200b")
        else:
            out.append(ch)
    return "".join(out)


def _safe_url(url: str) -> str:
    """An http(s) URL percent-encoded so it cannot break out of a Markdown link destination."""
    if not isinstance(url, str):
        raise ValueError("sign_url must be a string")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"sign_url must be an absolute http(s) URL, got {url!r}")
    return quote(url.strip(), safe="/:?#[]@!$&'*+,;=%-._~")


def mention(contributor: Contributor) -> str:
    """``@login`` for a well-formed login, otherwise an inert description of the account."""
    login = contributor.login
    if login is not None and contributor.login_verified and is_valid_login(login):
        return "@" + login.replace("[", "\\[").replace("]", "\\]")
    if login:
        return f"GitHub account {_code(login, _NAME_LIMIT)} (id {contributor.github_id})"
    return f"the GitHub account with id {contributor.github_id}"


def _sign_line(contributor: Contributor, url: str, opener: Contributor | None) -> str:
    line = f"- {mention(contributor)}: [sign now]({url})"
    if opener is not None and contributor.key == opener.key:
        line += " (opened this pull request)"
    return line


def _agent_line(contributor: Contributor) -> str:
    agent = agent_of(contributor)
    name = _code(agent.name if agent else "AI agent", _NAME_LIMIT)
    if contributor.kind == "github":
        return f"- {name}: GitHub account with id {contributor.github_id}"
    return f"- {name}: `Co-authored-by` {_code(contributor.email or '?', _EMAIL_LIMIT)}"


def agent_paragraphs(verdict: Verdict) -> list[str]:
    """What the agreement's agent policy means for this pull request, in plain words."""
    parts: list[str] = []
    if verdict.refused:
        lines, _ = _bounded_list(verdict.refused, _agent_line, 8192)
        parts.append(
            "**This project accepts no code written by AI agents.** These contributions come "
            "from an agent; remove them (or the commits carrying them) to go on:\n\n"
            + "\n".join(lines)
        )
    elif verdict.needs_human:
        parts.append(
            "**An AI agent opened this pull request.** An agent cannot sign: the person who "
            "asked for the work must be a commit author or co-author (a `Co-authored-by:` "
            "trailer with the address of their GitHub account will do) and be covered by the "
            "agreement. Agent work alone cannot pass."
        )
    elif verdict.agents:
        parts.append(
            "AI agents contributed to this pull request. An agent cannot sign, so its commits "
            "need no signature of their own; the people who asked for the work (the "
            "account that opened the pull request and the human authors) must be covered."
        )
    return parts


# --------------------------------------------------------------------------------------------
# Comment
# --------------------------------------------------------------------------------------------


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _bounded_list(
    items: Sequence[Contributor], render: Callable[[Contributor], str], budget: int
) -> tuple[list[str], int]:
    """Rendered list lines that fit in ``budget`` bytes, plus how many were left out."""
    lines: list[str] = []
    used = 0
    for index, item in enumerate(items):
        line = render(item)
        if index >= MAX_LISTED or used + _size(line) + 1 > budget:
            lines.append(f"- \u2026and {len(items) - index} more.")
            return lines, len(items) - index
        lines.append(line)
        used += _size(line) + 1
    return lines, 0


def unknown_line(contributor: Contributor, emails_url: str | None = None) -> str:
    """The list line for an author without a GitHub account, saying how to link one;
    with ``emails_url`` (undersign's ``/me/emails``), how to prove the address here."""
    name = _code(contributor.name, _NAME_LIMIT) if contributor.name else "An author"
    if not contributor.email:
        return f"- {name} (no email): amend the commit with an email linked to your GitHub account."
    email = _code(contributor.email, _EMAIL_LIMIT)
    if emails_url is not None:
        return (
            f"- {name} ({email}): if this address is yours, verify it on your GitHub account, "
            f"then [link it to undersign]({_safe_url(emails_url)}) and sign."
        )
    return (
        f"- {name} ({email}): add {email} to your GitHub account (Settings \u2192 Emails), "
        "or amend the commit with an email linked to your account."
    )


def corporate_paragraph(emails_url: str | None) -> str:
    """The second way out for an uncovered contributor: their company's CLA."""
    prove = (
        f"[prove your work email address]({_safe_url(emails_url)})"
        if emails_url
        else "prove your work email address"
    )
    return (
        "**Contributing for your employer?** Instead of signing for yourself, ask your "
        "company's CLA manager to cover you (by your GitHub account, your organisation or "
        f"your work email domain), and {prove}: a commit email on your company's domain "
        "counts only once you have proved it is yours."
    )


def _names(people: Sequence[Contributor]) -> str:
    """The first ten mentioned, an ellipsis for the rest."""
    return ", ".join(mention(c) for c in people[:10]) + (", \u2026" if len(people) > 10 else "")


def awaiting_review_paragraph(people: Sequence[Contributor]) -> str:
    """Some unsigned people's company signed on the web and waits for the maintainers."""
    names = _names(people)
    return (
        f"**Awaiting review:** a company that signed the corporate agreement would cover {names}, "
        "but its signature awaits the maintainers' review; it covers nobody until they accept it."
    )


def signed_earlier_paragraph(people: Sequence[Contributor]) -> str:
    """Some unsigned people's company signed a version of the corporate agreement that a
    material change has since replaced."""
    names = _names(people)
    return (
        f"**Your company must sign again:** a company would cover {names}, but it signed an "
        "earlier version of the corporate agreement, and the current version changed it "
        "materially; it covers nobody until one of its CLA managers signs the current version."
    )


def people_signed_earlier_paragraph(people: Sequence[Contributor]) -> str:
    """Some unsigned people signed a version of the agreement that a material change has
    since replaced: they did sign, and must sign the current version."""
    names = _names(people)
    return (
        f"**The agreement has changed:** {names} signed an earlier version, and the current "
        "version changed it materially; the sign page shows what changed."
    )


def comment_body(
    verdict: Verdict,
    *,
    sign_url: str,
    agreement_title: str,
    bot_login: str | None,
    emails_url: str | None = None,
    corporate: bool = False,
    awaiting_review: frozenset[int] = frozenset(),
    signed_earlier: frozenset[int] = frozenset(),
    people_signed_earlier: frozenset[int] = frozenset(),
) -> str:
    """The Markdown of the single undersign comment on a pull request.

    Starts with `COMMENT_MARKER` so the service can find its own comment again. Lists who must
    sign (with the sign link) and which authors must first link their commit email; once
    everyone is covered it becomes a short thank-you. ``bot_login`` (undersign's GitHub App bot,
    if known) is named in the re-check hint. Raises ValueError for a non-http(s) ``sign_url``
    (a configuration error, not data). ``corporate``: companies can sign for their people
    here, so an uncovered contributor is told both ways out; ``awaiting_review``: the GitHub
    ids among the unsigned that a company awaiting the maintainers' review would cover;
    ``signed_earlier``: those a company would cover had it signed the current version;
    ``people_signed_earlier``: those who signed a version a material change replaced.
    """
    url = _safe_url(sign_url)
    title = _escape_text(agreement_title or "Contributor License Agreement")
    link = f"[{title}]({url})"
    parts: list[str] = [COMMENT_MARKER]

    if verdict.passed:
        if verdict.total == 0 and not verdict.exempt:
            parts.append("There are no commits to check on this pull request.")
        elif verdict.total == 0:
            parts.append(f"No signature of the {link} is needed for this pull request.")
        else:
            parts.append(f"All contributors have signed the {link}. Thank you!")
        return "\n\n".join(parts) + "\n"

    signed, total = len(verdict.signed), verdict.total
    parts.append(
        "Thank you for your pull request! Before it can be merged, every contributor (and the "
        "account that opened it) needs to "
        f"sign the {link}. **{signed} of {total}** "
        f"{_plural(total, 'contributor has', 'contributors have')} signed so far."
    )

    if bot_login and is_valid_login(bot_login):
        who = "**" + bot_login.replace("[", "\\[").replace("]", "\\]") + "**"
    elif bot_login:
        who = _code(bot_login, _NAME_LIMIT)
    else:
        who = "undersign"
    footer = (
        f"{who} checks again by itself the moment someone signs. To re-check by hand "
        f"(after linking an email, say), comment `{RECHECK_COMMAND}` on this pull request."
    )

    if verdict.opener_missing:
        opener_id = verdict.opener.github_id if verdict.opener is not None else None
        not_signed = (
            "has not signed the current version"
            if opener_id is not None and opener_id in people_signed_earlier
            else "has not signed"
        )
        parts.append(
            f"**The account that opened this pull request {not_signed}.** Commit authors "
            "alone cannot cover a pull request: whoever opens it must be covered too."
        )
    parts.extend(agent_paragraphs(verdict))
    budget = _COMMENT_BUDGET - sum(_size(p) + 2 for p in parts) - _size(footer)
    if verdict.unsigned:
        heading = f"**Please sign the {link}:**"
        budget -= _size(heading) + 2
        lines, _ = _bounded_list(
            verdict.unsigned,
            lambda c: _sign_line(c, url, verdict.opener),
            max(budget // (2 if verdict.unknown else 1), 0),
        )
        block = heading + "\n\n" + "\n".join(lines)
        budget -= _size(block) - _size(heading)
        parts.append(block)
        again = [c for c in verdict.unsigned if c.github_id in people_signed_earlier]
        if again:
            paragraph = people_signed_earlier_paragraph(again)
            budget -= _size(paragraph) + 2
            parts.append(paragraph)
        if corporate:
            parts.append(corporate_paragraph(emails_url))
            waiting = [c for c in verdict.unsigned if c.github_id in awaiting_review]
            if waiting:
                paragraph = awaiting_review_paragraph(waiting)
                budget -= _size(paragraph) + 2
                parts.append(paragraph)
            outdated = [c for c in verdict.unsigned if c.github_id in signed_earlier]
            if outdated:
                paragraph = signed_earlier_paragraph(outdated)
                budget -= _size(paragraph) + 2
                parts.append(paragraph)
    if verdict.unknown:
        heading = (
            "**Commits whose author email is not linked to a GitHub account.** "
            "These authors cannot sign until it is:"
        )
        budget -= _size(heading) + 2
        lines, _ = _bounded_list(
            verdict.unknown, lambda c: unknown_line(c, emails_url), max(budget, 0)
        )
        parts.append(heading + "\n\n" + "\n".join(lines))
    parts.append(footer)
    return "\n\n".join(parts) + "\n"


def comment_needed(verdict: Verdict, existing_comment_id: int | None) -> bool:
    """Whether to create or update the comment.

    A comment is created only when someone has something to do (no noise on clean pull
    requests); once it exists it is always kept up to date, so it turns into a thank-you
    instead of leaving stale instructions behind.
    """
    return existing_comment_id is not None or not verdict.passed


def is_own_comment(body: str | None) -> bool:
    """Whether a comment body is one undersign wrote: the marker opens it.

    Only a hint: the caller must also check that the comment's author is undersign's bot.
    """
    return isinstance(body, str) and body.lstrip().startswith(COMMENT_MARKER)
