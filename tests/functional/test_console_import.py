"""Importing signatures from the console (``POST /admin/agreements/<slug>/import``), over real
HTTP with GitHub's logins resolved by the emulator: a check that stores nothing, then the
same file again to import it, all or nothing, with the audit row and the re-evaluations of
``undersign import``. Who may import is in the authorization walk (test_console_access)."""

from __future__ import annotations

import hashlib
import html
import re
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from tests.conftest import LiveFactory, sign_in, sign_quietly
from tests.support.console import ALPHA, Console, signed_in
from tests.support.console import clients as clients  # a fixture
from tests.support.console import console as console  # a fixture
from tests.support.pages import csrf_token

from undersign.agreements.models import AuditEntry, Signature
from undersign.agreements.service import AgreementService
from undersign.jobs.models import Job
from undersign.web import console as console_views

#: Two people: one by id, one by login (GitHub is asked for the id).
GOOD = (
    b"github_id,login,name,email,signed_at\n"
    b"583231,ada-example,Ada Example,ada@example.org,2019-05-14T09:12:33Z\n"
    b",grace-h,Grace Example,,2020-02-03T18:45:00+01:00\n"
)
MALFORMED = (
    b"github_id,login,name,email,signed_at\n"
    b"583231,ada-example,Ada Example,,\n"
    b"12ab,bad-id,Bad Id,,\n"
    b"2001,bad-date,,,14/05/2019\n"
)


@pytest.fixture
def owner(console: Console, clients: dict[str, httpx.Client]) -> tuple[httpx.Client, str]:
    """acme's owner (alpha's admin), signed in; ada and grace exist on GitHub."""
    state = console.live.emulator.state
    state.add_user("ada-example", user_id=583231)
    state.add_user("grace-h", user_id=1024025)
    return signed_in(console, clients, "owner")


def upload(
    client: httpx.Client, csrf: str | None, data: bytes, *, sha256: str = "", **form: str
) -> httpx.Response:
    fields = {"source": "csv", **form, **({"sha256": sha256} if sha256 else {})}
    if csrf:
        fields["csrf_token"] = csrf
    return client.post(
        f"/admin/agreements/{ALPHA}/import",
        data=fields,
        files={"file": ("people.csv", data, "text/csv")},
    )


def stored(console: Console) -> tuple[int, int]:
    """Imported signatures, and import audit rows."""
    with console.live.database.session() as session:
        signatures = session.scalar(
            select(func.count()).select_from(Signature).where(Signature.import_source.is_not(None))
        )
        audits = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "signatures.import")
        )
    return int(signatures or 0), int(audits or 0)


def person_jobs(console: Console) -> list[int]:
    """Whose open pull requests are queued to be evaluated again (as after signing)."""
    with console.live.database.session() as session:
        jobs = session.scalars(select(Job).where(Job.kind == "person")).all()
        return sorted(int(job.payload["github_id"]) for job in jobs)


def test_the_check_stores_nothing_and_shows_the_report(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    client, csrf = owner
    answer = upload(client, csrf, GOOD)
    assert answer.status_code == 200, answer.text[:500]
    assert hashlib.sha256(GOOD).hexdigest() in answer.text
    assert "would import 2, already present 0, problems 0 (1 GitHub lookup(s))" in answer.text
    assert "Import 2 signatures" in answer.text
    assert stored(console) == (0, 0)
    assert person_jobs(console) == []


def test_the_same_file_again_imports_it_once(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    client, csrf = owner
    sha = hashlib.sha256(GOOD).hexdigest()
    answer = upload(client, csrf, GOOD, sha256=sha, version="1")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/agreements/{ALPHA}/signatures"
    assert stored(console) == (2, 1)
    listing = client.get(answer.headers["location"]).text
    assert "imported 2, already present 0" in listing
    assert "Ada Example" in listing and "(imported from csv)" in listing
    with console.live.database.session() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "signatures.import")
        ).one()
        assert audit.actor == str(console.ids["owner"])
        assert audit.after is not None and audit.after["sha256"] == sha
        grace = session.scalars(select(Signature).where(Signature.github_id == 1024025)).one()
        assert grace.login == "grace-h" and grace.import_file_sha256 == sha
    # Their open pull requests are evaluated again, as when someone signs.
    assert person_jobs(console) == [583231, 1024025]

    again = upload(client, csrf, GOOD)
    assert "would import 0, already present 2" in again.text
    assert "Nothing new to import" in again.text and "Import 0" not in again.text
    repeat = upload(client, csrf, GOOD, sha256=sha)
    assert repeat.status_code == 303
    assert stored(console) == (2, 2)  # no new signature; the attempt is audited


