"""The exceptions the agreements domain raises; callers translate them for their medium."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from undersign.agreements.models import AgreementVersion


class AgreementError(Exception):
    """Base class: the message is safe to show to the person who caused it."""


class UnknownAgreement(AgreementError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"no agreement with slug {slug!r}")
        self.slug = slug


class NoPublishedVersion(AgreementError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"agreement {slug!r} has no published version")
        self.slug = slug


class UnknownSignature(AgreementError):
    """Also raised for someone else's signature, so ids reveal nothing (no IDOR oracle)."""

    def __init__(self, signature_id: int) -> None:
        super().__init__(f"no signature with id {signature_id}")
        self.signature_id = signature_id


class InvalidInput(AgreementError, ValueError):
    """A maintainer-supplied value (slug, title, text, repository name, pattern) is unusable."""


class ValidationErrors(AgreementError):
    """A signing form failed validation: one message per field, and nothing was stored."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.errors.items()))


class VersionChanged(AgreementError):
    """The form was shown for a text that is no longer current; show the new one instead.

    Signing must bind to the exact text the person read, so a stale hash is never
    silently upgraded to the new version.
    """

    def __init__(self, current: AgreementVersion) -> None:
        super().__init__(
            f"the agreement changed while you were reading it; version {current.number} "
            "is now current"
        )
        self.current = current


class ImportConflict(AgreementError):
    """Some of an import's people got a signature on the version between the check and the
    write (the same file imported at the same moment): nothing of this run is stored."""


class TooManyLookups(AgreementError):
    """A file names more logins without a GitHub id than the caller lets one run look up."""

    def __init__(self, logins: int, cap: int) -> None:
        super().__init__(
            f"the file has {logins:,} distinct logins without a GitHub id; at most {cap:,} "
            "are looked up on GitHub in one run"
        )
        self.logins = logins
        self.cap = cap
