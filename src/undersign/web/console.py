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
failed-jobs page (``/admin/jobs``) is for instance admins only; anyone else gets 404.

Depends on accounts.models, agreements (admins, errors, export, service),
enforcement.console, github.errors, jobs.queue, web.context.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

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
from werkzeug.wrappers import Response as BaseResponse

from undersign.accounts.models import User
from undersign.agreements.admins import AdminScope, look_up_scope, org_owner, repo_admin
from undersign.agreements.errors import InvalidInput, UnknownAgreement, UnknownSignature
from undersign.agreements.export import write_csv, write_json
from undersign.agreements.models import LINK_MODES, Agreement
from undersign.agreements.service import (
    AgreementService,
    SignatureService,
    normalize_org,
    normalize_repo_full_name,
)
from undersign.enforcement import console
from undersign.github.errors import GitHubError, GitHubRequestError, NotFound
from undersign.jobs.queue import enqueue_after_commit, requeue_failed
from undersign.web.context import db_session, require_user, runtime, settings

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/admin")

#: Where the person's admin scope lives in their server-side session.
SCOPE_KEY = "console_scope"
PAGE_SIZE = 50
MAX_PAGE = 100_000
MAX_ROW_ID = 2**63 - 1
MAX_PR_NUMBER = 10**9
#: The clock the ten-minute freshness of an answer is read from (tests move it forward).
clock: Callable[[], float] = time.time


class LookupFailed(Exception):
    """GitHub could not say what this person administers: deny, and say why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
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
            raise LookupFailed(str(exc)) from None
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
    if scope.failure is not None:
        raise LookupFailed(scope.failure)
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
    service = AgreementService(db_session())
    links = [link for link in service.repo_links() if link.agreement_id == agreement.id]
    org_links = [link for link in service.org_links() if link.agreement_id == agreement.id]
    return render_template(
        "console/agreement.html",
        agreement=agreement,
        versions=list(reversed(agreement.versions)),
        repo_links=links,
        org_links=org_links,
        links=[("repo", link.full_name, link) for link in links]
        + [("org", link.org, link) for link in org_links],
        allowlist=service.allowlist(agreement),
        audit=service.audit_log(agreement),
    )


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return min(int(raw), MAX_PAGE) if raw.isascii() and raw.isdigit() and int(raw) >= 1 else 1


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
    rows = service.export(agreement.slug)
    if kind == "csv":
        write_csv(rows, [f.name for f in agreement.fields], buffer.write)
        mimetype = "text/csv"
    else:
        write_json(rows, buffer.write)
        mimetype = "application/json"
    response = Response(buffer.getvalue(), mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{agreement.slug}-signatures.{kind}"'
    )
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
        raise LookupFailed(str(exc)) from None
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
    link_to = service.link_repo if kind == "repo" else service.link_org
    link_to(
        name,
        agreement.slug,
        exempt_org_members=_checkbox("exempt_org_members"),
        exempt_collaborators=_checkbox("exempt_collaborators"),
        mode=mode,
        report_comments=_checkbox("report_comments"),
    )
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


@bp.post("/agreements/<slug>/allowlist")
def allowlist_add(slug: str) -> BaseResponse:
    user, agreement = _administered(slug)
    db = db_session()
    service = AgreementService(db, actor=str(user.github_id))
    pattern = request.form.get("pattern", "")[:200]
    try:
        entry = service.allowlist_add(agreement, pattern, request.form.get("note", "")[:600])
    except InvalidInput as exc:
        db.rollback()
        abort(400, description=str(exc))
    runtime().requeue_open_pull_requests(db, agreement_id=agreement.id)
    db.commit()
    flash(f"{entry.pattern} needs no signature on {agreement.slug}.")
    return redirect(url_for("console.agreement_page", slug=agreement.slug), 303)


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
    runtime().requeue_open_pull_requests(db, agreement_id=agreement.id)
    db.commit()
    flash(f"{pattern} is no longer allowlisted on {agreement.slug}.")
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
