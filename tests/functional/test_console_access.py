"""The maintainers' console: who may see and change what (issue 13), over real HTTP.

The authorization walk visits every console URL, GET and POST, as an anonymous visitor, a
contributor, the admin of another agreement, an agreement admin (an organisation owner, and
a repository admin) and an instance admin, and asserts each answer. GitHub is the emulator,
asked with the bot's token; a failing or slow permission lookup denies with a page that says
why. Runs on SQLite and, with ``--db postgresql+...``, on PostgreSQL.
"""

from __future__ import annotations

import html
import logging
import time

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import Live, sign_in
from tests.support.console import ALPHA, BETA, Console, recheck_jobs, signed_in
from tests.support.console import clients as clients  # a fixture
from tests.support.console import console as console  # a fixture
from tests.support.pages import csrf_token

from undersign.agreements.models import AllowlistEntry, AuditEntry, RepoLink, Signature
from undersign.agreements.service import AgreementService
from undersign.jobs.models import Job
from undersign.web import console as console_views


def agreement_urls(console: Console, slug: str) -> list[tuple[str, str, dict[str, str]]]:
    """Every console URL of one agreement: (method, path, form)."""
    base = f"/admin/agreements/{slug}"
    signature = console.signatures.get(slug, 1)
    # A repository this agreement's admin administers on GitHub (acme's owner is admin of
    # acme/widgets), and an organisation neither agreement admin owns.
    own_repo = "betaorg/tools" if slug == BETA else "acme/widgets"
    with console.live.database.session() as session:
        agreements = AgreementService(session)
        known = slug in (ALPHA, BETA)
        base_sha = agreements.current_version(slug).text_sha256 if known else "0" * 64
    version = {"title": "Walk CLA", "text": "You agree to the walk.", "change_type": "editorial"}
    return [
        ("GET", f"{base}/versions/new", {}),
        ("POST", f"{base}/versions/preview", version),
        ("POST", f"{base}/versions", {**version, "base_sha256": base_sha}),
        ("POST", f"{base}/bots", {"add": "4242"}),
        ("POST", f"{base}/policy", {"agents": "refuse"}),
        ("POST", f"{base}/fields", {"fields": '[{"name": "company", "label": "Company"}]'}),
        ("GET", f"{base}?audit_page=2", {}),
        ("GET", f"{base}/audit.csv", {}),
        ("GET", f"{base}/audit.json", {}),
        ("GET", f"{base}/signatures.csv?version=1", {}),
        ("POST", f"{base}/allowlist", {"pattern": "walk-bot", "note": "walk"}),
        ("POST", f"{base}/allowlist/remove", {"pattern": "walk-bot"}),
        ("POST", f"{base}/links/repo", {"name": own_repo}),
        ("POST", f"{base}/links/org", {"name": "betaorg"}),
        ("GET", base, {}),
        ("GET", f"{base}/signatures", {}),
        ("GET", f"{base}/signatures?q=contrib&page=1", {}),
        ("GET", f"{base}/signatures.csv", {}),
        ("GET", f"{base}/signatures.json", {}),
        ("GET", f"{base}/pulls", {}),
        ("POST", f"{base}/pulls/recheck", {"repo": "acme/widgets", "number": "7"}),
        ("POST", f"{base}/signatures/{signature}/revoke", {"reason": "walk"}),
        # A check of a file (its form's ``file`` is sent as the upload): it stores nothing.
        ("POST", f"{base}/import", {"source": "csv", "file": "github_id,name\n4242,Walk\n"}),
    ]


def visit(
    client: httpx.Client, csrf: str | None, method: str, path: str, form: dict[str, str]
) -> httpx.Response:
    if method == "GET":
        return client.get(path)
    data = {**form, **({"csrf_token": csrf} if csrf else {})}
    upload = data.pop("file", None)
    if upload is not None:
        return client.post(path, data=data, files={"file": ("walk.csv", upload, "text/csv")})
    return client.post(path, data=data)


