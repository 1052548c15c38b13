"""The maintainers' console (``/admin/``): agreements, signatures, waiting pull requests.

Who may see what (issue 13): instance admins (``UNDERSIGN_ADMINS``, numeric GitHub ids) see
every agreement; anyone else sees the agreements whose linked repositories they administer or
whose linked organisations they own, as GitHub answers the bot (``agreements/admins.py``).
That answer is kept in the server-side session and asked again after ten minutes. Every
other agreement answers 404, exactly like one that does not exist; when GitHub could not
answer, every agreement page says so (503) instead of guessing. Anonymous visitors are sent
to sign in and come back. Every change is a CSRF-checked POST (CSRFProtect in
``create_app``) and goes through the services, which write the audit log.

Depends on accounts.models, agreements (admins, export, service), enforcement.console,
web.context.
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
from undersign.agreements.admins import AdminScope, look_up_scope
from undersign.agreements.errors import InvalidInput, UnknownAgreement, UnknownSignature
from undersign.agreements.export import write_csv, write_json
from undersign.agreements.models import Agreement
from undersign.agreements.service import AgreementService, SignatureService
from undersign.enforcement import console
from undersign.web.context import current_user, db_session, runtime, settings

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


def _require_user() -> User:
    """The signed-in person; a page view without one goes to sign-in and comes back."""
    user = current_user()
    if user is None:
        if request.method == "GET":
            here = request.full_path.rstrip("?") if request.query_string else request.path
            abort(redirect(url_for("auth.login", next=here)))
        abort(401, description="Your sign-in has expired. Sign in with GitHub and try again.")
    return user


def _scope() -> tuple[User, AdminScope]:
    user = _require_user()
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
