"""Signing an agreement, receipts, and a contributor's own signatures.

Thin views over ``undersign.agreements``: they read the request, call the services with
plain values and render. Nothing here lists anyone's signatures but the signed-in
person's own; another person's signature id answers 404, exactly like a missing one.
Every state change is a POST checked by CSRFProtect (installed in ``create_app``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from werkzeug.wrappers import Response

from undersign.accounts.models import User
from undersign.agreements.countries import COUNTRIES
from undersign.agreements.errors import (
    InvalidInput,
    NoPublishedVersion,
    UnknownAgreement,
    UnknownSignature,
    ValidationErrors,
    VersionChanged,
)
from undersign.agreements.markdown import render_markdown
from undersign.agreements.models import Agreement, AgreementVersion, Signature
from undersign.agreements.service import (
    AgreementService,
    SignatureService,
    Standing,
    normalize_repo_full_name,
)
from undersign.web import companies
from undersign.web.context import current_user, db_session, require_user, runtime, settings

log = logging.getLogger(__name__)

bp = Blueprint("signing", __name__)

FIELD_PREFIX = "field_"
SELF_REVOKE_REASON = "Revoked by the signer."
MAX_PR_NUMBER = 10**9
MAX_ROW_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@dataclass(frozen=True)
class ReturnTo:
    """The pull request that sent the contributor here, validated (no open redirect)."""

    repo: str
    pr: int

    @property
    def url(self) -> str:
        return f"{settings().github_url.rstrip('/')}/{self.repo}/pull/{self.pr}"

    @property
    def params(self) -> dict[str, Any]:
        return {"repo": self.repo, "pr": self.pr}


def _return_to(values: Any) -> ReturnTo | None:
    repo, pr = values.get("repo", ""), values.get("pr", "")
    if not repo or not pr or not str(pr).isdecimal():
        return None
    try:
        number = int(pr)
        if not 0 < number <= MAX_PR_NUMBER:
            return None
        return ReturnTo(normalize_repo_full_name(repo), number)
    except (InvalidInput, ValueError):
        return None


def _signature_service(*, writing: bool = False, actor: int | None = None) -> SignatureService:
    """The service for this request; when ``writing``, with the runtime's change hook.

    The hook adds a re-evaluation job to the same session, so it commits with the
    signature or not at all. ``create_app(extras={runtime.SIGNATURE_HOOK: ...})`` replaces
    it (``undersign.runtime``).
    """
    session = db_session()
    hook = runtime().signature_hook(session) if writing else None
    if actor is None:
        return SignatureService(session, on_change=hook)
    return SignatureService(session, on_change=hook, actor=str(actor))


def _agreement_or_404(slug: str) -> tuple[Agreement, AgreementVersion]:
    agreements = AgreementService(db_session())
    try:
        agreement = agreements.get(slug)
        return agreement, agreements.current_version(agreement)
    except (UnknownAgreement, NoPublishedVersion):
        abort(404, description="There is no agreement at this address.")


def _own_signature_or_404(signature_id: int, user: User) -> Signature:
    # Werkzeug's <int:> has no upper bound; past a 64-bit integer the database driver
    # raises OverflowError (a 500) instead of finding nothing.
    if signature_id > MAX_ROW_ID:
        abort(404, description="You have no signature with this number.")
    try:
        return _signature_service().get_signature(signature_id, owner_github_id=user.github_id)
    except UnknownSignature:
        abort(404, description="You have no signature with this number.")


def agreement_html(version: AgreementVersion) -> Markup:
    # The one place raw HTML reaches a template: render_markdown escapes any HTML in the
    # text and sanitizes the result against an allowlist (see agreements/markdown.py).
    return Markup(render_markdown(version.text))  # noqa: S704


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """Unified diff lines with a CSS class each (escaped by the template)."""
    lines: list[tuple[str, str]] = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "added"
        elif line.startswith("-"):
            kind = "removed"
        else:
            kind = "context"
        lines.append((kind, line))
    return lines


def _render_sign_page(
    agreement: Agreement,
    version: AgreementVersion,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    changed: bool = False,
) -> tuple[str, int]:
    user = current_user()
    return_to = _return_to(request.values)
    standing: Standing | None = None
    diff: list[tuple[str, str]] = []
    if user is not None:
        service = _signature_service()
        standing = service.standing(agreement, user.github_id)
        if standing.outdated is not None:
            diff = diff_lines(service.diff_since(standing.outdated))
    if values is None:
        # Prefilled from GitHub (the email only when it is public there).
        values = {"name": (user and user.name) or "", "email": (user and user.email) or ""}
    return (
        render_template(
            "signing/sign.html",
            agreement=agreement,
            version=version,
            text_html=agreement_html(version),
            user=user,
            standing=standing,
            diff=diff,
            fields=agreement.fields,
            field_prefix=FIELD_PREFIX,
            countries=sorted(COUNTRIES.items(), key=lambda item: item[1]),
            values=values,
            errors=errors or {},
            changed=changed,
            return_to=return_to,
        ),
        status,
    )


@bp.get("/sign/<slug>")
def sign_page(slug: str) -> tuple[str, int]:
    agreement, version = _agreement_or_404(slug)
    if agreement.kind == "corporate":  # a company signs, for its people
        return companies.render_sign_page(agreement, version)
    return _render_sign_page(agreement, version)


@bp.post("/sign/<slug>")
def sign(slug: str) -> Response | tuple[str, int]:
    agreement, version = _agreement_or_404(slug)
    if agreement.kind == "corporate":
        return companies.sign(agreement, version)
    user = require_user()
    form = request.form
    field_values: dict[str, object] = {
        field.name: form.get(FIELD_PREFIX + field.name) for field in agreement.fields
    }
    values: dict[str, Any] = {
        "name": form.get("name", ""),
        "email": form.get("email", ""),
        **{FIELD_PREFIX + name: value for name, value in field_values.items()},
    }
    service = _signature_service(writing=True)
    try:
        result = service.sign(
            agreement.slug,
            github_id=user.github_id,
            login=user.login,
            name=form.get("name"),
            email=form.get("email"),
            version_sha256=form.get("version_sha256", ""),
            agreed=form.get("agree") == "yes",
            field_values=field_values,
            ip_address=request.remote_addr,
            user_agent=request.user_agent.string,
        )
    except VersionChanged as exc:
        # Show the new text with what they typed; they must read and tick the box again.
        return _render_sign_page(agreement, exc.current, status=409, values=values, changed=True)
    except ValidationErrors as exc:
        errors = {
            (key if key in ("name", "email", "agree") else FIELD_PREFIX + key): message
            for key, message in exc.errors.items()
        }
        return _render_sign_page(agreement, version, status=400, values=values, errors=errors)
    db_session().commit()
    if result.created:
        log.info("github id %s signed %s v%s", user.github_id, agreement.slug, version.number)
    return_to = _return_to(form)
    return redirect(
        url_for(
            "signing.thanks",
            slug=agreement.slug,
            signature_id=result.signature.id,
            **(return_to.params if return_to else {}),
        ),
        303,
    )


@bp.get("/sign/<slug>/thanks/<int:signature_id>")
def thanks(slug: str, signature_id: int) -> str:
    user = require_user()
    signature = _own_signature_or_404(signature_id, user)
    if signature.version.agreement.slug != slug:
        abort(404)
    service = _signature_service()
    return render_template(
        "signing/thanks.html",
        signature=signature,
        version=signature.version,
        agreement=signature.version.agreement,
        receipt=service.receipt_text(signature),
        return_to=_return_to(request.args),
    )


@bp.get("/me/signatures")
def my_signatures() -> str:
    user = require_user()
    service = _signature_service()
    standings: dict[int, Standing] = {}
    rows = []
    for signature in service.signatures_of(user.github_id):
        standing = None
        if signature.revoked_at is None:
            agreement = signature.version.agreement
            if agreement.id not in standings:
                standings[agreement.id] = service.standing(agreement, user.github_id)
            standing = standings[agreement.id]
        rows.append(
            {
                "signature": signature,
                "agreement": signature.version.agreement,
                "current": standing is not None
                and standing.covering is not None
                and standing.covering.id == signature.id,
                "outdated": standing is not None and not standing.covered,
            }
        )
    return render_template("signing/my_signatures.html", rows=rows, user=user)


@bp.get("/me/signatures/<int:signature_id>/receipt")
def receipt(signature_id: int) -> Response:
    user = require_user()
    signature = _own_signature_or_404(signature_id, user)
    service = _signature_service()
    response = make_response(service.receipt_text(signature))
    response.headers["Content-Type"] = "text/markdown; charset=utf-8"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{service.receipt_filename(signature)}"'
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/me/signatures/<int:signature_id>/changes")
def changes(signature_id: int) -> str:
    user = require_user()
    signature = _own_signature_or_404(signature_id, user)
    service = _signature_service()
    agreement = signature.version.agreement
    return render_template(
        "signing/changes.html",
        signature=signature,
        agreement=agreement,
        current=AgreementService(db_session()).current_version(agreement),
        diff=diff_lines(service.diff_since(signature)),
    )


@bp.get("/me/signatures/<int:signature_id>/revoke")
def revoke_confirm(signature_id: int) -> str:
    user = require_user()
    signature = _own_signature_or_404(signature_id, user)
    return render_template(
        "signing/revoke.html",
        signature=signature,
        agreement=signature.version.agreement,
        error=None,
    )


@bp.post("/me/signatures/<int:signature_id>/revoke")
def revoke(signature_id: int) -> Response | tuple[str, int]:
    user = require_user()
    signature = _own_signature_or_404(signature_id, user)
    reason = request.form.get("reason", "").strip() or SELF_REVOKE_REASON
    service = _signature_service(writing=True, actor=user.github_id)
    try:
        revoked = service.revoke(
            signature.id,
            by=f"signer {user.login} (GitHub id {user.github_id})",
            reason=reason,
            owner_github_id=user.github_id,
        )
    except InvalidInput as exc:
        page = render_template(
            "signing/revoke.html",
            signature=signature,
            agreement=signature.version.agreement,
            error=str(exc),
        )
        return page, 400
    db_session().commit()
    if revoked:
        flash(f"Your signature of {signature.version.agreement.title} is revoked.")
    return redirect(url_for("signing.my_signatures"), 303)
