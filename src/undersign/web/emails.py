"""``/me/emails``: the email addresses a signed-in person proved to undersign (issue 14).

A commit whose author email GitHub does not link to the person's account names nobody who
can sign. Here the person links the addresses GitHub verified for them (a second
authorization asking for ``user:email``, ``web/auth.start_authorization``) and removes
them. Every change goes through ``agreements.emails.ProvenEmailService`` with the runtime's
email hook: the open pull requests with that address among their authors are evaluated again.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request
from werkzeug.wrappers import Response

from undersign.agreements.emails import ProvenEmailService, normalize_address
from undersign.web.auth import EMAIL_SCOPE, EMAILS_PAGE, start_authorization
from undersign.web.context import db_session, github_settings, require_user, runtime
from undersign.web.ratelimit import sign_in_rate_limit

bp = Blueprint("emails", __name__)


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def _page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    user = require_user()
    addresses = ProvenEmailService(db_session()).addresses_of(user.github_id)
    return render_template("emails/index.html", addresses=addresses, error=error), status


@bp.get(EMAILS_PAGE)
def index() -> tuple[str, int]:
    return _page()


@bp.post(f"{EMAILS_PAGE}/link")
def link() -> Response:
    """Start the second authorization (``user:email``); the sign-in callback finishes it."""
    user = require_user()
    sign_in_rate_limit()
    if not github_settings().github_client_id:
        abort(503, description="This undersign has no GitHub OAuth client. Tell its operator.")
    flow = {"next": EMAILS_PAGE, "purpose": "emails", "github_id": user.github_id}
    # Approved as another account, the addresses would be refused: ask for this one.
    return start_authorization(flow, EMAIL_SCOPE, code=303, login=user.login)


@bp.post(f"{EMAILS_PAGE}/remove")
def remove() -> Response | tuple[str, int]:
    """Forget one address; the pull requests it authored are evaluated again."""
    user = require_user()
    address = normalize_address(request.form.get("address", ""))
    if address is None:
        return _page("That is not an email address.", 400)
    db = db_session()
    service = ProvenEmailService(db, runtime().email_hook(db), actor=str(user.github_id))
    if not service.remove(user.github_id, address):
        return _page("That address is not one of yours.", 404)
    db.commit()
    flash(f"{address} is no longer linked to your account.")
    return redirect(EMAILS_PAGE, 303)
