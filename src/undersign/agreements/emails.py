"""Email addresses a person proved to be theirs, so commits carrying them count as theirs.

GitHub links a commit to an account only when it can; a commit authored with a work address
it does not link names nobody who can sign. A signed-in person can prove their addresses:
undersign asks GitHub (``GET /user/emails``, with the ``user:email`` scope granted for that
one call) and keeps the addresses GitHub says are ``verified`` on their account. Listed but
unverified addresses prove nothing.

An address belongs to at most one GitHub id. Proving it from another account moves it (only
a verified address is ever stored, so only when GitHub verified it there) and the audit log
says from whom. Every link, move and removal is an ``audit_log`` row (``email.link``,
``email.move``, ``email.remove``) in the transaction of the change, and ``on_change`` hears
the addresses whose owner changed, so the open pull requests they authored are evaluated
again. Here, and not in ``accounts/``, because the audit log is an agreements table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from undersign.accounts.models import ProvenEmail
from undersign.agreements.models import AuditEntry
from undersign.db import utcnow

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "EmailHook",
    "GitHubEmail",
    "LinkResult",
    "ProvenEmailService",
    "normalize_address",
    "parse_user_emails",
]

MAX_ADDRESS_LENGTH = 320

#: Called with the addresses whose owner changed (still inside the caller's transaction).
EmailHook = Callable[[Sequence[str]], None]


def normalize_address(raw: object) -> str | None:
    """The address case-folded, or None when it is not one; no other rewriting (a provider's
    dots and ``+tags`` are its own business, and guessing them would merge strangers)."""
    if not isinstance(raw, str):
        return None
    address = raw.strip().casefold()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > MAX_ADDRESS_LENGTH:
        return None
    if any(ch.isspace() or ch in "<>" or not ch.isprintable() for ch in address):
        return None
    return address


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


@dataclass(frozen=True)
class GitHubEmail:
    """One entry of ``GET /user/emails``."""

    address: str
    verified: bool
    primary: bool = False


def parse_user_emails(payload: object) -> list[GitHubEmail]:
    """The entries of a ``GET /user/emails`` answer with a usable address; ``verified`` is
    true only when GitHub said exactly ``true``."""
    if not isinstance(payload, list):
        raise ValueError("GET /user/emails did not answer a list")
    found: dict[str, GitHubEmail] = {}
    for item in payload:
        if not isinstance(item, Mapping):
            continue
        address = normalize_address(item.get("email"))
        if address is None:
            continue
        entry = GitHubEmail(address, item.get("verified") is True, item.get("primary") is True)
        if address not in found or (entry.verified and not found[address].verified):
            found[address] = entry
    return list(found.values())


@dataclass
class LinkResult:
    """What one proof did: addresses newly linked, moved from another account, already
    this person's, and listed by GitHub without being verified (ignored)."""

    linked: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return [*self.linked, *self.moved]


class ProvenEmailService:
    """Proven addresses: who owns which, linking, removing; every change audited."""

    def __init__(
        self, session: Session, on_change: EmailHook | None = None, *, actor: str = "cli"
    ) -> None:
        self.session = session
        self.on_change = on_change
        self.actor = actor

    def addresses_of(self, github_id: int) -> list[ProvenEmail]:
        """This person's proven addresses, alphabetically."""
        return list(
            self.session.scalars(
                select(ProvenEmail)
                .where(ProvenEmail.github_id == github_id)
                .order_by(ProvenEmail.address)
            )
        )

    def owners(self, addresses: Iterable[str]) -> dict[str, int]:
        """{address: github id} for those of ``addresses`` (any case) someone proved."""
        wanted = {a for a in (normalize_address(x) for x in addresses) if a is not None}
        if not wanted:
            return {}
        found: dict[str, int] = {}
        chunk = sorted(wanted)
        for start in range(0, len(chunk), 500):  # bound the IN list
            rows = self.session.execute(
                select(ProvenEmail.address, ProvenEmail.github_id).where(
                    ProvenEmail.address.in_(chunk[start : start + 500])
                )
            )
            found.update({address: int(github_id) for address, github_id in rows})
        return found

    def link_verified(self, github_id: int, emails: Iterable[GitHubEmail]) -> LinkResult:
        """Keep every address GitHub verified on ``github_id``'s account (the caller asked
        GitHub with that person's own token a moment ago)."""
        result = LinkResult()
        now = utcnow()
        for email in emails:
            if not email.verified:
                result.unverified.append(email.address)
                continue
            row = self.session.get(ProvenEmail, email.address)
            if row is None:
                self.session.add(
                    ProvenEmail(
                        address=email.address,
                        github_id=github_id,
                        domain=_domain(email.address),
                        proven_at=now,
                    )
                )
                self._audit("email.link", None, {"address": email.address, "github_id": github_id})
                result.linked.append(email.address)
            elif row.github_id == github_id:
                row.proven_at = now
                result.kept.append(email.address)
            else:
                before = {"address": email.address, "github_id": row.github_id}
                row.github_id, row.proven_at = github_id, now
                self._audit(
                    "email.move", before, {"address": email.address, "github_id": github_id}
                )
                result.moved.append(email.address)
        self.session.flush()
        if result.changed and self.on_change is not None:
            self.on_change(result.changed)
        return result

    def remove(self, github_id: int, address: str) -> bool:
        """Forget one of this person's addresses; False when it is not theirs."""
        normalized = normalize_address(address)
        if normalized is None:
            return False
        removed = self.session.execute(
            delete(ProvenEmail).where(
                ProvenEmail.address == normalized, ProvenEmail.github_id == github_id
            )
        )
        if not getattr(removed, "rowcount", 0):
            return False
        self._audit("email.remove", {"address": normalized, "github_id": github_id}, None)
        self.session.flush()
        if self.on_change is not None:
            self.on_change([normalized])
        return True

    def _audit(
        self, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        self.session.add(
            AuditEntry(
                agreement_id=None,
                actor=self.actor[:40],
                action=action,
                before=before,
                after=after,
                created_at=utcnow(),
            )
        )
