"""Repository and organisation webhooks as the REST API shows them: ``GET /repos/{o}/{r}/hooks``
and ``GET /orgs/{org}/hooks``, one hook, and its deliveries (docs "REST API endpoints for
repository webhooks", "... for organization webhooks" and "... webhook deliveries").

Who may read a repository's, as GitHub: a person with admin rights on the repository whose
token has the ``repo``, ``admin:repo_hook``, ``write:repo_hook`` or ``read:repo_hook`` scope,
or an installation with the "Webhooks" (``repository_hooks``) permission, which api/apps.py
checks.  An organisation's: an owner whose classic token has ``admin:org_hook`` (``repo`` is
not enough), or an installation on that organisation with the organisation "Webhooks"
(``organization_hooks``) permission.  Anyone else gets 404, like a hidden repository (an
installation without the permission: 403).  The secret is never shown: ``config.secret`` is
``"********"`` when one is set and absent otherwise.

Depends on Flask, :mod:`undersign.emulator.http`, the state, and :mod:`.manifests` for the
delivery shape.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, g

from undersign.emulator.api.manifests import MASKED, delivery_json
from undersign.emulator.apps import NOT_ACCESSIBLE
from undersign.emulator.http import (
    JSON,
    PREFIX,
    ApiError,
    api_json,
    current_state,
    has_scope,
    not_found,
    paginate,
    repo_route,
    viewer_id,
)
from undersign.emulator.models import HookRec, Org, Repo, Token
from undersign.emulator.objects import iso
from undersign.emulator.state import GitHubEmulator

bp = Blueprint("hooks", __name__, url_prefix=PREFIX)

HOOKS_DOCS = "https://docs.github.com/rest/repos/webhooks"
ORG_HOOKS_DOCS = "https://docs.github.com/rest/orgs/webhooks"


HOOK_SCOPES = ("repo", "admin:repo_hook", "write:repo_hook", "read:repo_hook")


def _require_hook_reader(repo: Repo) -> None:
    token: Token | None = g.get("token")
    if token is not None and token.token.startswith("ghs_"):
        return  # api/apps.py checked the installation's repository_hooks permission
    st = current_state()
    with st.lock:
        admin = st.permission(repo, viewer_id()) == "admin"
    if not admin or not has_scope(*HOOK_SCOPES):
        raise not_found(HOOKS_DOCS)


def hook_json(st: GitHubEmulator, hook: HookRec) -> JSON:
    """A repository or organisation hook as GitHub shows it (an organisation's has no
    ``test_url`` and no ``last_response``)."""
    if hook.org_id is not None:
        kind, owner = "Organization", f"orgs/{st.users[hook.org_id].login}"
    else:
        assert hook.repo_id is not None
        kind, owner = "Repository", f"repos/{st.full_name(st.repos[hook.repo_id])}"
    url = f"{st.api_url}/{owner}/hooks/{hook.id}"
    config: JSON = {"content_type": hook.content_type, "insecure_ssl": "0", "url": hook.url}
    if hook.secret:
        config["secret"] = MASKED
    found: JSON = {
        "type": kind,
        "id": hook.id,
        "name": "web",
        "active": hook.active,
        "events": list(hook.events),
        "config": config,
        "updated_at": iso(hook.created_at),
        "created_at": iso(hook.created_at),
        "url": url,
        "ping_url": f"{url}/pings",
        "deliveries_url": f"{url}/deliveries",
    }
    if hook.org_id is None:
        found["test_url"] = f"{url}/test"
        found["last_response"] = _last_response(st, hook)
    return found


def _last_response(st: GitHubEmulator, hook: HookRec) -> JSON:
    last = st.hook_deliveries(hook.id)
    if not last:
        return {"code": None, "status": "unused", "message": None}
    latest = last[0]
    return {
        "code": latest.status_code,
        "status": "active" if latest.ok else "failed",
        "message": "OK" if latest.ok else latest.error,
    }


def _listed(st: GitHubEmulator, keep: Callable[[HookRec], bool]) -> Response:
    """The hooks ``keep`` selects, oldest first, a page of them."""
    with st.lock:
        hooks = sorted((h for h in st.hooks.values() if keep(h)), key=lambda h: h.id)
        items = [hook_json(st, h) for h in hooks]
    chunk, headers = paginate(items)
    return api_json(chunk, headers=headers)


def _hook_or_404(st: GitHubEmulator, repo: Repo, hook_id: int) -> HookRec:
    hook = st.hooks.get(hook_id)
    if hook is None or hook.repo_id != repo.id:
        raise not_found(HOOKS_DOCS)
    return hook


@repo_route(bp, "/hooks")
def list_hooks(repo: Repo) -> Response:
    _require_hook_reader(repo)
    return _listed(current_state(), lambda h: h.repo_id == repo.id)


@repo_route(bp, "/hooks/<int:hook_id>")
def get_hook(repo: Repo, hook_id: int) -> Response:
    _require_hook_reader(repo)
    st = current_state()
    with st.lock:
        return api_json(hook_json(st, _hook_or_404(st, repo, hook_id)))


@repo_route(bp, "/hooks/<int:hook_id>/deliveries")
def list_hook_deliveries(repo: Repo, hook_id: int) -> Response:
    """Newest first, like GitHub (which pages them with a cursor; ``per_page`` is honoured)."""
    _require_hook_reader(repo)
    st = current_state()
    with st.lock:
        _hook_or_404(st, repo, hook_id)
        found = st.hook_deliveries(hook_id)
        items = [{**delivery_json(d), "repository_id": repo.id} for d in found]
    chunk, headers = paginate(items)
    return api_json(chunk, headers=headers)


# --- organisation webhooks ---------------------------------------------------------------------


def _org_hook_reader(st: GitHubEmulator, login: str) -> int:
    """The organisation's user id, when the caller may read its hooks; else GitHub's answer."""
    org_user = st.user_by_login(login)
    org: Org | None = st.orgs.get(org_user.id) if org_user else None
    if org_user is None or org is None:
        raise not_found(ORG_HOOKS_DOCS)
    token: Token | None = g.get("token")
    installation = g.get("installation")
    if token is not None and token.token.startswith("ghs_") and installation is not None:
        if installation.account_id != org_user.id:
            raise not_found(ORG_HOOKS_DOCS)
        if installation.permissions.get("organization_hooks") is None:
            raise ApiError(403, NOT_ACCESSIBLE, documentation_url=ORG_HOOKS_DOCS)
        return org_user.id
    # Owners only, and a classic token needs admin:org_hook itself: repo does not reach them.
    if viewer_id() not in org.admins or not has_scope("admin:org_hook"):
        raise not_found(ORG_HOOKS_DOCS)
    return org_user.id


def _org_hook_or_404(st: GitHubEmulator, org_id: int, hook_id: int) -> HookRec:
    hook = st.hooks.get(hook_id)
    if hook is None or hook.org_id != org_id:
        raise not_found(ORG_HOOKS_DOCS)
    return hook


@bp.get("/orgs/<org>/hooks")
def list_org_hooks(org: str) -> Response:
    st = current_state()
    with st.lock:
        org_id = _org_hook_reader(st, org)
    return _listed(st, lambda h: h.org_id == org_id)


@bp.get("/orgs/<org>/hooks/<int:hook_id>")
def get_org_hook(org: str, hook_id: int) -> Response:
    st = current_state()
    with st.lock:
        org_id = _org_hook_reader(st, org)
        return api_json(hook_json(st, _org_hook_or_404(st, org_id, hook_id)))


@bp.get("/orgs/<org>/hooks/<int:hook_id>/deliveries")
def list_org_hook_deliveries(org: str, hook_id: int) -> Response:
    """Newest first, like the repository hooks' list."""
    st = current_state()
    with st.lock:
        org_id = _org_hook_reader(st, org)
        _org_hook_or_404(st, org_id, hook_id)
        items = [delivery_json(d) for d in st.hook_deliveries(hook_id)]
    chunk, headers = paginate(items)
    return api_json(chunk, headers=headers)
