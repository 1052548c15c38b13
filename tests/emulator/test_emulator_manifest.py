"""The emulator's GitHub App manifest flow, installing an app, and the webhook listings
(repository hooks and their deliveries, the app's hook) as GitHub answers them."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_support import FakeClock, Receiver

from undersign.emulator import EmulatorServer, GitHubEmulator, signatures

Api = Callable[[str | None], httpx.Client]
REDIRECT = "http://127.0.0.1:8000/setup/callback"
HOOK_URL = "http://127.0.0.1:8000/webhooks/github"


def manifest(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Acme CLA",
        "url": "http://127.0.0.1:8000",
        "hook_attributes": {"url": HOOK_URL, "active": True},
        "redirect_url": REDIRECT,
        "callback_urls": ["http://127.0.0.1:8000/login/callback"],
        "public": False,
        "default_permissions": {"statuses": "write", "pull_requests": "read"},
        "default_events": ["pull_request"],
    }
    base.update(changes)
    return base


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return html.unescape(match.group(1))


def confirm(
    web: httpx.Client,
    body: dict[str, Any],
    *,
    org: str | None = None,
    login: str = "alice",
    state: str | None = "s1",
) -> httpx.Response:
    """Post the manifest as the setup page does, then confirm it on the emulator's page."""
    path = f"/organizations/{org}/settings/apps/new" if org else "/settings/apps/new"
    page = web.post(
        path, params={"state": state} if state else None, data={"manifest": json.dumps(body)}
    )
    assert page.status_code == 200, page.text
    form = {"manifest": hidden(page.text, "manifest"), "login": login, "name": body["name"]}
    if state:
        form["state"] = hidden(page.text, "state")
    if org:
        form["org"] = org
    return web.post("/settings/apps/new/confirm", data=form)


def code_of(answer: httpx.Response) -> str:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)["code"][0]


@pytest.fixture
def web(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=10, follow_redirects=False) as client:
        yield client


def test_manifest_flow_registers_an_app_whose_key_the_emulator_accepts(
    web: httpx.Client, state: GitHubEmulator, api: Api
) -> None:
    answer = confirm(web, manifest())
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s1"]
    converted = api(None).post(f"/app-manifests/{code_of(answer)}/conversions")
    assert converted.status_code == 201, converted.text
    app = converted.json()
    assert app["slug"] == "acme-cla" and app["owner"]["login"] == "alice"
    assert app["client_id"] and app["client_secret"] and app["webhook_secret"]
    assert app["permissions"] == {"metadata": "read", "statuses": "write", "pull_requests": "read"}
    assert app["events"] == ["pull_request"]
    key = serialization.load_pem_private_key(app["pem"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)  # GitHub's .pem: an RSA key
    now = int(time.time())
    token = jwt.encode(
        {"iat": now - 60, "exp": now + 540, "iss": str(app["id"])}, key, algorithm="RS256"
    )
    me = api(None).get("/app", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["id"] == app["id"]
    config = api(None).get("/app/hook/config", headers={"Authorization": f"Bearer {token}"})
    assert config.json() == {
        "content_type": "json",
        "insecure_ssl": "0",
        "url": HOOK_URL,
        "secret": "********",
    }
    # The app signs people in too: its client is an OAuth client with the manifest's callback.
    assert state.oauth_clients[app["client_id"]].callback_urls == [
        "http://127.0.0.1:8000/login/callback"
    ]


def test_a_conversion_code_works_once_and_for_an_hour(
    web: httpx.Client, state: GitHubEmulator, api: Api
) -> None:
    clock = FakeClock(time.time())
    state.clock = clock
    first = code_of(confirm(web, manifest()))
    assert api(None).post(f"/app-manifests/{first}/conversions").status_code == 201
    again = api(None).post(f"/app-manifests/{first}/conversions")
    assert again.status_code == 404 and again.json()["message"] == "Not Found"
    late = code_of(confirm(web, manifest(name="Late CLA")))
    clock.advance(3601)
    assert api(None).post(f"/app-manifests/{late}/conversions").status_code == 404
    assert api(None).post("/app-manifests/nonsense/conversions").status_code == 404


def test_organisation_apps_are_confirmed_by_an_owner(
    web: httpx.Client, state: GitHubEmulator, api: Api
) -> None:
    state.add_org("acme", admins=["bob"], members=["carol"])
    refused = confirm(web, manifest(), org="acme", login="carol")
    assert refused.status_code == 400
    code = code_of(confirm(web, manifest(), org="acme", login="bob"))
    app = api(None).post(f"/app-manifests/{code}/conversions").json()
    assert app["owner"]["login"] == "acme"
    # The same name again gets a slug of its own.
    other = api(None).post(f"/app-manifests/{code_of(confirm(web, manifest()))}/conversions").json()
    assert other["slug"] == "acme-cla-2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": None}, "url is required"),
        ({"redirect_url": "not a url"}, "redirect_url is required"),
        ({"hook_attributes": {"active": True}}, "hook_attributes.url"),
        ({"default_events": "pull_request"}, "default_events"),
    ],
)
def test_a_malformed_manifest_is_refused_with_a_reason(
    web: httpx.Client, change: dict[str, Any], message: str
) -> None:
    page = web.post("/settings/apps/new", data={"manifest": json.dumps(manifest(**change))})
    assert page.status_code == 422 and message in html.unescape(page.text)
    assert web.post("/settings/apps/new", data={"manifest": "{"}).status_code == 422


