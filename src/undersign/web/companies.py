"""Corporate agreements on the web: a company signs at ``/sign/<corporate-slug>``, and its CLA
managers keep whom it covers, and who else manages it, at ``/companies/<id>``.

Thin views over ``agreements.companies.CompanyService``. A company signed here awaits review
(its page says so); its managers may keep its approvals meanwhile, which cover nobody until
an admin accepts it in the console. A company page answers 404 to
anyone who is not one of its managers or an instance admin, exactly as for a company that
does not exist (no existence leak). Every change is a POST checked by CSRFProtect; every
approval change goes through the runtime's approval hook, so the open pull requests it can
affect are evaluated again after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from undersign.agreements.companies import CompanyService, UnknownCompany
from undersign.agreements.errors import InvalidInput, ValidationErrors, VersionChanged
from undersign.agreements.markdown import render_markdown
from undersign.agreements.models import Agreement, AgreementVersion, Company
from undersign.enforcement.service import emails_url
from undersign.github.errors import (
    GITHUB_CREDENTIALS_FIX,
    NEEDS_AN_OPERATOR,
    AppNotInstalled,
    GitHubError,
    GitHubNotConfigured,
    InstallationSuspended,
)
from undersign.web.context import (
    current_user,
    db_session,
    is_instance_admin,
    require_user,
    runtime,
    settings,
)

log = logging.getLogger(__name__)

bp = Blueprint("companies", __name__)

MAX_ROW_ID = 2**63 - 1
FORM_FIELDS = ("company_name", "address", "signatory_name", "signatory_title", "managers")
APPROVE_KINDS = {"login": "account", "org": "org", "domain": "domain"}


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def shows_my_companies() -> bool:
    """Whether the header links to /companies: for a CLA manager, who has no other way back
    to their company's page (and to a version it must sign again), and an instance admin."""
    user = current_user()
    if user is None:
        return False
    if user.github_id in settings().admins:
        return True
    return CompanyService(db_session()).manages_any(user.github_id)


def render_sign_page(
    agreement: Agreement,
    version: AgreementVersion,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    changed: bool = False,
) -> tuple[str, int]:
    """The signing page of a corporate agreement (``signing.sign_page`` hands it over)."""
    user = current_user()
    if values is None:
        values = {"signatory_name": (user and user.name) or ""}
    managed = CompanyService(db_session()).managed_by(user.github_id) if user else []
    return (
        render_template(
            "companies/sign.html",
            agreement=agreement,
            version=version,
            # render_markdown escapes any HTML in the text and sanitizes the result.
            text_html=Markup(render_markdown(version.text)),  # noqa: S704
            user=user,
            values=values,
            errors=errors or {},
            changed=changed,
            managed=[c for c in managed if c.agreement_id == agreement.id],
        ),
        status,
    )


def _resolver() -> Callable[[str], tuple[int, str] | None]:
    """login -> (id, login) as GitHub answers the bot now; None for no such user. The
    client is made at the first lookup, so a form with other errors is answered first."""

    def resolve(login: str) -> tuple[int, str] | None:
        return runtime().bot.github.user_account(login)

    return resolve


def _lookup_failed(
    exc: Exception,
    retry: str = "GitHub could not be asked; try again.",
    unavailable: str = "Adding GitHub accounts",
) -> tuple[str, int]:
    """What a page says when a login could not be looked up, and its status. No credentials,
    an App installed nowhere or every installation suspended is a 409, as for the console's
    import: only an operator can help. An instance admin reads why and what to set or
    install (no "try again"); anyone else reads only that ``unavailable`` is, and what they
    can do, since the reason names settings they cannot change (the caller logs it). GitHub
    failing is a 503, which a retry may mend."""
    if isinstance(exc, NEEDS_AN_OPERATOR) and not is_instance_admin():
        return (
            f"{unavailable} is unavailable right now; try again later or contact the maintainers.",
            409,
        )
    if isinstance(exc, GitHubNotConfigured):
        return (
            f"undersign cannot ask GitHub about logins ({exc}); an operator must "
            f"{GITHUB_CREDENTIALS_FIX}.",
            409,
        )
    if isinstance(exc, AppNotInstalled | InstallationSuspended):
        return f"undersign cannot ask GitHub about logins: {exc}.", 409
    return retry, 503


