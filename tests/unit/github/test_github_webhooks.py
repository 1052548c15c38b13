"""Signature checks and payload reading (no HTTP): every recorded payload must parse."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from unittest import mock
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from undersign.github.webhooks import (
    MalformedPayload,
    _decode,
    _pull_request,
    _pull_request_fields,
    has_recheck_command,
    merge_group_pull_numbers,
    parse_delivery,
    verify_signature,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "github"
ALL_FIXTURES = sorted(FIXTURES.glob("*.json"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- verify_signature ----------------------------------------------------------------------------


def test_githubs_published_test_vector() -> None:
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify_signature(["It's a Secret to Everybody"], b"Hello, World!", header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + hmac.new(b"s", b"body", hashlib.sha1).hexdigest(),
        sign("s", b"body").upper(),
        "sha256=" + sign("s", b"body")[7:].upper(),
        sign("s", b"body") + "0",
        sign("s", b"body")[:-1],
        " " + sign("s", b"body"),
        sign("s", b"body") + "\u00e9",
    ],
)
def test_anything_but_the_exact_sha256_form_is_refused(header: str | None) -> None:
    assert not verify_signature(["s"], b"body", header)


def test_rotation_accepts_old_and_new_and_nothing_else() -> None:
    body = b'{"zen": "x"}'
    assert verify_signature(["new", "old"], body, sign("old", body))
    assert verify_signature(["new", "old"], body, sign("new", body))
    assert not verify_signature(["new"], body, sign("old", body))
    assert not verify_signature([], body, sign("", body))
    assert not verify_signature([""], body, sign("", body))


def test_comparison_is_constant_time() -> None:
    with mock.patch("hmac.compare_digest", wraps=hmac.compare_digest) as spy:
        verify_signature(["a", "b"], b"x", sign("a", b"x"))
    assert spy.call_count == 2  # every secret is compared, even after a match


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=199), st.integers(1, 255))
def test_any_flipped_bit_is_refused(body: bytes, index: int, flip: int) -> None:
    header = sign("secret", body)
    assert verify_signature(["secret"], body, header)
    if body:
        changed = bytearray(body)
        changed[index % len(body)] ^= flip
        assert not verify_signature(["secret"], bytes(changed), header)


# --- parse_delivery ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_every_recorded_payload_parses(path: Path) -> None:
    event_name = path.name.split("__")[0]
    event = parse_delivery(event_name, path.read_bytes(), "application/json")
    assert event.kind == event_name
    if event.relevant:
        assert event.repo_full_name and event.numbers


def test_pull_request_opened() -> None:
    event = parse_delivery(
        "pull_request", (FIXTURES / "pull_request__opened.json").read_bytes(), "application/json"
    )
    payload = json.loads((FIXTURES / "pull_request__opened.json").read_bytes())
    assert event.relevant
    assert event.repo_full_name == payload["repository"]["full_name"]
    assert event.repo_id == payload["repository"]["id"]
    assert event.numbers == (payload["number"],)
    assert event.head_sha == payload["pull_request"]["head"]["sha"]
    assert event.installation_id == payload["installation"]["id"]
    pull = payload["pull_request"]
    assert event.pull is not None
    assert dict(event.pull) == {
        "head": {"sha": pull["head"]["sha"]},
        "base": {"ref": pull["base"]["ref"], "sha": pull["base"]["sha"]},
        "user": {k: pull["user"][k] for k in ("id", "login", "type")},
        "state": "open",
        "commits": pull["commits"],
    }


@pytest.mark.parametrize(
    ("changes", "relevant"),
    [
        ({"base": {"ref": {"from": "main"}, "sha": {"from": "a" * 40}}}, True),
        ({"title": {"from": "Old title"}}, False),
        ({}, False),
        (None, False),
    ],
)
def test_an_edit_counts_only_when_it_changes_the_base(changes: object, relevant: bool) -> None:
    payload = json.loads((FIXTURES / "pull_request__opened.json").read_bytes())
    payload["action"] = "edited"
    if changes is not None:
        payload["changes"] = changes
    event = parse_delivery("pull_request", json.dumps(payload).encode(), None)
    assert event.relevant is relevant


@pytest.mark.parametrize(
    ("name", "relevant"),
    [
        ("pull_request__opened__with_null-body.json", True),
        ("pull_request__reopened.json", True),
        ("pull_request__synchronize.json", True),
        ("pull_request__closed.json", True),
        ("issue_comment__created.json", False),  # an issue, not a pull request
        ("issue_comment__edited.json", False),
        ("ping__with_organization.json", False),
        ("check_run__rerequested.json", False),
        ("merge_group__checks_requested.json", True),
    ],
)
def test_relevance(name: str, relevant: bool) -> None:
    event = parse_delivery(name.split("__")[0], (FIXTURES / name).read_bytes(), None)
    assert event.relevant is relevant


def comment_payload(body: str | None, on_pull: bool = True) -> bytes:
    payload = json.loads((FIXTURES / "issue_comment__created__with_installation.json").read_bytes())
    payload["comment"]["body"] = body
    if on_pull:
        payload["issue"]["pull_request"] = {"url": "https://api.github.com/x"}
    return json.dumps(payload).encode()


def test_recheck_comment_on_a_pull_request() -> None:
    event = parse_delivery("issue_comment", comment_payload("Done.\n/cla check"), None)
    assert event.relevant and event.comment_body == "Done.\n/cla check"
    assert event.commenter_login and event.commenter_id and event.commenter_type == "User"
    assert not parse_delivery("issue_comment", comment_payload("LGTM"), None).relevant
    assert not parse_delivery("issue_comment", comment_payload(None), None).relevant
    assert not parse_delivery("issue_comment", comment_payload("/cla check", False), None).relevant


@pytest.mark.parametrize(
    ("body", "bot", "expected"),
    [
        ("/cla check", None, True),
        ("  /CLA Check  ", None, True),
        ("thanks\r\n/cla check\r\n", None, True),
        ("please /cla check", None, False),
        ("`/cla check`", None, False),
        ("/cla checked", None, False),
        ("@undersign-bot check", "undersign-bot", True),
        ("@Undersign-Bot check", "undersign-bot", True),
        ("@someone-else check", "undersign-bot", False),
        ("@someone-else check", None, True),
        ("@undersign[bot] check", "undersign[bot]", True),
    ],
)
def test_has_recheck_command(body: str, bot: str | None, expected: bool) -> None:
    assert has_recheck_command(body, bot) is expected


def test_merge_group_numbers() -> None:
    sha = "929f8209d40f77f4abc622a499c93a83babdbe64"
    assert merge_group_pull_numbers(f"refs/heads/gh-readonly-queue/main/pr-104-{sha}") == (104,)
    assert merge_group_pull_numbers(f"gh-readonly-queue/release/1.x/pr-7-{sha}") == (7,)
    assert merge_group_pull_numbers("refs/heads/main") == ()
    event = parse_delivery(
        "merge_group", (FIXTURES / "merge_group__checks_requested.json").read_bytes(), None
    )
    assert event.numbers == (104,)
    assert event.head_sha == "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d"


def test_form_encoded_delivery() -> None:
    raw = (FIXTURES / "pull_request__opened.json").read_bytes()
    body = urlencode({"payload": raw.decode()}).encode()
    event = parse_delivery("pull_request", body, "application/x-www-form-urlencoded")
    assert event.relevant and event.numbers


@pytest.mark.parametrize(
    ("event_name", "body", "content_type", "reason"),
    [
        ("pull_request", b"{", None, "not valid JSON"),
        ("pull_request", b"\xff\xfe", None, "UTF-8"),
        ("pull_request", b"null", None, "JSON object"),
        ("pull_request", b'{"action": "opened"}', None, "repository"),
        (
            "pull_request",
            b'{"action": "opened", "repository": {"full_name": "a/b", "id": 1}}',
            None,
            "pull_request",
        ),
        ("pull_request", b"{}", "text/plain", "content type"),
        ("pull_request", b"payload=1&payload=2", "application/x-www-form-urlencoded", "payload"),
        (None, b"{}", None, "X-GitHub-Event"),
        (
            "merge_group",
            b'{"action": "checks_requested", "repository": {"full_name": "a/b", '
            b'"id": 1}, "merge_group": {"head_sha": "x"}}',
            None,
            "head_sha",
        ),
    ],
)
def test_malformed_payloads_say_what_is_wrong(
    event_name: str | None, body: bytes, content_type: str | None, reason: str
) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_delivery(event_name, body, content_type)


@pytest.mark.parametrize("event_name", ["pull_request", "star"])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_a_deeply_nested_body_is_malformed_not_a_crash(event_name: str, opener: bytes) -> None:
    """json.loads recurses once per level: 100,000 levels used to raise RecursionError (a 500
    for a correctly signed delivery)."""
    closer = b"]" if opener == b"[" else b"}"
    body = b'{"action": "opened", "x": ' + opener * 100_000 + b"1" + closer * 100_000 + b"}"
    with pytest.raises(MalformedPayload, match="too deeply nested"):
        parse_delivery(event_name, body, None)
    form = urlencode({"payload": body.decode()}).encode()
    with pytest.raises(MalformedPayload, match="too deeply nested"):
        parse_delivery(event_name, form, "application/x-www-form-urlencoded")


def test_unknown_event_is_ignored_without_validation() -> None:
    event = parse_delivery("star", b'{"action": "created"}', None)
    assert not event.relevant and event.ignored_because


# --- repository renamed / transferred ------------------------------------------------------------

_MOVED_REPO = {"id": 77, "full_name": "acme/gizmos", "name": "gizmos"}


@pytest.mark.parametrize(
    ("action", "changes", "previous"),
    [
        ("renamed", {"repository": {"name": {"from": "widgets"}}}, "acme/widgets"),
        ("transferred", {"owner": {"from": {"organization": {"login": "oldco"}}}}, "oldco/gizmos"),
        ("transferred", {"owner": {"from": {"user": {"login": "someone"}}}}, "someone/gizmos"),
    ],
)
def test_a_moved_repository_says_its_former_name(
    action: str, changes: object, previous: str
) -> None:
    body = json.dumps({"action": action, "changes": changes, "repository": _MOVED_REPO})
    event = parse_delivery("repository", body.encode(), "application/json")
    assert event.relevant and (event.kind, event.action) == ("repository", action)
    assert (event.repo_full_name, event.repo_id) == ("acme/gizmos", 77)
    assert event.previous_name == previous


@pytest.mark.parametrize(
    ("action", "changes"),
    [
        ("edited", {"repository": {"name": {"from": "widgets"}}}),
        ("renamed", {}),
        ("renamed", {"repository": {"name": {"from": "a/b"}}}),
        ("renamed", {"repository": {"name": {"from": 7}}}),
        ("transferred", {"owner": {"from": {}}}),
        ("transferred", None),
    ],
)
def test_a_repository_delivery_without_a_former_name_is_ignored(
    action: str, changes: object
) -> None:
    body = json.dumps({"action": action, "changes": changes, "repository": _MOVED_REPO})
    event = parse_delivery("repository", body.encode(), "application/json")
    assert not event.relevant and event.ignored_because


@pytest.mark.parametrize(
    ("event_name", "key"), [("organization", "organization"), ("installation_target", "account")]
)
def test_a_renamed_account_says_its_former_login(event_name: str, key: str) -> None:
    body = {
        "action": "renamed",
        "changes": {"login": {"from": "octo-org"}},
        key: {"login": "octo-labs", "id": 9},
        "installation": {"id": 5},
    }
    event = parse_delivery(event_name, json.dumps(body).encode(), "application/json")
    assert event.relevant and event.kind == event_name
    assert (event.account_login, event.account_id, event.previous_name) == (
        "octo-labs",
        9,
        "octo-org",
    )
    assert event.installation_id == 5
    other = parse_delivery(
        event_name, json.dumps({**body, "action": "member_added"}).encode(), None
    )
    assert not other.relevant
    unsaid = parse_delivery(event_name, json.dumps({**body, "changes": {}}).encode(), None)
    assert not unsaid.relevant and unsaid.ignored_because


# --- the pull_request fast path (msgspec) --------------------------------------------------------


def _full_path(body: bytes, content_type: str | None) -> object:
    """What the whole-body parse makes of a pull_request delivery (the reference)."""
    try:
        data = _decode(body, content_type)
        raw = data.get("action")
        return _pull_request(data, raw if isinstance(raw, str) else None)
    except MalformedPayload as exc:
        return ("malformed", exc.reason)


def _either_path(body: bytes, content_type: str | None = None) -> object:
    try:
        return parse_delivery("pull_request", body, content_type)
    except MalformedPayload as exc:
        return ("malformed", exc.reason)


@pytest.mark.parametrize(
    "path", sorted(FIXTURES.glob("pull_request__*.json")), ids=lambda p: p.stem
)
def test_githubs_pull_request_payloads_take_the_fast_path_to_the_same_event(path: Path) -> None:
    body = path.read_bytes()
    assert _pull_request_fields(body, "application/json") is not None
    assert _either_path(body, "application/json") == _full_path(body, "application/json")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"action": "opened", "number": 1.0, "repository": {"full_name": "a/b", "id": 1}}', None),
        (b'{"action": "opened", "repository": null}', None),
        (b'{"action": "opened", "pull_request": {"head": "x"}}', None),
        (b'{"action": "opened", "x": "\xff"}', None),
        (b'{"action": "opened", "x": NaN, "repository": {"full_name": "a/b", "id": 1}}', None),
        (b'{"action": "opened", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
        (b'["opened"]', None),
        (
            urlencode({"payload": '{"action": "opened"}'}).encode(),
            "application/x-www-form-urlencoded",
        ),
    ],
)
def test_what_the_fast_path_cannot_tell_goes_the_whole_way(
    body: bytes, content_type: str | None
) -> None:
    assert _pull_request_fields(body, content_type) is None
    assert _either_path(body, content_type) == _full_path(body, content_type)


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
_part = st.one_of(
    _leaf,
    st.dictionaries(st.sampled_from(["sha", "ref", "id", "login", "type", "other"]), _leaf),
)


@given(
    action=st.one_of(_leaf, st.sampled_from(["opened", "synchronize", "edited", "closed"])),
    top=st.dictionaries(st.sampled_from(["number", "sender", "zzz"]), _leaf),
    repository=st.one_of(_leaf, st.dictionaries(st.sampled_from(["full_name", "id", "x"]), _leaf)),
    pull=st.one_of(
        _leaf,
        st.fixed_dictionaries(
            {},
            optional={
                "number": _leaf,
                "state": _leaf,
                "commits": _leaf,
                "head": _part,
                "base": _part,
                "user": _part,
                "body": _part,
            },
        ),
    ),
    installation=st.one_of(_leaf, st.dictionaries(st.sampled_from(["id", "x"]), _leaf)),
    changes=st.one_of(_leaf, st.dictionaries(st.sampled_from(["base", "title"]), _part)),
)
def test_the_fast_path_and_the_whole_parse_agree_on_any_pull_request_shape(
    action: object,
    top: dict[str, object],
    repository: object,
    pull: object,
    installation: object,
    changes: object,
) -> None:
    """Hypothesis: whatever the shape and types of the fields undersign reads (and of those
    around them), the event (or the 400's reason) is the one the whole parse gives."""
    payload = {
        "action": action,
        **top,
        "repository": repository,
        "pull_request": pull,
        "installation": installation,
        "changes": changes,
    }
    body = json.dumps(payload).encode()
    assert _either_path(body) == _full_path(body, None)