def test_installing_tells_the_apps_webhook(
    web: httpx.Client, state: GitHubEmulator, api: Api
) -> None:
    receiver = Receiver()
    try:
        state.add_org("acme", admins=["alice"])
        code = code_of(confirm(web, manifest(hook_attributes={"url": receiver.url})))
        app = api(None).post(f"/app-manifests/{code}/conversions").json()
        page = web.get(f"/apps/{app['slug']}/installations/new")
        assert page.status_code == 200 and 'value="acme"' in page.text
        done = web.post(f"/apps/{app['slug']}/installations/new", data={"account": "acme"})
        assert done.status_code == 302
        [(headers, body)] = receiver.received
        assert headers["X-GitHub-Event"] == "installation"
        assert json.loads(body)["installation"]["account"]["login"] == "acme"
        assert "X-Hub-Signature-256" in headers
        again = web.post(f"/apps/{app['slug']}/installations/new", data={"account": "acme"})
        assert again.status_code == 400
        assert web.get("/apps/no-such-app/installations/new").status_code == 404
    finally:
        receiver.close()


def test_repository_hooks_are_listed_to_admins_with_the_secret_masked(
    state: GitHubEmulator, api: Api
) -> None:
    state.add_repo("alice/widgets")
    state.add_collaborator("alice/widgets", "bob", "write")
    hook_id = state.add_hook(
        "alice/widgets", HOOK_URL, events=["pull_request"], content_type="json", secret="s3cret"
    )
    bare = state.add_hook("alice/widgets", "http://example.invalid/hook")
    owner = api(state.issue_token("alice", scopes=["repo"]))
    hooks = owner.get("/repos/alice/widgets/hooks")
    assert hooks.status_code == 200
    by_id = {h["id"]: h for h in hooks.json()}
    assert by_id[hook_id]["config"] == {
        "content_type": "json",
        "insecure_ssl": "0",
        "url": HOOK_URL,
        "secret": "********",
    }
    assert by_id[hook_id]["events"] == ["pull_request"]
    assert by_id[bare]["config"]["content_type"] == "form" and "secret" not in by_id[bare]["config"]
    assert by_id[bare]["events"] == ["push"] and by_id[bare]["last_response"]["status"] == "unused"
    assert "s3cret" not in hooks.text
    # Not an admin, or no hook scope: 404, as if there were nothing.
    writer = api(state.issue_token("bob", scopes=["repo"]))
    assert writer.get("/repos/alice/widgets/hooks").status_code == 404
    narrow = api(state.issue_token("alice", scopes=["read:org"]))
    assert narrow.get("/repos/alice/widgets/hooks").status_code == 404
    assert owner.get(f"/repos/alice/widgets/hooks/{hook_id}").json()["id"] == hook_id
    assert owner.get("/repos/alice/widgets/hooks/1").status_code == 404


def test_hook_deliveries_newest_first_with_their_outcome(state: GitHubEmulator, api: Api) -> None:
    receiver = Receiver()
    try:
        state.add_repo("alice/widgets")
        hook_id = state.add_hook(
            "alice/widgets",
            receiver.url,
            events=["pull_request"],
            content_type="json",
            secret="s3cret",
        )
        state.deliver_to_hook(hook_id, "ping", {"zen": "Keep it logically awesome."})
        receiver.status = 401
        state.deliver_to_hook(hook_id, "pull_request", {"action": "opened"})
        owner = api(state.issue_token("alice", scopes=["admin:repo_hook"]))
        answer = owner.get(
            f"/repos/alice/widgets/hooks/{hook_id}/deliveries", params={"per_page": 1}
        )
        [last] = answer.json()
        assert last["event"] == "pull_request" and last["action"] == "opened"
        assert last["status"] == "Invalid HTTP Response: 401" and last["status_code"] == 401
        both = owner.get(f"/repos/alice/widgets/hooks/{hook_id}/deliveries").json()
        assert [d["status"] for d in both] == ["Invalid HTTP Response: 401", "OK"]
        hook = owner.get(f"/repos/alice/widgets/hooks/{hook_id}").json()
        assert hook["last_response"]["code"] == 401
        # Signed with the hook's own secret, in its content type.
        headers, body = receiver.received[-1]
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Hub-Signature-256"] == signatures("s3cret", body)[0]
    finally:
        receiver.close()


