"""The maintainers' console (``/admin/``): agreements, signatures, waiting pull requests.

Who may see what (issue 13): instance admins (``UNDERSIGN_ADMINS``, numeric GitHub ids) see
every agreement; anyone else sees the agreements whose linked repositories they administer or
whose linked organisations they own, as GitHub answers the bot (``agreements/admins.py``).
That answer is kept in the server-side session and asked again after ten minutes. Every
other agreement answers 404, exactly like one that does not exist; when GitHub could not
answer, every agreement page says so (503) instead of guessing. Anonymous visitors are sent
to sign in and come back. Every change is a CSRF-checked POST (CSRFProtect in
``create_app``) and goes through the services, which write the audit log.

Linking a repository or organisation from the console: an instance admin may link anything;
an agreement admin only what GitHub says they administer (admin on the repository, owner of
the organisation), asked with the same lookup as their scope, at the moment of the change.
Unlinking asks the same, so one agreement admin cannot drop another's repository. The
failed-jobs page (``/admin/jobs``) is for instance admins only; anyone else gets 404, as
for creating an agreement (``POST /admin/agreements``).

A new version is previewed before it is published (the sign page's rendering and a diff
against the current text), then published through the service ``undersign agreement add``
uses; bots, the agent policy and custom fields are the services of ``agreement bots``,
``agreement policy`` and ``agreement add --fields``. The audit log is paged on the
agreement's page and exported as CSV or JSON.

Importing another CLA tool's signatures (``undersign import``) is two uploads of the same
file: the first is always a dry run that shows the report and writes nothing; its page asks
for the file again, with the dry run's SHA-256 in the form, and imports only a file with that
hash. No uploaded byte is kept after the request (no file, no session), and no script runs.

Depends on accounts.models, agreements (admins, companies, errors, export, importers, imports,
models, service),
enforcement (agents, console), github.errors, jobs.queue, web.context, web.signing.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response as BaseResponse

from undersign.accounts.models import User
from undersign.agreements.admins import AdminScope, look_up_scope, org_owner, repo_admin
from undersign.agreements.companies import CompanyService, UnknownCompany
from undersign.agreements.errors import (
    AgreementError,
    ImportConflict,
    InvalidInput,
    TooManyLookups,
    UnknownAgreement,
    UnknownSignature,
)
from undersign.agreements.export import neutralize_cell, write_csv, write_json
from undersign.agreements.importers import MAX_IMPORT_BYTES, SOURCES, ImportRefused, parse
from undersign.agreements.imports import LoginResolver, NotAPerson, formula_notes, import_batch
from undersign.agreements.models import LINK_MODES, Agreement, AgreementVersion
from undersign.agreements.service import (
    AgreementService,
    SignatureService,
    checked_text,
    normalize_org,
    normalize_repo_full_name,
    text_diff,
)
from undersign.enforcement import console
from undersign.enforcement.agents import AGENT_POLICIES, DEFAULT_BOT_IDS, describe_bots
from undersign.github.errors import (
    GITHUB_CREDENTIALS_FIX,
    NEEDS_AN_OPERATOR,
    AppNotInstalled,
    GitHubError,
    GitHubNotConfigured,
    GitHubRequestError,
    NotFound,
)
from undersign.jobs.queue import enqueue_after_commit, requeue_failed
from undersign.web.bodylimit import CHUNKED
from undersign.web.context import (
    current_user,
    db_session,
    is_instance_admin,
    require_user,
    runtime,
    settings,
)
from undersign.web.signing import agreement_html, diff_lines

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/admin")

#: Where the person's admin scope lives in their server-side session.
SCOPE_KEY = "console_scope"
PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 25
MAX_PAGE = 100_000
MAX_ROW_ID = 2**63 - 1
MAX_PR_NUMBER = 10**9
#: The clock the ten-minute freshness of an answer is read from (tests move it forward).
clock: Callable[[], float] = time.time


class LookupFailed(Exception):
    """GitHub could not say what this person administers: deny, and say why. No ``reason``
    when only an operator can mend it (``NEEDS_AN_OPERATOR``): the page then tells a person
    who is not an instance admin what they can do, and the reason goes to the log."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "only an operator can mend it")
        self.reason = reason


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.errorhandler(LookupFailed)
def _lookup_failed(error: LookupFailed) -> tuple[str, int]:
    return render_template("console/denied.html", reason=error.reason), 503


def refresh_scope(github_id: int, login: str, *, force: bool = False) -> AdminScope:
    """This person's admin scope: the one in their session while it is fresh (ten minutes),
    else GitHub is asked again. A failed answer is never reused."""
    admins = settings().admins
    stored = AdminScope.from_json(session.get(SCOPE_KEY), github_id, admins)
    now = clock()
    if stored is not None and not force and not stored.is_stale(now) and stored.failure is None:
        return stored
    try:
        github = runtime().bot.github
    except RuntimeError as exc:  # no bot token and no App: GitHub cannot be asked at all
        if github_id not in admins:
            session[SCOPE_KEY] = None
            log.warning("admin lookup for github id %s cannot run: %s", github_id, exc)
            raise LookupFailed(None) from None
        return AdminScope(github_id=github_id, instance_admin=True, checked_at=now)
    scope = look_up_scope(
        db_session(), github, github_id=github_id, login=login, admins=admins, now=now
    )
    if scope.failure:
        log.warning("admin lookup for github id %s failed: %s", github_id, scope.failure)
    session[SCOPE_KEY] = scope.to_json()
    return scope