def active(console: Console, slug: str) -> bool:
    with console.live.database.session() as session:
        signature = session.get(Signature, console.signatures[slug])
        assert signature is not None
        return signature.revoked_at is None


def assert_denied(console: Console, client: httpx.Client, csrf: str | None, slug: str) -> None:
    """Every URL of ``slug`` answers 404, exactly like an agreement that does not exist,
    and nothing changes."""
    jobs_before = recheck_jobs(console)
    for method, path, form in agreement_urls(console, slug):
        answer = visit(client, csrf, method, path, form)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert "Alpha CLA" not in answer.text and "Beta CLA" not in answer.text
    assert recheck_jobs(console) == jobs_before
    if slug in console.signatures:
        assert active(console, slug)


def test_anonymous_visitors_are_sent_to_sign_in_and_nothing_changes(console: Console) -> None:
    with console.live.client() as client:
        index = client.get("/admin/")
        assert index.status_code == 302
        assert index.headers["location"] == "/login?next=/admin/"
        for slug in (ALPHA, BETA, "nope"):
            for method, path, form in agreement_urls(console, slug):
                answer = visit(client, None, method, path, form)
                if method == "GET":
                    assert answer.status_code == 302, path
                    assert answer.headers["location"].startswith("/login?next=/admin/agreements/")
                else:
                    # No session, so no CSRF token: refused before the view runs.
                    assert answer.status_code in (400, 401), (path, answer.status_code)
    assert active(console, ALPHA) and active(console, BETA)
    assert recheck_jobs(console) == 0


def test_sign_in_comes_back_to_the_console_page_asked_for(console: Console) -> None:
    with console.live.client() as client:
        page = sign_in(console.live, client, "owner", next_path=f"/admin/agreements/{ALPHA}/pulls")
        assert page.status_code == 200
        assert "Pull requests waiting on Alpha CLA" in page.text
        assert "acme/widgets#7" in page.text and "contrib" in page.text


def test_a_contributor_administers_nothing(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "contrib")
    index = client.get("/admin/")
    assert index.status_code == 200
    assert "You administer no agreement" in index.text
    for slug in (ALPHA, BETA, "nope"):
        assert_denied(console, client, csrf, slug)


def test_a_maintain_role_is_not_admin(console: Console, clients: dict[str, httpx.Client]) -> None:
    """``member`` is an org member (not owner) of acme and has maintain on betaorg/tools."""
    client, csrf = signed_in(console, clients, "member")
    for slug in (ALPHA, BETA):
        assert_denied(console, client, csrf, slug)


