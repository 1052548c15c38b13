"""The maintainers' console does what the command line does for an agreement, over real HTTP:
publish a new version after a preview and a diff, create agreements (instance admins only),
bots, the AI agents' policy, custom fields, the signatures chart, the audit log and its
export, links whose GitHub lookup fails. Who may reach each URL is walked in
``test_console_access.py``; these tests check what each change does, and that bad input
writes nothing. Runs on SQLite and, with ``--db postgresql+...``, on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import html
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from tests.conftest import sign_quietly
from tests.support.console import ALPHA, BETA, Console, recheck_jobs, signed_in
from tests.support.console import clients as clients  # a fixture
from tests.support.console import console as console  # a fixture

from undersign.agreements.companies import CompanyService
from undersign.agreements.models import (
    Agreement,
    AgreementVersion,
    AllowlistEntry,
    AuditEntry,
    OrgLink,
    RepoLink,
    Signature,
)
from undersign.agreements.service import AgreementService


def audit_actions(console: Console, login: str) -> list[str]:
    with console.live.database.session() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.actor == str(console.ids[login]))
                .order_by(AuditEntry.id)
            )
        )


def versions(console: Console, slug: str) -> list[tuple[int, str]]:
    with console.live.database.session() as session:
        agreement = AgreementService(session).get(slug)
        return [(v.number, v.change_type) for v in agreement.versions]


def current_sha(console: Console, slug: str) -> str:
    with console.live.database.session() as session:
        return AgreementService(session).current_version(slug).text_sha256


def form_value(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} on the page"
    return html.unescape(match.group(1))


def hidden_text(page: str) -> str:
    match = re.search(r'<textarea name="text" hidden>\n(.*?)</textarea>', page, re.S)
    assert match, "no text to publish on the preview"
    return html.unescape(match.group(1))


def test_an_agreement_admin_previews_and_publishes_a_material_version(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    form = client.get(f"{base}/versions/new")
    assert form.status_code == 200 and "You agree to alpha." in form.text
    text = "You agree to alpha.\n\nAnd to <script>alert(1)</script> **patents** too.\n"
    preview = client.post(
        f"{base}/versions/preview",
        data={"csrf_token": csrf, "title": "Alpha CLA", "text": text, "change_type": "material"},
    )
    assert preview.status_code == 200
    # The diff against version 1, and the text rendered as the sign page renders it: the
    # Markdown is, the HTML is not.
    assert '<span class="diff-added">+And to &lt;script&gt;' in preview.text
    assert "<strong>patents</strong>" in preview.text
    assert "<script>alert(1)</script>" not in preview.text
    assert "Publish version 2 (material)" in preview.text
    assert versions(console, ALPHA) == [(1, "material")]  # a preview writes nothing
    before = recheck_jobs(console)

    published = client.post(
        f"{base}/versions",
        data={
            "csrf_token": csrf,
            "title": form_value(preview.text, "title"),
            "text": hidden_text(preview.text),
            "change_type": form_value(preview.text, "change_type"),
            "base_sha256": form_value(preview.text, "base_sha256"),
        },
    )
    assert published.status_code == 303 and published.headers["location"] == base
    assert versions(console, ALPHA) == [(1, "material"), (2, "material")]
    with console.live.database.session() as session:
        current = AgreementService(session).current_version(ALPHA)
        assert current.text == text  # exactly what was previewed, byte for byte
    # contrib's signature no longer counts: their open pull request is evaluated again.
    assert recheck_jobs(console) > before
    assert audit_actions(console, "owner") == ["version.publish"]
    assert "Version 2 (material) of alpha is published." in html.unescape(client.get(base).text)
    with console.live.client() as anyone:
        sign_page = anyone.get(f"/sign/{ALPHA}")
        assert "<strong>patents</strong>" in sign_page.text

    # The preview's base is now out of date: publishing from it again is refused.
    stale = client.post(
        f"{base}/versions",
        data={
            "csrf_token": csrf,
            "title": "Alpha CLA",
            "text": "Something else.",
            "change_type": "editorial",
            "base_sha256": form_value(preview.text, "base_sha256"),
        },
    )
    assert stale.status_code == 409 and "published another version" in stale.text
    unpreviewed = client.post(
        f"{base}/versions",
        data={"csrf_token": csrf, "text": "Something else.", "change_type": "editorial"},
    )
    assert unpreviewed.status_code == 400 and "Preview the new version" in unpreviewed.text
    assert versions(console, ALPHA) == [(1, "material"), (2, "material")]


def test_an_editorial_version_keeps_signatures_and_queues_nothing(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    sha = current_sha(console, ALPHA)
    before = recheck_jobs(console)
    answer = client.post(
        f"{base}/versions",
        data={
            "csrf_token": csrf,
            "title": "Alpha CLA",
            "text": "You agree to alpha, really.",
            "change_type": "editorial",
            "base_sha256": sha,
        },
    )
    assert answer.status_code == 303
    assert versions(console, ALPHA) == [(1, "material"), (2, "editorial")]
    assert recheck_jobs(console) == before
    assert current_sha(console, ALPHA) != sha


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"text": "New text.", "change_type": "major"}, "material or editorial"),
        ({"text": "   \n", "change_type": "material"}, "the agreement text is empty"),
        ({"text": "x\x00y", "change_type": "material"}, "NUL character"),
        ({"text": "x" * 500_001, "change_type": "material"}, "longer than"),
        ({"text": "New text.", "change_type": "material", "title": "x" * 300}, "invalid title"),
    ],
)
def test_a_bad_version_is_refused_at_preview_and_publish_and_nothing_is_written(
    console: Console, clients: dict[str, httpx.Client], form: dict[str, str], message: str
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    sha = current_sha(console, ALPHA)
    for path in ("versions/preview", "versions"):
        answer = client.post(
            f"{base}/{path}", data={"csrf_token": csrf, "base_sha256": sha, **form}
        )
        if path == "versions/preview" and "title" in form:
            assert answer.status_code == 200  # the title is checked when it is published
            continue
        assert answer.status_code == 400, (path, answer.status_code)
        assert message in html.unescape(answer.text)
    assert versions(console, ALPHA) == [(1, "material")]
    assert audit_actions(console, "owner") == []


def agreement_count(console: Console) -> int:
    with console.live.database.session() as session:
        return int(session.scalar(select(func.count(Agreement.id))) or 0)


def test_an_instance_admin_creates_an_agreement(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "root")
    assert "Create an agreement" in client.get("/admin/").text
    fields = [{"name": "company", "label": "Company", "required": True}]
    for bad, message in (
        ({"slug": ALPHA}, "already exists"),
        ({"slug": "Not A Slug"}, "is not a valid slug"),
        ({"text": ""}, "the agreement text is empty"),
        ({"fields": "[{"}, "not valid JSON"),
        ({"fields": '[{"name": "name", "label": "Name"}]'}, "name"),
    ):
        form = {"slug": "gamma", "title": "Gamma CLA", "text": "You agree to gamma.", **bad}
        answer = client.post("/admin/agreements", data={"csrf_token": csrf, **form})
        assert answer.status_code == 400, bad
        assert message in html.unescape(answer.text), bad
    assert agreement_count(console) == 2
    assert versions(console, ALPHA) == [(1, "material")]  # "already exists" published nothing

    created = client.post(
        "/admin/agreements",
        data={
            "csrf_token": csrf,
            "slug": "gamma",
            "title": "Gamma CLA",
            "text": "You agree to gamma.",
            "fields": json.dumps(fields),
        },
    )
    assert created.status_code == 303 and created.headers["location"] == "/admin/agreements/gamma"
    page = client.get("/admin/agreements/gamma")
    assert page.status_code == 200 and "Gamma CLA" in page.text
    assert "<code>company</code>" in page.text
    assert audit_actions(console, "root") == ["version.publish"]
    assert 'id="field_company"' in client.get("/sign/gamma").text  # root has not signed


def _meanwhile(console: Console, kind: type[object], write: Callable[[Session], object]) -> Any:
    """A context in which, the first time a request is about to store a ``kind`` row,
    ``write`` stores the same thing in a session of its own first: a double click's other
    request, forced between this one's check and its write."""
    fired: list[bool] = []

    def meanwhile(session: Session, _context: object, _instances: object) -> None:
        if fired or not any(isinstance(row, kind) for row in session.new):
            return
        fired.append(True)
        with console.live.database.session() as other:
            write(other)

    @contextlib.contextmanager
    def listening() -> Iterator[list[bool]]:
        maker = console.live.database.sessionmaker
        event.listen(maker, "before_flush", meanwhile)
        try:
            yield fired
        finally:
            event.remove(maker, "before_flush", meanwhile)

    return listening()


