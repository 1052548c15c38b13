"""The model rules: identity, versions, signing, coverage, revocation, receipts, exports.

Every test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from undersign.accounts.models import User
from undersign.agreements.companies import CompanyService
from undersign.agreements.errors import (
    InvalidInput,
    NoPublishedVersion,
    UnknownAgreement,
    UnknownSignature,
    ValidationErrors,
    VersionChanged,
)
from undersign.agreements.models import Agreement, AgreementVersion, Signature
from undersign.agreements.receipts import BEGIN_MARKER, END_MARKER, extract_text
from undersign.agreements.service import AgreementService, SignatureService, text_sha256
from undersign.db import utcnow

# The conftest's default agreement text (make_agreement() without text=).
TEXT_V1 = "# Contributor License Agreement\n\nYou grant us a licence to your contributions.\n"

MakeAgreement = Callable[..., tuple[Agreement, AgreementVersion]]
Sign = Callable[..., Signature]

TEXT_V2_TYPO = TEXT_V1.replace("licence", "license")
TEXT_V3_NEW_TERMS = TEXT_V2_TYPO + "\nYou also grant us a patent licence.\n"


# Versions.


def test_a_new_agreement_starts_at_version_1(agreements: AgreementService) -> None:
    agreement, version, created = agreements.add_or_update("cla", "Our CLA", TEXT_V1)
    assert created
    assert (agreement.slug, agreement.kind, agreement.title) == ("cla", "individual", "Our CLA")
    assert version.number == 1
    assert version.change_type == "material"
    assert version.text_sha256 == hashlib.sha256(TEXT_V1.encode()).hexdigest()
    assert version.published_at is not None
    assert agreements.current_version("cla") == version


def test_the_same_text_creates_no_version(agreements: AgreementService) -> None:
    _, first, _ = agreements.add_or_update("cla", "Our CLA", TEXT_V1)
    agreement, again, created = agreements.add_or_update("cla", "Renamed CLA", TEXT_V1)
    assert not created
    assert again.id == first.id
    assert agreement.title == "Renamed CLA"
    assert len(agreement.versions) == 1


def test_line_endings_do_not_make_a_new_version(agreements: AgreementService) -> None:
    agreements.add_or_update("cla", "Our CLA", TEXT_V1)
    _, version, created = agreements.add_or_update("cla", "Our CLA", TEXT_V1.replace("\n", "\r\n"))
    assert not created
    assert version.number == 1


def test_a_changed_text_creates_the_next_version(agreements: AgreementService) -> None:
    agreements.add_or_update("cla", "Our CLA", TEXT_V1)
    _, v2, created = agreements.add_or_update(
        "cla", "Our CLA", TEXT_V2_TYPO, change_type="editorial"
    )
    assert created
    assert (v2.number, v2.change_type) == (2, "editorial")
    assert agreements.current_version("cla").number == 2


def test_version_numbers_are_unique_in_the_database(
    session: Session, make_agreement: MakeAgreement
) -> None:
    agreement, _ = make_agreement()
    session.add(
        AgreementVersion(
            agreement_id=agreement.id,
            number=1,
            text="x",
            text_sha256=text_sha256("x"),
            change_type="material",
            published_at=utcnow(),
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


@pytest.mark.parametrize(
    ("slug", "title", "body", "message"),
    [
        ("Bad Slug", "T", "x", "slug"),
        ("-cla", "T", "x", "slug"),
        ("cla", "", "x", "title"),
        ("cla", "T\u202e", "x", "title"),
        ("cla", "T", "  \n", "empty"),
        ("cla", "T", "a\x00b", "NUL"),
    ],
)
def test_bad_agreement_input_is_refused(
    agreements: AgreementService, slug: str, title: str, body: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        agreements.add_or_update(slug, title, body)


def test_unknown_agreement(agreements: AgreementService) -> None:
    with pytest.raises(UnknownAgreement):
        agreements.current_version("nope")


def test_an_agreement_with_only_a_draft_has_no_current_version(
    session: Session, agreements: AgreementService
) -> None:
    agreement = Agreement(slug="draft", title="Draft", field_definitions=[])
    session.add(agreement)
    session.flush()
    session.add(
        AgreementVersion(
            agreement_id=agreement.id,
            number=1,
            text="x",
            text_sha256=text_sha256("x"),
            change_type="material",
        )
    )
    session.flush()
    with pytest.raises(NoPublishedVersion):
        agreements.current_version("draft")


def test_custom_fields_are_stored_and_kept_when_omitted(agreements: AgreementService) -> None:
    fields = [{"name": "country", "label": "Country", "type": "country", "required": True}]
    agreement, _, _ = agreements.add_or_update("cla", "Our CLA", TEXT_V1, fields)
    agreements.add_or_update("cla", "Our CLA", TEXT_V2_TYPO)
    assert [f.name for f in agreement.fields] == ["country"]
    with pytest.raises(InvalidInput):
        agreements.add_or_update("cla", "Our CLA", TEXT_V1, [{"name": "email", "label": "x"}])


# Signing.


def test_signing_records_the_exact_text_and_evidence(
    make_agreement: MakeAgreement, sign: Sign, events: list[tuple[int, str]]
) -> None:
    _, version = make_agreement()
    signature = sign(name="  Zoë Ñúñez ", user_agent="Mozilla\x00/5.0")
    assert signature.version_id == version.id
    assert signature.text_sha256 == version.text_sha256
    assert signature.name == "Zoë Ñúñez"
    assert (signature.github_id, signature.login) == (1001, "alice")
    assert signature.ip_address == "192.0.2.10"
    assert signature.user_agent == "Mozilla/5.0"
    assert signature.signed_at.tzinfo is not None
    assert signature.revoked_at is None
    assert events == [(1001, "signed")]


def test_signing_twice_changes_nothing(
    session: Session,
    make_agreement: MakeAgreement,
    sign: Sign,
    signatures: SignatureService,
    events: list[tuple[int, str]],
) -> None:
    _, version = make_agreement()
    first = sign()
    result = signatures.sign(
        "cla",
        github_id=1001,
        login="alice",
        name="Other Name",
        email="other@example.org",
        version_sha256=version.text_sha256,
        agreed=True,
    )
    assert not result.created
    assert result.signature.id == first.id
    assert result.signature.name == "Alice Example"
    assert session.scalar(select(Signature.id).where(Signature.id != first.id)) is None
    assert events == [(1001, "signed")]


def test_the_database_refuses_two_active_signatures(
    session: Session, make_agreement: MakeAgreement, sign: Sign
) -> None:
    _, version = make_agreement()
    sign()
    session.add(
        Signature(
            version_id=version.id,
            github_id=1001,
            login="alice",
            name="A",
            email="a@example.org",
            field_values={},
            text_sha256=version.text_sha256,
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_a_concurrent_duplicate_insert_is_absorbed(
    make_agreement: MakeAgreement,
    sign: Sign,
    signatures: SignatureService,
    monkeypatch: pytest.MonkeyPatch,
    events: list[tuple[int, str]],
) -> None:
    """The row appears between the service's check and its insert (a second tab)."""
    _, version = make_agreement()
    first = sign()
    real_active_on = signatures._active_on
    calls: list[int] = []

    def miss_once(version_id: int, github_id: int) -> Signature | None:
        calls.append(github_id)
        return None if len(calls) == 1 else real_active_on(version_id, github_id)

    monkeypatch.setattr(signatures, "_active_on", miss_once)
    result = signatures.sign(
        "cla",
        github_id=1001,
        login="alice",
        name="A",
        email="a@example.org",
        version_sha256=version.text_sha256,
        agreed=True,
    )
    assert not result.created
    assert result.signature.id == first.id
    assert events == [(1001, "signed")]


