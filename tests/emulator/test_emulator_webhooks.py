"""The webhook sender: GitHub's headers, signatures, timeouts and redelivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from urllib.parse import parse_qs

from emulator_support import Receiver

from undersign.emulator import GitHubEmulator, signatures

SECRET = "It's a Secret to Everybody"


def test_signature_matches_githubs_test_vector() -> None:
    sha256, sha1 = signatures(SECRET, b"Hello, World!")
    assert sha256 == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sha1.startswith("sha1=") and len(sha1) == 45


def test_delivery_headers_and_signature(state: GitHubEmulator, receiver: Receiver) -> None:
    status, guid = state.deliver_webhook(
        receiver.url, "ping", b"Hello, World!", secret=SECRET, hook_id=42
    )
    assert status == 200
    headers, body = receiver.received[0]
    assert body == b"Hello, World!"
    assert headers["X-Hub-Signature-256"] == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    expected_sha1 = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert headers["X-Hub-Signature"] == f"sha1={expected_sha1}"
    assert headers["X-GitHub-Event"] == "ping"
    assert headers["X-GitHub-Delivery"] == guid
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", guid)
    assert headers["X-GitHub-Hook-ID"] == "42"
    assert re.fullmatch(r"GitHub-Hookshot/[0-9a-f]{7}", headers["User-Agent"])
    assert headers["Accept"] == "*/*"
    assert headers["Content-Type"] == "application/json"
    assert "X-GitHub-Hook-Installation-Target-Type" in headers
    assert "X-GitHub-Hook-Installation-Target-ID" in headers


def test_no_secret_no_signature(state: GitHubEmulator, receiver: Receiver) -> None:
    state.deliver_webhook(receiver.url, "ping", {"zen": "Keep it simple."}, secret=None)
    headers, body = receiver.received[0]
    assert "X-Hub-Signature-256" not in headers and json.loads(body) == {"zen": "Keep it simple."}


def test_form_content_type(state: GitHubEmulator, receiver: Receiver) -> None:
    state.add_repo("alice/repo")
    state.add_pull_request("alice/repo", user_login="bob", n_commits=1)
    payload = state.pull_request_event("alice/repo", 1, "opened")
    state.deliver_webhook(receiver.url, "pull_request", payload, secret=SECRET, content_type="form")
    headers, body = receiver.received[0]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(parse_qs(body.decode())["payload"][0])["number"] == 1
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == f"sha256={digest}"  # over the raw form body
    assert headers["X-GitHub-Hook-Installation-Target-Type"] == "repository"
    assert headers["X-GitHub-Hook-Installation-Target-ID"] == str(state.repo("alice/repo")["id"])


def test_failures_are_recorded_and_not_retried(state: GitHubEmulator, receiver: Receiver) -> None:
    receiver.status = 500
    status, guid = state.deliver_webhook(receiver.url, "ping", {}, secret=SECRET)
    assert status == 500 and len(receiver.received) == 1
    delivery = state.deliveries[-1]
    assert delivery.guid == guid and not delivery.ok and delivery.error

    receiver.status = 200
    receiver.delay = 0.5
    status, _ = state.deliver_webhook(receiver.url, "ping", {}, secret=SECRET, timeout=0.1)
    assert status is None and state.deliveries[-1].error == "timed out"

    status, _ = state.deliver_webhook("http://127.0.0.1:9/nothing", "ping", {}, secret=SECRET)
    assert status is None and state.deliveries[-1].error


def test_redelivery_reuses_guid_and_body(state: GitHubEmulator, receiver: Receiver) -> None:
    receiver.status = 503
    first_status, guid = state.deliver_webhook(receiver.url, "ping", {"zen": "z"}, secret=SECRET)
    assert first_status == 503
    receiver.status = 200
    assert state.redeliver(guid) == 200
    (h1, b1), (h2, b2) = receiver.received
    assert h1["X-GitHub-Delivery"] == h2["X-GitHub-Delivery"] == guid
    assert b1 == b2 and h1["X-Hub-Signature-256"] == h2["X-Hub-Signature-256"]
    assert [d.redelivery for d in state.deliveries] == [False, True]


def test_synchronize_payload(state: GitHubEmulator) -> None:
    state.add_repo("alice/repo")
    pr = state.add_pull_request("alice/repo", user_login="bob", n_commits=1)
    pushed = state.push_commits("alice/repo", 1, n_commits=1)
    payload = state.pull_request_event("alice/repo", 1, "synchronize")
    assert payload["before"] == pr["head"]["sha"]
    assert payload["after"] == pushed["head"]["sha"] == payload["pull_request"]["head"]["sha"]
    assert payload["sender"]["login"] == "bob"


def test_issue_comment_event_posts_the_comment(state: GitHubEmulator) -> None:
    state.add_org("acme", members=["alice"])
    state.add_repo("acme/widgets")
    state.add_pull_request("acme/widgets", user_login="bob", n_commits=1)
    payload = state.issue_comment_event("acme/widgets", 1, "recheck", "bob", installation_id=7)
    assert payload["issue"]["pull_request"]["url"].endswith("/repos/acme/widgets/pulls/1")
    assert payload["comment"]["body"] == "recheck"
    assert payload["organization"]["login"] == "acme"
    assert payload["installation"]["id"] == 7
    assert [c["body"] for c in state.comments("acme/widgets", 1)] == ["recheck"]