def test_organisation_hooks_are_listed_to_owners_whose_token_has_admin_org_hook(
    state: GitHubEmulator, api: Api
) -> None:
    state.add_org("acme", admins=["alice"], members=["bob"])
    state.add_repo("acme/widgets")
    hook_id = state.add_org_hook(
        "acme", HOOK_URL, events=["pull_request"], content_type="json", secret="s3cret"
    )
    bare = state.add_org_hook("acme", "http://example.invalid/hook")
    state.add_hook("acme/widgets", "http://example.invalid/repo-hook")  # not the org's
    owner = api(state.issue_token("alice", scopes=["admin:org_hook"]))
    hooks = owner.get("/orgs/acme/hooks")
    assert hooks.status_code == 200
    by_id = {h["id"]: h for h in hooks.json()}
    assert set(by_id) == {hook_id, bare}
    assert by_id[hook_id]["type"] == "Organization"
    assert by_id[hook_id]["url"].endswith(f"/orgs/acme/hooks/{hook_id}")
    assert by_id[hook_id]["config"] == {
        "content_type": "json",
        "insecure_ssl": "0",
        "url": HOOK_URL,
        "secret": "********",
    }
    assert by_id[bare]["events"] == ["push"] and by_id[bare]["config"]["content_type"] == "form"
    assert "s3cret" not in hooks.text
    assert owner.get(f"/orgs/acme/hooks/{hook_id}").json()["id"] == hook_id
    assert owner.get("/orgs/acme/hooks/1").status_code == 404
    # An owner whose token has only repo, or a member with the scope: 404, as if nothing.
    assert api(state.issue_token("alice", scopes=["repo"])).get("/orgs/acme/hooks").status_code == (
        404
    )
    member = api(state.issue_token("bob", scopes=["admin:org_hook"]))
    assert member.get("/orgs/acme/hooks").status_code == 404
    assert owner.get("/orgs/alice/hooks").status_code == 404  # a user has no org hooks


def test_organisation_hook_deliveries_name_the_organisation(
    state: GitHubEmulator, api: Api
) -> None:
    receiver = Receiver()
    try:
        org = state.add_org("acme", admins=["alice"])
        hook_id = state.add_org_hook("acme", receiver.url, content_type="json", secret="s3cret")
        state.deliver_to_hook(hook_id, "ping", {"zen": "Keep it logically awesome."})
        receiver.status = 500
        state.deliver_to_hook(hook_id, "pull_request", {"action": "opened"})
        owner = api(state.issue_token("alice", scopes=["admin:org_hook"]))
        answer = owner.get(f"/orgs/acme/hooks/{hook_id}/deliveries", params={"per_page": 1})
        [last] = answer.json()
        assert last["event"] == "pull_request" and last["status_code"] == 500
        both = owner.get(f"/orgs/acme/hooks/{hook_id}/deliveries").json()
        assert [d["status"] for d in both] == ["Invalid HTTP Response: 500", "OK"]
        headers, body = receiver.received[-1]
        assert headers["X-GitHub-Hook-Installation-Target-Type"] == "organization"
        assert headers["X-GitHub-Hook-Installation-Target-ID"] == str(org["id"])
        assert headers["X-Hub-Signature-256"] == signatures("s3cret", body)[0]
    finally:
        receiver.close()


def test_an_installation_reads_organisation_hooks_with_the_webhooks_permission(
    state: GitHubEmulator, api: Api
) -> None:
    state.add_org("acme", admins=["alice"])
    state.add_org("other", admins=["alice"])
    state.add_org_hook("acme", HOOK_URL)
    public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    tokens = {}
    for slug, permissions in (
        ("plain", {"metadata": "read"}),
        ("hooked", {"metadata": "read", "organization_hooks": "read"}),
    ):
        app = state.apps.register_app(slug, public, owner_login="alice", permissions=permissions)
        installation = int(state.apps.install(int(app["id"]), "acme")["id"])
        tokens[slug] = str(state.apps.issue_installation_token(installation)["token"])
    assert api(tokens["plain"]).get("/orgs/acme/hooks").status_code == 403
    hooked = api(tokens["hooked"])
    assert [h["config"]["url"] for h in hooked.get("/orgs/acme/hooks").json()] == [HOOK_URL]
    assert hooked.get("/orgs/other/hooks").status_code == 404  # not installed there
