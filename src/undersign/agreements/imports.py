"""Storing what ``importers.parse`` read: one file, one transaction, all or nothing.

``importers`` stays pure (bytes in, records out); this module is the database side:

- A login without a GitHub id is asked of GitHub through ``resolve_login`` (the caller passes
  the GitHub client's ``GET /users/{login}``, paced like every other call), once per distinct
  login in the run, and at most ``max_lookups`` of them (the console caps them, as they are
  asked inside a web request; the command line does not). A login GitHub no longer knows is
  a ``not-found`` problem on its line; a login GitHub knows as an organisation or a bot is
  ``not-a-person`` (a signature is a person's: the resolver says what the account is, from
  the same answer); a login that turns out to be someone already in the file is a
  ``duplicate``.
- Nothing is written when any row is malformed, or on a dry run: the report is the same,
  only ``written`` says whether the signatures were stored.
- The same file imported twice at the same moment: the second to write finds the first's
  signatures in the way (the unique index) and raises ``ImportConflict``; nothing of it is
  stored (the caller rolls back).
- The same file twice changes nothing: a person who already holds a signature on the version
  (signed in undersign, or imported before, revoked or not) is ``already present``. A
  revoked imported signature is not brought back by importing the file again.
- An imported signature has no text hash, IP address or user agent (the old tool never
  recorded them); its provenance is the source, the file's SHA-256, the time the old tool
  recorded and the row as read (``models.Signature``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from undersign.agreements.errors import ImportConflict, TooManyLookups
from undersign.agreements.importers import ImportBatch, ImportProblem, ImportRecord
from undersign.agreements.models import AgreementVersion, Signature
from undersign.agreements.service import CLI_ACTOR, IN_CHUNK, SignatureService
from undersign.db import utcnow


@dataclass(frozen=True)
class NotAPerson:
    """What ``resolve_login`` answers for a login GitHub knows, but not as a person."""

    login: str
    account_type: str  # GitHub's ``type``: "Organization", "Bot"


#: ``resolve_login(login)``: GitHub's ``(id, login)`` for a person's login, ``NotAPerson``
#: for an organisation's or a bot's, or None when GitHub answers 404 (gone or renamed).
LoginResolver = Callable[[str], "tuple[int, str] | NotAPerson | None"]
ReportKind = Literal["malformed", "duplicate", "revoked", "not-found", "not-a-person"]
_ACCOUNT_TYPES = {"Organization": "an organisation", "Bot": "a bot"}


@dataclass(frozen=True)
class LineProblem:
    """One line that is not imported, and why."""

    line: int
    kind: ReportKind
    message: str


@dataclass
class ImportReport:
    """What an import did (or, on a dry run or a malformed file, would have done)."""

    source: str
    format: str
    sha256: str
    agreement: str
    version: int
    imported: list[int] = field(default_factory=list)  # GitHub ids, in file order
    already_present: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    lookups: int = 0  # GitHub calls made to resolve logins
    written: bool = False

    @property
    def malformed(self) -> bool:
        return any(problem.kind == "malformed" for problem in self.problems)

    def summary(self) -> str:
        what = "imported" if self.written else "would import"
        return (
            f"{what} {len(self.imported)}, already present {self.already_present}, "
            f"problems {len(self.problems)} ({self.lookups} GitHub lookup(s))"
        )

    def nothing_to_import(self) -> str | None:
        """Why a sound file brings no new signature, said the way it is: everyone already
        signed, every line is a problem, some of each, or no line at all (a page that said
        "everyone already has a signature" of a file of not-found logins misled the reader).
        None when there is something to import, or the file is malformed (fixing it comes
        first). The problems are listed before this is shown, on the page and the terminal."""
        if self.imported or self.malformed:
            return None
        present, problems = self.already_present, len(self.problems)
        if not present and not problems:
            return "nothing to import: the file has no signatures in it"
        if not problems:
            return (
                "nothing new to import: everyone in the file already has a signature on "
                f"version {self.version}"
            )
        if not present:
            return "nothing to import: every line has a problem, listed above"
        people = "1 person" if present == 1 else f"{present} people"
        has = "has" if present == 1 else "have"
        return (
            f"nothing new to import: {people} in the file already {has} a signature on "
            f"version {self.version}, and every other line has a problem, listed above"
        )


@dataclass(frozen=True)
class _Person:
    record: ImportRecord
    github_id: int
    login: str


def import_batch(
    session: Session,
    batch: ImportBatch,
    slug: str,
    *,
    version: int | None = None,
    resolve_login: LoginResolver,
    dry_run: bool = False,
    max_lookups: int | None = None,
    actor: str = CLI_ACTOR,
    on_change: Callable[[int, str], None] | None = None,
    now: dt.datetime | None = None,
) -> ImportReport:
    """Store ``batch``'s signatures on ``slug`` (its current version unless ``version``).

    Only flushes: the caller's transaction commits or rolls back the lot. On a dry run or a
    malformed row nothing is added to ``session``; a file with a malformed row costs no
    GitHub call either (its logins are looked up once it can be imported; a dry run of a
    sound file does look them up, to name the accounts GitHub no longer knows).
    ``on_change(github_id, "signed")`` is called for each person imported, so their open
    pull requests are looked at again.

    ``max_lookups``: more distinct logins to look up than this raises ``TooManyLookups``
    before any GitHub call. ``ImportConflict``: someone in the file got a signature on the
    version after it was checked here (another import at the same moment); the session must
    be rolled back.
    """
    service = SignatureService(session, actor=actor)
    agreement = service.agreements.individual_settings(slug, "imported signatures")
    target = (
        service.agreements.version(agreement, version)
        if version is not None
        else service.agreements.current_version(agreement)
    )
    report = ImportReport(
        source=batch.source,
        format=batch.format,
        sha256=batch.sha256,
        agreement=agreement.slug,
        version=target.number,
    )
    report.problems.extend(_line_problem(problem) for problem in batch.problems)
    if not batch.importable:
        return report
    if max_lookups is not None:
        logins = len(_logins_to_look_up(batch.records))
        if logins > max_lookups:
            raise TooManyLookups(logins, max_lookups)
    people = _resolve(batch.records, resolve_login, report)
    present = _present(session, target.id, [person.github_id for person in people])
    fresh: list[_Person] = []
    for person in people:
        if person.github_id in present:
            report.already_present += 1
        else:
            fresh.append(person)
    report.imported = [person.github_id for person in fresh]
    report.problems.sort(key=lambda problem: problem.line)
    if dry_run or report.malformed:
        return report
    moment = now or utcnow()
    for person in fresh:
        session.add(_signature(person, target, batch, moment))
    try:
        session.flush()
    except IntegrityError:
        raise ImportConflict(
            "some of these people got a signature on this version while the file was being "
            "imported (the same file imported at the same moment?)"
        ) from None
    service.agreements.audit(
        agreement,
        "signatures.import",
        None,
        {
            "source": batch.source,
            "format": batch.format,
            "sha256": batch.sha256,
            "version": target.number,
            "imported": len(fresh),
            "already_present": report.already_present,
            "problems": len(report.problems),
        },
    )
    report.written = True
    if on_change is not None:
        for person in fresh:
            on_change(person.github_id, "signed")
    return report


def formula_notes(batch: ImportBatch) -> list[str]:
    """One note per line whose cells start like a spreadsheet formula: stored as text, said
    so that the person importing knows (the command line and the console show them)."""
    return [
        f"line {record.line}: note: {', '.join(record.formula_like)} starts like a "
        "spreadsheet formula; kept as text (CSV exports neutralise it)"
        for record in batch.records
        if record.formula_like
    ]


def _line_problem(problem: ImportProblem) -> LineProblem:
    return LineProblem(problem.line, problem.kind, problem.message)


def _logins_to_look_up(records: Iterable[ImportRecord]) -> set[str]:
    """The distinct logins (as GitHub compares them) that came without a GitHub id."""
    return {(record.login or "").lower() for record in records if record.github_id is None}


def _resolve(
    records: Iterable[ImportRecord], resolve_login: LoginResolver, report: ImportReport
) -> list[_Person]:
    """Give every record a GitHub id: one call per distinct login that came without one."""
    cache: dict[str, tuple[int, str] | NotAPerson | None] = {}
    seen: dict[int, int] = {}
    people: list[_Person] = []
    for record in records:
        if record.github_id is not None:
            github_id, login = record.github_id, record.login or ""
        else:
            key = (record.login or "").lower()
            if key not in cache:
                report.lookups += 1
                cache[key] = resolve_login(record.login or "")
            found = cache[key]
            if found is None:
                report.problems.append(
                    LineProblem(
                        record.line,
                        "not-found",
                        f"GitHub has no account {record.login!r} any more (renamed or "
                        "deleted); not imported",
                    )
                )
                continue
            if isinstance(found, NotAPerson):
                report.problems.append(
                    LineProblem(record.line, "not-a-person", _not_a_person(found))
                )
                continue
            github_id, login = found
        first = seen.get(github_id)
        if first is not None:
            report.problems.append(
                LineProblem(
                    record.line,
                    "duplicate",
                    f"GitHub id {github_id} ({login}) already appears on line {first}; "
                    "not imported",
                )
            )
            continue
        seen[github_id] = record.line
        people.append(_Person(record, github_id, login))
    return people


def _not_a_person(account: NotAPerson) -> str:
    what = _ACCOUNT_TYPES.get(account.account_type, f"a {account.account_type!r} account")
    return (
        f"{account.login!r} is {what}, not a person: a signature needs a person's account; "
        "not imported"
    )


def _present(session: Session, version_id: int, github_ids: list[int]) -> set[int]:
    """Who already holds a signature on the version: any active one, or an imported one
    (even revoked: importing the file again must not undo a revocation)."""
    found: set[int] = set()
    for start in range(0, len(github_ids), IN_CHUNK):
        chunk = github_ids[start : start + IN_CHUNK]
        found.update(
            session.scalars(
                select(Signature.github_id).where(
                    Signature.version_id == version_id,
                    Signature.github_id.in_(chunk),
                    Signature.revoked_at.is_(None) | Signature.import_source.is_not(None),
                )
            )
        )
    return found


def _signature(
    person: _Person, version: AgreementVersion, batch: ImportBatch, moment: dt.datetime
) -> Signature:
    record = person.record
    original: dict[str, Any] = dict(record.original)
    return Signature(
        version_id=version.id,
        github_id=person.github_id,
        login=person.login[:100],
        name=(record.name or "")[:200],
        email=(record.email or "")[:320],
        field_values={},
        text_sha256=None,
        signed_at=record.signed_at or moment,
        ip_address=None,
        user_agent=None,
        import_source=batch.source,
        imported_at=moment,
        import_file_sha256=batch.sha256,
        original_signed_at=record.signed_at,
        import_record=original,
    )