def test_invalid_fields_store_nothing(
    session: Session,
    make_agreement: MakeAgreement,
    signatures: SignatureService,
    events: list[tuple[int, str]],
) -> None:
    _, version = make_agreement(
        fields=[{"name": "country", "label": "Country", "type": "country", "required": True}]
    )
    with pytest.raises(ValidationErrors) as caught:
        signatures.sign(
            "cla",
            github_id=1,
            login="a",
            name="Ali\x00ce",
            email="bad",
            agreed=False,
            version_sha256=version.text_sha256,
            field_values={"country": "ZZ"},
        )
    assert set(caught.value.errors) == {"name", "email", "agree", "country"}
    assert session.scalar(select(Signature.id)) is None
    assert events == []


def test_a_stale_form_is_shown_the_new_text(
    session: Session, make_agreement: MakeAgreement, signatures: SignatureService
) -> None:
    _, v1 = make_agreement()
    _, v2 = make_agreement(text=TEXT_V3_NEW_TERMS)
    with pytest.raises(VersionChanged) as caught:
        signatures.sign(
            "cla",
            github_id=1,
            login="a",
            name="A",
            email="a@example.org",
            agreed=True,
            version_sha256=v1.text_sha256,
        )
    assert caught.value.current.id == v2.id
    assert session.scalar(select(Signature.id)) is None


