"""Repository webhooks as the REST API shows them: ``GET /repos/{o}/{r}/hooks``, one hook, and
its deliveries (docs "REST API endpoints for repository webhooks" and "... webhook
deliveries").

Who may read them, as GitHub: a person with admin rights on the repository whose token has the
``repo``, ``admin:repo_hook``, ``write:repo_hook`` or ``read:repo_hook`` scope, or an
installation with the "Webhooks" (``repository_hooks``) permission, which api/apps.py checks.
Anyone else gets 404, like a hidden repository.  The secret is never shown: ``config.secret``
is ``"********"`` when one is set and absent otherwise.

Depends on Flask, :mod:`undersign.emulator.http`, the state, and :mod:`.manifests` for the
delivery shape.
"""

from __future__ import annotations

from flask import Blueprint, Response, g

from undersign.emulator.api.manifests import MASKED, delivery_json
from undersign.emulator.http import (
    JSON,
    PREFIX,
    api_json,
    current_state,
    has_scope,
    not_found,
    paginate,
    repo_route,
    viewer_id,
)
from undersign.emulator.models import HookRec, Repo, Token
from undersign.emulator.objects import iso
from undersign.emulator.state import GitHubEmulator

bp = Blueprint("hooks", __name__, url_prefix=PREFIX)

HOOKS_DOCS = "https://docs.github.com/rest/repos/webhooks"


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
    repo = st.repos[hook.repo_id]
    url = f"{st.api_url}/repos/{st.full_name(repo)}/hooks/{hook.id}"
    config: JSON = {"content_type": hook.content_type, "insecure_ssl": "0", "url": hook.url}
    if hook.secret:
        config["secret"] = MASKED
    last = st.hook_deliveries(hook.id)
    if last:
        latest = last[0]
        last_response: JSON = {
            "code": latest.status_code,
            "status": "active" if latest.ok else "failed",
            "message": "OK" if latest.ok else latest.error,
        }
    else:
        last_response = {"code": None, "status": "unused", "message": None}
    return {
        "type": "Repository",
        "id": hook.id,
        "name": "web",
        "active": hook.active,
        "events": list(hook.events),
        "config": config,
        "updated_at": iso(hook.created_at),
        "created_at": iso(hook.created_at),
        "url": url,
        "test_url": f"{url}/test",
        "ping_url": f"{url}/pings",
        "deliveries_url": f"{url}/deliveries",
        "last_response": last_response,
    }


def _hook_or_404(st: GitHubEmulator, repo: Repo, hook_id: int) -> HookRec:
    hook = st.hooks.get(hook_id)
    if hook is None or hook.repo_id != repo.id:
        raise not_found(HOOKS_DOCS)
    return hook


@repo_route(bp, "/hooks")
def list_hooks(repo: Repo) -> Response:
    _require_hook_reader(repo)
    st = current_state()
    with st.lock:
        hooks = sorted((h for h in st.hooks.values() if h.repo_id == repo.id), key=lambda h: h.id)
        items = [hook_json(st, h) for h in hooks]
    chunk, headers = paginate(items)
    return api_json(chunk, headers=headers)


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
