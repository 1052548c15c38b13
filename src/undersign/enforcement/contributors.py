"""Who contributed to a pull request, read from GitHub's commit JSON.

The input is the list of commit objects returned by "list commits on a pull request" or
"compare two commits" (REFERENCE.md §2.2). The output is one `Contributor` per person, in order
of first appearance, with the facts the policy needs and nothing else.

Rules, and why:

* The **author** counts; the **committer never does**. A maintainer who rebases, or GitHub's
  ``web-flow`` account that commits web edits and merges, does not sign on anyone's behalf.
* The top-level ``author`` is GitHub's own answer to "which account owns this commit email". It
  is a ``SimpleUser`` dict, ``{}`` or ``None``; only a dict with an integer ``id`` is trusted.
  Otherwise the person comes from the git metadata (``commit.author`` name/email) and stays
  ``"unknown"`` unless the email identifies an account anyway (a noreply address with an id, an
  email GitHub linked to an account on another commit of the same pull request, an
  address a person proved to undersign: ``resolve_email``, or an old-style noreply address
  whose login GitHub says a person holds: ``resolve_login``).
* An old-style noreply address, ``login@users.noreply.github.com`` (accounts that chose a
  private address before 18 July 2017 still commit with it), names an account by login only.
  It is read as the person who holds that login now, asked of GitHub (``GET /users/{login}``),
  because that person can add no other address to prove: without it they could never sign.
  A login can be renamed and then taken by someone else, so the holder today may not be who
  wrote the address years ago. undersign accepts that, as GitHub's own attribution does: the
  address is free text anyway (like an ``ID+login`` one, it never proves anything and the
  opener must still be covered), the login is kept unverified (no @mention, so a stranger
  holding a reused login is never notified, and no allowlist or membership exemption), and
  if the wrong person is named, the pull request simply waits on them, as a typo would. An
  unknown login, an organisation or a bot stays an author without an account, as before.
* A proven address wins over GitHub's link to another account: GitHub links an address to
  whichever account lists it now, undersign to the account that proved it (issue 14). The
  opener still has to be covered (``policy``), so a commit written with a signer's proven
  address never turns a pull request green on its own.
* ``Co-authored-by`` trailers add co-authors. Their emails are resolved the same way.
* GitHub accounts are identified by numeric id (logins can be renamed and reused); unknown
  people by their casefolded email.

Logins that did not come from GitHub's API (e.g. the ``alice`` in
``123+alice@users.noreply.github.com``) are kept for display but marked ``login_verified=False``:
anyone can write any noreply address into a commit, so such a login must never grant an
exemption by itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

__all__ = [
    "DEFAULT_NOREPLY_DOMAIN",
    "Contributor",
    "ContributorKind",
    "ContributorSource",
    "EmailResolver",
    "LoginResolver",
    "NoreplyAddress",
    "commit_emails",
    "contributors_from_commits",
    "github_account",
    "is_valid_login",
    "legacy_noreply_login",
    "noreply_login",
    "noreply_user_id",
    "parse_co_authors",
    "parse_noreply",
]

DEFAULT_NOREPLY_DOMAIN = "users.noreply.github.com"

ContributorKind = Literal["github", "unknown"]
ContributorSource = Literal["author", "co-author", "opener"]

# GitHub logins: alphanumerics and hyphens, at most 39 characters; GitHub App bot accounts
# carry a literal "[bot]" suffix. Old accounts may break the "no double/trailing hyphen" rule,
# so that rule is deliberately not enforced.
_LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?")
_MAX_GITHUB_ID = 2**63 - 1


def is_valid_login(login: object) -> bool:
    """Whether ``login`` has the shape of a GitHub login (so it is safe to @mention)."""
    return isinstance(login, str) and _LOGIN_RE.fullmatch(login) is not None


@dataclass(frozen=True)
class Contributor:
    """One person who contributed to a pull request.

    ``kind == "github"`` always has a ``github_id``; ``kind == "unknown"`` never has one (the
    commit email is not linked to any account, so the person cannot sign until they link it).
    ``name``/``email`` are the git metadata seen first; they are attacker-controlled text.
    ``login_verified`` is True only when ``login`` (and ``account_type``) came from GitHub's API.
    """

    kind: ContributorKind
    github_id: int | None = None
    login: str | None = None
    account_type: str | None = None
    name: str | None = None
    email: str | None = None
    sources: tuple[ContributorSource, ...] = ()
    login_verified: bool = False

    def __post_init__(self) -> None:
        if self.kind == "github":
            if not _is_github_id(self.github_id):
                raise ValueError("a github contributor needs a positive integer github_id")
        elif self.kind == "unknown":
            if self.github_id is not None:
                raise ValueError("an unknown contributor has no github_id")
        else:
            raise ValueError(f"unsupported contributor kind: {self.kind!r}")

    @property
    def key(self) -> tuple[str, int | str]:
        """The identity used for deduplication: account id, else casefolded email."""
        if self.kind == "github":
            assert self.github_id is not None  # guaranteed by __post_init__
            return ("github", self.github_id)
        if self.email:
            return ("email", _normalize_email(self.email))
        return ("name", (self.name or "").casefold())

    @property
    def is_bot(self) -> bool:
        """GitHub says this account is a bot (``type == "Bot"``); never inferred from a login."""
        return self.account_type == "Bot"


EmailResolver = Callable[[str], Contributor | None]
#: Given the login of an old-style noreply address: the person holding it now, or None.
LoginResolver = Callable[[str], Contributor | None]


class NoreplyAddress(NamedTuple):
    """What a GitHub noreply email tells: the account id (new style) and/or the login."""

    user_id: int | None
    login: str | None


# --------------------------------------------------------------------------------------------
# Co-authored-by trailers
# --------------------------------------------------------------------------------------------

_ASCII_WS = " \t\n\r\v\f"
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
# git treats these as trailers even without configuration (trailer.c git_generated_prefixes).
_GIT_GENERATED_PREFIXES = ("Signed-off-by: ", "(cherry picked from commit ")
_CO_AUTHOR_KEY = "co-authored-by"


def _is_blank(line: str) -> bool:
    return line.strip(_ASCII_WS) == ""


def _is_comment(line: str) -> bool:
    return line.startswith("#")


def _find_separator(line: str) -> int:
    """Index of the ``:`` ending a trailer token, or -1 (git trailer.c ``find_separator``).

    The token is ``[A-Za-z0-9-]+``; whitespace is allowed between the token and the colon.
    """
    whitespace_found = False
    for i, ch in enumerate(line):
        if ch == ":":
            return i
        if not whitespace_found and ch in _TOKEN_CHARS:
            continue
        if i != 0 and ch in " \t":
            whitespace_found = True
            continue
        break
    return -1


def _trailer_block(lines: list[str]) -> list[str]:
    """The lines of the trailer block, or ``[]`` (git trailer.c ``find_trailer_block_start``).

    The block is the last paragraph after the title paragraph; it qualifies when all of its
    lines are trailers (continuation lines starting with whitespace allowed), or when it holds a
    git-generated trailer (``Signed-off-by: ``, ``(cherry picked from commit ``) and at least 25%
    of its lines are trailers. Lines starting with ``#`` are skipped like git's comment lines.
    """
    end_of_title = len(lines)
    for i, line in enumerate(lines):
        if _is_comment(line):
            continue
        if _is_blank(line):
            end_of_title = i
            break

    only_spaces = True
    recognized_prefix = False
    trailer_lines = non_trailer_lines = possible_continuation_lines = 0
    for i in range(len(lines) - 1, end_of_title - 1, -1):
        line = lines[i]
        if _is_comment(line):
            non_trailer_lines += possible_continuation_lines
            possible_continuation_lines = 0
            continue
        if _is_blank(line):
            if only_spaces:
                continue
            non_trailer_lines += possible_continuation_lines
            if (recognized_prefix and trailer_lines * 3 >= non_trailer_lines) or (
                trailer_lines and not non_trailer_lines
            ):
                return lines[i + 1 :]
            return []
        only_spaces = False
        if line.startswith(_GIT_GENERATED_PREFIXES):
            trailer_lines += 1
            possible_continuation_lines = 0
            recognized_prefix = True
        elif _find_separator(line) >= 1 and line[0] not in _ASCII_WS:
            trailer_lines += 1
            possible_continuation_lines = 0
        elif line[0] in _ASCII_WS:
            possible_continuation_lines += 1
        else:
            non_trailer_lines += 1 + possible_continuation_lines
            possible_continuation_lines = 0
    return []


def _trailers(block: list[str]) -> list[tuple[str, str]]:
    """(token, value) pairs of a trailer block, continuation lines unfolded with one space."""
    found: list[list[str]] = []  # [token, value]; the last one may still be continued
    continuable = False
    for line in block:
        if _is_comment(line) or _is_blank(line):
            continuable = False
        elif line[0] in _ASCII_WS:
            if continuable:
                found[-1][1] = f"{found[-1][1]} {line.strip()}"
        elif (sep := _find_separator(line)) >= 1:
            found.append([line[:sep].strip(), line[sep + 1 :].strip()])
            continuable = True
        else:
            continuable = False
    return [(token, value) for token, value in found]


def _parse_ident(value: str) -> tuple[str, str] | None:
    """``Name <email>`` -> (name, email); None when there is no usable ``<email>``."""
    value = value.strip()
    if not value.endswith(">"):
        return None
    lt = value.rfind("<")
    if lt < 0:
        return None
    email = value[lt + 1 : -1]
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or ">" in email:
        return None
    if any(ch.isspace() for ch in email):
        return None
    return value[:lt].strip(), email


def parse_co_authors(message: str) -> list[tuple[str, str]]:
    """``(name, email)`` of every ``Co-authored-by:`` trailer in a commit message.

    Only the trailer block counts (git's ``interpret-trailers`` rules, see ``_trailer_block``),
    so a ``Co-authored-by:`` line quoted in the middle of a message body is ignored, as GitHub
    does. The token is matched case-insensitively (GitHub credits ``Co-Authored-By`` too).
    Lines without a ``<email>`` containing ``@`` are rejected. CRLF line ends are accepted.
    Duplicates are dropped by casefolded email, keeping the first. Never raises.
    """
    if not isinstance(message, str):
        return []
    lines = [line.removesuffix("\r") for line in message.split("\n")]
    result: list[tuple[str, str]] = []
    seen: set[str] = set()
    for token, value in _trailers(_trailer_block(lines)):
        if token.lower() != _CO_AUTHOR_KEY:
            continue
        ident = _parse_ident(value)
        if ident is None:
            continue
        key = _normalize_email(ident[1])
        if key in seen:
            continue
        seen.add(key)
        result.append(ident)
    return result


# --------------------------------------------------------------------------------------------
# Noreply emails
# --------------------------------------------------------------------------------------------


def _normalize_domain(domain: str) -> str:
    return domain.strip().lstrip("@").casefold()


def parse_noreply(
    email: str, noreply_domain: str = DEFAULT_NOREPLY_DOMAIN
) -> NoreplyAddress | None:
    """Decode a GitHub noreply address, or None when ``email`` is not one.

    ``12345+alice@users.noreply.github.com`` -> (12345, "alice"); the old style
    ``alice@users.noreply.github.com`` -> (None, "alice"). On GHES the domain is
    ``users.noreply.<host>``, hence the parameter. The id is what identifies the account; the
    login part is only a hint (it may be stale after a rename, and anyone can write it).
    """
    if not isinstance(email, str) or not isinstance(noreply_domain, str):
        return None
    local, at, domain = email.strip().rpartition("@")
    if not at or domain.casefold() != _normalize_domain(noreply_domain):
        return None
    if "+" in local:
        id_part, _, login_part = local.partition("+")
        if not (id_part.isascii() and id_part.isdigit() and len(id_part) <= 19):
            return None
        user_id = int(id_part)
        if not _is_github_id(user_id):
            return None
        return NoreplyAddress(user_id, login_part if is_valid_login(login_part) else None)
    if is_valid_login(local):
        return NoreplyAddress(None, local)
    return None


def noreply_user_id(email: str, noreply_domain: str = DEFAULT_NOREPLY_DOMAIN) -> int | None:
    """The account id encoded in a new-style noreply email, else None."""
    parsed = parse_noreply(email, noreply_domain)
    return parsed.user_id if parsed else None


def legacy_noreply_login(email: str, noreply_domain: str = DEFAULT_NOREPLY_DOMAIN) -> str | None:
    """The login of an old-style noreply address (``login@users.noreply...``, no id), else
    None: the only addresses worth asking GitHub about by login."""
    parsed = parse_noreply(email, noreply_domain)
    if parsed is None or parsed.user_id is not None:
        return None
    return parsed.login


def noreply_login(email: str, noreply_domain: str = DEFAULT_NOREPLY_DOMAIN) -> str | None:
    """The (unverified) login part of a noreply email, else None."""
    parsed = parse_noreply(email, noreply_domain)
    return parsed.login if parsed else None


# --------------------------------------------------------------------------------------------
# Commits -> contributors
# --------------------------------------------------------------------------------------------


def _is_github_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_GITHUB_ID


def _normalize_email(email: str) -> str:
    return email.strip().casefold()


def _text(value: object) -> str | None:
    """A non-empty stripped string, or None (commit metadata fields can be missing or odd)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _account(user: object, *, name: str | None, email: str | None) -> Contributor | None:
    """A verified github contributor from a top-level ``SimpleUser``; None for ``{}``/``None``."""
    if not isinstance(user, Mapping) or not _is_github_id(user.get("id")):
        return None
    login = user.get("login")
    account_type = user.get("type")
    return Contributor(
        kind="github",
        github_id=user["id"],
        login=login if isinstance(login, str) else None,
        account_type=account_type if isinstance(account_type, str) else None,
        name=name,
        email=email,
        login_verified=isinstance(login, str),
    )


def github_account(user: object) -> Contributor | None:
    """The account of a ``SimpleUser`` from GitHub's API (a pull request's ``user``), with
    its login and type verified; None when it is not one."""
    return _account(user, name=None, email=None)


def _linked_emails(commits: list[Mapping[str, Any]]) -> dict[str, Contributor]:
    """Commit emails that GitHub linked to an account, as seen on these very commits.

    GitHub sets the top-level ``author`` only when the commit email belongs to that account, so
    a co-author trailer (or another commit) with the same email is the same person.
    """
    linked: dict[str, Contributor] = {}
    for commit in commits:
        git_author = _mapping(_mapping(commit.get("commit")).get("author"))
        email = _text(git_author.get("email"))
        if email is None:
            continue
        account = _account(commit.get("author"), name=None, email=None)
        if account is not None:
            linked.setdefault(_normalize_email(email), account)
    return linked


def _from_email(
    name: str | None,
    email: str | None,
    source: ContributorSource,
    *,
    noreply_domain: str,
    linked: Mapping[str, Contributor],
    resolve_email: EmailResolver | None,
    resolve_login: LoginResolver | None = None,
) -> Contributor:
    """Identify a person known only by git name/email. GitHub is asked about an old-style
    noreply login last, only when nothing already known identifies the address."""
    if email is not None:
        noreply = parse_noreply(email, noreply_domain)
        if noreply is not None and noreply.user_id is not None:
            return Contributor(
                kind="github",
                github_id=noreply.user_id,
                login=noreply.login,
                name=name,
                email=email,
                sources=(source,),
            )
        proven = _proven(email, name, source, resolve_email)
        if proven is not None:
            return proven
        account = linked.get(_normalize_email(email))
        if account is not None:
            return dataclasses.replace(account, name=name, email=email, sources=(source,))
        legacy = _legacy_holder(email, noreply_domain, resolve_login)
        if legacy is not None:
            return dataclasses.replace(legacy, name=name, email=email, sources=(source,))
    return Contributor(kind="unknown", name=name, email=email, sources=(source,))


def _legacy_holder(
    email: str, noreply_domain: str, resolve_login: LoginResolver | None
) -> Contributor | None:
    """The person holding an old-style noreply address's login now, never verified (the
    address is free text, and the login may have changed hands since it was written)."""
    login = legacy_noreply_login(email, noreply_domain)
    if login is None or resolve_login is None:
        return None
    holder = resolve_login(login)
    if holder is None or holder.kind != "github":
        return None
    return dataclasses.replace(holder, login_verified=False, account_type=None)


def _proven(
    email: str | None,
    name: str | None,
    source: ContributorSource,
    resolve_email: EmailResolver | None,
) -> Contributor | None:
    """The account that proved ``email`` to undersign, as this sighting, or None."""
    if email is None or resolve_email is None:
        return None
    resolved = resolve_email(email)
    if resolved is None:
        return None
    return dataclasses.replace(resolved, name=resolved.name or name, email=email, sources=(source,))


def commit_emails(commits: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every author and co-author address of these commits, case-folded, in order: what a
    proven-address lookup needs to be asked about, and how a pull request is found again."""
    seen: dict[str, None] = {}
    for commit in commits:
        if not isinstance(commit, Mapping):
            continue
        git = _mapping(commit.get("commit"))
        email = _text(_mapping(git.get("author")).get("email"))
        if email is not None:
            seen.setdefault(_normalize_email(email), None)
        message = git.get("message")
        for _name, co_email in parse_co_authors(message if isinstance(message, str) else ""):
            seen.setdefault(_normalize_email(co_email), None)
    return list(seen)


def _merge(first: Contributor, other: Contributor) -> Contributor:
    """Combine two sightings of the same person; verified facts and first-seen text win."""
    if other.login_verified and not first.login_verified:
        login, account_type, verified = other.login, other.account_type, True
    else:
        login = first.login or other.login
        account_type = first.account_type or other.account_type
        verified = first.login_verified
    sources = first.sources + tuple(s for s in other.sources if s not in first.sources)
    return dataclasses.replace(
        first,
        login=login,
        account_type=account_type,
        login_verified=verified,
        name=first.name or other.name,
        email=first.email or other.email,
        sources=sources,
    )


def contributors_from_commits(
    commits: Iterable[Mapping[str, Any]],
    *,
    noreply_domain: str = DEFAULT_NOREPLY_DOMAIN,
    resolve_email: EmailResolver | None = None,
    resolve_login: LoginResolver | None = None,
) -> list[Contributor]:
    """Everyone who must be covered by the CLA for these commits, deduplicated by identity.

    Order is that of first appearance (commit order, author before co-authors). A person seen
    several times (author of one commit, co-author of another, under a renamed login) is one
    `Contributor` whose ``sources`` lists every role. ``resolve_email`` answers with the
    account that proved an address to undersign (``agreements.emails``): an author or
    co-author GitHub did not link to an account, or linked to another account, counts as
    that owner. Noreply addresses with an id are not asked (the id is the account).
    ``resolve_login`` answers with the person holding an old-style noreply address's login
    (``login@users.noreply...``), asked only for such an address that GitHub did not link
    and nobody proved. Exceptions from either propagate.
    """
    commit_list = [commit for commit in commits if isinstance(commit, Mapping)]
    linked = _linked_emails(commit_list)
    people: dict[tuple[str, int | str], Contributor] = {}

    def add(person: Contributor) -> None:
        existing = people.get(person.key)
        people[person.key] = person if existing is None else _merge(existing, person)

    for commit in commit_list:
        git = _mapping(commit.get("commit"))
        git_author = _mapping(git.get("author"))
        name, email = _text(git_author.get("name")), _text(git_author.get("email"))
        author = _account(commit.get("author"), name=name, email=email)
        proven = _proven(email, name, "author", resolve_email) if author is not None else None
        if proven is not None and author is not None and proven.key != author.key:
            add(proven)  # GitHub links the address elsewhere now; its proven owner counts
        elif author is not None:
            add(dataclasses.replace(author, sources=("author",)))
        else:
            add(
                _from_email(
                    name,
                    email,
                    "author",
                    noreply_domain=noreply_domain,
                    linked=linked,
                    resolve_email=resolve_email,
                    resolve_login=resolve_login,
                )
            )
        message = git.get("message")
        for co_name, co_email in parse_co_authors(message if isinstance(message, str) else ""):
            add(
                _from_email(
                    co_name or None,
                    co_email,
                    "co-author",
                    noreply_domain=noreply_domain,
                    linked=linked,
                    resolve_email=resolve_email,
                    resolve_login=resolve_login,
                )
            )
    return list(people.values())