def test_the_hook_runs_after_the_row_is_flushed(
    session: Session, make_agreement: MakeAgreement
) -> None:
    _, version = make_agreement()
    seen: list[object] = []

    def hook(github_id: int, event: str) -> None:
        seen.append(
            (
                event,
                session.execute(text("SELECT github_id FROM signatures WHERE revoked_at IS NULL"))
                .scalars()
                .all(),
            )
        )

    service = SignatureService(session, on_change=hook)
    service.sign(
        "cla",
        github_id=7,
        login="g",
        name="G",
        email="g@example.org",
        agreed=True,
        version_sha256=version.text_sha256,
    )
    service.revoke(("cla", "g"), by="test", reason="gone")
    assert seen == [("signed", [7]), ("revoked", [])]


# Identity.


def test_identity_is_the_github_id_across_a_rename(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    agreement, _ = make_agreement()
    sign(github_id=42, login="old-name")
    assert signatures.is_covered(agreement, 42)
    # The account is renamed, and someone else takes the freed login.
    assert not signatures.is_covered(agreement, 43)
    result = signatures.sign(
        "cla",
        github_id=42,
        login="new-name",
        name="A",
        email="a@example.org",
        agreed=True,
        version_sha256=agreement.versions[-1].text_sha256,
    )
    assert not result.created
    assert result.signature.login == "old-name"  # the login at signing time is evidence


def test_revoking_by_login_follows_the_newest_holder(
    session: Session, make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    agreement, _ = make_agreement()
    sign(github_id=42, login="Taken")
    assert signatures.github_id_for_login("taken") == 42
    # 42 renamed itself; 43 took the login and signed in later.
    session.add(User(github_id=42, login="renamed", last_login_at=utcnow()))
    session.add(User(github_id=43, login="taken", last_login_at=utcnow() + dt.timedelta(seconds=5)))
    session.flush()
    assert signatures.github_id_for_login("TAKEN") == 43
    assert signatures.revoke(("cla", "taken"), by="admin", reason="test") == []
    assert signatures.is_covered(agreement, 42)
    revoked = signatures.revoke(("cla", "RENAMED"), by="admin", reason="asked by email")
    assert [s.github_id for s in revoked] == [42]
    assert not signatures.is_covered(agreement, 42)


def test_unknown_login_revokes_nothing(
    make_agreement: MakeAgreement, signatures: SignatureService
) -> None:
    make_agreement()
    assert signatures.github_id_for_login("nobody") is None
    assert signatures.revoke(("cla", "nobody"), by="admin", reason="x") == []


# Editorial versus material changes.


def test_an_editorial_change_keeps_earlier_signatures_valid(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    agreement, _ = make_agreement()
    sign(github_id=1)
    make_agreement(text=TEXT_V2_TYPO, change_type="editorial")
    assert signatures.is_covered(agreement, 1)
    standing = signatures.standing(agreement, 1)
    assert standing.covered
    assert standing.current_version.number == 2
    assert standing.covering is not None and standing.covering.version.number == 1


def test_a_material_change_asks_for_a_new_signature(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    agreement, _ = make_agreement()
    old = sign(github_id=1)
    make_agreement(text=TEXT_V3_NEW_TERMS, change_type="material")
    assert not signatures.is_covered(agreement, 1)
    standing = signatures.standing(agreement, 1)
    assert not standing.covered
    assert standing.outdated is not None and standing.outdated.id == old.id
    new = sign(github_id=1)
    assert new.version.number == 2
    assert signatures.is_covered(agreement, 1)


def test_editorial_after_material_counts_from_the_material_version(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    agreement, _ = make_agreement()
    sign(github_id=1)  # v1
    make_agreement(text=TEXT_V3_NEW_TERMS, change_type="material")  # v2
    sign(github_id=2)  # v2
    make_agreement(text=TEXT_V3_NEW_TERMS + "\nTypo fixed.\n", change_type="editorial")  # v3
    assert signatures.covered_ids(agreement, [1, 2, 3]) == {2}
    assert signatures.covered_ids(agreement.id, []) == set()


def test_signed_earlier_ids_are_those_a_material_change_left_behind(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    """1 signed v1 only, 2 signed v1 and v2, 5 signed v1 and revoked it, 4 never signed:
    only 1 signed an earlier version and must sign again."""
    agreement, _ = make_agreement()
    for github_id in (1, 2):
        sign(github_id=github_id)
    revoked = sign(github_id=5)
    signatures.revoke(revoked.id, by="test", reason="left", owner_github_id=5)
    make_agreement(text=TEXT_V3_NEW_TERMS, change_type="material")  # v2
    sign(github_id=2)
    uncovered = {1, 2, 4, 5} - signatures.covered_ids(agreement, [1, 2, 4, 5])
    assert signatures.signed_earlier_ids(agreement, uncovered) == {1}
    assert signatures.signed_earlier_ids(agreement.id, []) == set()


def test_covered_ids_are_per_agreement(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    cla, _ = make_agreement("cla")
    other, _ = make_agreement("other")
    sign("cla", github_id=1)
    sign("other", github_id=2)
    assert signatures.covered_ids(cla, [1, 2]) == {1}
    assert signatures.covered_ids(other, [1, 2]) == {2}


def test_covered_ids_handles_many_people(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    agreement, _ = make_agreement()
    sign(github_id=12_345)
    assert signatures.covered_ids(agreement, range(1, 12_001 + 500)) == {12_345}


def test_covered_ids_uses_the_active_signature_index(
    session: Session, make_agreement: MakeAgreement, signatures: SignatureService
) -> None:
    """With a million signatures, the coverage query must search an index, never scan."""
    agreement, _ = make_agreement()
    statement = signatures._coverage_statement(agreement.id, [1, 2, 3])
    bind = session.get_bind()
    compiled = statement.compile(bind, compile_kwargs={"literal_binds": True})
    if bind.dialect.name == "sqlite":
        plan = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        details = " | ".join(str(row[-1]) for row in plan)
        assert "SEARCH signatures USING" in details, details
        assert "SCAN signatures" not in details, details
    else:
        # A near-empty table is cheapest to scan; forbid that to see whether the partial
        # index is usable for this query at all (its predicate must match).
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = session.execute(text(f"EXPLAIN {compiled}")).scalars().all()
        details = " | ".join(str(line) for line in plan)
        assert "uq_signatures_active_version_github_id" in details, details


# Revocation.


def test_revocation_keeps_history_and_allows_signing_again(
    session: Session,
    make_agreement: MakeAgreement,
    sign: Sign,
    signatures: SignatureService,
    events: list[tuple[int, str]],
) -> None:
    agreement, _ = make_agreement()
    first = sign(github_id=1)
    revoked = signatures.revoke(first.id, by="alice", reason="changed my mind")
    assert [s.id for s in revoked] == [first.id]
    assert first.revoked_at is not None
    assert (first.revoked_by, first.revocation_reason) == ("alice", "changed my mind")
    assert not signatures.is_covered(agreement, 1)
    assert signatures.revoke(first.id, by="alice", reason="again") == []

    second = sign(github_id=1)
    assert second.id != first.id
    assert signatures.is_covered(agreement, 1)
    assert [s.id for s in signatures.signatures_of(1)] == [second.id, first.id]
    assert [s.id for s in signatures.signatures_of(1, include_revoked=False)] == [second.id]
    assert events == [(1, "signed"), (1, "revoked"), (1, "signed")]


def test_revocation_covers_every_valid_version(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    """An older signature kept valid by an editorial change must not keep covering them."""
    agreement, _ = make_agreement()
    old = sign(github_id=1)
    make_agreement(text=TEXT_V2_TYPO, change_type="editorial")
    new = sign(github_id=1)
    revoked = signatures.revoke(new.id, by="alice", reason="leaving")
    assert {s.id for s in revoked} == {old.id, new.id}
    assert not signatures.is_covered(agreement, 1)


def test_nobody_revokes_someone_elses_signature(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    agreement, _ = make_agreement()
    theirs = sign(github_id=1)
    with pytest.raises(UnknownSignature):
        signatures.revoke(theirs.id, by="mallory", reason="x", owner_github_id=2)
    with pytest.raises(UnknownSignature):
        signatures.get_signature(theirs.id, owner_github_id=2)
    with pytest.raises(UnknownSignature):
        signatures.get_signature(999_999)
    assert signatures.is_covered(agreement, 1)


def test_a_revocation_needs_a_reason(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    make_agreement()
    signature = sign()
    with pytest.raises(InvalidInput, match="reason"):
        signatures.revoke(signature.id, by="admin", reason="  ")


# Repositories and organizations.


def test_a_repo_link_wins_over_an_org_link(
    make_agreement: MakeAgreement, agreements: AgreementService
) -> None:
    org_cla, _ = make_agreement("org-cla")
    repo_cla, _ = make_agreement("repo-cla")
    agreements.link_org("Acme", "org-cla", exempt_org_members=True)
    agreements.link_repo("ACME/Special.Repo", "repo-cla", exempt_collaborators=True)
    assert agreements.agreement_for_repo("acme/special.repo") == repo_cla
    assert agreements.agreement_for_repo("acme/other") == org_cla
    assert agreements.agreement_for_repo("someone/else") is None
    coverage = agreements.coverage_for_repo("Acme/Special.Repo")
    assert coverage is not None
    assert (coverage.source, coverage.exempt_collaborators, coverage.exempt_org_members) == (
        "repo",
        True,
        False,
    )
    org_coverage = agreements.coverage_for_repo("acme/x")
    assert org_coverage is not None and org_coverage.exempt_org_members


def test_relinking_replaces_and_unlinking_removes(
    make_agreement: MakeAgreement, agreements: AgreementService
) -> None:
    make_agreement("a")
    b, _ = make_agreement("b")
    agreements.link_repo("o/r", "a")
    agreements.link_repo("O/R", "b")
    assert agreements.agreement_for_repo("o/r") == b
    assert len(agreements.repo_links()) == 1
    assert agreements.unlink_repo("o/R")
    assert not agreements.unlink_repo("o/r")
    assert agreements.agreement_for_repo("o/r") is None


def test_a_corporate_agreement_is_never_linked(
    make_agreement: MakeAgreement, agreements: AgreementService, session: Session
) -> None:
    """Its pull requests would ask each contributor to sign for a company: none could pass.
    The refusal names the individual agreement to link instead, and nothing is written."""
    make_agreement("individual-cla")
    CompanyService(session).add_corporate_agreement(
        "corporate-cla", "Corporate", "We agree.", "individual-cla"
    )
    with pytest.raises(InvalidInput, match=r"corporate agreement.*link 'individual-cla' instead"):
        agreements.link_repo("acme/widgets", "corporate-cla")
    with pytest.raises(InvalidInput, match="link 'individual-cla' instead"):
        agreements.link_org("acme", "corporate-cla")
    assert agreements.repo_links() == [] and agreements.org_links() == []
    assert agreements.agreement_for_repo("acme/widgets") is None


@pytest.mark.parametrize(
    "name",
    ["noslash", "a/b/c", "/repo", "owner/", "-owner/repo", "own er/repo", "o/..", "o/r?x", "o/r#1"],
)
def test_bad_repository_names_are_refused(
    make_agreement: MakeAgreement, agreements: AgreementService, name: str
) -> None:
    make_agreement()
    with pytest.raises(InvalidInput):
        agreements.link_repo(name, "cla")


def test_a_clone_urls_dot_git_is_refused_with_the_name_to_link(
    make_agreement: MakeAgreement, agreements: AgreementService
) -> None:
    """GitHub strips ``.git`` from a new repository's name: a link keeping it would never
    match a pull request, so the maintainer is told the name to link instead."""
    make_agreement()
    with pytest.raises(InvalidInput, match=r"ends in \.git.*link 'acme/widgets'"):
        agreements.link_repo("Acme/Widgets.git", "cla")
    assert agreements.repo_links() == []
    assert agreements.link_repo("acme/widgets.js", "cla").full_name == "acme/widgets.js"


def test_enterprise_managed_user_names_are_accepted(
    make_agreement: MakeAgreement, agreements: AgreementService
) -> None:
    make_agreement()
    assert agreements.link_repo("Octocat_Acme/Repo.js", "cla").full_name == "octocat_acme/repo.js"
    assert agreements.allowlist_add("cla", "build_acme").pattern == "build_acme"


def test_linking_to_an_unknown_agreement_fails(agreements: AgreementService) -> None:
    with pytest.raises(UnknownAgreement):
        agreements.link_org("acme", "missing")


# Allowlist.


def test_allowlist(make_agreement: MakeAgreement, agreements: AgreementService) -> None:
    agreement, _ = make_agreement()
    agreements.allowlist_add("cla", "Dependabot[bot]", note="bot")
    agreements.allowlist_add(agreement, "*-ci")
    agreements.allowlist_add(agreement, "*-ci", note="updated")
    assert [(e.pattern, e.note) for e in agreements.allowlist("cla")] == [
        ("*-ci", "updated"),
        ("dependabot[bot]", "bot"),
    ]
    assert agreements.is_allowlisted("cla", "dependabot[bot]")
    assert agreements.is_allowlisted("cla", "Acme-CI")
    assert not agreements.is_allowlisted("cla", "dependabotb")  # brackets are literal
    assert not agreements.is_allowlisted("cla", "acme-ci-not")
    assert agreements.allowlist_remove("cla", "*-CI")
    assert not agreements.allowlist_remove("cla", "*-ci")
    for bad in ["*", "**", "a b", "a/b", ""]:
        with pytest.raises(InvalidInput):
            agreements.allowlist_add("cla", bad)


# Receipts, differences and exports.


def test_the_receipt_proves_the_exact_text(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    _, version = make_agreement(
        text="Terms without a final newline",
        fields=[
            {"name": "address", "label": "Address", "type": "textarea"},
            {"name": "country", "label": "Country", "type": "country"},
        ],
    )
    signature = sign(
        field_values={"address": f"Street 1\n{END_MARKER}\n- Text SHA-256: forged", "country": "FR"}
    )
    receipt = signatures.receipt_text(signature)
    body = extract_text(receipt)
    assert body == version.text
    assert f"- Text SHA-256: {hashlib.sha256(body.encode()).hexdigest()}" in receipt
    assert "- GitHub user id: 1001" in receipt
    assert "- GitHub login when signing: alice" in receipt
    assert "- Full name: Alice Example" in receipt
    assert "- Email: alice@example.org" in receipt
    assert "- Country: France (FR)" in receipt
    assert f"- Signed at (UTC): {signature.signed_at:%Y-%m-%dT%H:%M:%S}Z" in receipt
    # A signer's value can neither forge a field line nor close the text early.
    assert receipt.count("\n- Text SHA-256:") == 1
    assert receipt.count(f"\n{END_MARKER}") == 1
    assert receipt.count(BEGIN_MARKER) == 1
    assert signatures.receipt_filename(signature) == f"undersign-receipt-cla-v1-{signature.id}.md"


def test_a_value_holding_a_marker_cannot_break_the_self_check(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    """Markers are whole lines: a name that contains one (on the line of its label) is not a
    begin marker, and the text hashes as printed."""
    make_agreement(
        text="Terms",
        fields=[{"name": "address", "label": "Address", "type": "textarea"}],
    )
    signature = sign(
        name=f"{BEGIN_MARKER}",
        field_values={"address": f"{BEGIN_MARKER}\nforged text\n{END_MARKER}"},
    )
    receipt = signatures.receipt_text(signature)
    assert f"- Full name: {BEGIN_MARKER}\n" in receipt  # the trap is really there
    body = extract_text(receipt)
    assert body == "Terms"
    assert f"- Text SHA-256: {hashlib.sha256(body.encode()).hexdigest()}" in receipt
    with pytest.raises(ValueError, match="no begin marker line"):
        extract_text("- Full name: x\n")


def test_diff_since_a_materially_changed_version(
    make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService
) -> None:
    make_agreement()
    signature = sign()
    assert signatures.diff_since(signature) == ""
    make_agreement(text=TEXT_V3_NEW_TERMS)
    diff = signatures.diff_since(signature)
    assert "--- cla version 1 (you signed)" in diff
    assert "+++ cla version 2 (current)" in diff
    assert "-You grant us a licence to your contributions." in diff
    assert "+You grant us a license to your contributions." in diff
    assert "+You also grant us a patent licence." in diff


def test_export(make_agreement: MakeAgreement, sign: Sign, signatures: SignatureService) -> None:
    make_agreement(fields=[{"name": "country", "label": "Country", "type": "country"}])
    first = sign(github_id=1, login="alice", field_values={"country": "de"})
    make_agreement(text=TEXT_V3_NEW_TERMS)
    sign(github_id=2, login="bob", name="Bob", email="bob@example.org")
    signatures.revoke(first.id, by="alice", reason="bye")

    rows: list[dict[str, Any]] = list(signatures.export("cla"))
    assert [(r["login"], r["version"]) for r in rows] == [("alice", 1), ("bob", 2)]
    alice = rows[0]
    for key in (
        "github_id",
        "login",
        "name",
        "email",
        "version",
        "text_sha256",
        "signed_at",
        "revoked_at",
    ):
        assert key in alice
    assert alice["github_id"] == 1
    assert alice["fields"] == {"country": "DE"}
    assert alice["revoked_at"] is not None and alice["revoked_at"].endswith("Z")
    assert rows[1]["revoked_at"] is None
    assert [r["login"] for r in signatures.export("cla", version=2)] == ["bob"]
    with pytest.raises(InvalidInput):
        list(signatures.export("cla", version=3))
    with pytest.raises(UnknownAgreement):
        list(signatures.export("missing"))
