"""Registering a GitHub App from a manifest, and installing it (REFERENCE 5.3).

1. The browser POSTs a form with a ``manifest`` field (JSON) to ``/settings/apps/new`` or
   ``/organizations/{org}/settings/apps/new``, ``state`` in the query string.  GitHub shows a
   page where the person names the app and creates it; here the page also asks which account
   you are, like the emulator's OAuth consent page.
2. GitHub redirects to the manifest's ``redirect_url`` with ``code`` and (when sent) ``state``.
3. ``POST /api/v3/app-manifests/{code}/conversions`` (no authentication) answers 201 with the
   app, its ``client_secret``, ``webhook_secret`` and ``pem``; the code works once, for an hour.

Installing (``/apps/{slug}/installations/new``) installs the app on every repository of the
chosen account and tells the app's webhook (``installation`` ``created``).  The app's own
webhook settings are ``GET /app/hook/config`` and ``GET /app/hook/deliveries`` (JWT).

Depends on Flask, :mod:`undersign.emulator.http` and the state; HTTP only.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, abort, redirect, render_template, request

from undersign.emulator.api.apps import require_app
from undersign.emulator.http import JSON, PREFIX, ApiError, api_json, current_state, paginate
from undersign.emulator.models import Delivery
from undersign.emulator.objects import iso
from undersign.emulator.state import GitHubEmulator

bp = Blueprint("manifests", __name__)

MANIFEST_DOCS = "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest"
#: What GitHub shows instead of a webhook secret.
MASKED = "*" * 8
WEBHOOKS_DOCS = "https://docs.github.com/rest/apps/webhooks"


def _http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def manifest_problem(manifest: Any) -> str | None:
    """What GitHub would refuse in a manifest, or None."""
    if not isinstance(manifest, dict):
        return "The manifest must be a JSON object."
    if not _http_url(manifest.get("url")):
        return "url is required: the homepage of your GitHub App."
    if not _http_url(manifest.get("redirect_url")):
        # GUESS: without redirect_url GitHub has nowhere to send the code.
        return "redirect_url is required to send the code back."
    hook = manifest.get("hook_attributes")
    if hook is not None and (not isinstance(hook, dict) or not _http_url(hook.get("url"))):
        return "hook_attributes.url must be a URL."
    callbacks = manifest.get("callback_urls", [])
    if not isinstance(callbacks, list) or len(callbacks) > 10:
        return "callback_urls: up to 10 URLs."
    if not all(_http_url(u) for u in callbacks):
        return "callback_urls must be URLs."
    for key in ("default_permissions",):
        if key in manifest and not isinstance(manifest[key], dict):
            return f"{key} must be an object."
    events = manifest.get("default_events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return "default_events must be a list of event names."
    return None


def _owners(st: GitHubEmulator, org: str | None) -> list[tuple[str, str | None]]:
    """Who may confirm: any person for a personal app, the organisation's owners for an
    organisation's."""
    with st.lock:
        if org is None:
            people = [u for u in st.users.values() if u.type == "User"]
        else:
            org_user = st.user_by_login(org)
            record = st.orgs.get(org_user.id) if org_user is not None else None
            if record is None:
                abort(404)
            people = [st.users[i] for i in record.admins]
        return [(u.login, u.name) for u in sorted(people, key=lambda u: u.login.lower())]


def _new_app(org: str | None) -> Any:
    raw = request.form.get("manifest", "")
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    problem = manifest_problem(manifest)
    if problem is not None:
        return render_template("emulator/manifest_error.html", problem=problem), 422
    st = current_state()
    return render_template(
        "emulator/manifest.html",
        manifest=manifest,
        manifest_json=json.dumps(manifest),
        state=request.args.get("state", request.form.get("state")),
        org=org,
        owners=_owners(st, org),
        redirect_host=urlsplit(str(manifest["redirect_url"])).netloc,
    )


@bp.post("/settings/apps/new")
def new_personal_app() -> Any:
    return _new_app(None)


@bp.post("/organizations/<org>/settings/apps/new")
def new_org_app(org: str) -> Any:
    return _new_app(org)