#: A file that brings no new signature, and what the check says of it: contrib signed alpha
#: already; GitHub knows no ``linus-gone``; ``acme`` is an organisation.
NOTHING_NEW = [
    (
        b"github_id\n{contrib}\n",
        "Nothing new to import: everyone in the file already has a signature on version 1.",
    ),
    (
        b"login\nlinus-gone\nacme\n",
        "Nothing to import: every line has a problem, listed above.",
    ),
    (
        b"github_id,login\n{contrib},contrib\n,linus-gone\n,acme\n",
        "Nothing new to import: 1 person in the file already has a signature on version 1, "
        "and every other line has a problem, listed above.",
    ),
    (b"github_id,login\n", "Nothing to import: the file has no signatures in it."),
]


@pytest.mark.parametrize(
    ("data", "says"), NOTHING_NEW, ids=["all-signed", "all-problems", "both", "no-lines"]
)
def test_the_check_says_why_nothing_would_be_imported(
    console: Console, owner: tuple[httpx.Client, str], data: bytes, says: str
) -> None:
    """Whether everyone in the file signed already, every line is a problem, some of each
    or the file has no line at all, the check says which (it once said "everyone already
    has a signature" of a file of logins GitHub no longer knows) and offers no import."""
    client, csrf = owner
    answer = upload(client, csrf, data.replace(b"{contrib}", b"%d" % console.ids["contrib"]))
    assert answer.status_code == 200, answer.text[:500]
    said = re.search(r'<p id="import-nothing">([^<]*)</p>', html.unescape(answer.text))
    assert said is not None and said.group(1) == says
    assert 'name="sha256"' not in answer.text  # no form to import with
    assert stored(console) == (0, 0)


def test_a_malformed_file_stores_nothing_and_names_its_lines(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    client, csrf = owner
    answer = upload(client, csrf, MALFORMED)
    assert answer.status_code == 400
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\w[\w-]*)</td>", answer.text)
    assert rows == [("3", "malformed"), ("4", "malformed")]
    assert "Nothing can be imported" in answer.text and "Import 1" not in answer.text
    forced = upload(client, csrf, MALFORMED, sha256=hashlib.sha256(MALFORMED).hexdigest())
    assert forced.status_code == 400
    assert stored(console) == (0, 0)


