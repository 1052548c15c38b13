"""The hostile plan's last items (SECURITY.md 6.A.19 Strict half, 6.B.20, 6.B.21, 6.B.29,
6.F.67, 6.F.68 ProxyFix depth): real HTTP, the GitHub emulator, headless Chromium."""

from __future__ import annotations

import http.server
import logging
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import itsdangerous.timed
import pytest
from flask import Flask
from sqlalchemy import select
from tests.conftest import (
    AGREEMENT_SLUG,
    CLIENT_SECRET,
    BrowserPage,
    CLAService,
    Live,
    LiveFactory,
    sign_in,
)
from tests.support.pages import csrf_token, form_from
from tests.support.signing import publish, signature_rows

from undersign.auth.models import RateLimitWindow
from undersign.db import Database
from undersign.emulator import EmulatorServer

SIGN_PATH = "/sign/cla?repo=acme/widgets&pr=7"


def _signed_in_form(live: Live, client: httpx.Client, login: str) -> dict[str, str]:
    """Sign ``login`` in and read the sign page: the form a browser would post."""
    sign_in(live, client, login)
    page = client.get(SIGN_PATH)
    assert page.status_code == 200, page.text
    return form_from(page.text, csrf_token=csrf_token(page.text))


# -- 6.A.19: why the session cookie is Lax, not Strict -------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("samesite", ["Lax", "Strict"])
def test_strict_session_cookie_would_break_the_redirect_back_from_github(
    live_factory: LiveFactory,
    emulator: EmulatorServer,
    page: BrowserPage,
    monkeypatch: pytest.MonkeyPatch,
    samesite: str,
) -> None:
    """SECURITY 6.A.19 (regression half): the top-level redirect from GitHub back to the
    callback is a cross-site navigation; a ``SameSite=Strict`` session cookie is not sent on
    it, so the callback finds no sign-in in progress ("Your sign-in session expired", 400).
    With our ``Lax`` cookie the same round-trip in Chromium signs in.

    Cookies' "site" ignores the port, so the emulator on another 127.0.0.1 port would be the
    same site and Strict would not break anything there. The app is therefore addressed as
    ``localhost`` and the emulator as ``127.0.0.1``: two different sites, as github.com is.
    ``web/sessions.py`` hard-codes ``samesite="Lax"`` in ``set_cookie``; for the Strict run
    this test rewrites that one argument on the app's session interface (test-only)."""
    live = live_factory(host="localhost")
    base = live.url
    if samesite == "Strict":
        sessions = live.app.session_interface
        original_save = sessions.save_session

        def save_strict(app_: Flask, session: Any, response: Any) -> None:
            set_cookie = response.set_cookie

            def strict_cookie(*args: Any, **kwargs: Any) -> None:
                kwargs["samesite"] = "Strict"
                set_cookie(*args, **kwargs)

            response.set_cookie = strict_cookie
            original_save(app_, session, response)

        monkeypatch.setattr(sessions, "save_session", save_strict)
    # The override really changes the header the browser gets.
    with httpx.Client(base_url=base) as client:
        set_cookie = client.get("/login").headers["set-cookie"]
    assert f"SameSite={samesite}" in set_cookie, set_cookie

    tab = page.page
    tab.goto(base + "/")
    tab.get_by_role("link", name="Sign in with GitHub").first.click()
    tab.wait_for_url(f"{emulator.url}/login/oauth/authorize*")
    tab.get_by_label("alice").check()
    with tab.expect_response(lambda r: "/login/callback" in r.url) as callback:
        tab.get_by_role("button", name="Authorize").click()
    tab.wait_for_load_state()
    assert urlsplit(callback.value.url).hostname == "localhost"
    if samesite == "Lax":
        assert callback.value.status == 302
        tab.wait_for_url(base + "/")
        assert tab.get_by_role("heading", name="Hello, alice!").is_visible()
    else:
        assert callback.value.status == 400
        assert "Your sign-in session expired" in tab.content()
    assert page.csp_violations == []


# -- 6.B.20: stale and foreign CSRF tokens ---------------------------------------------------------


