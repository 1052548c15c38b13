"""Signing an agreement over real HTTP, signed in through the GitHub emulator.

Covers the issue's signing flow and SECURITY.md 6.B: CSRF, per-field validation with
nothing stored, a version published mid-signature (409, the new text shown), mass
assignment, receipts, self-revocation with confirmation, no access to other people's
signatures, and the diff shown after a material change.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from tests.conftest import Live, LiveFactory, sign_in
from tests.support.pages import csrf_token, form_from
from tests.support.signing import TEXT_V1, publish, signature_rows

from undersign.runtime import SIGNATURE_HOOK

TEXT_V2_MATERIAL = TEXT_V1 + "\nYou also grant a patent licence.\n"
FIELDS = [
    {"name": "address", "label": "Postal address", "type": "textarea", "required": True},
    {"name": "country", "label": "Country", "type": "country", "required": True},
    {"name": "website", "label": "Web site", "type": "url"},
]
SIGN_PATH = "/sign/cla?repo=acme/widgets&pr=7"


SignedIn = Callable[..., tuple[httpx.Client, str]]


@pytest.fixture
def signed_in(live: Live) -> Iterator[SignedIn]:
    """Sign in as ``login`` through the emulator, landing on ``path``: (client, page)."""
    clients: list[httpx.Client] = []

    def login_as(login: str = "alice", path: str = SIGN_PATH) -> tuple[httpx.Client, str]:
        client = live.client()
        clients.append(client)
        page = sign_in(live, client, login, next_path=path)
        for _ in range(3):  # whether or not sign_in() follows the final redirect itself
            if page.status_code not in (302, 303):
                break
            page = client.get(page.headers["location"])
        assert page.status_code == 200, page.text
        return client, page.text

    yield login_as
    for client in clients:
        client.close()


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


# Reading the agreement.


def test_a_visitor_sees_the_text_its_hash_and_a_sign_in_link(live: Live, client: httpx.Client):
    version = publish(live.database)
    page = client.get(SIGN_PATH)
    assert page.status_code == 200
    assert "<h1>Individual CLA</h1>" in page.text
    assert "Version 1" in page.text
    assert version.text_sha256 in page.text
    # Raw HTML in the agreement is shown as text, never run.
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in page.text
    assert "<script" not in page.text
    link = re.search(r'<a [^>]*id="sign-in-to-sign" href="([^"]+)"', page.text)
    assert link, page.text
    assert "Sign in with GitHub to sign" in page.text
    assert html.unescape(link.group(1)) == "/login?next=/sign/cla?repo%3Dacme/widgets%26pr%3D7"
    assert 'name="agree"' not in page.text


def test_unknown_agreements_are_404(client: httpx.Client):
    assert client.get("/sign/nope").status_code == 404
    assert client.post("/sign/nope", data={}).status_code in (400, 404)


def test_sign_in_comes_back_to_a_prefilled_form(live: Live, signed_in: SignedIn):
    publish(live.database, fields=FIELDS)
    _, page = signed_in()
    assert 'id="sign-form"' in page
    assert 'value="alice@example.com"' in page  # public email on GitHub
    assert 'name="name" value="Alice"' in page
    agree = re.search(r'<input type="checkbox" id="agree"[^>]*>', page)
    assert agree and "checked" not in agree.group(0)
    assert 'name="field_address"' in page
    assert '<option value="FR">France</option>' in page
    assert 'name="repo" value="acme/widgets"' in page


# Signing.


def test_signing_stores_the_exact_text_and_thanks_with_a_receipt(live: Live, signed_in: SignedIn):
    version = publish(live.database)
    client, page = signed_in()
    response = client.post(
        "/sign/cla", data=form_from(page, name="Zoë Ñúñez 李"), headers={"User-Agent": "UA/1"}
    )
    assert response.status_code == 303, response.text
    thanks = client.get(response.headers["location"])
    assert thanks.status_code == 200
    assert "Thank you, Zoë Ñúñez 李" in thanks.text
    assert version.text_sha256 in thanks.text
    assert f'href="{live.emulator.url}/acme/widgets/pull/7"' in thanks.text

    (row,) = signature_rows(live.database)
    assert (row.login, row.name, row.email) == ("alice", "Zoë Ñúñez 李", "alice@example.org")
    assert row.text_sha256 == version.text_sha256
    assert row.version_id == version.id
    assert row.ip_address == "127.0.0.1"
    assert row.user_agent == "UA/1"

    receipt = client.get(f"/me/signatures/{row.id}/receipt")
    assert receipt.status_code == 200
    assert receipt.headers["content-type"].startswith("text/markdown")
    assert receipt.headers["content-disposition"] == (
        f'attachment; filename="undersign-receipt-cla-v1-{row.id}.md"'
    )
    assert receipt.headers["cache-control"] == "no-store"
    assert f"- Text SHA-256: {version.text_sha256}" in receipt.text
    assert f"- GitHub user id: {row.github_id}" in receipt.text
    assert TEXT_V1 in receipt.text

    again = client.get(SIGN_PATH)
    assert 'id="already-signed"' in again.text
    assert 'id="sign-form"' not in again.text


def test_signing_twice_changes_nothing(live: Live, signed_in: SignedIn):
    publish(live.database)
    client, page = signed_in()
    first = client.post("/sign/cla", data=form_from(page))
    second = client.post("/sign/cla", data=form_from(page, name="Someone Else"))
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    (row,) = signature_rows(live.database)
    assert row.name == "Alice Example"


def test_a_post_without_csrf_or_sign_in_stores_nothing(
    live: Live, client: httpx.Client, signed_in: SignedIn
):
    publish(live.database)
    anonymous = client.post(
        "/sign/cla", data={"name": "A", "email": "a@example.org", "agree": "yes"}
    )
    assert anonymous.status_code == 400  # CSRF is checked first
    signed, page = signed_in()
    data = form_from(page)
    del data["csrf_token"]
    assert signed.post("/sign/cla", data=data).status_code == 400
    data["csrf_token"] = "forged"
    assert signed.post("/sign/cla", data=data).status_code == 400
    assert signature_rows(live.database) == []


def test_each_invalid_field_gets_its_own_message_and_nothing_is_stored(
    live: Live, signed_in: SignedIn
):
    publish(live.database, fields=FIELDS)
    client, page = signed_in()
    response = client.post(
        "/sign/cla",
        data=form_from(
            page,
            name="Eve\u202egnp.exe",
            email="not-an-email",
            agree="",
            field_address="",
            field_country="XX",
            field_website="javascript:alert(1)",
        ),
    )
    assert response.status_code == 400
    text = response.text
    for error_id in (
        "name-error",
        "email-error",
        "agree-error",
        "field_address-error",
        "field_country-error",
        "field_website-error",
    ):
        assert f'id="{error_id}"' in text, error_id
    assert "Text direction control characters are not allowed." in text
    assert "Enter a valid email address." in text
    assert "You must tick this box to sign." in text
    # What they typed is kept (escaped), the agree box is not ticked for them.
    assert 'value="not-an-email"' in text
    assert "javascript:alert(1)" in text and 'href="javascript' not in text

    too_long = client.post("/sign/cla", data=form_from(page, name="x" * 201))
    assert too_long.status_code == 400
    control = client.post("/sign/cla", data=form_from(page, name="A\x00B"))
    assert control.status_code == 400
    assert signature_rows(live.database) == []


def test_a_version_published_meanwhile_is_shown_instead_of_signed(live: Live, signed_in: SignedIn):
    publish(live.database)
    client, page = signed_in()
    v2 = publish(live.database, TEXT_V2_MATERIAL)
    stale = client.post("/sign/cla", data=form_from(page, name="Alice Keeps This"))
    assert stale.status_code == 409
    assert 'id="version-changed"' in stale.text
    assert "You also grant a patent licence." in stale.text
    assert f'name="version_sha256" value="{v2.text_sha256}"' in stale.text
    assert 'value="Alice Keeps This"' in stale.text
    assert signature_rows(live.database) == []

    fresh = client.post("/sign/cla", data=form_from(stale.text))
    assert fresh.status_code == 303
    (row,) = signature_rows(live.database)
    assert row.text_sha256 == v2.text_sha256


def test_extra_posted_fields_are_ignored(live: Live, signed_in: SignedIn):
    publish(live.database)
    client, page = signed_in()
    response = client.post(
        "/sign/cla",
        data=form_from(
            page, github_id="999", signed_at="2000-01-01", is_admin="1", login="mallory"
        ),
    )
    assert response.status_code == 303
    (row,) = signature_rows(live.database)
    assert row.github_id != 999
    assert row.login == "alice"
    assert row.signed_at.year > 2000
    assert row.field_values == {}


def test_bad_return_parameters_give_no_link(live: Live, signed_in: SignedIn):
    publish(live.database)
    client, _ = signed_in(path="/sign/cla?repo=javascript:alert(1)&pr=1")
    for query in ("repo=evil.example//x&pr=1", "repo=acme/widgets&pr=-1", "repo=a/b&pr=1e3"):
        page = client.get(f"/sign/cla?{query}")
        assert page.status_code == 200
        assert 'name="repo"' not in page.text
        assert "/pull/" not in page.text


# The contributor's own signatures.


def test_my_signatures_receipt_and_revocation_with_confirmation(live: Live, signed_in: SignedIn):
    publish(live.database)
    client, page = signed_in()
    client.post("/sign/cla", data=form_from(page))
    (row,) = signature_rows(live.database)

    mine = client.get("/me/signatures")
    assert mine.status_code == 200
    assert f'id="signature-{row.id}"' in mine.text
    assert f"/me/signatures/{row.id}/receipt" in mine.text

    confirm = client.get(f"/me/signatures/{row.id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke my signature" in confirm.text
    assert signature_rows(live.database)[0].revoked_at is None  # GET changes nothing

    no_csrf = client.post(f"/me/signatures/{row.id}/revoke", data={"reason": "x"})
    assert no_csrf.status_code == 400
    assert signature_rows(live.database)[0].revoked_at is None

    done = client.post(
        f"/me/signatures/{row.id}/revoke",
        data={"csrf_token": csrf_token(confirm.text), "reason": "I left the project"},
    )
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "is revoked" in after.text
    assert "Revoked " in after.text

    (revoked,) = signature_rows(live.database)
    assert revoked.revoked_at is not None
    assert revoked.revocation_reason == "I left the project"
    assert revoked.revoked_by is not None and "alice" in revoked.revoked_by

    # Signing again after a revocation works and keeps the history.
    sign_again = client.get(SIGN_PATH)
    assert 'id="sign-form"' in sign_again.text
    assert client.post("/sign/cla", data=form_from(sign_again.text)).status_code == 303
    assert [r.revoked_at is None for r in signature_rows(live.database)] == [False, True]


def test_nobody_sees_or_touches_someone_elses_signature(
    live: Live, client: httpx.Client, signed_in: SignedIn
):
    publish(live.database)
    alice, page = signed_in("alice")
    alice.post("/sign/cla", data=form_from(page, name="Alice Secret"))
    (row,) = signature_rows(live.database)

    for path in ("/me/signatures", f"/me/signatures/{row.id}/receipt"):
        anonymous = client.get(path)
        assert anonymous.status_code == 302
        assert anonymous.headers["location"].startswith("/login?next=")
    assert "Alice Secret" not in client.get("/sign/cla").text

    bob, bob_page = signed_in("bob")
    assert "Alice Secret" not in bob.get("/me/signatures").text
    assert "Alice Secret" not in bob_page
    for path in (
        f"/me/signatures/{row.id}/receipt",
        f"/me/signatures/{row.id}/revoke",
        f"/me/signatures/{row.id}/changes",
        f"/sign/cla/thanks/{row.id}",
        "/me/signatures/999999/receipt",
    ):
        assert bob.get(path).status_code == 404, path
    revoke = bob.post(f"/me/signatures/{row.id}/revoke", data={"csrf_token": csrf_token(bob_page)})
    assert revoke.status_code == 404
    assert signature_rows(live.database)[0].revoked_at is None


def test_a_material_change_shows_what_changed(live: Live, signed_in: SignedIn):
    publish(live.database)
    client, page = signed_in()
    client.post("/sign/cla", data=form_from(page))
    (row,) = signature_rows(live.database)
    publish(live.database, TEXT_V2_MATERIAL, change_type="material")

    sign_page = client.get(SIGN_PATH)
    assert 'id="changes-since"' in sign_page.text
    assert "You signed version 1" in sign_page.text
    assert '<span class="diff-added">+You also grant a patent licence.</span>' in sign_page.text
    assert 'id="sign-form"' in sign_page.text

    mine = client.get("/me/signatures")
    assert f"/me/signatures/{row.id}/changes" in mine.text
    changes = client.get(f"/me/signatures/{row.id}/changes")
    assert changes.status_code == 200
    assert "+You also grant a patent licence." in changes.text


def test_an_editorial_change_keeps_the_signature(live: Live, signed_in: SignedIn):
    publish(live.database)
    client, page = signed_in()
    client.post("/sign/cla", data=form_from(page))
    publish(live.database, TEXT_V1.replace("licence", "license"), change_type="editorial")
    sign_page = client.get(SIGN_PATH)
    assert "Version 2" in sign_page.text
    assert 'id="already-signed"' in sign_page.text
    assert 'id="changes-since"' not in sign_page.text


# The seam to enforcement.


def test_signing_and_revoking_call_the_enforcement_hook(live_factory: LiveFactory):
    calls: list[tuple[int, str]] = []
    live = live_factory(
        extras={SIGNATURE_HOOK: lambda github_id, event: calls.append((github_id, event))}
    )
    database = live.database
    with live.client() as client:
        publish(database)
        page = sign_in(live, client, "alice", next_path=SIGN_PATH)
        while page.status_code in (302, 303):
            page = client.get(page.headers["location"])
        client.post("/sign/cla", data=form_from(page.text))
        client.post("/sign/cla", data=form_from(page.text))  # no change, no call
        (row,) = signature_rows(database)
        confirm = client.get(f"/me/signatures/{row.id}/revoke")
        client.post(
            f"/me/signatures/{row.id}/revoke", data={"csrf_token": csrf_token(confirm.text)}
        )
    assert calls == [(row.github_id, "signed"), (row.github_id, "revoked")]
