"""GitHub webhook deliveries: check the signature, then read the few facts undersign needs.

No web framework here: the view hands over the raw body and headers. Order matters
(SECURITY.md W1): the HMAC is checked over the exact bytes received before anything is
parsed, and only ``X-Hub-Signature-256`` counts; the legacy SHA-1 header is never looked at,
because accepting it would let an attacker pick the weaker algorithm.

The payload is a *trigger*, not the truth (W7): the signature has no timestamp, so a captured
delivery can be replayed forever. ``Event`` therefore keeps only what says *which* pull
request to look at; the job reads the pull request's current state from the API.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import parse_qs

import msgspec
from pydantic_core import from_json

__all__ = [
    "PULL_REQUEST_ACTIONS",
    "Event",
    "MalformedPayload",
    "has_recheck_command",
    "merge_group_pull_numbers",
    "parse_delivery",
    "verify_signature",
]

#: ``pull_request`` actions that can change who contributed (REFERENCE.md §4).
PULL_REQUEST_ACTIONS = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})
#: ``edited`` counts only when its ``changes`` include the base (the PR was retargeted: its
#: commits, hence its contributors, may be different); a title or body edit changes nothing.
PULL_REQUEST_BASE_ACTIONS = frozenset({"edited"})
#: Actions after which the pull request no longer waits on anyone (no API call needed).
PULL_REQUEST_CLOSING_ACTIONS = frozenset({"closed"})

_SIGNATURE = re.compile(r"sha256=([0-9a-f]{64})")
# "gh-readonly-queue/{base}/pr-{number}-{sha}": the ref GitHub creates for a merge group.
_QUEUE_REF = re.compile(r"(?:refs/heads/)?gh-readonly-queue/.+?/pr-(\d+)-[0-9a-f]{40}")
_RECHECK_LINE = re.compile(r"^[ \t]*/cla[ \t]+check[ \t\r]*$", re.IGNORECASE | re.MULTILINE)
_MENTION_LINE = re.compile(
    r"^[ \t]*@([A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?)[ \t]+check[ \t\r]*$",
    re.IGNORECASE | re.MULTILINE,
)
MAX_COMMENT_SCAN = 65536  # GitHub's comment cap; nothing longer is a real comment


class MalformedPayload(ValueError):
    """A correctly signed body undersign cannot read; ``reason`` goes into the 400 answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_signature(secrets: Sequence[str], body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) is a valid HMAC of ``body`` under one of
    ``secrets`` (several during a rotation).

    Only the exact GitHub form ``sha256=<64 lowercase hex>`` is accepted: no ``sha1=``, no
    uppercase, no padding. Every secret is compared, in constant time, so timing tells nothing
    about which one (if any) nearly matched.
    """
    if not header or not isinstance(header, str):
        return False
    match = _SIGNATURE.fullmatch(header)
    if match is None:
        return False
    given = match.group(1).encode("ascii")
    valid = False
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        valid |= hmac.compare_digest(expected.encode("ascii"), given)
    return valid


@dataclass(frozen=True)
class Event:
    """What a delivery asks undersign to do; ``relevant`` is False for everything it ignores."""

    kind: str
    action: str | None
    relevant: bool
    repo_full_name: str | None = None
    repo_id: int | None = None
    numbers: tuple[int, ...] = ()
    head_sha: str | None = None
    comment_id: int | None = None
    comment_body: str | None = None
    commenter_login: str | None = None
    commenter_id: int | None = None
    commenter_type: str | None = None
    installation_id: int | None = None
    ignored_because: str | None = None
    # GitHub App events: the installation's account and the repositories it (de)selects.
    account_login: str | None = None
    account_id: int | None = None
    repository_selection: str | None = None
    repositories: tuple[tuple[int, str], ...] = ()
    # A hint only (the payload is a trigger, not the truth): lets a PR of more than 250
    # commits skip the capped list and go straight to the compare endpoint.
    commit_count: int | None = None
    # The few facts of the pull request the payload carried (head, base, opener, state), in
    # GitHub's shape; the job trusts the head only if the commits it lists agree.
    pull: Mapping[str, Any] | None = None
    # ``repository`` renamed / transferred: the ``owner/name`` it had before; an account
    # renamed (``organization``, ``installation_target``): its former login. A claim the job
    # checks with GitHub before anything follows the new name.
    previous_name: str | None = None


class _Part(TypedDict, total=False):
    sha: Any
    ref: Any
    id: Any
    login: Any
    type: Any


class _Pull(TypedDict, total=False):
    number: Any
    head: _Part
    base: _Part
    user: _Part
    state: Any
    commits: Any


class _Repository(TypedDict, total=False):
    full_name: Any
    id: Any


class _Installation(TypedDict, total=False):
    id: Any


class _Changes(TypedDict, total=False):
    base: Any


class _PullRequestFields(TypedDict, total=False):
    """What ``_pull_request`` reads of a ``pull_request`` delivery, and nothing else."""

    action: Any
    number: Any
    changes: _Changes
    repository: _Repository
    pull_request: _Pull
    installation: _Installation


_PULL_REQUEST_FIELDS = msgspec.json.Decoder(_PullRequestFields)


def _pull_request_fields(body: bytes, content_type: str | None) -> Mapping[str, Any] | None:
    """The fields a ``pull_request`` delivery is read for, skipping the rest of its ~22 KB
    without building it (msgspec: 10 us against 37 us for the whole object, and no garbage for
    the collector); None when this fast path cannot tell, and the whole body is read as any
    other (same answer, same messages for anything malformed: a wrong type, a number
    from_json reads differently, a form body, bad UTF-8 all go that way). Accepted here but
    not there: numbers over 4,300 digits and nesting deeper than 200 levels, and only in
    fields undersign never reads (the cap is there against crashes; msgspec refuses
    recursion on its own, and that refusal falls back too)."""
    mime = (content_type or "application/json").split(";")[0].strip().lower()
    if mime != "application/json":
        return None
    try:
        data = _PULL_REQUEST_FIELDS.decode(body.decode("utf-8"))
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return None
    pull = data.get("pull_request", {})
    if any(isinstance(value, float) for value in _leaves(data, pull)):
        return None  # from_json may read it as an int, or refuse it: let it decide
    return data


def _leaves(data: Mapping[str, Any], pull: Mapping[str, Any]) -> list[Any]:
    values = [data.get("number"), pull.get("number"), pull.get("commits")]
    values += [data.get(key, {}).get("id") for key in ("repository", "installation")]
    values += [pull.get(key, {}).get("id") for key in ("head", "base", "user")]
    return values


def _decode(body: bytes, content_type: str | None) -> Mapping[str, Any]:
    """The JSON object of a delivery sent as ``application/json`` or as a form (``payload=``);
    GitHub's repository hooks default to the form encoding."""
    mime = (content_type or "application/json").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("the body is not UTF-8") from None
    if mime == "application/x-www-form-urlencoded":
        values = parse_qs(text, keep_blank_values=True, max_num_fields=10)
        payloads = values.get("payload")
        if not payloads or len(payloads) != 1:
            raise MalformedPayload("a form delivery needs exactly one 'payload' field")
        text = payloads[0]
    elif mime not in ("application/json", "text/json") and not mime.endswith("+json"):
        raise MalformedPayload(f"unsupported content type {mime!r}")
    try:
        # pydantic-core's parser: the same JSON as json.loads (NaN, big integers, the last of
        # duplicate keys), twice as fast; nesting is capped (200), lone surrogates refused.
        # Without its string cache it is twice as fast again on a 22 KB pull_request body
        # (measured: 230 -> 110 us): a delivery's strings are read once, none repeats.
        data = from_json(text, cache_strings=False)
    except ValueError as exc:  # its message names the line and column
        if "recursion limit" in str(exc):
            raise MalformedPayload("the body is not valid JSON: too deeply nested") from None
        raise MalformedPayload(f"the body is not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(data, dict):
        raise MalformedPayload("the body must be a JSON object")
    return data


def _object(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise MalformedPayload(f"{where}{key} is missing or not an object")
    return value


def _positive_int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise MalformedPayload(f"{where}{key} is missing or not a positive integer")
    return value


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _optional_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _repository(data: Mapping[str, Any]) -> tuple[str, int]:
    repo = _object(data, "repository", "")
    name = repo.get("full_name")
    if not isinstance(name, str) or name.count("/") != 1 or len(name) > 200:
        raise MalformedPayload("repository.full_name is missing or not 'owner/name'")
    return name, _positive_int(repo, "id", "repository.")


def _installation(data: Mapping[str, Any]) -> int | None:
    installation = data.get("installation")
    return _optional_id(installation.get("id")) if isinstance(installation, Mapping) else None


def _ignored(kind: str, action: str | None, why: str) -> Event:
    return Event(kind=kind, action=action, relevant=False, ignored_because=why)


def has_recheck_command(body: str | None, bot_login: str | None = None) -> bool:
    """``/cla check`` on a line of its own (any case), or ``@<bot> check`` when ``bot_login``
    is known; with ``bot_login=None`` any ``@someone check`` line counts (a cheap pre-filter:
    the job decides with the real login)."""
    if not isinstance(body, str):
        return False
    body = body[:MAX_COMMENT_SCAN]
    if _RECHECK_LINE.search(body):
        return True
    for match in _MENTION_LINE.finditer(body):
        if bot_login is None or match.group(1).casefold() == bot_login.casefold():
            return True
    return False


def merge_group_pull_numbers(head_ref: str) -> tuple[int, ...]:
    """Pull request numbers named by a merge queue ref (``gh-readonly-queue/main/pr-7-<sha>``)."""
    match = _QUEUE_REF.fullmatch(head_ref.strip())
    return (int(match.group(1)),) if match else ()


def parse_delivery(
    event_name: str | None,
    body: bytes,
    content_type: str | None,
    *,
    app_events: bool = False,
) -> Event:
    """Read a verified delivery. Raises ``MalformedPayload`` for a body that is not a JSON
    object, or for an event undersign acts on that lacks what it needs. Events and actions it
    does not use come back with ``relevant=False`` and are not validated further, so new
    GitHub payload shapes never turn into errors. ``app_events`` (GitHub App mode only): act on
    ``installation``, ``installation_repositories`` and ``check_run`` too."""
    if not event_name or len(event_name) > 100:
        raise MalformedPayload("the X-GitHub-Event header is missing")
    fields = _pull_request_fields(body, content_type) if event_name == "pull_request" else None
    data = fields if fields is not None else _decode(body, content_type)
    raw_action = data.get("action")
    action = raw_action if isinstance(raw_action, str) else None
    if event_name == "ping":
        return Event(kind="ping", action=None, relevant=False, ignored_because="ping")
    if event_name == "pull_request":
        return _pull_request(data, action)
    if event_name == "issue_comment":
        return _issue_comment(data, action)
    if event_name == "merge_group":
        return _merge_group(data, action)
    if event_name == "repository":
        return _repository_moved(data, action)
    if event_name in ACCOUNT_RENAME_EVENTS:
        return _account_renamed(event_name, data, action)
    if app_events and event_name in ("installation", "installation_repositories"):
        return _installation_event(event_name, data, action)
    if app_events and event_name == "check_run":
        return _check_run(data, action)
    return _ignored(event_name, action, f"undersign does not use {event_name!r} events")


def _pull_facts(pull: Mapping[str, Any]) -> dict[str, Any]:
    """head sha, base ref and sha, the opener (id, login, type), state, commit count."""

    def part(key: str, *fields: str) -> dict[str, Any]:
        value = pull.get(key)
        value = value if isinstance(value, Mapping) else {}
        return {name: value.get(name) for name in fields if name in value}

    return {
        "head": part("head", "sha"),
        "base": part("base", "ref", "sha"),
        "user": part("user", "id", "login", "type"),
        "state": pull.get("state") if isinstance(pull.get("state"), str) else None,
        "commits": pull.get("commits") if isinstance(pull.get("commits"), int) else None,
    }


def _pull_request(data: Mapping[str, Any], action: str | None) -> Event:
    if action in PULL_REQUEST_BASE_ACTIONS:
        changes = data.get("changes")
        if not (isinstance(changes, Mapping) and isinstance(changes.get("base"), Mapping)):
            return _ignored("pull_request", action, "the edit does not change the base")
    elif action not in PULL_REQUEST_ACTIONS | PULL_REQUEST_CLOSING_ACTIONS:
        return _ignored("pull_request", action, f"action {action!r} changes no contributor")
    repo, repo_id = _repository(data)
    pull = _object(data, "pull_request", "")
    number = _positive_int(data, "number", "") if "number" in data else None
    number = number or _positive_int(pull, "number", "pull_request.")
    head = pull.get("head")
    head_sha = _optional_str(head.get("sha")) if isinstance(head, Mapping) else None
    commits = pull.get("commits")
    return Event(
        kind="pull_request",
        action=action,
        relevant=True,
        repo_full_name=repo,
        repo_id=repo_id,
        numbers=(number,),
        head_sha=head_sha,
        installation_id=_installation(data),
        commit_count=commits if isinstance(commits, int) and commits >= 0 else None,
        pull=_pull_facts(pull),
    )


def _issue_comment(data: Mapping[str, Any], action: str | None) -> Event:
    if action != "created":
        return _ignored("issue_comment", action, f"action {action!r} is not a new comment")
    issue = _object(data, "issue", "")
    # A comment on a pull request is an issue comment whose issue carries "pull_request".
    if not isinstance(issue.get("pull_request"), Mapping):
        return _ignored("issue_comment", action, "the comment is on an issue, not a pull request")
    comment = _object(data, "comment", "")
    body = comment.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedPayload("comment.body is not a string")
    if not has_recheck_command(body):
        return _ignored("issue_comment", action, "the comment carries no recheck command")
    repo, repo_id = _repository(data)
    user = comment.get("user")
    user = user if isinstance(user, Mapping) else {}
    return Event(
        kind="issue_comment",
        action=action,
        relevant=True,
        repo_full_name=repo,
        repo_id=repo_id,
        numbers=(_positive_int(issue, "number", "issue."),),
        comment_id=_optional_id(comment.get("id")),
        comment_body=(body or "")[:MAX_COMMENT_SCAN],
        commenter_login=_optional_str(user.get("login")),
        commenter_id=_optional_id(user.get("id")),
        commenter_type=_optional_str(user.get("type")),
        installation_id=_installation(data),
    )


def _merge_group(data: Mapping[str, Any], action: str | None) -> Event:
    if action != "checks_requested":
        return _ignored("merge_group", action, f"action {action!r} needs no check")
    repo, repo_id = _repository(data)
    group = _object(data, "merge_group", "")
    head_sha = group.get("head_sha")
    if not isinstance(head_sha, str) or not re.fullmatch(r"[0-9a-f]{40}", head_sha):
        raise MalformedPayload("merge_group.head_sha is missing or not a commit sha")
    head_ref = group.get("head_ref")
    if not isinstance(head_ref, str):
        raise MalformedPayload("merge_group.head_ref is missing")
    numbers = merge_group_pull_numbers(head_ref)
    if not numbers:
        raise MalformedPayload("merge_group.head_ref does not name a pull request")
    return Event(
        kind="merge_group",
        action=action,
        relevant=True,
        repo_full_name=repo,
        repo_id=repo_id,
        numbers=numbers,
        head_sha=head_sha,
        installation_id=_installation(data),
    )


#: ``repository`` actions after which GitHub sends the repository's events under a new name.
REPOSITORY_MOVES = frozenset({"renamed", "transferred"})


def _repository_moved(data: Mapping[str, Any], action: str | None) -> Event:
    """A repository was renamed (``changes.repository.name.from``) or transferred
    (``changes.owner.from.user`` or ``.organization``): its links and pull requests are known
    to undersign by the old ``owner/name``. Without the old name in ``changes`` (a shape
    GitHub may change) the delivery is ignored, not refused."""
    if action not in REPOSITORY_MOVES:
        return _ignored("repository", action, f"action {action!r} does not move a repository")
    repo, repo_id = _repository(data)
    owner, _, name = repo.partition("/")
    changes = data.get("changes")
    changes = changes if isinstance(changes, Mapping) else {}
    previous: str | None = None
    if action == "renamed":
        renamed = changes.get("repository")
        old = renamed.get("name") if isinstance(renamed, Mapping) else None
        old_name = old.get("from") if isinstance(old, Mapping) else None
        if isinstance(old_name, str) and old_name and "/" not in old_name:
            previous = f"{owner}/{old_name}"
    else:
        moved = changes.get("owner")
        source = moved.get("from") if isinstance(moved, Mapping) else None
        source = source if isinstance(source, Mapping) else {}
        account = source.get("organization") or source.get("user")
        login = account.get("login") if isinstance(account, Mapping) else None
        if isinstance(login, str) and login and "/" not in login:
            previous = f"{login}/{name}"
    if previous is None or len(previous) > 200:
        return _ignored("repository", action, "the delivery does not say the former name")
    return Event(
        kind="repository",
        action=action,
        relevant=True,
        repo_full_name=repo,
        repo_id=repo_id,
        installation_id=_installation(data),
        previous_name=previous,
    )


#: Where an account's new login comes with its former one (``changes.login.from``): an
#: organisation's webhooks (``organization``) and, for a GitHub App, ``installation_target``.
ACCOUNT_RENAME_EVENTS = {"organization": "organization", "installation_target": "account"}


def _account_renamed(kind: str, data: Mapping[str, Any], action: str | None) -> Event:
    """An organisation or user account changed its login: every repository of it, and any
    link to it, goes by a new ``owner/``. Without the former login the delivery is ignored."""
    if action != "renamed":
        return _ignored(kind, action, f"action {action!r} does not rename an account")
    account = _object(data, ACCOUNT_RENAME_EVENTS[kind], "")
    login = account.get("login")
    changes = data.get("changes")
    old = changes.get("login") if isinstance(changes, Mapping) else None
    previous = old.get("from") if isinstance(old, Mapping) else None
    if not isinstance(login, str) or not login or len(login) > 100:
        raise MalformedPayload(f"{ACCOUNT_RENAME_EVENTS[kind]}.login is missing")
    if not isinstance(previous, str) or not previous or len(previous) > 100 or "/" in previous:
        return _ignored(kind, action, "the delivery does not say the former login")
    return Event(
        kind=kind,
        action=action,
        relevant=True,
        installation_id=_installation(data),
        account_login=login,
        account_id=_positive_int(account, "id", f"{ACCOUNT_RENAME_EVENTS[kind]}."),
        previous_name=previous,
    )


#: ``installation`` actions that change which repositories undersign may act on.
INSTALLATION_ACTIONS = frozenset(
    {"created", "deleted", "new_permissions_accepted", "suspend", "unsuspend"}
)
MAX_LISTED_REPOSITORIES = 5000


def _repository_list(items: object, where: str) -> tuple[tuple[int, str], ...]:
    if items is None:
        return ()
    if not isinstance(items, list) or len(items) > MAX_LISTED_REPOSITORIES:
        raise MalformedPayload(f"{where} is not a list of repositories")
    out: list[tuple[int, str]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise MalformedPayload(f"{where} is not a list of repositories")
        name = item.get("full_name")
        if not isinstance(name, str) or name.count("/") != 1 or len(name) > 200:
            raise MalformedPayload(f"{where}[].full_name is missing or not 'owner/name'")
        out.append((_positive_int(item, "id", f"{where}[]."), name))
    return tuple(out)


def _installation_event(kind: str, data: Mapping[str, Any], action: str | None) -> Event:
    """The app was installed, uninstalled, or given / refused repositories."""
    if kind == "installation" and action not in INSTALLATION_ACTIONS:
        return _ignored(kind, action, f"action {action!r} changes no repository")
    if kind == "installation_repositories" and action not in ("added", "removed"):
        return _ignored(kind, action, f"action {action!r} changes no repository")
    installation = _object(data, "installation", "")
    account = installation.get("account")
    account = account if isinstance(account, Mapping) else {}
    if kind == "installation":
        repos = _repository_list(data.get("repositories"), "repositories")
    else:
        key = "repositories_added" if action == "added" else "repositories_removed"
        repos = _repository_list(data.get(key), key)
    selection = data.get("repository_selection") or installation.get("repository_selection")
    return Event(
        kind=kind,
        action=action,
        relevant=True,
        installation_id=_positive_int(installation, "id", "installation."),
        account_login=_optional_str(account.get("login")),
        account_id=_optional_id(account.get("id")),
        repository_selection=selection if selection in ("all", "selected") else None,
        repositories=repos,
    )


def _check_run(data: Mapping[str, Any], action: str | None) -> Event:
    """GitHub's "Re-run" (``rerequested``) or our "Re-check" button (``requested_action``,
    identifier ``recheck``) on undersign's check run."""
    if action not in ("rerequested", "requested_action"):
        return _ignored("check_run", action, f"action {action!r} asks for nothing")
    if action == "requested_action":
        requested = data.get("requested_action")
        identifier = requested.get("identifier") if isinstance(requested, Mapping) else None
        if identifier != "recheck":
            return _ignored("check_run", action, "not undersign's Re-check action")
    repo, repo_id = _repository(data)
    run = _object(data, "check_run", "")
    head_sha = run.get("head_sha")
    if not isinstance(head_sha, str) or not re.fullmatch(r"[0-9a-f]{40}", head_sha):
        raise MalformedPayload("check_run.head_sha is missing or not a commit sha")
    numbers: list[int] = []
    pulls = run.get("pull_requests")
    for pull in pulls if isinstance(pulls, list) else []:
        number = pull.get("number") if isinstance(pull, Mapping) else None
        if isinstance(number, int) and not isinstance(number, bool) and number > 0:
            numbers.append(number)
    return Event(
        kind="check_run",
        action=action,
        relevant=True,
        repo_full_name=repo,
        repo_id=repo_id,
        numbers=tuple(numbers[:100]),
        head_sha=head_sha,
        installation_id=_installation(data),
    )
