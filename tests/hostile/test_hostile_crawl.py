"""Every route, every method, malformed input: never a 500, CSRF everywhere state changes,
security headers on every response (SECURITY 6.B.28, 6.C.36, 6.F.66).

The routes come from ``app.url_map`` of the real app served over HTTP, so a route added
later is crawled without touching this file.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import Live, make_settings, sign_in
from werkzeug.routing import Rule

from undersign.agreements.models import Signature
from undersign.agreements.service import AgreementService, SignatureService
from undersign.db import Database
from undersign.emulator import EmulatorServer
from undersign.web import ratelimit

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_EXEMPT = {"webhooks.github"}  # authenticated by HMAC instead (SECURITY §2, 3.5.1)

# Values for path parameters, by converter: the real one first, then hostile ones.
INT_VALUES = ["{id}", "0", "999999", "9" * 30, str(2**63), str(2**64)]
TEXT_VALUES = [
    "cla",
    "..",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "a%00b",
    "%ff%fe",
    "%C0%AF",
    "%",
    "%zz",
    "\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9",
    "%F0%9F%92%A3",
    "\u202e" + "gpj.exe",
    "a" * 3000,
    "<script>alert(1)<%2fscript>",
]
PATH_VALUES = [*TEXT_VALUES, "../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "x/%ff/y", "a/b/c/"]

QUERIES = [
    "",
    "?next=%ff%fe&repo=%00&pr=" + "9" * 40,
    "?repo=../../x&pr=-1&pr=2&next=//evil.example",
    "?code=a&code=b&state=c&state=d&iss=%ff",
    "?x=" + "A" * 6000,
    "?%ff=%fe&=&&==&%=%",
    "?repo=" + "%C0%AE" * 50 + "&pr=1e9",
]

BODIES: list[tuple[str, bytes]] = [
    ("", b""),
    ("application/x-www-form-urlencoded", b"name=%ff%fe&email=\xff\xfe&agree=yes&csrf_token=%zz"),
    ("application/json", b'{"name": "x", "broken": '),
    ("application/json", b"\xff\xfe\x00{"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\n"),
    ("multipart/form-data", b"no boundary at all"),
    ("text/xml", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"),
    ("application/x-www-form-urlencoded; charset=utf-7", b"name=+ADw-script+AD4-"),
    ("application/octet-stream", bytes(range(256)) * 4),
]
BIG_FORM = b"name=" + b"A" * (1024 * 1024 + 10)


@dataclass
class World:
    live: Live
    anonymous: httpx.Client
    signed_in: httpx.Client
    signature_id: int


def _publish(database: Database) -> None:
    with database.session() as session:
        AgreementService(session).add_or_update("cla", "Individual CLA", "# CLA\n\nYou agree.\n")


@pytest.fixture
def world(live: Live, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The live app with one agreement, alice signed in who signed it, and an anonymous visitor.

    The sign-in rate limit is lifted here so the crawl reaches the sign-in views themselves;
    test_hostile_rate_limit.py tests the limit.
    """
    monkeypatch.setattr(ratelimit, "SIGN_IN_LIMIT", 10**9)
    _publish(live.database)
    user = live.emulator.state.user("alice")
    with live.database.session() as session:
        version = AgreementService(session).current_version("cla")
        SignatureService(session).sign(
            "cla",
            github_id=user["id"],
            login="alice",
            name="Alice",
            email="alice@example.com",
            version_sha256=version.text_sha256,
            agreed=True,
        )
    with live.database.session() as session:
        signature_id = session.scalars(select(Signature.id)).one()
    with live.client() as anonymous, live.client() as signed:
        sign_in(live, signed, "alice")
        yield World(live, anonymous, signed, signature_id)


def _paths(rule: Rule, signature_id: int) -> list[str]:
    """Concrete paths for one url_map rule: the real one first, then each parameter in turn
    given every hostile value (the others keep their real value)."""
    template = str(rule.rule)
    converters = dict(rule._converters)
    patterns = {name: re.compile(r"<(?:[a-z]+:)?" + re.escape(name) + ">") for name in converters}
    values = {
        name: (
            INT_VALUES
            if type(converter).__name__ == "IntegerConverter"
            else PATH_VALUES
            if type(converter).__name__ == "PathConverter"
            else TEXT_VALUES
        )
        for name, converter in converters.items()
    }

    def build(chosen: dict[str, str]) -> str:
        path = template
        for name, pattern in patterns.items():
            value = chosen.get(name, values[name][0]).replace("{id}", str(signature_id))
            path = pattern.sub(lambda _m, v=value: v, path)  # type: ignore[misc]
        return path

    paths = [build({})]
    for name in converters:
        paths += [build({name: value}) for value in values[name][1:]]
    return paths


def _rules(world: World) -> list[Rule]:
    return list(world.live.app.url_map.iter_rules())