@pytest.mark.parametrize(
    ("login", "mine", "theirs"), [("owner", ALPHA, BETA), ("repoadmin", BETA, ALPHA)]
)
def test_an_agreement_admin_manages_theirs_and_sees_nothing_of_another(
    console: Console, clients: dict[str, httpx.Client], login: str, mine: str, theirs: str
) -> None:
    client, csrf = signed_in(console, clients, login)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert ("Alpha CLA" in index.text) == (mine == ALPHA)
    assert ("Beta CLA" in index.text) == (mine == BETA)
    assert_denied(console, client, csrf, theirs)
    assert_denied(console, client, csrf, "nope")

    answers = {
        (method, path): visit(client, csrf, method, path, form)
        for method, path, form in agreement_urls(console, mine)
    }
    for (method, path), answer in answers.items():
        expected = (
            303 if method == "POST" and not path.endswith(("recheck", "preview", "import")) else 200
        )
        if "recheck" in path:
            # Only alpha covers acme/widgets: beta's admin may not queue work there.
            expected = 303 if mine == ALPHA else 404
        if path.endswith("/links/org"):
            expected = 403  # neither owns betaorg on GitHub
        assert answer.status_code == expected, (method, path, answer.status_code, answer.text[:300])
    assert not active(console, mine)
    # The recheck, and the re-evaluations after the allowlist and link changes.
    assert (recheck_jobs(console) > 0) == (mine == ALPHA)
    with console.live.database.session() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == str(console.ids[login]))
        ).all()
    assert sorted(actions) == [
        "agents.policy",
        "allowlist.add",
        "allowlist.remove",
        "bots.set",
        "fields.set",
        "repo.link",
        "signature.revoke",
        "version.publish",
    ]
    checked = answers[("POST", f"/admin/agreements/{mine}/import")]
    assert "would import 1, already present 0" in checked.text
    preview = answers[("POST", f"/admin/agreements/{mine}/versions/preview")]
    assert "You agree to the walk." in preview.text and "diff-added" in preview.text
    # The audit export, taken after the walk's first four changes: the setup's rows (by the
    # command line) first, then theirs, with who and the value before and after.
    audit_json = answers[("GET", f"/admin/agreements/{mine}/audit.json")].json()
    assert next(row["action"] for row in audit_json if row["actor"] == "cli") == "version.publish"
    by_them = [row for row in audit_json if row["actor"] == str(console.ids[login])]
    assert [row["action"] for row in by_them] == [
        "version.publish",
        "bots.set",
        "agents.policy",
        "fields.set",
    ]
    assert by_them[2]["before"] == {"policy": "require-human"}
    assert by_them[2]["after"] == {"policy": "refuse"}
    audit_csv = answers[("GET", f"/admin/agreements/{mine}/audit.csv")].text
    assert audit_csv.startswith('"id","agreement","at","actor","action","before","after"')
    assert audit_csv.count("\r\n") == len(audit_json) + 1
    csv = answers[("GET", f"/admin/agreements/{mine}/signatures.csv")]
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.startswith('"github_id","login","name","email","version"')
    assert '"contrib"' in csv.text
    exported = answers[("GET", f"/admin/agreements/{mine}/signatures.json")].json()
    assert [row["login"] for row in exported] == ["contrib"]
    assert exported[0]["revoked_at"] is None  # exported before the revocation in the walk
    with console.live.database.session() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "signature.revoke")
        ).all()
    assert [(entry.actor, entry.after and entry.after["reason"]) for entry in audit] == [
        (str(console.ids[login]), "walk")
    ]
    overview = client.get(f"/admin/agreements/{mine}")
    assert (
        "signature.revoke" in overview.text and f"GitHub id {console.ids[login]}" in overview.text
    )


def test_an_instance_admin_sees_every_agreement(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "root")
    index = client.get("/admin/")
    assert "Alpha CLA" in index.text and "Beta CLA" in index.text
    for slug in (ALPHA, BETA):
        for method, path, form in agreement_urls(console, slug):
            if method == "POST":
                continue
            assert visit(client, csrf, method, path, form).status_code == 200, path
    # An instance admin may link what no agreement admin here administers on GitHub.
    linked = client.post(
        f"/admin/agreements/{ALPHA}/links/org", data={"csrf_token": csrf, "name": "betaorg"}
    )
    assert linked.status_code == 303
    answer = client.post(
        f"/admin/agreements/{BETA}/signatures/{console.signatures[BETA]}/revoke",
        data={"csrf_token": csrf, "reason": "by root"},
    )
    assert answer.status_code == 303
    assert not active(console, BETA) and active(console, ALPHA)
    # A signature of another agreement, through this one's URL, is not found.
    wrong = client.post(
        f"/admin/agreements/{BETA}/signatures/{console.signatures[ALPHA]}/revoke",
        data={"csrf_token": csrf, "reason": "wrong agreement"},
    )
    assert wrong.status_code == 404 and active(console, ALPHA)
    assert_denied(console, client, csrf, "nope")


