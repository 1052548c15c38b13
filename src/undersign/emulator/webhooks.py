"""GitHub's webhook sender ("Hookshot"): payload builders, signing and delivery.

Delivery follows REFERENCE section 4: one POST with GitHub's headers, HMAC-SHA256 (and the
legacy SHA-1) over the exact body bytes, a 10 s deadline after which the delivery counts as
failed, no automatic retry, and manual redelivery that reuses the ``X-GitHub-Delivery`` GUID.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import ssl
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import httpx

from undersign.emulator import objects
from undersign.emulator.models import Delivery

if TYPE_CHECKING:
    from undersign.emulator.state import GitHubEmulator

JSON = dict[str, Any]
ContentType = Literal["json", "form"]

#: ``pull_request`` actions (githubkit-schemas v2026-03-10 webhooks/pull_request.py).
PULL_REQUEST_ACTIONS = frozenset(
    {
        "assigned",
        "auto_merge_disabled",
        "auto_merge_enabled",
        "closed",
        "converted_to_draft",
        "demilestoned",
        "dequeued",
        "edited",
        "enqueued",
        "labeled",
        "locked",
        "milestoned",
        "opened",
        "ready_for_review",
        "reopened",
        "review_request_removed",
        "review_requested",
        "stacked",
        "synchronize",
        "unassigned",
        "unlabeled",
        "unlocked",
    }
)
#: The App id reported in ``X-GitHub-Hook-Installation-Target-ID`` for installation payloads.
EMULATED_APP_ID = 100_001


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for all deliveries (building one per client costs ~0.1 s)."""
    return ssl.create_default_context()


def signatures(secret: str, body: bytes) -> tuple[str, str]:
    """(``X-Hub-Signature-256``, ``X-Hub-Signature``) values for ``body``."""
    key = secret.encode("utf-8")
    sha256 = hmac.new(key, body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(key, body, hashlib.sha1).hexdigest()
    return f"sha256={sha256}", f"sha1={sha1}"


def encode_body(payload: JSON | bytes, content_type: ContentType) -> bytes:
    """The exact bytes GitHub would send: compact UTF-8 JSON, or form-encoded ``payload=``."""
    if isinstance(payload, bytes):
        text = payload.decode("utf-8")
    else:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if content_type == "form":
        return urlencode({"payload": text}).encode("ascii")
    return text.encode("utf-8")


def _default_target(payload: JSON | bytes) -> tuple[str, int]:
    data: Any = payload
    if isinstance(payload, bytes):
        try:
            data = json.loads(payload)
        except ValueError:
            data = {}
    if isinstance(data, dict):
        if isinstance(data.get("installation"), dict):
            return "integration", EMULATED_APP_ID
        if isinstance(data.get("repository"), dict):
            return "repository", int(data["repository"].get("id", 0))
        if isinstance(data.get("organization"), dict):
            return "organization", int(data["organization"].get("id", 0))
    return "repository", 0


def deliver(
    st: GitHubEmulator,
    url: str,
    event: str,
    payload: JSON | bytes,
    *,
    secret: str | None,
    hook_id: int | None = None,
    delivery_id: str | None = None,
    content_type: ContentType = "json",
    target_type: str | None = None,
    target_id: int | None = None,
    timeout: float = 10.0,
) -> tuple[int | None, str]:
    """Sign and POST one delivery; record it.  The state lock is *not* held while sending,
    because the receiver (undersign) typically calls back into the emulator's REST API."""
    if content_type not in ("json", "form"):
        raise ValueError("content_type must be 'json' or 'form'")
    body = encode_body(payload, content_type)
    guid = delivery_id or str(uuid.uuid4())
    default_type, default_id = _default_target(payload)
    with st.lock:
        hook = hook_id if hook_id is not None else st.default_hook_id()
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json"
            if content_type == "json"
            else "application/x-www-form-urlencoded",
            "User-Agent": f"GitHub-Hookshot/{st.hookshot_version}",
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(hook),
            "X-GitHub-Hook-Installation-Target-ID": str(
                target_id if target_id is not None else default_id
            ),
            "X-GitHub-Hook-Installation-Target-Type": target_type or default_type,
        }
    if secret is not None:  # GitHub only signs when the hook has a secret
        headers["X-Hub-Signature"] = signatures(secret, body)[1]
        headers["X-Hub-Signature-256"] = signatures(secret, body)[0]
    status = _send(st, url, event, hook, guid, headers, body, timeout, redelivery=False)
    return status, guid