@bp.post("/settings/apps/new/confirm")
def confirm_app() -> Any:
    """The confirmation page posts here: make the code and send the browser back."""
    st = current_state()
    try:
        manifest = json.loads(request.form.get("manifest", ""))
    except ValueError:
        manifest = None
    problem = manifest_problem(manifest)
    if problem is not None:
        return render_template("emulator/manifest_error.html", problem=problem), 422
    org = request.form.get("org") or None
    login = request.form.get("login", "")
    if login not in {owner for owner, _ in _owners(st, org)}:
        abort(400, "Pick an account.")
    name = request.form.get("name", "").strip() or str(manifest.get("name") or "").strip()
    if not name:
        return render_template("emulator/manifest_error.html", problem="Name can't be blank"), 422
    manifest["name"] = name
    code = st.apps.manifest_code(manifest, org or login)
    params = [("code", code)]
    state = request.form.get("state")
    if state:
        params.append(("state", state))
    target = str(manifest["redirect_url"])
    joiner = "&" if urlsplit(target).query else "?"
    return redirect(target + joiner + urlencode(params))


@bp.post(PREFIX + "/app-manifests/<code>/conversions")
def convert(code: str) -> Response:
    body = current_state().apps.convert_manifest(code)
    if body is None:
        raise ApiError(404, "Not Found", documentation_url=MANIFEST_DOCS)
    return api_json(body, 201)


# --- installing, and the app's own webhook -------------------------------------------------------


@bp.get("/apps/<slug>/installations/new")
def install_page(slug: str) -> Any:
    st = current_state()
    with st.lock:
        app = next((a for a in st.apps.apps.values() if a.slug == slug), None)
        if app is None:
            return render_template("emulator/not_found.html"), 404
        installed = {i.account_id for i in st.apps.installations.values() if i.app_id == app.id}
        accounts = sorted(
            (
                u
                for u in st.users.values()
                if u.type in ("User", "Organization") and u.id not in installed
            ),
            key=lambda u: (u.type != "Organization", u.login.lower()),
        )
        choices = [(u.login, u.type) for u in accounts]
    return render_template("emulator/install.html", app=app, accounts=choices)


@bp.post("/apps/<slug>/installations/new")
def install(slug: str) -> Any:
    """Install on every repository of the chosen account, then tell the app's webhook."""
    st = current_state()
    with st.lock:
        app = next((a for a in st.apps.apps.values() if a.slug == slug), None)
        if app is None:
            abort(404)
        hook = st.apps.hooks.get(app.id)
    account = request.form.get("account", "")
    try:
        installation = st.apps.install(app.id, account)
    except (KeyError, ValueError):
        abort(400, "Pick an account the app is not installed on yet.")
    if hook is not None and hook.active:
        payload = st.apps.installation_event(int(installation["id"]), "created")
        st.apps.deliver(app.id, hook.url, "installation", payload, secret=hook.secret)
    return redirect(f"/_emulator/?installed={installation['id']}")


@bp.get(PREFIX + "/app/hook/config")
def app_hook_config() -> Response:
    app = require_app()
    st = current_state()
    with st.lock:
        hook = st.apps.hooks.get(app.id)
        if hook is None:
            raise ApiError(404, "Not Found", documentation_url=WEBHOOKS_DOCS)
        config: JSON = {"content_type": hook.content_type, "insecure_ssl": "0", "url": hook.url}
        if hook.secret:
            config["secret"] = MASKED
        return api_json(config)


def delivery_json(d: Delivery) -> JSON:
    """One entry of a hook's deliveries list (``GET .../hooks/{id}/deliveries``)."""
    try:
        action = json.loads(d.body).get("action") if d.body.startswith(b"{") else None
    except ValueError:
        action = None
    return {
        "id": d.id,
        "guid": d.guid,
        "delivered_at": iso(d.delivered_at),
        "redelivery": d.redelivery,
        "duration": round(d.duration, 2),
        "status": "OK" if d.ok else (d.error or "Invalid HTTP Response"),
        "status_code": d.status_code or 0,
        "event": d.event,
        "action": action if isinstance(action, str) else None,
        "installation_id": None,
        "repository_id": None,
        "throttled_at": None,
    }


@bp.get(PREFIX + "/app/hook/deliveries")
def app_hook_deliveries() -> Response:
    app = require_app()
    st = current_state()
    deliveries = [
        d
        for d in reversed(st.deliveries)
        if d.request_headers.get("X-GitHub-Hook-Installation-Target-Type") == "integration"
        and d.request_headers.get("X-GitHub-Hook-Installation-Target-ID") == str(app.id)
    ]
    chunk, headers = paginate([delivery_json(d) for d in deliveries])
    return api_json(chunk, headers=headers)