@pytest.mark.parametrize(
    ("data", "form", "status", "says"),
    [
        (GOOD, {"sha256": "0" * 64}, 409, "not the file you checked"),
        (GOOD, {"source": "svn"}, 400, "Choose what made the file"),
        (GOOD, {"version": "7"}, 400, "has no version 7"),
        (GOOD, {"version": "-1"}, 400, "positive number"),
        (b"\xff\xfe\x00garbage", {}, 400, "Nothing was imported"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_stores_nothing(
    console: Console,
    owner: tuple[httpx.Client, str],
    data: bytes,
    form: dict[str, str],
    status: int,
    says: str,
) -> None:
    client, csrf = owner
    answer = upload(client, csrf, data, **form)
    assert answer.status_code == status, answer.text[:500]
    assert says in html.unescape(answer.text)
    assert stored(console) == (0, 0)


def test_no_file_is_a_400(owner: tuple[httpx.Client, str]) -> None:
    client, csrf = owner
    answer = client.post(
        f"/admin/agreements/{ALPHA}/import", data={"csrf_token": csrf, "source": "csv"}
    )
    assert answer.status_code == 400 and "Choose the file" in answer.text


def test_too_big_is_refused(
    console: Console, owner: tuple[httpx.Client, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the import limit: the view says so; over the body the route allows, or a
    chunked body over the forms' cap: Flask's 413 before the view."""
    client, csrf = owner
    monkeypatch.setattr(console_views, "MAX_IMPORT_BYTES", len(GOOD) - 1)
    answer = upload(client, csrf, GOOD, sha256=hashlib.sha256(GOOD).hexdigest())
    assert answer.status_code == 413
    assert "larger than the import limit" in answer.text
    monkeypatch.setattr(console_views, "IMPORT_BODY", 2000)
    assert upload(client, csrf, GOOD + b"9," * 1000).status_code == 413
    monkeypatch.undo()
    # Chunked (no Content-Length): held to the forms' 1 MiB, never parsed cut short.
    big = GOOD + b"".join(b"%d,,,,\n" % n for n in range(10**6, 10**6 + 200_000))
    assert len(big) > 1024 * 1024
    built = httpx.Request(
        "POST",
        "http://undersign.invalid/",
        data={"csrf_token": csrf, "source": "csv"},
        files={"file": ("people.csv", big, "text/csv")},
    )
    body = built.read()
    chunked = client.post(
        f"/admin/agreements/{ALPHA}/import",
        content=iter([body[n : n + 65536] for n in range(0, len(body), 65536)]),
        headers={"content-type": built.headers["content-type"]},
    )
    assert chunked.status_code == 413
    assert stored(console) == (0, 0)


def test_only_who_may_import_may_send_a_large_file(
    console: Console, clients: dict[str, httpx.Client], owner: tuple[httpx.Client, str]
) -> None:
    """Over the forms' 1 MiB cap: the agreement's admin (and an instance admin) get the
    import's larger cap; anyone else, signed in or not, is refused (413) before the body is
    read, never read whole and then answered 404."""
    large = b"\xff\xfe\x00garbage" + b"x" * (1024 * 1024 + 4096)
    member, member_csrf = signed_in(console, clients, "member")
    other_admin, other_csrf = signed_in(console, clients, "repoadmin")
    for client, csrf in ((member, member_csrf), (other_admin, other_csrf)):
        refused = upload(client, csrf, large)
        assert refused.status_code == 413, refused.text[:300]
    with console.live.client() as anonymous:
        assert upload(anonymous, None, large).status_code == 413
    # Small, the same people get the console's usual answer (404: not their agreement).
    assert upload(member, member_csrf, GOOD).status_code == 404
    client, csrf = owner
    accepted = upload(client, csrf, large)
    assert accepted.status_code == 400 and "Nothing was imported" in accepted.text
    root, root_csrf = signed_in(console, clients, "root")
    answer = root.post(
        "/admin/agreements/beta/import",
        data={"csrf_token": root_csrf, "source": "csv"},
        files={"file": ("walk.csv", large, "text/csv")},
    )
    assert answer.status_code == 400 and "Nothing was imported" in answer.text
    assert stored(console) == (0, 0)


def test_without_the_csrf_token_nothing_is_stored(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    client, _ = owner
    answer = upload(client, None, GOOD, sha256=hashlib.sha256(GOOD).hexdigest())
    assert answer.status_code == 400 and "Form expired" in answer.text
    assert stored(console) == (0, 0)


def test_an_organisation_or_a_bot_is_reported_not_imported(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    """A login GitHub knows as an organisation (acme) or a bot is no signer: the check says
    what the account is, and importing the file stores only the person."""
    client, csrf = owner
    console.live.emulator.state.add_user("dependabot[bot]", type="Bot")
    data = b"login\ngrace-h\nacme\ndependabot[bot]\n"
    answer = upload(client, csrf, data)
    assert answer.status_code == 200, answer.text[:500]
    said = html.unescape(answer.text)
    rows = re.findall(r"<tr><td>(\d+)</td><td>([\w-]+)</td><td>([^<]*)</td>", said)
    assert rows == [
        (
            "3",
            "not-a-person",
            "'acme' is an organisation, not a person: a signature needs a person's account; "
            "not imported",
        ),
        (
            "4",
            "not-a-person",
            "'dependabot[bot]' is a bot, not a person: a signature needs a person's "
            "account; not imported",
        ),
    ]
    assert "would import 1, already present 0, problems 2 (3 GitHub lookup(s))" in said
    confirmed = upload(client, csrf, data, sha256=hashlib.sha256(data).hexdigest())
    assert confirmed.status_code == 303
    with console.live.database.session() as session:
        logins = session.scalars(
            select(Signature.login).where(Signature.import_source.is_not(None))
        ).all()
    assert logins == ["grace-h"]


def test_github_failing_is_a_503_and_stores_nothing(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    client, csrf = owner
    console.live.emulator.state.add_fault("GET", r"/users/grace-h", status=502, times=10)
    answer = upload(client, csrf, GOOD, sha256=hashlib.sha256(GOOD).hexdigest())
    assert answer.status_code == 503
    assert "Could not look up" in html.unescape(answer.text)
    assert stored(console) == (0, 0)


def test_without_a_token_or_an_app_the_check_is_a_409_naming_the_settings(
    live_factory: LiveFactory,
) -> None:
    """With neither a bot token nor a GitHub App only an instance admin reaches the console;
    a file with logins cannot be resolved until an operator sets one, so the check is a 409
    that names the settings (as for an App installed nowhere), not a 503 "GitHub failed",
    and nothing is stored."""
    state = live_factory.emulator.state
    state.add_user("root")
    live = live_factory(UNDERSIGN_ADMINS=str(state.user("root")["id"]))
    with live.database.session() as session:
        AgreementService(session).add_or_update(ALPHA, "Alpha CLA", "You agree to alpha.")
    with live.client() as client:
        page = sign_in(live, client, "root", next_path="/admin/")
        assert page.status_code == 200, page.text
        answer = client.post(
            f"/admin/agreements/{ALPHA}/import",
            data={"source": "csv", "csrf_token": csrf_token(page.text)},
            files={"file": ("people.csv", b"login\nada-example\n", "text/csv")},
        )
    said = html.unescape(answer.text)
    assert answer.status_code == 409, said[:500]
    assert (
        "resolving them needs GitHub, which undersign cannot ask (UNDERSIGN_GITHUB_TOKEN is not set"
    ) in said
    assert (
        "Nothing was imported: set UNDERSIGN_GITHUB_TOKEN, or the GitHub App's "
        "UNDERSIGN_GITHUB_APP_ID and UNDERSIGN_GITHUB_APP_PRIVATE_KEY, then check the file "
        "again, or give every line its GitHub id."
    ) in said
    with live.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Signature)) == 0


def test_github_not_answering_in_time_is_a_503_and_stores_nothing(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    """A lookup that times out (the tests' UNDERSIGN_HTTP_TIMEOUT is 3 s): a clean 503."""
    client, csrf = owner
    console.live.emulator.state.add_fault("GET", r"/users/grace-h", status=None, delay=4, times=1)
    answer = upload(client, csrf, GOOD, sha256=hashlib.sha256(GOOD).hexdigest())
    assert answer.status_code == 503
    assert "Could not look up 'grace-h'" in html.unescape(answer.text)
    assert "Nothing was imported" in answer.text
    assert stored(console) == (0, 0)
    assert person_jobs(console) == []


def _logins(count: int, start: int = 0) -> bytes:
    rows = b"".join(b",someone-%d,,,\n" % n for n in range(start, start + count))
    return b"github_id,login,name,email,signed_at\n" + rows


def test_an_upload_looks_up_at_most_the_cap_of_logins(
    console: Console, owner: tuple[httpx.Client, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More distinct logins without an id than the console's cap: refused with the cap named,
    before any GitHub call, on the check and on the import alike."""
    client, csrf = owner
    asked = console.live.emulator.state
    cap = console_views.MAX_IMPORT_LOOKUPS
    assert cap == 2_000
    # The same login twice (any case) is one lookup; ids need none.
    data = _logins(cap + 1) + b",SOMEONE-0,,,\n4242,,,,\n"
    before = _user_lookups(asked)
    for sha in ("", hashlib.sha256(data).hexdigest()):
        answer = upload(client, csrf, data, sha256=sha)
        assert answer.status_code == 413, answer.text[:300]
        said = html.unescape(answer.text)
        assert "2,001 distinct logins without a GitHub id" in said
        assert "at most 2,000 per upload" in said and "Nothing was imported" in said
    assert _user_lookups(asked) == before
    assert stored(console) == (0, 0)
    # At the cap, the lookups go ahead (a small cap, to keep the test quick).
    monkeypatch.setattr(console_views, "MAX_IMPORT_LOOKUPS", 2)
    for login in ("someone-0", "someone-1"):
        asked.add_user(login)
    answer = upload(client, csrf, _logins(2) + b",Someone-1,,,\n")
    assert answer.status_code == 200 and "2 GitHub lookup(s)" in answer.text
    assert upload(client, csrf, _logins(3)).status_code == 413


def _user_lookups(state: Any) -> int:
    return len(state.api_calls("GET", "/users/"))


def test_a_confirm_beaten_to_the_same_rows_is_a_409_and_stores_nothing(
    console: Console, owner: tuple[httpx.Client, str]
) -> None:
    """The conflict forced: grace gets a signature (another request at the same moment)
    after this confirm checked who holds one and before it writes. A 409 that says so, and
    nothing of this import is stored (ada neither)."""
    client, csrf = owner
    database = console.live.database
    fired: list[bool] = []

    def meanwhile(session: Session, _context: object, _instances: object) -> None:
        if fired or not any(
            isinstance(row, Signature) and row.import_source for row in session.new
        ):
            return
        fired.append(True)
        sign_quietly(database, ALPHA, "grace-h", 1024025)

    event.listen(database.sessionmaker, "before_flush", meanwhile)
    try:
        answer = upload(client, csrf, GOOD, sha256=hashlib.sha256(GOOD).hexdigest())
    finally:
        event.remove(database.sessionmaker, "before_flush", meanwhile)
    assert fired
    assert answer.status_code == 409, answer.text[:500]
    assert "at the same moment" in html.unescape(answer.text)
    assert "Nothing was imported" in answer.text
    assert stored(console) == (0, 0)
    assert person_jobs(console) == []
    with database.session() as session:
        holders = session.scalars(
            select(Signature.github_id).where(Signature.github_id.in_([583231, 1024025]))
        ).all()
    assert holders == [1024025]


def test_two_identical_confirms_at_the_same_moment_never_fail_with_a_500(
    console: Console, owner: tuple[httpx.Client, str], clients: dict[str, httpx.Client]
) -> None:
    """Two browsers confirm the same file together (grace's lookup holds both until each is
    waiting on it): each answer is the import (303) or the 409, and the file is stored once."""
    client, csrf = owner
    other = console.live.client()
    clients["owner-2"] = other
    page = sign_in(console.live, other, "owner", next_path="/admin/")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    other_csrf = html.unescape(match.group(1))
    console.live.emulator.state.add_fault("GET", r"/users/grace-h", status=None, delay=0.5, times=2)
    sha = hashlib.sha256(GOOD).hexdigest()
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def confirm(browser: httpx.Client, token: str) -> None:
        barrier.wait()
        answers.append(upload(browser, token, GOOD, sha256=sha).status_code)

    threads = [
        threading.Thread(target=confirm, args=pair)
        for pair in ((client, csrf), (other, other_csrf))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) in ([303, 303], [303, 409]), answers
    signatures, _ = stored(console)
    assert signatures == 2


def test_an_instance_admin_checks_files_for_any_agreement(
    console: Console,
    clients: dict[str, httpx.Client],
) -> None:
    client, csrf = signed_in(console, clients, "root")
    answer = client.post(
        "/admin/agreements/beta/import",
        data={"csrf_token": csrf, "source": "csv"},
        files={"file": ("walk.csv", b"github_id\n4242\n", "text/csv")},
    )
    assert answer.status_code == 200 and "would import 1" in answer.text
    assert stored(console) == (0, 0)