def redeliver(st: GitHubEmulator, delivery_id: str, *, timeout: float = 10.0) -> int | None:
    past = st.find_delivery(delivery_id)
    if past is None:
        raise KeyError(f"no delivery {delivery_id}")
    return _send(
        st,
        past.url,
        past.event,
        past.hook_id,
        past.guid,
        dict(past.request_headers),
        past.body,
        timeout,
        redelivery=True,
    )


def _send(
    st: GitHubEmulator,
    url: str,
    event: str,
    hook_id: int,
    guid: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
    *,
    redelivery: bool,
) -> int | None:
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    response_body = b""
    try:
        # GitHub gives the receiver 10 s, then "terminates the connection and considers the
        # delivery a failure".  No redirects are followed and there is no automatic retry.
        with httpx.Client(timeout=timeout, follow_redirects=False, verify=_tls()) as client:
            response = client.post(url, content=body, headers=headers)
        status, response_body = response.status_code, response.content[:4096]
        if not 200 <= status < 300:
            error = f"Invalid HTTP Response: {status}"
    except httpx.TimeoutException:
        error = "timed out"
    except httpx.HTTPError as exc:
        error = f"failed to connect: {type(exc).__name__}"
    with st.lock:
        st.record_delivery(
            Delivery(
                id=st.next_id("delivery"),
                guid=guid,
                url=url,
                event=event,
                hook_id=hook_id,
                request_headers=headers,
                body=body,
                status_code=status,
                error=error,
                duration=time.monotonic() - started,
                delivered_at=st.clock(),
                redelivery=redelivery,
                response_body=response_body,
            )
        )
    return status


# --- payload builders (caller holds st.lock) ---------------------------------------------------


def _envelope_tail(
    st: GitHubEmulator, repo_id: int, sender_id: int, installation_id: int | None
) -> JSON:
    """repository, installation?, organization?, sender: in the order GitHub sends them."""
    repo = st.repos[repo_id]
    tail: JSON = {"repository": objects.repository(st, repo, webhook=True)}
    if installation_id is not None:
        tail["installation"] = {
            "id": installation_id,
            "node_id": objects.node_id("Installation", installation_id),
        }
    if repo.owner_id in st.orgs:
        tail["organization"] = objects.organization(st, st.users[repo.owner_id])
    tail["sender"] = objects.simple_user(st, st.users[sender_id])
    return tail


def pull_request_payload(
    st: GitHubEmulator,
    full_name: str,
    number: int,
    action: str,
    *,
    sender_login: str | None = None,
    installation_id: int | None = None,
    changes: JSON | None = None,
) -> JSON:
    if action not in PULL_REQUEST_ACTIONS:
        raise ValueError(f"unknown pull_request action: {action}")
    pr = st.require_pull(full_name, number)
    sender = st.require_user(sender_login).id if sender_login else pr.user_id
    payload: JSON = {
        "action": action,
        "number": pr.number,
        "pull_request": objects.pull_request(st, pr, webhook=True),
    }
    if action == "synchronize":
        payload["before"] = pr.before_sha or pr.base_sha
        payload["after"] = pr.head_sha
    elif action == "edited":
        payload["changes"] = changes or {}
    payload.update(_envelope_tail(st, pr.repo_id, sender, installation_id))
    return payload


def repository_payload(
    st: GitHubEmulator,
    full_name: str,
    action: str,
    changes: JSON,
    *,
    sender_login: str | None = None,
    installation_id: int | None = None,
) -> JSON:
    """``repository`` ``renamed``/``transferred`` (githubkit-schemas v2026-03-10
    webhooks/repository.py): ``action``, ``changes``, then the envelope with the repository
    under its new name; the sender defaults to its owner."""
    if action not in ("renamed", "transferred"):
        raise ValueError(f"unsupported repository action: {action}")
    repo = st.require_repo(full_name)
    sender = st.require_user(sender_login).id if sender_login else repo.owner_id
    payload: JSON = {"action": action, "changes": changes}
    payload.update(_envelope_tail(st, repo.id, sender, installation_id))
    return payload


def issue_comment_payload(
    st: GitHubEmulator,
    full_name: str,
    number: int,
    body: str,
    commenter_login: str,
    *,
    installation_id: int | None = None,
) -> JSON:
    pr = st.require_pull(full_name, number)
    commenter = st.require_user(commenter_login)
    rec = st.record_comment(pr.repo_id, number, body, commenter.id)
    payload: JSON = {
        "action": "created",
        "issue": objects.issue_for_pull(st, pr),
        "comment": objects.comment(st, rec),
    }
    payload.update(_envelope_tail(st, pr.repo_id, commenter.id, installation_id))
    return payload