def _scope() -> tuple[User, AdminScope]:
    user = require_user()
    scope = refresh_scope(user.github_id, user.login)
    if scope.failure is not None:  # logged when it was asked (refresh_scope)
        raise LookupFailed(None if scope.needs_operator else scope.failure)
    return user, scope


def _administered(slug: str) -> tuple[User, Agreement]:
    """The agreement at ``slug`` if this person administers it; 404 otherwise, the same
    answer as for an agreement that does not exist."""
    user, scope = _scope()
    try:
        agreement = AgreementService(db_session()).get(slug)
    except UnknownAgreement:
        abort(404, description="There is no agreement at this address.")
    if not scope.administers(agreement.id):
        abort(404, description="There is no agreement at this address.")
    return user, agreement


def _visible_agreements(scope: AdminScope) -> list[Agreement]:
    every = AgreementService(db_session()).list_agreements()
    return [agreement for agreement in every if scope.administers(agreement.id)]


@bp.get("/")
def index() -> str:
    user, scope = _scope()
    rows = console.summaries(db_session(), _visible_agreements(scope))
    return render_template("console/index.html", rows=rows, scope=scope, user=user)


@bp.get("/agreements/<slug>")
def agreement_page(slug: str) -> str:
    _, agreement = _administered(slug)
    db = db_session()
    service = AgreementService(db)
    links = [link for link in service.repo_links() if link.agreement_id == agreement.id]
    org_links = [link for link in service.org_links() if link.agreement_id == agreement.id]
    audit_page = _page_number("audit_page")
    audit, audit_total = service.audit_page(
        agreement, offset=(audit_page - 1) * AUDIT_PAGE_SIZE, limit=AUDIT_PAGE_SIZE
    )
    audit_pages = max(1, -(-audit_total // AUDIT_PAGE_SIZE))
    if audit_page > audit_pages:  # past the end (an old link): the last page instead
        audit_page = audit_pages
        audit, _ = service.audit_page(
            agreement, offset=(audit_page - 1) * AUDIT_PAGE_SIZE, limit=AUDIT_PAGE_SIZE
        )
    months = console.signatures_by_month(db, agreement.id, today=dt.datetime.now(dt.UTC).date())
    bot_ids = DEFAULT_BOT_IDS if agreement.exempt_bot_ids is None else agreement.exempt_bot_ids
    return render_template(
        "console/agreement.html",
        agreement=agreement,
        versions=list(reversed(agreement.versions)),
        repo_links=links,
        org_links=org_links,
        links=[("repo", link.full_name, link) for link in links]
        + [("org", link.org, link) for link in org_links],
        allowlist=service.allowlist(agreement),
        audit=audit,
        audit_page=audit_page,
        audit_pages=audit_pages,
        chart=signature_chart(months),
        bots=list(zip(sorted(set(bot_ids)), describe_bots(bot_ids), strict=True)),
        agent_policies=AGENT_POLICIES,
        import_sources=SOURCES,
        max_import_mb=MAX_IMPORT_BYTES // (1024 * 1024),
        fields_json=json.dumps(agreement.field_definitions or [], indent=2, ensure_ascii=False),
        pending_companies=CompanyService(db).pending_review(agreement),
        companies_signed_earlier=CompanyService(db).signed_an_earlier_version(agreement),
        individual=db.get(Agreement, agreement.for_agreement_id)
        if agreement.for_agreement_id is not None
        else None,
    )


def _page_number(name: str = "page") -> int:
    raw = request.args.get(name, "1")
    return min(int(raw), MAX_PAGE) if raw.isascii() and raw.isdigit() and int(raw) >= 1 else 1


# The signatures chart: inline SVG drawn here (no script; the CSP allows no inline script
# and no inline style, so the bars are coloured by class from the stylesheet).

CHART_WIDTH, CHART_HEIGHT, CHART_BASELINE = 600, 160, 130


def signature_chart(months: Iterable[console.MonthCount]) -> dict[str, Any]:
    """Bars (one per month, the geometry computed here) and a sentence saying the same for
    people who do not see the chart."""
    months = list(months)
    highest = max((m.count for m in months), default=0)
    slot = CHART_WIDTH / max(len(months), 1)
    bars = []
    for index, month in enumerate(months):
        height = round((CHART_BASELINE - 20) * month.count / highest) if highest else 0
        bars.append(
            {
                "month": month.month,
                "count": month.count,
                "x": round(index * slot + slot * 0.15, 1),
                "width": round(slot * 0.7, 1),
                "y": CHART_BASELINE - height,
                "height": height,
                "label_x": round(index * slot + slot / 2, 1),
            }
        )
    total = sum(m.count for m in months)
    if months and total:
        busiest = max(months, key=lambda m: m.count)
        summary = (
            f"{total} signature{'s' if total != 1 else ''} from {months[0].month} to "
            f"{months[-1].month}; the most in {busiest.month} ({busiest.count})."
        )
    elif months:
        summary = f"No signature from {months[0].month} to {months[-1].month}."
    else:
        summary = "No signature."
    return {
        "bars": bars,
        "summary": summary,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "baseline": CHART_BASELINE,
    }


@bp.get("/agreements/<slug>/signatures")
def signatures(slug: str) -> str:
    _, agreement = _administered(slug)
    query = request.args.get("q", "")[:200]
    page = _page_number()
    rows, total = SignatureService(db_session()).search_signatures(
        agreement, query, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    return render_template(
        "console/signatures.html",
        agreement=agreement,
        rows=rows,
        total=total,
        query=query,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
    )


@bp.post("/agreements/<slug>/signatures/<int:signature_id>/revoke")
def revoke(slug: str, signature_id: int) -> BaseResponse | tuple[str, int]:
    user, agreement = _administered(slug)
    db = db_session()
    if signature_id > MAX_ROW_ID:
        abort(404, description="This agreement has no signature with this number.")
    service = SignatureService(
        db, on_change=runtime().signature_hook(db), actor=str(user.github_id)
    )
    try:
        signature = service.get_signature(signature_id)
    except UnknownSignature:
        abort(404, description="This agreement has no signature with this number.")
    if signature.version.agreement_id != agreement.id:
        abort(404, description="This agreement has no signature with this number.")
    reason = request.form.get("reason", "").strip()
    if not reason:
        abort(400, description="Say why the signature is revoked (the signer can see it).")
    try:
        revoked = service.revoke(
            signature.id,
            by=f"maintainer {user.login} (GitHub id {user.github_id})",
            reason=reason,
        )
    except InvalidInput as exc:
        abort(400, description=str(exc))
    db.commit()
    if revoked:
        flash(f"The signature of {signature.login} is revoked; their pull requests are re-checked.")
    return redirect(url_for("console.signatures", slug=agreement.slug), 303)


def _export(slug: str, kind: str) -> Response:
    """The same rows and columns as ``undersign signatures export`` (buffered: the console's
    agreements are small; the command line streams)."""
    _, agreement = _administered(slug)
    service = SignatureService(db_session())
    buffer = io.StringIO()
    raw_version = request.args.get("version", "")
    version = None
    if raw_version:
        if not (raw_version.isascii() and raw_version.isdigit() and 0 < int(raw_version) < 10**9):
            abort(400, description="The version is a positive number (as in the versions table).")
        version = int(raw_version)
    rows = service.export(agreement.slug, version)
    try:
        if kind == "csv":
            write_csv(rows, [f.name for f in agreement.fields], buffer.write)
        else:
            write_json(rows, buffer.write)
    except InvalidInput as exc:  # no such version
        abort(404, description=str(exc))
    suffix = f"-v{version}" if version else ""
    return _download(buffer.getvalue(), kind, f"{agreement.slug}-signatures{suffix}.{kind}")


def _download(body: str, kind: str, filename: str) -> Response:
    """An attachment nobody caches (it holds people's names and emails)."""
    response = Response(body, mimetype="text/csv" if kind == "csv" else "application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/agreements/<slug>/signatures.csv")
def signatures_csv(slug: str) -> Response:
    return _export(slug, "csv")


@bp.get("/agreements/<slug>/signatures.json")
def signatures_json(slug: str) -> Response:
    return _export(slug, "json")


@bp.get("/agreements/<slug>/pulls")
def pulls(slug: str) -> str:
    _, agreement = _administered(slug)
    return render_template(
        "console/pulls.html",
        agreement=agreement,
        pulls=console.waiting_pulls(db_session(), agreement.id),
        github_url=settings().github_url.rstrip("/"),
    )


@bp.post("/agreements/<slug>/pulls/recheck")
def recheck(slug: str) -> BaseResponse:
    _, agreement = _administered(slug)
    repo = request.form.get("repo", "").strip().lower()[:200]
    number_text = request.form.get("number", "")
    if not (number_text.isascii() and number_text.isdigit()) or not (
        0 < int(number_text) <= MAX_PR_NUMBER
    ):
        abort(404, description="This agreement covers no such open pull request.")
    number = int(number_text)
    db = db_session()
    if not console.covers_pull(db, agreement.id, repo, number):
        abort(404, description="This agreement covers no such open pull request.")
    runtime().recheck_pull_request(db, repo, number)
    db.commit()
    flash(f"{repo}#{number} will be checked again in a moment.")
    return redirect(url_for("console.pulls", slug=agreement.slug), 303)


# Links and allowlist: the same service calls (and audit rows) as ``undersign repo link``,
# ``org link`` and ``allowlist``, then the affected pull requests are re-evaluated.


def _checkbox(name: str) -> bool:
    return request.form.get(name) in ("on", "1", "true", "yes")


def _github_confirms(ask: Callable[[], bool]) -> bool:
    """GitHub's yes; a 404 or other 4xx (the bot may not see that repository or
    organisation) is no, since asking again will not help. A 5xx, timeout or missing
    credentials is ``LookupFailed`` (503, saying why), never a guess."""
    try:
        return ask()
    except (NotFound, GitHubRequestError) as exc:
        log.info("GitHub will not confirm an admin for a link: %s", exc)
        return False
    except GitHubError as exc:
        raise LookupFailed(str(exc) or type(exc).__name__) from None


def _may_link(scope: AdminScope, user: User, *, repo: str = "", org: str = "") -> None:
    """An instance admin may link anything; anyone else only a repository they administer
    or an organisation they own on GitHub (asked now, never from the cached scope). An
    owner of the organisation owning a repository administers it."""
    if scope.instance_admin:
        return
    try:
        github = runtime().bot.github
    except RuntimeError as exc:  # no bot token and no App: GitHub cannot be asked
        log.warning("a link by github id %s cannot be checked: %s", user.github_id, exc)
        raise LookupFailed(None) from None
    owner = repo.partition("/")[0] if repo else org
    allowed = _github_confirms(lambda: org_owner(github, owner, user.login, user.github_id))
    if repo and not allowed:
        allowed = _github_confirms(lambda: repo_admin(github, repo, user.login, user.github_id))
    if not allowed:
        what = f"the repository {repo}" if repo else f"the organisation {org}"
        abort(
            403,
            description=f"GitHub does not say you administer {what} (or does not let "
            "undersign see it); an instance admin can change its link.",
        )


def _linked_name(kind: str) -> str:
    """The repository (``OWNER/REPO``) or organisation named in the form, normalized the
    way the service stores it; a malformed name is a 400 that says why."""
    raw = request.form.get("name", "").strip()[:200]
    try:
        return normalize_repo_full_name(raw) if kind == "repo" else normalize_org(raw)
    except InvalidInput as exc:
        abort(400, description=str(exc))


def _after_link_change(agreement: Agreement, message: str) -> BaseResponse:
    """Commit, say what happened, and ask GitHub again for this person's scope (a link
    changes what they administer); back to the agreement, or to the list when it is no
    longer theirs."""
    db_session().commit()
    flash(message)
    user = require_user()
    scope = refresh_scope(user.github_id, user.login, force=True)
    if scope.failure is None and scope.administers(agreement.id):
        return redirect(url_for("console.agreement_page", slug=agreement.slug), 303)
    return redirect(url_for("console.index"), 303)


@bp.post("/agreements/<slug>/links/repo", defaults={"kind": "repo"})
@bp.post("/agreements/<slug>/links/org", defaults={"kind": "org"})
def link(slug: str, kind: str) -> BaseResponse:
    user, agreement = _administered(slug)
    _, scope = _scope()
    name = _linked_name(kind)
    _may_link(scope, user, **({"repo": name} if kind == "repo" else {"org": name}))
    db = db_session()
    service = AgreementService(db, actor=str(user.github_id))
    mode = request.form.get("mode") or "enforce"
    if mode not in LINK_MODES:
        abort(400, description="The mode is enforce or report.")
    link_to = functools.partial(
        service.link_repo if kind == "repo" else service.link_org,
        name,
        agreement.slug,
        exempt_org_members=_checkbox("exempt_org_members"),
        exempt_collaborators=_checkbox("exempt_collaborators"),
        mode=mode,
        report_comments=_checkbox("report_comments"),
    )
    try:
        link_to()
    except InvalidInput as exc:  # a corporate agreement
        db.rollback()
        abort(400, description=str(exc))
    except IntegrityError:  # the same name linked at the same moment (a double click)
        db.rollback()
        link_to()  # now it replaces that link, as linking again does
    note = " (report only)" if mode == "report" else ""
    if kind == "repo":
        runtime().requeue_open_pull_requests(db, repos=(name,))
        return _after_link_change(agreement, f"{name} is covered by {agreement.slug}{note}.")
    runtime().requeue_open_pull_requests(db, orgs=(name,))
    return _after_link_change(
        agreement, f"Every repository of {name} is covered by {agreement.slug}{note}."
    )


@bp.post("/agreements/<slug>/links/repo/remove", defaults={"kind": "repo"})
@bp.post("/agreements/<slug>/links/org/remove", defaults={"kind": "org"})
def unlink(slug: str, kind: str) -> BaseResponse:
    user, agreement = _administered(slug)
    _, scope = _scope()
    name = _linked_name(kind)
    service = AgreementService(db_session(), actor=str(user.github_id))
    links = service.repo_links() if kind == "repo" else service.org_links()
    mine = {
        (getattr(item, "full_name", None) or getattr(item, "org", ""))
        for item in links
        if item.agreement_id == agreement.id
    }
    if name not in mine:
        abort(404, description="This agreement has no such link.")
    _may_link(scope, user, **({"repo": name} if kind == "repo" else {"org": name}))
    db = db_session()
    if kind == "repo":
        service.unlink_repo(name)
        runtime().requeue_open_pull_requests(db, repos=(name,))
    else:
        service.unlink_org(name)
        runtime().requeue_open_pull_requests(db, orgs=(name,))
    return _after_link_change(agreement, f"{name} is no longer linked to {agreement.slug}.")


def _changed(agreement: Agreement, message: str, *, recheck: bool = True) -> BaseResponse:
    """After a change to an agreement's policy: re-evaluate its open pull requests (queued
    after commit, as the command line does), commit, say what happened, back to its page."""
    db = db_session()
    if recheck:
        runtime().requeue_open_pull_requests(db, agreement_id=agreement.id)
    db.commit()
    flash(message)
    return redirect(url_for("console.agreement_page", slug=agreement.slug), 303)


@bp.post("/agreements/<slug>/allowlist")
def allowlist_add(slug: str) -> BaseResponse:
    user, agreement = _administered(slug)
    db = db_session()
    service = AgreementService(db, actor=str(user.github_id))
    pattern = request.form.get("pattern", "")[:200]
    note = request.form.get("note", "")[:600]
    try:
        entry = service.allowlist_add(agreement, pattern, note)
    except InvalidInput as exc:
        db.rollback()
        abort(400, description=str(exc))
    except IntegrityError:  # the same pattern added at the same moment (a double click)
        db.rollback()
        entry = service.allowlist_add(agreement, pattern, note)  # now it updates that row
    return _changed(agreement, f"{entry.pattern} needs no signature on {agreement.slug}.")


@bp.post("/agreements/<slug>/allowlist/remove")
def allowlist_remove(slug: str) -> BaseResponse:
    user, agreement = _administered(slug)
    db = db_session()
    service = AgreementService(db, actor=str(user.github_id))
    pattern = request.form.get("pattern", "")[:200]
    try:
        removed = service.allowlist_remove(agreement, pattern)
    except InvalidInput as exc:
        db.rollback()
        abort(400, description=str(exc))
    if not removed:
        abort(404, description=f"{pattern!r} is not on the allowlist of {agreement.slug}.")
    return _changed(agreement, f"{pattern} is no longer allowlisted on {agreement.slug}.")


# Company review: a company that signed a corporate agreement on the web covers nobody until an
# admin of the individual agreement beside it (or an instance admin) accepts it.


@bp.post("/agreements/<slug>/companies/<int:company_id>/accept", defaults={"accept": True})
@bp.post("/agreements/<slug>/companies/<int:company_id>/reject", defaults={"accept": False})
def review_company(slug: str, company_id: int, accept: bool) -> BaseResponse:
    user, agreement = _administered(slug)
    if company_id > MAX_ROW_ID:
        abort(404, description="There is no company at this address.")
    db = db_session()
    service = CompanyService(db, on_change=runtime().approval_hook(db), actor=str(user.github_id))
    try:
        company = service.for_review(agreement, company_id)
    except UnknownCompany:
        abort(404, description="There is no company at this address.")
    try:
        changed = service.accept(company) if accept else service.reject(company)
    except InvalidInput as exc:
        db.rollback()
        abort(409, description=str(exc))
    db.commit()
    if accept:
        message = (
            f"{company.name} is accepted: its approvals cover people now."
            if changed
            else f"{company.name} was accepted already."
        )
    else:
        message = (
            f"{company.name} is rejected: it covers nobody, and its name may be signed again."
            if changed
            else f"{company.name} was rejected already."
        )
    log.info(
        "company %s %s on %s by github id %s",
        company.id,
        "accepted" if accept else "rejected",
        agreement.slug,
        user.github_id,
    )
    flash(message)
    return redirect(url_for("console.agreement_page", slug=agreement.slug), 303)


# Failed jobs: instance admins only (a job's payload names repositories of every agreement).


def _instance_admin() -> User:
    user, scope = _scope()
    if not scope.instance_admin:
        abort(404, description="There is nothing at this address.")
    return user


@bp.get("/jobs")
def jobs() -> str:
    _instance_admin()
    return render_template("console/jobs.html", jobs=console.failed_jobs(db_session()))


@bp.post("/jobs/<int:job_id>/retry")
def retry_job(job_id: int) -> BaseResponse:
    """Queue a failed job again from scratch, as GitHub's "Redeliver" does for a delivery."""
    _instance_admin()
    db = db_session()
    if job_id > MAX_ROW_ID or not requeue_failed(db, job_id, lease=settings().job_lease):
        abort(404, description="There is no failed job with this number.")
    enqueue_after_commit(db, runtime().queue, [job_id])
    db.commit()
    flash(f"Job {job_id} is queued again.")
    return redirect(url_for("console.jobs"), 303)


# The audit log, exported with the agreement (oldest first; before/after as JSON text in
# the CSV, as they are stored).

AUDIT_COLUMNS = ("id", "agreement", "at", "actor", "action", "before", "after")


def _audit_csv(rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(AUDIT_COLUMNS)
    for row in rows:
        cells = [
            json.dumps(row[name], ensure_ascii=False, sort_keys=True)
            if name in ("before", "after") and row[name] is not None
            else row[name]
            for name in AUDIT_COLUMNS
        ]
        writer.writerow([neutralize_cell(cell) for cell in cells])
    return buffer.getvalue()


@bp.get("/agreements/<slug>/audit.csv", defaults={"kind": "csv"})
@bp.get("/agreements/<slug>/audit.json", defaults={"kind": "json"})
def audit_export(slug: str, kind: str) -> Response:
    _, agreement = _administered(slug)
    rows = AgreementService(db_session()).audit_export(agreement)
    if kind == "csv":
        body = _audit_csv(rows)
    else:
        buffer = io.StringIO()
        write_json(rows, buffer.write)
        body = buffer.getvalue()
    return _download(body, kind, f"{agreement.slug}-audit.{kind}")


# New versions: a form, a preview (the text as the sign page renders it, and the diff
# against the current version), then publishing through the service ``undersign agreement
# add`` uses. The preview carries the current version's hash: when someone published in
# between, publishing is refused rather than replacing a text the person never compared.


def _change_type() -> str:
    change = request.form.get("change_type", "")
    if change not in ("material", "editorial"):
        abort(400, description="Choose whether the change is material or editorial.")
    return change


def _version_form(agreement: Agreement) -> tuple[str, str]:
    """The title and text of the form, checked as publishing would check them."""
    title = " ".join(request.form.get("title", "").split())[:400] or agreement.title
    try:
        text = checked_text(request.form.get("text", ""))
    except InvalidInput as exc:
        abort(400, description=str(exc))
    return title, text


@bp.get("/agreements/<slug>/versions/new")
def new_version(slug: str) -> str:
    _, agreement = _administered(slug)
    current = AgreementService(db_session()).current_version(agreement)
    return render_template(
        "console/version_form.html", agreement=agreement, text=current.text, title=agreement.title
    )


@bp.post("/agreements/<slug>/versions/preview")
def preview_version(slug: str) -> str:
    """Shows what would be published; changes nothing."""
    _, agreement = _administered(slug)
    change = _change_type()
    title, text = _version_form(agreement)
    current = AgreementService(db_session()).current_version(agreement)
    diff = text_diff(
        current.text,
        text,
        fromfile=f"{agreement.slug} version {current.number} (current)",
        tofile=f"{agreement.slug} version {current.number + 1} (new)",
    )
    preview = AgreementVersion(text=text)  # unsaved: rendered exactly as the sign page does
    return render_template(
        "console/version_preview.html",
        agreement=agreement,
        current=current,
        title=title,
        text=text,
        change_type=change,
        html=agreement_html(preview),
        diff=diff_lines(diff),
    )


@bp.post("/agreements/<slug>/versions")
def publish_version(slug: str) -> BaseResponse:
    user, agreement = _administered(slug)
    change = _change_type()
    title, text = _version_form(agreement)
    db = db_session()
    service = AgreementService(db, actor=str(user.github_id))
    base = request.form.get("base_sha256", "")
    if not base:
        abort(400, description="Preview the new version before publishing it.")
    if base != service.current_version(agreement).text_sha256:
        abort(
            409,
            description="Someone published another version since your preview: preview "
            "your text again against the current one.",
        )
    try:
        found, version, created = service.add_or_update(
            agreement.slug,
            title,
            text,
            change_type="material" if change == "material" else "editorial",
        )
    except InvalidInput as exc:
        db.rollback()
        abort(400, description=str(exc))
    if not created:
        return _changed(
            found,
            f"The text is unchanged: {found.slug} stays at version {version.number}.",
            recheck=False,
        )
    message = f"Version {version.number} ({version.change_type}) of {found.slug} is published."
    if found.kind == "corporate" and version.change_type == "material":
        message += " Companies that signed an earlier version cover nobody until they sign it."
    return _changed(  # a material change: earlier signatures stop counting
        found, message, recheck=version.change_type == "material"
    )


# Creating agreements: instance admins only (the same service as ``undersign agreement
# add``); anyone else finds nothing at these addresses.


def _fields_from_form() -> object:
    """The custom fields' JSON array from the form (as ``--fields FILE`` holds it)."""
    raw = request.form.get("fields", "").strip()[:100_000]
    if not raw:
        return []
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        abort(
            400,
            description=f"The custom fields are not valid JSON: {exc.msg} (line {exc.lineno}).",
        )


@bp.post("/agreements")
def create_agreement() -> BaseResponse:
    user = _instance_admin()
    slug = request.form.get("slug", "").strip()[:100]
    title = request.form.get("title", "")[:400]
    fields = _fields_from_form()
    db = db_session()
    service = AgreementService(db, actor=str(user.github_id))
    try:
        agreement, _ = service.create(slug, title, request.form.get("text", ""), fields)
        db.commit()
    except InvalidInput as exc:
        db.rollback()
        abort(400, description=str(exc))
    except IntegrityError:  # the same slug created at the same moment (a double click)
        db.rollback()
        abort(400, description=f"an agreement {slug!r} already exists")
    # The new agreement is theirs to see at once (an instance admin sees every agreement).
    flash(f"{agreement.slug} is created (version 1). Link a repository to put it to work.")
    return redirect(url_for("console.agreement_page", slug=agreement.slug), 303)


# Bots, the AI agents' policy and the custom fields: ``undersign agreement bots``,
# ``agreement policy`` and ``agreement add --fields``.


def _bot_id(name: str) -> list[int]:
    raw = request.form.get(name, "").strip()
    if not raw:
        return []
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ROW_ID):
        abort(400, description="A bot is named by its numeric account id (a positive number).")
    return [int(raw)]


@bp.post("/agreements/<slug>/bots")
def bots(slug: str) -> BaseResponse:
    user, agreement = _administered(slug)
    choice = request.form.get("all_bots", "")
    if choice not in ("", "all", "listed"):
        abort(400, description="Choose every bot or only the listed ids.")
    db = db_session()
    service = AgreementService(db, actor=str(user.github_id))
    try:
        service.set_bot_policy(
            agreement,
            add=_bot_id("add"),
            remove=_bot_id("remove"),
            defaults=DEFAULT_BOT_IDS,
            reset=request.form.get("reset") == "1",
            all_bots=None if not choice else choice == "all",
        )
    except InvalidInput as exc:
        db.rollback()
        abort(400, description=str(exc))
    if agreement.exempt_all_bots:
        return _changed(
            agreement, "Every account GitHub types Bot needs no signature: anyone can register one."
        )
    return _changed(agreement, f"The exempt bots of {agreement.slug} are saved.")


@bp.post("/agreements/<slug>/policy")
def agent_policy(slug: str) -> BaseResponse:
    user, agreement = _administered(slug)
    policy = request.form.get("agents", "")
    if policy not in AGENT_POLICIES:
        abort(400, description="The AI agents' policy is require-human or refuse.")
    db = db_session()
    try:
        AgreementService(db, actor=str(user.github_id)).set_agent_policy(agreement, policy)
    except InvalidInput as exc:  # a corporate agreement
        db.rollback()
        abort(400, description=str(exc))
    return _changed(agreement, f"AI agents on {agreement.slug}: {policy}.")


@bp.post("/agreements/<slug>/fields")
def custom_fields(slug: str) -> BaseResponse:
    """What the sign page asks besides name and email; signatures already made keep the
    values they were given (coverage does not depend on fields, so nothing is re-checked)."""
    user, agreement = _administered(slug)
    fields = _fields_from_form()
    db = db_session()
    try:
        AgreementService(db, actor=str(user.github_id)).set_fields(agreement, fields)
    except InvalidInput as exc:
        db.rollback()
        abort(400, description=str(exc))
    return _changed(agreement, f"The custom fields of {agreement.slug} are saved.", recheck=False)


# Importing signatures: ``undersign import`` from the browser (the same parser, service,
# limits, audit row and re-evaluation). The first upload is a dry run; the report's form asks
# for the same file again and carries its SHA-256, and only that file is imported.

#: The body an import may send: the file (at most ``MAX_IMPORT_BYTES``) and a few small fields.
IMPORT_BODY = MAX_IMPORT_BYTES + 64 * 1024
IMPORT_ENDPOINT = "console.import_signatures"
#: Logins without a GitHub id one upload may ask GitHub about: each is a call made inside
#: the web request (paced like every other). ``undersign import`` has no such cap.
MAX_IMPORT_LOOKUPS = 2_000
#: What a confirm answers when the same rows were written by another at the same moment.
IMPORT_CONFLICT = (
    "Some of these people got a signature on this version while this file was being "
    "imported (the same file imported twice at the same moment?). Nothing was imported by "
    "this request: check the file again to see what is there now."
)


def raise_upload_limit() -> None:
    """Registered before the CSRF check (the first to read the form): an upload (multipart)
    by someone who may import into this agreement (an instance admin, or an admin of the
    agreement at the address, by the admin check the route itself makes, from the session
    while it is fresh) may be as large as the command line's file. Anyone else keeps the
    forms' cap, so their large body is refused (413) before it is read, not read whole to be
    answered 404. A chunked body keeps the forms' cap too (it was read only up to that cap)."""
    if (
        request.endpoint != IMPORT_ENDPOINT
        or request.mimetype != "multipart/form-data"
        or request.environ.get(CHUNKED)
    ):
        return
    user = current_user()
    slug = (request.view_args or {}).get("slug")
    if user is None or not isinstance(slug, str):
        return
    try:
        scope = refresh_scope(user.github_id, user.login)
    except LookupFailed:  # the route answers 503 and says why; the body stays small
        return
    if not scope.instance_admin:
        if scope.failure is not None:
            return
        try:
            agreement = AgreementService(db_session()).get(slug)
        except UnknownAgreement:
            return
        if not scope.administers(agreement.id):
            return
    request.max_content_length = IMPORT_BODY


def _import_version() -> int | None:
    raw = request.form.get("version", "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 10**9):
        abort(400, description="The version is a positive number (as in the versions table).")
    return int(raw)


def _what_an_operator_must_do(login: str, exc: Exception) -> str:
    """An instance admin's answer when ``login`` could not be looked up for a reason in
    ``NEEDS_AN_OPERATOR``: why, and what to set, install or unsuspend."""
    if isinstance(exc, GitHubNotConfigured):
        return (
            f"The file has logins without a GitHub id ({login!r}); resolving them needs "
            f"GitHub, which undersign cannot ask ({exc}). Nothing was imported: "
            f"{GITHUB_CREDENTIALS_FIX}, then check the file again, or give every line its "
            "GitHub id."
        )
    if isinstance(exc, AppNotInstalled):
        then = "once the app is installed"
    else:  # every installation is suspended
        then = "once an installation is unsuspended"
    return (
        f"Could not look up {login!r} on GitHub: {exc}. Nothing was imported; check the file "
        f"again {then}."
    )


def _github_resolver(*, instance_admin: bool) -> LoginResolver:
    """``GET /users/{login}`` through the bot's client, read as a person, as ``undersign
    import`` asks (``Runtime.look_up_signer``); GitHub failing is a 503 before anything is
    written. No bot token and no App, an App installed nowhere or every installation
    suspended is a 409, not a 503: the file is fine, but nothing will change until someone
    configures, installs or unsuspends. An instance admin reads why and what to do (no "try
    again later"); an agreement's admin, who cannot do it, reads only that the lookup is
    unavailable and what they can do, and the reason goes to the log."""

    def resolve(login: str) -> tuple[int, str] | NotAPerson | None:
        try:
            return runtime().look_up_signer(login)
        except NEEDS_AN_OPERATOR as exc:
            if instance_admin:
                abort(409, description=_what_an_operator_must_do(login, exc))
            log.warning("an import could not look up %r on GitHub: %s", login, exc)
            abort(
                409,
                description=f"The file has logins without a GitHub id ({login!r}); looking "
                "them up on GitHub is unavailable right now. Nothing was imported: check the "
                "file again later, contact whoever runs this undersign instance, or give "
                "every line its GitHub id.",
            )
        except GitHubError as exc:
            abort(
                503,
                description=f"Could not look up {login!r} on GitHub ({exc}). Nothing was "
                "imported; try again later.",
            )

    return resolve


@bp.post("/agreements/<slug>/import")
def import_signatures(slug: str) -> BaseResponse | tuple[str, int]:
    user, agreement = _administered(slug)
    source = request.form.get("source", "")
    if source not in SOURCES:
        abort(400, description=f"Choose what made the file: one of {', '.join(SOURCES)}.")
    version = _import_version()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        abort(400, description="Choose the file to import.")
    data = upload.stream.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        abort(
            413,
            description=f"The file is larger than the import limit of {MAX_IMPORT_BYTES:,} "
            "bytes: split it and import the parts one after the other.",
        )
    expected = request.form.get("sha256", "")
    try:
        batch = parse(source, data)
    except ImportRefused as exc:
        abort(400, description=f"{upload.filename}: {exc}. Nothing was imported.")
    if expected and batch.sha256 != expected:
        abort(
            409,
            description="This is not the file you checked (its SHA-256 differs). Nothing was "
            "imported: check the file again, then import it.",
        )
    db = db_session()
    try:
        report = import_batch(
            db,
            batch,
            agreement.slug,
            version=version,
            resolve_login=_github_resolver(instance_admin=is_instance_admin()),
            dry_run=not expected,
            max_lookups=MAX_IMPORT_LOOKUPS,
            actor=str(user.github_id),
        )
    except TooManyLookups as exc:
        db.rollback()
        abort(
            413,
            description=f"The file has {exc.logins:,} distinct logins without a GitHub id; the "
            f"console looks up at most {exc.cap:,} per upload. Nothing was imported: split "
            "the file, add the GitHub ids, or use undersign import on the command line.",
        )
    except ImportConflict:
        db.rollback()
        abort(409, description=IMPORT_CONFLICT)
    except AgreementError as exc:  # no such version
        db.rollback()
        abort(400, description=str(exc))
    if not report.written:
        db.rollback()
        page = render_template(
            "console/import_report.html",
            agreement=agreement,
            report=report,
            notes=formula_notes(batch),
            filename=upload.filename,
        )
        return page, 400 if report.malformed else 200
    requeued = runtime().reevaluate_signers(db, report.imported, agreement_id=agreement.id)
    try:
        db.commit()
    except IntegrityError:  # what the flush could not see (a write at the same moment)
        db.rollback()
        abort(409, description=IMPORT_CONFLICT)
    problems = (
        f" {len(report.problems)} line(s) were not imported, as the check showed."
        if report.problems
        else ""
    )
    flash(
        f"Signatures from {report.source} into version {report.version}: {report.summary()}."
        f"{problems}{' (' + requeued + ')' if requeued else ''}"
    )
    return redirect(url_for("console.signatures", slug=agreement.slug), 303)