def test_an_agreement_created_twice_at_the_same_moment_is_a_400_not_a_500(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "root")
    form = {"csrf_token": csrf, "slug": "gamma", "title": "Gamma CLA", "text": "Gamma."}
    other = _meanwhile(
        console, Agreement, lambda s: AgreementService(s).create("gamma", "Gamma", "Gamma.")
    )
    with other as fired:
        answer = client.post("/admin/agreements", data=form)
    assert fired
    assert answer.status_code == 400, answer.text[:500]
    assert "an agreement 'gamma' already exists" in html.unescape(answer.text)
    assert agreement_count(console) == 3
    assert versions(console, "gamma") == [(1, "material")]


def test_a_pattern_allowlisted_twice_at_the_same_moment_is_kept_once_with_its_note(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    form = {"csrf_token": csrf, "pattern": "Deploy-*", "note": "deploys"}
    other = _meanwhile(
        console, AllowlistEntry, lambda s: AgreementService(s).allowlist_add(ALPHA, "deploy-*")
    )
    with other as fired:
        answer = client.post(f"/admin/agreements/{ALPHA}/allowlist", data=form)
    assert fired
    assert answer.status_code == 303, answer.text[:500]
    with console.live.database.session() as session:
        entries = AgreementService(session).allowlist(ALPHA)
        assert [(entry.pattern, entry.note) for entry in entries] == [("deploy-*", "deploys")]


@pytest.mark.parametrize(("kind", "name"), [("repo", "acme/gadgets"), ("org", "betaorg")])
def test_a_name_linked_twice_at_the_same_moment_is_linked_once(
    console: Console, clients: dict[str, httpx.Client], kind: str, name: str
) -> None:
    """The other request links the name first; this one replaces that link with its own
    options, as linking again later does."""
    client, csrf = signed_in(console, clients, "root")
    model = RepoLink if kind == "repo" else OrgLink
    link = AgreementService.link_repo if kind == "repo" else AgreementService.link_org
    other = _meanwhile(console, model, lambda s: link(AgreementService(s), name, BETA))
    form = {"csrf_token": csrf, "name": name, "mode": "report"}
    with other as fired:
        answer = client.post(f"/admin/agreements/{ALPHA}/links/{kind}", data=form)
    assert fired
    assert answer.status_code == 303, answer.text[:500]
    with console.live.database.session() as session:
        service = AgreementService(session)
        if kind == "repo":
            mine = [(r.agreement.slug, r.mode) for r in service.repo_links() if r.full_name == name]
        else:
            mine = [(r.agreement.slug, r.mode) for r in service.org_links() if r.org == name]
        assert mine == [(ALPHA, "report")]


def bot_state(console: Console, slug: str) -> tuple[list[int] | None, bool, str]:
    with console.live.database.session() as session:
        agreement = AgreementService(session).get(slug)
        return agreement.exempt_bot_ids, agreement.exempt_all_bots, agreement.agent_policy


def test_bots_and_the_agents_policy_as_the_command_line_sets_them(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "repoadmin")
    base = f"/admin/agreements/{BETA}"
    page = client.get(base).text
    assert "the default list" in page and "(dependabot[bot])" in page
    assert client.post(f"{base}/bots", data={"csrf_token": csrf, "add": "4242"}).status_code == 303
    ids, all_bots, _ = bot_state(console, BETA)
    assert ids is not None and 4242 in ids and not all_bots
    removed = client.post(f"{base}/bots", data={"csrf_token": csrf, "remove": "4242"})
    assert removed.status_code == 303
    assert 4242 not in (bot_state(console, BETA)[0] or [])

    risky = client.post(f"{base}/bots", data={"csrf_token": csrf, "all_bots": "all"})
    assert risky.status_code == 303
    assert bot_state(console, BETA)[1] is True
    page = html.unescape(client.get(base).text)
    assert "Risky:" in page and "anyone can register one" in page

    reset = client.post(
        f"{base}/bots", data={"csrf_token": csrf, "reset": "1", "all_bots": "listed"}
    )
    assert reset.status_code == 303
    assert bot_state(console, BETA)[:2] == (None, False)

    for bad in ({"add": "-1"}, {"add": "bot"}, {"add": str(2**64)}, {"all_bots": "some"}):
        answer = client.post(f"{base}/bots", data={"csrf_token": csrf, **bad})
        assert answer.status_code == 400, bad
    for bad_policy in ("", "allow", "REFUSE"):
        answer = client.post(f"{base}/policy", data={"csrf_token": csrf, "agents": bad_policy})
        assert answer.status_code == 400, bad_policy
    assert bot_state(console, BETA) == (None, False, "require-human")
    policy = client.post(f"{base}/policy", data={"csrf_token": csrf, "agents": "refuse"})
    assert policy.status_code == 303
    assert bot_state(console, BETA)[2] == "refuse"
    assert audit_actions(console, "repoadmin") == [
        "bots.set",
        "bots.set",
        "bots.set",
        "bots.set",
        "agents.policy",
    ]


def test_custom_fields_are_shown_edited_and_asked_on_the_sign_page(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    assert "asks for a name and an email, nothing else" in client.get(base).text
    for bad in ("{", '{"name": "x"}', '[{"name": "Bad Name", "label": "x"}]', "[" + "1," * 30):
        answer = client.post(f"{base}/fields", data={"csrf_token": csrf, "fields": bad})
        assert answer.status_code == 400, bad
    fields = [
        {"name": "country", "label": "Country", "type": "country", "required": True},
        {"name": "employer", "label": "Employer <b>", "help": "If any"},
    ]
    saved = client.post(f"{base}/fields", data={"csrf_token": csrf, "fields": json.dumps(fields)})
    assert saved.status_code == 303
    page = client.get(base).text
    assert "<code>employer</code>" in page and "Employer &lt;b&gt;" in page
    sign_page = client.get(f"/sign/{ALPHA}").text  # owner has not signed alpha
    assert 'id="field_employer"' in sign_page and "Employer &lt;b&gt;" in sign_page
    assert 'id="field_country"' in sign_page
    # Saving the same fields again changes nothing and records nothing.
    client.post(f"{base}/fields", data={"csrf_token": csrf, "fields": json.dumps(fields)})
    cleared = client.post(f"{base}/fields", data={"csrf_token": csrf, "fields": ""})
    assert cleared.status_code == 303
    assert audit_actions(console, "owner") == ["fields.set", "fields.set"]
    with console.live.database.session() as session:
        assert AgreementService(session).get(ALPHA).field_definitions == []


def test_the_chart_has_a_bar_per_month_and_says_the_same_in_words(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    """contrib signed alpha this month; two more signatures are moved two and eleven
    months back, and one fourteen months back (outside the chart)."""
    today = dt.datetime.now(dt.UTC)
    for index, login in enumerate(("s1", "s2", "s3")):
        sign_quietly(console.live.database, ALPHA, login, 9000 + index)
    with console.live.database.session() as session:
        for login, months_back in (("s1", 2), ("s2", 11), ("s3", 14)):
            signature = session.scalar(select(Signature).where(Signature.login == login))
            assert signature is not None
            signature.signed_at = today.replace(day=15) - dt.timedelta(days=30.5 * months_back)
    client, _ = signed_in(console, clients, "owner")
    page = client.get(f"/admin/agreements/{ALPHA}").text
    bars = re.findall(r'<rect class="bar" data-month="(\d{4}-\d\d)" data-count="(\d+)"', page)
    assert len(bars) == 12
    assert bars[-1] == (today.strftime("%Y-%m"), "1")
    counts = [int(count) for _, count in bars]
    assert counts[-3] == 1 and counts[0] == 1 and sum(counts) == 3
    assert 'role="img" aria-labelledby="chart-title chart-desc"' in page
    assert "3 signatures from" in page and '<desc id="chart-desc">' in page
    # Taller for more: the bars with a signature have a height, the others none.
    heights = re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', page)
    assert [float(h) > 0 for h in heights] == [c > 0 for c in counts]


def test_the_audit_log_is_paged_newest_first(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    for index in range(30):
        note = f"note {index}"
        answer = client.post(
            f"{base}/allowlist", data={"csrf_token": csrf, "pattern": "bot-x", "note": note}
        )
        assert answer.status_code == 303
    first = html.unescape(client.get(base).text)
    assert "Page 1 of 2" in first and "Older changes" in first
    second = html.unescape(client.get(f"{base}?audit_page=2").text)
    assert "Page 2 of 2" in second and "Newer changes" in second
    assert '"note": "note 0"' in second and '"note": "note 0"' not in first
    assert '"note": "note 29"' in first and '"note": "note 29"' not in second
    # A page past the end is the last page; one that is not a number, the first.
    past = html.unescape(client.get(f"{base}?audit_page=99").text)
    assert "Page 2 of 2" in past and '"note": "note 0"' in past
    assert "Page 1 of 2" in client.get(f"{base}?audit_page=x").text


def test_signatures_export_by_version(console: Console, clients: dict[str, httpx.Client]) -> None:
    client, _ = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    one = client.get(f"{base}/signatures.json?version=1")
    assert one.status_code == 200 and [row["login"] for row in one.json()] == ["contrib"]
    assert 'filename="alpha-signatures-v1.json"' in one.headers["content-disposition"]
    assert client.get(f"{base}/signatures.csv?version=2").status_code == 404
    for bad in ("0", "-1", "x", "9" * 20):
        assert client.get(f"{base}/signatures.csv?version={bad}").status_code == 400, bad


def org_link(console: Console, org: str) -> str | None:
    with console.live.database.session() as session:
        link = session.scalar(select(OrgLink).where(OrgLink.org == org))
        return None if link is None else link.agreement.slug


def test_an_owner_unlinks_their_organisation_and_loses_the_agreement(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    client, csrf = signed_in(console, clients, "owner")
    base = f"/admin/agreements/{ALPHA}"
    # Not alpha's organisation: nothing to unlink.
    missing = client.post(f"{base}/links/org/remove", data={"csrf_token": csrf, "name": "betaorg"})
    assert missing.status_code == 404
    before = recheck_jobs(console)
    answer = client.post(f"{base}/links/org/remove", data={"csrf_token": csrf, "name": "ACME"})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
    assert org_link(console, "acme") is None
    assert recheck_jobs(console) > before  # acme/widgets#7 is no longer covered: re-checked
    assert audit_actions(console, "owner") == ["org.unlink"]
    assert client.get(base).status_code == 404


def test_a_corporate_agreement_is_never_linked(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    """Linked, its pull requests would ask each contributor to sign for a company: nobody
    could pass. Its page points to the individual agreement instead of offering the link
    forms, and a posted link is a 400 naming that agreement, with nothing written."""
    with console.live.database.session() as session:
        CompanyService(session).add_corporate_agreement(
            "alpha-corporate", "Alpha Corporate CLA", "Your company agrees to alpha.", ALPHA
        )
    client, csrf = signed_in(console, clients, "root")
    base = "/admin/agreements/alpha-corporate"
    page = client.get(base).text
    note = page.split('id="corporate-links-note"')[1].split("</p>")[0]
    assert f'href="/admin/agreements/{ALPHA}">Alpha CLA</a>' in note
    assert f"{base}/links/" not in page
    # Nor are its allowlist, bots, agents' policy, fields or imports: only the linked
    # agreement's are read when a pull request is judged.
    settings_note = page.split('id="corporate-settings-note"')[1].split("</p>")[0]
    assert f'href="/admin/agreements/{ALPHA}">Alpha CLA</a>\'s' in settings_note
    for action in ("allowlist", "bots", "policy", "fields", "import"):
        assert f'action="{base}/{action}"' not in page, action
    assert (
        f'action="/admin/agreements/{ALPHA}/allowlist"'
        in client.get(f"/admin/agreements/{ALPHA}").text
    )
    for kind, name in (("repo", "acme/gadgets"), ("org", "betaorg")):
        refused = client.post(f"{base}/links/{kind}", data={"csrf_token": csrf, "name": name})
        assert refused.status_code == 400
        assert f"link &#39;{ALPHA}&#39; instead" in refused.text
    with console.live.database.session() as session:
        links = [link.agreement.slug for link in AgreementService(session).repo_links()]
        assert links == [BETA]
    assert org_link(console, "acme") == ALPHA and org_link(console, "betaorg") is None
    assert audit_actions(console, "root") == []


def test_a_corporate_agreements_settings_are_refused_with_nothing_written(
    console: Console, clients: dict[str, httpx.Client]
) -> None:
    """The page offers no allowlist, bots, agents' policy, fields or import on a corporate
    agreement (a pull request is judged with the individual agreement's); a form posted
    anyway is a 400 naming that agreement, and nothing is stored, audited or re-checked."""
    with console.live.database.session() as session:
        CompanyService(session).add_corporate_agreement(
            "alpha-corporate", "Alpha Corporate CLA", "Your company agrees to alpha.", ALPHA
        )
        rows_before = (
            session.scalar(select(func.count()).select_from(AllowlistEntry)),
            session.scalar(select(func.count()).select_from(Signature)),
        )
    client, csrf = signed_in(console, clients, "root")
    base = "/admin/agreements/alpha-corporate"
    jobs_before = recheck_jobs(console)
    posts: list[tuple[str, dict[str, str], str]] = [
        ("allowlist", {"pattern": "robot-*", "note": "ours"}, "allowlist"),
        ("allowlist/remove", {"pattern": "robot-*"}, "allowlist"),
        ("bots", {"add": "4242", "all_bots": "all"}, "exempt bots"),
        ("policy", {"agents": "refuse"}, "AI agents&#39; policy"),
        ("fields", {"fields": json.dumps([{"name": "org", "label": "Org"}])}, "custom fields"),
    ]
    for action, form, what in posts:
        refused = client.post(f"{base}/{action}", data={"csrf_token": csrf, **form})
        assert refused.status_code == 400, action
        assert f"whose {what} would never be read" in refused.text, action
        assert f"the individual agreement &#39;{ALPHA}&#39;" in refused.text, action
    people = b"github_id,login\n583231,ada-example\n"
    for sha256 in ("", hashlib.sha256(people).hexdigest()):  # the check, then the import
        refused = client.post(
            f"{base}/import",
            data={"csrf_token": csrf, "source": "csv", **({"sha256": sha256} if sha256 else {})},
            files={"file": ("people.csv", people, "text/csv")},
        )
        assert refused.status_code == 400
        assert "whose imported signatures would never be read" in refused.text
    with console.live.database.session() as session:
        corporate = AgreementService(session).get("alpha-corporate")
        assert (corporate.field_definitions, corporate.agent_policy) == ([], "require-human")
        assert (corporate.exempt_bot_ids, corporate.exempt_all_bots) == (None, False)
        rows_after = (
            session.scalar(select(func.count()).select_from(AllowlistEntry)),
            session.scalar(select(func.count()).select_from(Signature)),
        )
        assert rows_after == rows_before
    assert audit_actions(console, "root") == []
    assert recheck_jobs(console) == jobs_before


@pytest.mark.parametrize("fault", ["error", "timeout"])
@pytest.mark.parametrize("action", ["link", "unlink"])
def test_github_failing_during_a_link_lookup_is_a_503_and_nothing_is_written(
    console: Console, clients: dict[str, httpx.Client], fault: str, action: str
) -> None:
    client, csrf = signed_in(console, clients, "owner")  # the scope is kept in the session
    state = console.live.emulator.state
    if fault == "error":
        state.add_fault("GET", r"/memberships/", status=500, times=10)
    else:  # the tests' UNDERSIGN_HTTP_TIMEOUT is 3 seconds
        state.add_fault("GET", r"/memberships/", status=None, delay=4.0, times=1)
    base = f"/admin/agreements/{ALPHA}"
    if action == "link":
        answer = client.post(
            f"{base}/links/repo", data={"csrf_token": csrf, "name": "acme/widgets"}
        )
    else:
        answer = client.post(f"{base}/links/org/remove", data={"csrf_token": csrf, "name": "acme"})
    assert answer.status_code == 503
    assert "Cannot check your access" in answer.text
    with console.live.database.session() as session:
        assert session.scalar(select(RepoLink).where(RepoLink.full_name == "acme/widgets")) is None
        assert session.scalar(select(func.count(AgreementVersion.id))) == 2
    assert org_link(console, "acme") == ALPHA
    assert audit_actions(console, "owner") == []