def assert_security_headers(response: httpx.Response, where: str) -> None:
    headers = response.headers
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, where
    assert "object-src 'none'" in csp, where
    assert "base-uri 'none'" in csp, where
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") in ("strict-origin-when-cross-origin", "no-referrer"), (
        where
    )
    server = headers.get("server", "") + headers.get("x-powered-by", "")
    assert not re.search(r"\d+\.\d+", server.replace("Python/", "")) or "Werkzeug" in server, where


def _check(response: httpx.Response, where: str, problems: list[str]) -> None:
    if response.status_code >= 500 and response.status_code != 503:
        problems.append(f"{response.status_code} {where}")
    if "Traceback" in response.text or 'File "/' in response.text:
        problems.append(f"traceback in body: {where}")
    try:
        assert_security_headers(response, where)
    except AssertionError:
        problems.append(f"security headers missing: {where}")


def _crawl(world: World, client: httpx.Client, who: str) -> tuple[list[str], set[int], int]:
    """Every rule x method on hostile paths; on the real path, hostile queries and bodies."""
    problems: list[str] = []
    statuses: set[int] = set()
    sent = 0
    for rule in _rules(world):
        real, *hostile = _paths(rule, world.signature_id)
        cases: list[tuple[str, str, str, bytes]] = []
        for method in METHODS:
            cases += [(method, path, "", b"") for path in hostile]
            if method in ("GET", "HEAD"):
                cases += [(method, real + query, "", b"") for query in QUERIES]
            elif method in UNSAFE:
                cases += [(method, real + QUERIES[1], ct, body) for ct, body in BODIES]
            else:
                cases.append((method, real, "", b""))
        for method, target, content_type, body in cases:
            headers = {"Content-Type": content_type} if content_type else {}
            where = f"{who} {method} {target[:100]} [{content_type}]"
            sent += 1
            try:
                response = client.request(method, target, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problems.append(f"connection failed ({exc!r}): {where}")
                continue
            statuses.add(response.status_code)
            _check(response, where, problems)
    return problems, statuses, sent


# Thousands of requests against a live server: about a minute alone, several on a loaded machine.
@pytest.mark.timeout(480)
def test_every_route_and_method_with_malformed_input_never_500s(world: World) -> None:
    """SECURITY 6.B.28 and the issue's crawl: each url_map rule x every HTTP method x
    hostile path parameters (``../``, NUL, invalid UTF-8 and percent-encoding, unicode,
    huge integers), hostile query strings and bodies (bad JSON, odd content types): no 5xx
    (503 from a readiness probe aside), no traceback, the security headers every time."""
    problems, statuses, sent = _crawl(world, world.anonymous, "anonymous")
    more, signed_statuses, sent_signed_in = _crawl(world, world.signed_in, "alice")
    problems += more
    assert sent + sent_signed_in > 1000
    assert problems == [], "\n".join(problems[:40])
    # The crawl really reached pages, redirects, 4xx pages of each kind (not one error page).
    assert {200, 302, 400, 404, 405} <= statuses | signed_statuses


def test_oversized_bodies_are_413_with_headers(world: World) -> None:
    """SECURITY 6.B.25/26, 5.2.1: a form over the cap is 413 on every unsafe route but the
    webhook (its own 25 MB cap is tested in tests/functional/test_webhooks.py)."""
    for rule in _rules(world):
        if rule.endpoint in CSRF_EXEMPT:
            continue
        for method in sorted(set(rule.methods or ()) & UNSAFE):
            path = _paths(rule, world.signature_id)[0]
            for client in (world.anonymous, world.signed_in):
                response = client.request(
                    method,
                    path,
                    content=BIG_FORM,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                assert response.status_code == 413, (method, path)
                assert_security_headers(response, path)


def test_chunked_form_over_the_cap_is_refused_and_stores_nothing(world: World) -> None:
    """SECURITY 6.B.26 (F5): a chunked form body past MAX_CONTENT_LENGTH is 413 (never a
    partially parsed form), on the real HTTP server."""
    with world.live.database.session() as session:
        AgreementService(session).add_or_update("other", "Other CLA", "Text.\n")
    page = world.signed_in.get("/sign/other").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    sha = re.search(r'name="version_sha256" value="([^"]+)"', page)
    assert sha
    valid = (
        f"csrf_token={token.group(1)}&version_sha256={sha.group(1)}&name=Mallory"
        "&email=m%40example.org&agree=yes&padding="
    ).encode()

    def chunks() -> Iterator[bytes]:
        yield valid
        for _ in range(40):
            yield b"A" * 65536

    with world.live.database.session() as session:
        before = session.scalars(select(Signature)).all()
    response = world.signed_in.post(
        "/sign/other",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413, response.text[-600:]
    with world.live.database.session() as session:
        after = session.scalars(select(Signature)).all()
    assert [s.name for s in after] == [s.name for s in before]
    # The same form within the cap, chunked too, is read whole and signs.
    small = world.signed_in.post(
        "/sign/other",
        content=iter([valid, b"x"]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert small.status_code == 303, small.text[-600:]


def test_every_state_changing_route_but_the_webhook_needs_a_csrf_token(world: World) -> None:
    """SECURITY 6.C.36 / 6.B.20: enumerate url_map; every POST/PUT/PATCH/DELETE rule except
    the webhook refuses a request without a CSRF token (400), signed in or not, also with a
    foreign Origin; and nothing changes (alice's signature survives a revoke attempt)."""
    unsafe_rules = [rule for rule in _rules(world) if set(rule.methods or ()) & UNSAFE]
    assert unsafe_rules, "no state-changing route found"
    checked = 0
    for rule in unsafe_rules:
        exempt = rule.endpoint in CSRF_EXEMPT
        for method in sorted(set(rule.methods or ()) & UNSAFE):
            path = _paths(rule, world.signature_id)[0]
            for client in (world.anonymous, world.signed_in):
                for headers in ({}, {"Origin": "https://evil.example"}):
                    response = client.request(
                        method,
                        path,
                        data={"name": "x", "email": "x@example.org", "agree": "yes"},
                        headers=headers,
                    )
                    if exempt:
                        assert response.status_code == 401, path  # no HMAC, no entry
                    else:
                        assert response.status_code == 400, (method, path, response.status_code)
                        assert "Form expired" in response.text
                    checked += 1
    assert checked >= 4 * 4
    with world.live.database.session() as session:
        signature = session.get(Signature, world.signature_id)
        assert signature is not None and signature.revoked_at is None
    assert "Hello, alice" in world.signed_in.get("/").text  # logout without a token did nothing


def test_csrf_exemption_is_only_the_webhook(world: World) -> None:
    """SECURITY 6.C.36: Flask-WTF's exempt list holds exactly the webhook view."""
    app = world.live.server.app
    assert app is not None
    exempt = app.extensions["csrf"]._exempt_views
    assert exempt == {"undersign.web.webhooks.receive"}


def test_the_webhook_answers_with_security_headers(world: World) -> None:
    """SECURITY 6.B.28: the webhook's own answers (202/401) carry the headers too."""
    response = world.anonymous.post(
        "/webhooks/github", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert_security_headers(response, "webhook 401")


def test_authenticated_pages_are_not_cached(world: World) -> None:
    """SECURITY 6.B.28 / ASVS 14.3.2: Cache-Control: no-store on signed-in pages."""
    for path in ("/", "/me/signatures", "/sign/cla", f"/me/signatures/{world.signature_id}/revoke"):
        response = world.signed_in.get(path)
        assert response.status_code == 200, path
        assert response.headers.get("cache-control") == "no-store", path


def test_raw_socket_garbage_never_gets_a_500(world: World) -> None:
    """Bytes no HTTP client would send: invalid UTF-8 in the request line, a bare NUL in the
    path, a header with a non-ASCII value, a lying Content-Length. Only 4xx (or a closed
    connection) come back."""
    port = int(world.live.url.rsplit(":", 1)[1])
    requests = [
        b"GET /sign/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /sign/a\x00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /?next=\xc0\xaf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: undersign_session=\xff\xfe\r\n"
        b"Connection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: undersign_session=" + b"a" * 5000 + b"\r\n"
        b"Connection: close\r\n\r\n",
        b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\nabc",
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=\xff\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    ]
    for raw in requests:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.settimeout(10)
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            except (TimeoutError, ConnectionError):
                answer = b""
        status_line = answer.split(b"\r\n", 1)[0]
        assert not re.match(rb"HTTP/1\.[01] 5\d\d", status_line), (raw[:60], status_line)
        assert b"Traceback" not in answer


# --- the 500 page (SECURITY 6.F.66) ------------------------------------------------------------


def test_an_unexpected_error_is_a_generic_500_page_with_a_reference(
    tmp_path: Path,
    emulator: EmulatorServer,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SECURITY 6.F.66: a view that fails (test-only route) gives a 500 page with a generic
    message and a reference; no traceback, path, SQL or secret in the body; the security
    headers are there; the log has the full trace under the same reference. /console
    (the Werkzeug debugger) is 404."""
    from undersign.web import create_app

    settings = make_settings(
        tmp_path, "http://127.0.0.1:5000", emulator, UNDERSIGN_DATABASE_URL=database.url
    )
    app = create_app(settings, database=database)
    secret_key = settings.secret_key
    assert secret_key

    @app.get("/_test/explode")
    def explode() -> str:
        # What a failing query's message can hold: SQL, a path, a secret.
        raise RuntimeError(
            "SELECT * FROM users; secret="  # noqa: S608 - text of an error, not a query
            + secret_key
            + " at /srv/undersign/app.py"
        )

    with caplog.at_level(logging.ERROR), app.test_client() as client:
        response = client.get("/_test/explode")
        console = client.get("/console")
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in body
    reference = re.search(r"reference ([0-9a-f]{12})", body)
    assert reference
    for leak in ("Traceback", "RuntimeError", "SELECT", "/srv/", secret_key, ".py"):
        assert leak not in body, leak
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert reference.group(1) in logged and "RuntimeError" in logged
    assert console.status_code == 404
    assert not app.debug