def test_a_post_without_the_csrf_token_is_refused(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, _ = signed_in(console, clients, "owner")
    answer = client.post(
        f"/admin/agreements/{ALPHA}/signatures/{console.signatures[ALPHA]}/revoke",
        data={"reason": "no token"},
    )
    assert answer.status_code == 400
    assert active(console, ALPHA)


@pytest.mark.parametrize("fault", ["error", "timeout"])
def test_a_failing_permission_lookup_denies_and_says_why(
    console: Console, clients: dict[str, httpx.Client], fault: str
) -> None:
    state = console.live.emulator.state
    if fault == "error":
        state.add_fault("GET", r"/memberships/", status=502, times=100)
    else:  # the tests' UNDERSIGN_HTTP_TIMEOUT is 3 seconds: at sign-in and on the landing page
        state.add_fault("GET", r"/memberships/", status=None, delay=4.0, times=2)
    client = console.live.client()
    clients["owner"] = client
    landing = sign_in(console.live, client, "owner", next_path="/admin/")
    assert landing.status_code == 503
    assert "Cannot check your access" in landing.text
    assert ("GitHub answered 502" if fault == "error" else "did not answer in time") in landing.text
    assert "Alpha CLA" not in landing.text
    csrf = csrf_token(landing.text)
    if fault == "timeout":
        # A failed answer is never kept: the next page asks GitHub again (answering now).
        assert client.get(f"/admin/agreements/{ALPHA}").status_code == 200
        return
    for slug in (ALPHA, "nope"):
        for method, path, form in agreement_urls(console, slug):
            denied = visit(client, csrf, method, path, form)
            assert denied.status_code == 503, (method, path)
            assert "Alpha CLA" not in denied.text
    assert active(console, ALPHA) and recheck_jobs(console) == 0


def test_github_is_asked_again_after_ten_minutes(
    console: Console, clients: dict[str, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner demoted on GitHub keeps the cached answer for ten minutes, then loses it."""
    client, _ = signed_in(console, clients, "owner")
    state = console.live.emulator.state
    owner_id = console.ids["owner"]
    acme = state.orgs[int(state.user("acme")["id"])]
    acme.admins.discard(owner_id)
    assert client.get(f"/admin/agreements/{ALPHA}").status_code == 200
    start = time.time()
    monkeypatch.setattr(console_views, "clock", lambda: start + 9 * 60)
    assert client.get(f"/admin/agreements/{ALPHA}").status_code == 200
    monkeypatch.setattr(console_views, "clock", lambda: start + 11 * 60)
    assert client.get(f"/admin/agreements/{ALPHA}").status_code == 404
    acme.admins.add(owner_id)
    # The new answer is itself kept: promoted again, they wait for the next ten minutes.
    assert client.get(f"/admin/agreements/{ALPHA}").status_code == 404
    monkeypatch.setattr(console_views, "clock", lambda: start + 22 * 60)
    assert client.get(f"/admin/agreements/{ALPHA}").status_code == 200


def test_a_login_taken_over_by_someone_else_gives_nothing(
    console: Console, clients: dict[str, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub is asked by login, the login kept from the person's sign-in. contrib renames
    their account and an owner of acme registers the freed login: when the answer is asked
    again, it is about another account (its id says so), and contrib gets nothing of acme."""
    client, _ = signed_in(console, clients, "contrib")
    assert client.get(f"/admin/agreements/{ALPHA}").status_code == 404
    state = console.live.emulator.state
    state.rename_user("contrib", "contrib-renamed")
    state.add_user("contrib", name="Somebody Else", email="else@example.com")
    state.add_org_member("acme", "contrib", admin=True)
    start = time.time()
    monkeypatch.setattr(console_views, "clock", lambda: start + 11 * 60)
    assert client.get(f"/admin/agreements/{ALPHA}").status_code == 404
    assert client.get(f"/admin/agreements/{BETA}").status_code == 404


def test_without_bot_credentials_the_console_says_why(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """The test app has no bot token: GitHub cannot be asked, so nobody but an instance
    admin gets in (never a server error). The page tells them it is unavailable and what
    they can do; which setting is missing is for the operator, in the log."""
    caplog.set_level(logging.WARNING, logger="undersign.web.console")
    with live.client() as client:
        landing = sign_in(live, client, "alice", next_path="/admin/")
        assert landing.status_code == 503
        assert "The console is unavailable right now" in landing.text
        assert "contact the maintainers" in landing.text
        assert "UNDERSIGN_GITHUB_TOKEN" not in landing.text
        assert "What went wrong" not in landing.text
        # Nothing was asked, so the page does not blame GitHub's answer.
        assert "It cannot ask GitHub at the moment" in landing.text
        assert "did not give an answer" not in landing.text
        assert client.get("/admin/agreements/nope").status_code == 503
    logged = [r.getMessage() for r in caplog.records]
    assert logged and all("UNDERSIGN_GITHUB_TOKEN is not set" in line for line in logged), logged


def failed_job(console: Console) -> int:
    with console.live.database.session() as session:
        job = Job(
            kind="evaluate",
            payload={"repo": "acme/widgets", "number": 7},
            status="failed",
            attempts=5,
            last_error="gave up after 5 attempts: GitHub answered 502",
        )
        session.add(job)
        session.flush()
        return job.id


def job_state(console: Console, job_id: int) -> tuple[str, int]:
    with console.live.database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.attempts


@pytest.mark.parametrize("login", ["contrib", "owner", "repoadmin"])
def test_only_an_instance_admin_sees_and_retries_failed_jobs(
    console: Console, clients: dict[str, httpx.Client], login: str
) -> None:
    job_id = failed_job(console)
    client, csrf = signed_in(console, clients, login)
    page = client.get("/admin/jobs")
    assert page.status_code == 404 and "GitHub answered 502" not in page.text
    for target in (job_id, 999_999, 2**70):
        answer = client.post(f"/admin/jobs/{target}/retry", data={"csrf_token": csrf})
        assert answer.status_code == 404, target
    assert job_state(console, job_id) == ("failed", 5)
    with console.live.client() as anonymous:
        assert anonymous.get("/admin/jobs").status_code == 302
        assert anonymous.post(f"/admin/jobs/{job_id}/retry").status_code in (400, 401)
    assert job_state(console, job_id) == ("failed", 5)


def test_an_instance_admin_retries_a_failed_job(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    job_id = failed_job(console)
    client, csrf = signed_in(console, clients, "root")
    page = client.get("/admin/jobs")
    assert page.status_code == 200
    assert f'id="job-{job_id}"' in page.text and "GitHub answered 502" in page.text
    answer = client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/jobs"
    assert job_state(console, job_id) == ("queued", 0)
    # It is no longer failed: a second retry finds nothing to do.
    again = client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": csrf})
    assert again.status_code == 404
    assert f'id="job-{job_id}"' not in client.get("/admin/jobs").text


def repo_link(console: Console, name: str) -> tuple[str, bool, bool] | None:
    with console.live.database.session() as session:
        link = session.scalar(select(RepoLink).where(RepoLink.full_name == name))
        if link is None:
            return None
        return link.agreement.slug, link.exempt_org_members, link.exempt_collaborators


def test_an_agreement_admin_links_only_what_they_administer_on_github(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    linked = client.post(
        f"{base}/links/repo",
        data={"csrf_token": csrf, "name": "Acme/Widgets", "exempt_collaborators": "on"},
    )
    assert linked.status_code == 303
    assert repo_link(console, "acme/widgets") == (ALPHA, False, True)
    # betaorg/tools is beta's, and owner has no admin there: refused, nothing moves.
    refused = client.post(f"{base}/links/repo", data={"csrf_token": csrf, "name": "betaorg/tools"})
    assert refused.status_code == 403 and "administer the repository betaorg/tools" in refused.text
    assert repo_link(console, "betaorg/tools") == (BETA, False, False)
    # Nor may they unlink it through their own agreement (it is not alpha's link).
    unlinked = client.post(
        f"{base}/links/repo/remove", data={"csrf_token": csrf, "name": "betaorg/tools"}
    )
    assert unlinked.status_code == 404
    bad = client.post(f"{base}/links/repo", data={"csrf_token": csrf, "name": "no slash"})
    assert bad.status_code == 400
    removed = client.post(
        f"{base}/links/repo/remove", data={"csrf_token": csrf, "name": "acme/widgets"}
    )
    assert removed.status_code == 303
    assert repo_link(console, "acme/widgets") is None
    with console.live.database.session() as session:
        audit = session.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.after).order_by(AuditEntry.id)
        ).all()
    owner = str(console.ids["owner"])
    assert [(action, actor) for action, actor, _ in audit if actor == owner] == [
        ("repo.link", owner),
        ("repo.unlink", owner),
    ]
    assert audit[-2][2] == {
        "repo": "acme/widgets",
        "agreement": ALPHA,
        "exempt_org_members": False,
        "exempt_collaborators": True,
        "mode": "enforce",
        "report_comments": False,
    }


def test_an_agreement_admin_who_unlinks_their_last_link_loses_the_agreement(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "repoadmin")
    answer = client.post(
        f"/admin/agreements/{BETA}/links/repo/remove",
        data={"csrf_token": csrf, "name": "betaorg/tools"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
    assert repo_link(console, "betaorg/tools") is None
    assert client.get(f"/admin/agreements/{BETA}").status_code == 404


def test_a_bad_allowlist_pattern_is_refused_and_nothing_is_written(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    for pattern in ("", "not a login!", "**", "x" * 300):
        answer = client.post(f"{base}/allowlist", data={"csrf_token": csrf, "pattern": pattern})
        assert answer.status_code == 400, pattern
        assert "is not an allowlist pattern" in html.unescape(answer.text), pattern
    good = client.post(
        f"{base}/allowlist", data={"csrf_token": csrf, "pattern": "Deploy-*", "note": "deploys"}
    )
    assert good.status_code == 303
    missing = client.post(
        f"{base}/allowlist/remove", data={"csrf_token": csrf, "pattern": "someone-else"}
    )
    assert missing.status_code == 404
    with console.live.database.session() as session:
        entries = session.execute(select(AllowlistEntry.pattern, AllowlistEntry.note)).all()
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == str(console.ids["owner"]))
        ).all()
    assert [tuple(row) for row in entries] == [("deploy-*", "deploys")]
    assert actions == ["allowlist.add"]
    page = client.get(base)
    assert "deploy-*" in page.text and "needs no signature" in page.text


def agreement_slugs(console: Console) -> list[str]:
    with console.live.database.session() as session:
        return [agreement.slug for agreement in AgreementService(session).list_agreements()]


def test_only_an_instance_admin_may_create_an_agreement(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    """``POST /admin/agreements`` answers 404 to everyone else (as if it did not exist),
    and nobody else sees its form."""
    form = {"slug": "gamma", "title": "Gamma CLA", "text": "You agree to gamma."}
    with console.live.client() as anonymous:
        assert anonymous.post("/admin/agreements", data=form).status_code in (400, 401)
    for login in ("contrib", "member", "owner", "repoadmin"):
        client, csrf = signed_in(console, clients, login)
        assert "Create an agreement" not in client.get("/admin/").text
        answer = client.post("/admin/agreements", data={"csrf_token": csrf, **form})
        assert answer.status_code == 404, login
    assert agreement_slugs(console) == [ALPHA, BETA]
    client, csrf = signed_in(console, clients, "root")
    assert "Create an agreement" in client.get("/admin/").text
    assert client.post("/admin/agreements", data=form).status_code == 400  # no CSRF token
    created = client.post("/admin/agreements", data={"csrf_token": csrf, **form})
    assert created.status_code == 303
    assert agreement_slugs(console) == [ALPHA, BETA, "gamma"]