def test_a_csrf_token_past_the_time_limit_or_from_another_session_is_refused(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SECURITY 6.B.20: POST /sign with a CSRF token older than ``WTF_CSRF_TIME_LIMIT``
    (3600 s) -> 400; with another signed-in session's token -> 400; nothing stored. Then the
    same token just inside the limit is accepted (the clock shift is what refused it).

    Flask-WTF reads the clock through itsdangerous (``TimestampSigner.get_timestamp`` calls
    ``time.time()`` in ``itsdangerous.timed``, not in ``flask_wtf.csrf``); the live server runs
    in this process, so shifting that module's clock ages the token."""
    publish(live.database)
    limit = live.app.config["WTF_CSRF_TIME_LIMIT"]
    assert limit == 3600
    real_time = time.time

    def clock_ahead(seconds: float) -> None:
        monkeypatch.setattr(
            itsdangerous.timed, "time", types.SimpleNamespace(time=lambda: real_time() + seconds)
        )

    with live.client() as alice, live.client() as bob:
        alice_form = _signed_in_form(live, alice, "alice")
        bob_form = _signed_in_form(live, bob, "bob")
        assert alice_form["csrf_token"] != bob_form["csrf_token"]

        foreign = alice.post("/sign/cla", data={**alice_form, "csrf_token": bob_form["csrf_token"]})
        assert foreign.status_code == 400, foreign.text
        assert "Form expired" in foreign.text

        clock_ahead(limit + 60)
        stale = alice.post("/sign/cla", data=alice_form)
        assert stale.status_code == 400, stale.text
        assert signature_rows(live.database) == []

        clock_ahead(limit - 60)
        fresh = alice.post("/sign/cla", data=alice_form)
        assert fresh.status_code == 303, fresh.text
    assert [row.login for row in signature_rows(live.database)] == ["alice"]


# -- 6.B.21: concurrent identical submissions ------------------------------------------------------


def _submit_at_once(url: str, cookies: dict[str, str], form: dict[str, str], n: int) -> list[int]:
    """POST the same form ``n`` times at the same instant, from ``n`` threads; the statuses."""
    barrier = threading.Barrier(n)
    results: list[int] = []

    def submit() -> None:
        with httpx.Client(base_url=url, cookies=cookies, timeout=20) as client:
            barrier.wait()
            results.append(client.post("/sign/cla", data=form).status_code)

    threads = [threading.Thread(target=submit) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_identical_submissions_make_one_signature(live: Live) -> None:
    """SECURITY 6.B.21: several submissions for the same user and version at the same
    instant (threads, same session cookie and CSRF token) -> every response succeeds
    (2xx/3xx, never a 500) and exactly one signature row exists per user."""
    publish(live.database)
    parallel = 4
    logins = ("alice", "bob", "carol")
    for login in logins:
        with live.client() as client:
            form = _signed_in_form(live, client, login)
            cookies = dict(client.cookies)
        results = _submit_at_once(live.url, cookies, form, parallel)
        assert len(results) == parallel, (login, results)
        assert all(200 <= s < 400 for s in results), (login, results)
    rows = signature_rows(live.database)
    assert sorted(row.login for row in rows) == sorted(logins)


# -- 6.B.29: clickjacking ------------------------------------------------------------------------


@pytest.fixture
def framing_site(live: Live) -> Iterator[str]:
    """Another origin (a second loopback port) whose page iframes undersign's sign page,
    plus a control frame the test strips of its anti-framing headers."""
    target = live.url + SIGN_PATH
    body = (
        # Well-formed for axe-core, which scans every page the browser loads (this one too,
        # whenever its scan finishes before the test ends).
        '<!doctype html><html lang="en"><title>evil</title><main><h1>Win a prize</h1>'
        f'<iframe name="victim" title="victim" src="{target}" width="800" height="600"></iframe>'
        f'<iframe name="control" title="control" src="{target}&control=1" width="800"'
        ' height="600"></iframe></main></html>'
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.browser
def test_another_site_cannot_frame_the_sign_page(
    live: Live, page: BrowserPage, framing_site: str
) -> None:
    """SECURITY 6.B.29: a page on another loopback port iframes /sign/cla -> Chromium blocks
    the frame (CSP ``frame-ancestors 'none'``, reported on the console), and no agreement or
    form renders in it. The control frame, the same page with the anti-framing headers
    removed by the test, does render: the check would see a frame that loaded."""
    publish(live.database)
    tab = page.page

    def strip_anti_framing(route: Any) -> None:
        response = route.fetch()
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-security-policy", "x-frame-options")
        }
        route.fulfill(response=response, headers=headers)

    tab.route(lambda url: url.endswith("control=1"), strip_anti_framing)
    tab.goto(framing_site)
    # Scanned every time, not only when the scan beats the test's end (a flake either way).
    assert page.accessibility.scan(tab) == []

    control = tab.frame(name="control")
    assert control is not None
    control.wait_for_selector("#agreement-text", timeout=10_000)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        "frame-ancestors" in message for message in page.csp_violations
    ):
        tab.wait_for_timeout(50)
    assert any("frame-ancestors" in message for message in page.csp_violations), page.csp_violations
    victim = tab.frame(name="victim")
    assert victim is not None
    assert not victim.url.startswith(live.url), victim.url
    assert victim.query_selector("#agreement-text") is None
    assert victim.query_selector("form") is None


# -- 6.F.67: no secret in any log line or served page ---------------------------------------------


class _Recorder:
    """WSGI middleware keeping every response the app serves: content type, Location, body."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.responses: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen: dict[str, str] = {}

        def capture(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            seen.update((k.lower(), v) for k, v in headers)
            return start_response(status, headers, *exc)

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        with self.lock:
            self.responses.append((seen.get("content-type", ""), seen.get("location", ""), body))
        return [body]


def test_no_secret_in_any_log_line_or_page(
    cla: CLAService, caplog: pytest.LogCaptureFixture
) -> None:
    """SECURITY 6.F.67: a sign-in, a signature and a webhook delivery processed by the worker,
    end to end, with every logger at DEBUG: no log line and no served body (every HTML page
    included; a redirect's body may repeat its own Location) holds the OAuth code or state,
    the user's access token, the bot token, the client secret, the webhook secret or the
    session cookie value. The test's own HTTP client logs (httpx/httpcore records from this
    thread) are left out: they are the browser's side and print the callback URL."""
    caplog.set_level(logging.DEBUG)
    live = cla.live
    recorder = live.server.wrap(_Recorder)
    state = live.emulator.state
    pr = state.add_pull_request("octo-org/widgets", user_login="alice", n_commits=1)

    sign_path = f"/sign/{AGREEMENT_SLUG}?repo=octo-org/widgets&pr={pr['number']}"
    with live.client() as client:
        state.auto_approve_as = "alice"
        to_github = client.get("/login", params={"next": sign_path})
        assert to_github.status_code == 302
        oauth_state = parse_qs(urlsplit(to_github.headers["location"]).query)["state"][0]
        pre_login_cookie = dict(client.cookies)
        back = client.get(to_github.headers["location"])
        assert back.status_code == 302
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        landed = client.get(back.headers["location"])
        assert landed.status_code == 302, landed.text
        page = client.get(landed.headers["location"])
        assert page.status_code == 200, page.text
        signed = client.post(
            f"/sign/{AGREEMENT_SLUG}", data=form_from(page.text, csrf_token=csrf_token(page.text))
        )
        assert signed.status_code == 303, signed.text
        assert client.get(signed.headers["location"]).status_code == 200
        assert client.get("/me/signatures").status_code == 200
        session_cookies = set(pre_login_cookie.values()) | set(dict(client.cookies).values())

    payload = state.pull_request_event("octo-org/widgets", pr["number"], "opened")
    status, _ = cla.deliver("pull_request", payload)
    assert status == 202
    cla.wait_idle()
    sha = str(state.pull_request("octo-org/widgets", pr["number"])["head"]["sha"])
    assert (cla.status("octo-org/widgets", sha) or {}).get("state") == "success"

    user_tokens = {
        r.headers.get("Authorization", "").split()[-1]
        for r in state.requests
        if r.path.endswith("/user") and r.headers.get("Authorization")
    }
    assert user_tokens, "the app never called GET /user with the user's token"
    secrets_: dict[str, set[Any]] = {
        "OAuth code": {code},
        "OAuth state": {oauth_state},
        "user access token": user_tokens,
        "bot token": {cla.settings.github_token},
        "client secret": {CLIENT_SECRET},
        "webhook secret": {cla.settings.webhook_secret},
        "session cookie": session_cookies,
    }
    assert all(value for values in secrets_.values() for value in values), secrets_

    test_thread = threading.get_ident()
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logs = "\n".join(
        formatter.format(record)
        for record in caplog.records
        if not (record.name.startswith(("httpx", "httpcore")) and record.thread == test_thread)
    )
    assert "signed" in logs  # the capture did see the service's own records
    pages = [
        (kind, location, body.decode("utf-8", "replace"))
        for kind, location, body in recorder.responses
    ]
    assert len([p for p in pages if "text/html" in p[0]]) >= 5, [p[0] for p in pages]
    # A redirect's body repeats its Location: the authorization URL must carry ``state``
    # to GitHub, so a value is only a leak in a body whose own Location does not hold it.
    leaks = [
        (what, where)
        for what, values in secrets_.items()
        for value in values
        for where, location, text in [
            ("logs", "", logs),
            *(
                (f"response {i} ({kind})", location, p)
                for i, (kind, location, p) in enumerate(pages)
            ),
        ]
        if value in text and value not in location
    ]
    assert leaks == []


# -- 6.F.68: ProxyFix depth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        ("0", "198.51.100.66, 203.0.113.7", "127.0.0.1"),
        ("1", "198.51.100.66, 203.0.113.7", "203.0.113.7"),
        ("2", "198.51.100.66, 203.0.113.7, 192.0.2.5", "203.0.113.7"),
    ],
)
def test_forwarded_for_counts_only_the_trusted_proxies_entries(
    live_factory: LiveFactory,
    database: Database,
    proxies: str,
    forwarded: str,
    expected: str,
) -> None:
    """SECURITY 6.F.68 / O14: with ``UNDERSIGN_TRUSTED_PROXIES=n`` the client address is the
    n-th ``X-Forwarded-For`` entry from the right (the one our own proxies appended), never
    the left-most one a client can write; with 0 the header is ignored. Seen in both places
    that use ``remote_addr``: the signature's evidence IP and the sign-in rate-limit key.
    (tests/functional/test_ops.py covers single-valued headers and X-Forwarded-Proto.)"""
    live = live_factory(UNDERSIGN_TRUSTED_PROXIES=proxies)
    publish(database)
    with live.client() as client:
        client.headers["X-Forwarded-For"] = forwarded
        form = _signed_in_form(live, client, "alice")
        response = client.post("/sign/cla", data=form)
        assert response.status_code == 303, response.text
    [row] = signature_rows(database)
    assert row.ip_address == expected
    with database.session() as session:
        keys = set(session.scalars(select(RateLimitWindow.key)))
    assert keys == {f"sign-in:{expected}"}
