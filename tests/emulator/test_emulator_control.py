"""The control API, the inspect page and the demo state."""

from __future__ import annotations

import httpx
from emulator_support import SSL_CONTEXT, Receiver
from tests.support.emulator import running_emulator

from undersign.emulator import EmulatorServer, GitHubEmulator
from undersign.emulator.demo import build_demo_state


def test_control_api_scripts_a_scenario(
    web: httpx.Client, emulator: EmulatorServer, receiver: Receiver
) -> None:
    assert web.post("/_emulator/users", json={"login": "zoe", "name": "Zoe"}).status_code == 201
    token = web.post("/_emulator/tokens", json={"login": "zoe"}).json()["token"]
    assert web.post("/_emulator/repos", json={"full_name": "zoe/app"}).status_code == 201
    pr = web.post("/_emulator/repos/zoe/app/pulls", json={"user_login": "zoe", "n_commits": 2})
    assert pr.status_code == 201 and pr.json()["number"] == 1
    web.post("/_emulator/reset-requests")
    api = httpx.get(
        emulator.api_url + "/repos/zoe/app/pulls/1",
        headers={"Authorization": f"Bearer {token}"},
        verify=SSL_CONTEXT,
    )
    assert api.json()["commits"] == 2
    recorded = web.get("/_emulator/requests", params={"rest": 1}).json()
    assert [r["path"] for r in recorded] == ["/api/v3/repos/zoe/app/pulls/1"]
    assert recorded[0]["headers"]["Authorization"] == "Bearer [redacted]"

    assert (
        web.post("/_emulator/faults", json={"path_pattern": "/user$", "status": 500}).status_code
        == 204
    )
    assert httpx.get(emulator.api_url + "/user", verify=SSL_CONTEXT).status_code == 500

    delivered = web.post(
        "/_emulator/webhooks",
        json={
            "url": receiver.url,
            "secret": "s",
            "event": "issue_comment",
            "repo": "zoe/app",
            "number": 1,
            "body": "recheck",
            "login": "zoe",
        },
    ).json()
    assert delivered["status"] == 200
    again = web.post(
        "/_emulator/webhooks/redeliver", json={"delivery_id": delivered["delivery_id"]}
    )
    assert again.json()["status"] == 200
    assert len(web.get("/_emulator/deliveries").json()) == 2
    pulls = web.get("/_emulator/pulls").json()
    assert pulls[0]["comments"][0]["body"] == "recheck"
    assert web.post("/_emulator/users", json={"login": "zoe"}).status_code == 400
    assert (
        web.post(
            "/_emulator/repos/nobody/x/pulls", json={"user_login": "zoe", "n_commits": 1}
        ).status_code
        == 404
    )
    settings = web.post("/_emulator/settings", json={"auto_approve_as": "zoe"}).json()
    assert settings["auto_approve_as"] == "zoe"

    renamed = web.post("/_emulator/repos/zoe/app/rename", json={"new_name": "tool"}).json()
    assert (renamed["action"], renamed["repository"]["full_name"]) == ("renamed", "zoe/tool")
    assert renamed["changes"] == {"repository": {"name": {"from": "app"}}}
    assert web.post("/_emulator/users", json={"login": "yan"}).status_code == 201
    moved = web.post("/_emulator/repos/zoe/tool/transfer", json={"new_owner": "yan"}).json()
    assert moved["repository"]["full_name"] == "yan/tool"
    assert moved["changes"]["owner"]["from"]["user"]["login"] == "zoe"


def test_inspect_page_escapes_and_refuses_script_links(
    web: httpx.Client, state: GitHubEmulator
) -> None:
    state.add_repo("alice/repo")
    pr = state.add_pull_request("alice/repo", user_login="bob", n_commits=1, title="<b>t</b>")
    sha = pr["head"]["sha"]
    state.add_status(
        "alice/repo",
        sha,
        state="failure",
        creator_login="alice",
        context="cla",
        description="<img src=x onerror=alert(1)>",
        target_url="javascript:alert(1)",
    )
    state.add_status(
        "alice/repo",
        sha,
        state="success",
        creator_login="alice",
        context="ci",
        target_url="https://ci.example/1",
    )
    state.add_comment("alice/repo", 1, "<script>alert(1)</script>", "alice")
    page = web.get("/_emulator/")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    assert "<img src=x" not in page.text and "&lt;b&gt;t&lt;/b&gt;" in page.text
    assert 'href="javascript:' not in page.text
    assert 'href="https://ci.example/1"' in page.text
    assert "failure" in page.text
    pull_page = web.get("/alice/repo/pull/1")
    assert pull_page.status_code == 200 and "&lt;script&gt;" in pull_page.text
    assert web.get("/alice/repo/pull/9").status_code == 404
    assert (
        web.get(f"/avatars/u/{state.user('bob')['id']}").headers["Content-Type"] == "image/svg+xml"
    )


def test_demo_state() -> None:
    state = build_demo_state("cid", "csecret", "http://127.0.0.1:5000/auth/callback")
    with running_emulator(state) as server:
        token = state.issue_token("alice")
        pr = httpx.get(
            server.api_url + "/repos/acme/widgets/pulls/1",
            headers={"Authorization": f"token {token}"},
            verify=SSL_CONTEXT,
        ).json()
        assert pr["user"]["login"] == "bob" and pr["state"] == "open"
        commits = httpx.get(
            server.api_url + "/repos/acme/widgets/pulls/1/commits",
            headers={"Authorization": f"token {token}"},
            verify=SSL_CONTEXT,
        ).json()
        assert {c["author"]["login"] for c in commits} == {"bob"}
        bot = httpx.get(server.api_url + "/users/dependabot%5Bbot%5D", verify=SSL_CONTEXT).json()
        assert bot["type"] == "Bot"
        writer = httpx.post(
            f"{server.api_url}/repos/acme/widgets/statuses/{pr['head']['sha']}",
            headers={"Authorization": f"token {state.issue_token('undersign-bot')}"},
            json={"state": "failure", "context": "cla", "description": "bob must sign"},
            verify=SSL_CONTEXT,
        )
        assert writer.status_code == 201
        state.auto_approve_as = "carol"
        location = httpx.get(
            server.url + "/login/oauth/authorize",
            params={"client_id": "cid", "redirect_uri": "http://127.0.0.1:5000/auth/callback"},
            verify=SSL_CONTEXT,
        ).headers["Location"]
        assert location.startswith("http://127.0.0.1:5000/auth/callback?code=")
    assert state.combined_status("acme/widgets", pr["head"]["sha"])["state"] == "failure"