def sign(agreement: Agreement, version: AgreementVersion) -> Response | tuple[str, int]:
    """A company signs (``signing.sign`` hands a corporate agreement's POST over)."""
    user = require_user()
    form = request.form
    values = {key: form.get(key, "") for key in FORM_FIELDS}
    service = CompanyService(db_session(), actor=str(user.github_id))
    try:
        company = service.sign(
            agreement.slug,
            github_id=user.github_id,
            login=user.login,
            version_sha256=form.get("version_sha256", ""),
            agreed=form.get("agree") == "yes",
            company_name=values["company_name"],
            address=values["address"],
            signatory_name=values["signatory_name"],
            signatory_title=values["signatory_title"],
            managers=values["managers"],
            resolve_login=_resolver(),
            ip_address=request.remote_addr,
        )
        db_session().commit()
    except VersionChanged as exc:
        return render_sign_page(agreement, exc.current, status=409, values=values, changed=True)
    except ValidationErrors as exc:
        return render_sign_page(agreement, version, status=400, values=values, errors=exc.errors)
    except (GitHubError, RuntimeError) as exc:
        log.warning("looking up managers for a company failed: %s", exc)
        error, status = _lookup_failed(
            exc, "GitHub could not be asked about these logins; try again.", "Company signing"
        )
        errors = {"managers": error}
        return render_sign_page(agreement, version, status=status, values=values, errors=errors)
    except IntegrityError:
        # The same company signing twice at the same moment: both passed the check that it
        # had not signed, and the insert (flushed inside sign) found the other's row. The
        # session refuses every query, the page's too, until it is rolled back. The refusals
        # above need no rollback: nothing was written or locked before them, only read.
        db_session().rollback()
        errors = {"company_name": "This company has signed already; ask its CLA managers."}
        return render_sign_page(agreement, version, status=409, values=values, errors=errors)
    log.info("company %s signed %s (github id %s)", company.id, agreement.slug, user.github_id)
    flash(
        f"{company.name} has signed {agreement.title}. The maintainers review the signature "
        "before the company's approvals cover anyone."
    )
    return redirect(url_for("companies.company_page", company_id=company.id), 303)


def _company_or_404(company_id: int, *, writing: bool = False) -> tuple[CompanyService, Company]:
    user = require_user()
    if company_id > MAX_ROW_ID:
        abort(404)
    session = db_session()
    hook = runtime().approval_hook(session) if writing else None
    service = CompanyService(session, on_change=hook, actor=str(user.github_id))
    try:
        admin = user.github_id in settings().admins
        return service, service.for_manager(company_id, user.github_id, admin=admin)
    except UnknownCompany:
        abort(404, description="There is no company at this address.")


def _render_company(
    company: Company,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> tuple[str, int]:
    """The company page; when its signature predates a material change of the corporate
    agreement, the current text and the form a CLA manager signs it again with."""
    again = CompanyService(db_session()).must_sign_again(company)
    user = current_user()
    return (
        render_template(
            "companies/company.html",
            company=company,
            error=error,
            again=again,
            # render_markdown escapes any HTML in the text and sanitizes the result.
            again_html=Markup(render_markdown(again.text)) if again else None,  # noqa: S704
            is_manager=user is not None
            and any(m.github_id == user.github_id for m in company.managers),
            # A manager sends this address to the people a domain should cover.
            proving_url=emails_url(settings().base_url),
            values=values
            or {
                "signatory_name": company.signatory_name or "",
                "signatory_title": company.signatory_title or "",
            },
        ),
        status,
    )


def _refuse(
    company: Company, error: str, status: int, values: dict[str, str] | None = None
) -> tuple[str, int]:
    """The company page saying why a change was refused, rendered once the change is
    rolled back: a refused approval or manager change may have taken the company's lock
    (SQLite's write lock, PostgreSQL's row lock) before counting, and the page must not
    keep it, nor anything half written, while it renders."""
    db_session().rollback()
    return _render_company(company, error=error, status=status, values=values)


@bp.get("/companies")
def my_companies() -> str:
    """The companies this person manages (every company for an instance admin), each
    marked with the version it must sign again when a material change stopped it covering."""
    user = require_user()
    service = CompanyService(db_session())
    admin = user.github_id in settings().admins
    companies = service.all_companies() if admin else service.managed_by(user.github_id)
    # One query for the whole list; a rejected company covers nobody whatever it signed.
    again = service.versions_to_sign_again(c for c in companies if c.status != "rejected")
    return render_template("companies/index.html", companies=companies, admin=admin, again=again)


@bp.get("/companies/<int:company_id>")
def company_page(company_id: int) -> tuple[str, int]:
    _service, company = _company_or_404(company_id)
    return _render_company(company)


@bp.post("/companies/<int:company_id>/approve")
def approve(company_id: int) -> Response | tuple[str, int]:
    service, company = _company_or_404(company_id, writing=True)
    kind = APPROVE_KINDS.get(request.form.get("kind", ""))
    value = request.form.get("value", "").strip()
    if kind is None or not value:
        return _refuse(company, error="Choose what to approve and fill it in.", status=400)
    label = ""
    if kind == "account":
        try:
            found = _resolver()(value.lstrip("@"))
        except (GitHubError, RuntimeError) as exc:
            log.warning("looking up a login for company %s failed: %s", company.id, exc)
            error, status = _lookup_failed(exc)
            return _refuse(company, error=error, status=status)
        if found is None:
            return _refuse(company, error="GitHub has no such user account.", status=400)
        value, label = str(found[0]), found[1]
    try:
        changed = service.approve(company, kind, value, label=label)
        db_session().commit()
    except InvalidInput as exc:
        return _refuse(company, error=str(exc), status=400)
    except IntegrityError:  # the same approval sent twice at the same moment
        db_session().rollback()
        changed = False
    flash("Approved." if changed else "That was approved already.")
    return redirect(url_for("companies.company_page", company_id=company.id), 303)


@bp.post("/companies/<int:company_id>/unapprove")
def unapprove(company_id: int) -> Response | tuple[str, int]:
    service, company = _company_or_404(company_id, writing=True)
    kind = request.form.get("kind", "")
    try:
        changed = service.unapprove(company, kind, request.form.get("value", ""))
    except InvalidInput as exc:
        return _refuse(company, error=str(exc), status=400)
    if not changed:
        return _refuse(company, error="That is not approved.", status=404)
    db_session().commit()
    flash("No longer approved.")
    return redirect(url_for("companies.company_page", company_id=company.id), 303)


@bp.post("/companies/<int:company_id>/managers/add")
def add_manager(company_id: int) -> Response | tuple[str, int]:
    """One of its CLA managers (or an instance admin) makes another GitHub account one, by
    login, looked up as the sign form looks up the managers it names."""
    service, company = _company_or_404(company_id)
    login = request.form.get("login", "").strip()
    if not login:
        return _refuse(company, error="Name the GitHub login of the new manager.", status=400)
    try:
        manager, added = service.add_manager(company, login, _resolver())
        db_session().commit()
    except InvalidInput as exc:
        return _refuse(company, error=str(exc), status=400)
    except (GitHubError, RuntimeError) as exc:
        log.warning("looking up a manager for company %s failed: %s", company.id, exc)
        error, status = _lookup_failed(exc)
        return _refuse(company, error=error, status=status)
    except IntegrityError:  # the same manager added twice at the same moment
        db_session().rollback()
        flash(f"{login} is a CLA manager already.")
        return redirect(url_for("companies.company_page", company_id=company.id), 303)
    flash(
        f"{manager.login} is now a CLA manager of {company.name}."
        if added
        else f"{manager.login} is a CLA manager already."
    )
    return redirect(url_for("companies.company_page", company_id=company.id), 303)


@bp.post("/companies/<int:company_id>/managers/remove")
def remove_manager(company_id: int) -> Response | tuple[str, int]:
    """One of its CLA managers (or an instance admin) removes a manager, who loses access at
    once; the last one stays."""
    service, company = _company_or_404(company_id)
    raw = request.form.get("github_id", "")
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ROW_ID):
        return _refuse(company, error="Choose a CLA manager to remove.", status=400)
    try:
        removed = service.remove_manager(company, int(raw))
    except InvalidInput as exc:
        return _refuse(company, error=str(exc), status=400)
    if removed is None:
        return _refuse(company, error="That is not a CLA manager.", status=404)
    db_session().commit()
    flash(f"{removed.login} is no longer a CLA manager of {company.name}.")
    user = require_user()
    if removed.github_id == user.github_id and user.github_id not in settings().admins:
        # Their own access went with it: the company's page would answer 404 now.
        return redirect(url_for("companies.my_companies"), 303)
    return redirect(url_for("companies.company_page", company_id=company.id), 303)


@bp.post("/companies/<int:company_id>/sign")
def sign_again(company_id: int) -> Response | tuple[str, int]:
    """A CLA manager signs the current version for a company whose signature a material
    change of the corporate agreement outdated (an instance admin may not sign for it)."""
    service, company = _company_or_404(company_id, writing=True)
    user = require_user()
    if not any(m.github_id == user.github_id for m in company.managers):
        return _refuse(
            company, error="Only one of the company's CLA managers may sign for it.", status=403
        )
    form = request.form
    values = {key: form.get(key, "") for key in ("signatory_name", "signatory_title")}
    try:
        service.sign_again(
            company,
            github_id=user.github_id,
            login=user.login,
            version_sha256=form.get("version_sha256", ""),
            agreed=form.get("agree") == "yes",
            signatory_name=values["signatory_name"],
            signatory_title=values["signatory_title"],
            ip_address=request.remote_addr,
        )
    except VersionChanged as exc:
        error = (
            f"The agreement changed while you read it: please read version {exc.current.number}."
        )
        return _refuse(company, error=error, status=409, values=values)
    except ValidationErrors as exc:
        error = " ".join(exc.errors.values())
        return _refuse(company, error=error, status=400, values=values)
    except InvalidInput as exc:
        return _refuse(company, error=str(exc), status=400, values=values)
    db_session().commit()
    log.info(
        "company %s signed %s again (github id %s)",
        company.id,
        company.agreement.slug,
        user.github_id,
    )
    flash(
        f"{company.name} has signed the current version."
        + ("" if company.status == "accepted" else " It still awaits the maintainers' review.")
    )
    return redirect(url_for("companies.company_page", company_id=company.id), 303)
