"""First-run setup (``/setup/``): registering the GitHub App with GitHub's manifest flow,
end to end over HTTP against the emulator, and who may see the page.

The registration is used at once by the app that stored it, and by the next start: the test
starts a second app on the same database and finds it acting as the registered app (App
mode, the app's sign-in client and webhook secret), with a JWT the emulator accepts.
``test_setup_live.py`` runs it against real ``serve`` and ``worker`` processes, unrestarted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete, select
from tests.conftest import Live, LiveFactory, sign_in
from tests.support.pages import field_value, form_action
from tests.support.registration import start_setup, through_github

from undersign.github import registration
from undersign.github.models import AppRegistration
from undersign.web.context import RUNTIME


@pytest.fixture
def fresh(live_factory: LiveFactory) -> Live:
    """Development with no bot credentials: the setup page is open."""
    return live_factory(UNDERSIGN_ENV="development")


def test_registering_the_app_end_to_end_takes_effect_at_once_and_at_the_next_start(
    fresh: Live, live_factory: LiveFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = fresh.client()
    page = start_setup(client)
    manifest = json.loads(field_value(page.text, "manifest"))
    assert manifest["hook_attributes"] == {"url": f"{fresh.url}/webhooks/github", "active": True}
    assert manifest["redirect_url"] == f"{fresh.url}/setup/callback"
    assert manifest["callback_urls"] == [f"{fresh.url}/login/callback"]
    assert manifest["default_permissions"] == registration.REQUIRED_PERMISSIONS
    assert manifest["default_events"] == list(registration.REQUIRED_EVENTS)
    back = through_github(fresh, page)
    assert back.startswith(f"{fresh.url}/setup/callback?")
    done = client.get(back)
    assert done.status_code == 302 and done.headers["location"] == "/setup/"
    shown = client.get("/setup/")
    assert "Registered: acme-cla" in shown.text
    install = f"{fresh.emulator.url}/apps/acme-cla/installations/new"
    assert f'href="{install}"' in shown.text
    assert "undersign acts as this app now" in shown.text

    state = fresh.emulator.state
    [app] = [a for a in state.apps.apps.values() if a.slug == "acme-cla"]
    now = fresh.app.extensions[RUNTIME].settings  # the process that stored it, unrestarted
    assert now.github_app_id == str(app.id) and now.github_client_id == app.client_id
    with fresh.database.session() as session:
        row = session.scalars(select(AppRegistration)).one()
        stored = " ".join(
            [
                row.client_secret_encrypted,
                row.private_key_encrypted,
                row.webhook_secret_encrypted or "",
            ]
        )
    assert row.app_id == app.id and row.client_id == app.client_id
    assert app.client_secret not in stored and "PRIVATE KEY" not in stored
    hook = state.apps.hooks[app.id]
    assert hook.secret and hook.secret not in stored
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert app.client_secret not in logged and hook.secret not in logged
    assert "PRIVATE KEY" not in logged

    # The next start acts as the app: App mode, its sign-in client, its webhook secret.
    restarted = live_factory(UNDERSIGN_ENV="development", oauth_secret=None)
    settings = restarted.app.extensions[RUNTIME].settings
    assert settings.app_mode and settings.github_app_id == str(app.id)
    assert settings.github_client_id == app.client_id
    assert settings.webhook_secret == hook.secret
    assert restarted.app.extensions[RUNTIME].bot.app.app_info()["slug"] == "acme-cla"
    # GitHub's installation webhook reaches it signed with the app's secret.
    state.apps.install(app.id, "bob")
    installation = next(i for i in state.apps.installations.values() if i.app_id == app.id)
    status, _ = state.apps.deliver(
        app.id,
        f"{restarted.url}/webhooks/github",
        "installation",
        state.apps.installation_event(installation.id, "created"),
        secret=hook.secret,
    )
    assert status == 202
    # An app named by the environment wins over the registered one.
    assert registration.with_registered_app(settings, fresh.database) is settings


def test_the_state_is_checked_once_and_bound_to_the_browser(fresh: Live) -> None:
    client = fresh.client()
    back = through_github(fresh, start_setup(client))
    query = parse_qs(urlsplit(back).query)
    forged = client.get("/setup/callback", params={"code": query["code"][0], "state": "forged"})
    assert forged.status_code == 400 and "Start the registration again" in forged.text
    # The forged attempt used up the pending state: the real answer is refused too.
    assert client.get(back).status_code == 400
    # Another browser never started one.
    with fresh.client() as stranger:
        assert stranger.get(back).status_code == 400
    duplicated = client.get(
        "/setup/callback", params=[("code", "a"), ("code", "b"), ("state", "x")]
    )
    assert duplicated.status_code == 400
    with fresh.database.session() as session:
        assert session.scalars(select(AppRegistration)).first() is None


def test_a_used_or_unknown_code_is_refused_with_nothing_stored(
    live_factory: LiveFactory,
) -> None:
    state = live_factory.emulator.state
    fresh = live_factory(
        UNDERSIGN_ENV="development", UNDERSIGN_ADMINS=str(int(state.user("alice")["id"]))
    )
    client = fresh.client()
    first = through_github(fresh, start_setup(client))
    assert client.get(first).status_code == 302
    code = parse_qs(urlsplit(first).query)["code"][0]
    sign_in(fresh, client, "alice")  # once an app is registered, only an admin registers again
    second = through_github(fresh, start_setup(client, name="Other CLA"))
    reused = second.replace(parse_qs(urlsplit(second).query)["code"][0], code)
    refused = client.get(reused)
    assert refused.status_code == 400 and "used already" in refused.text
    with fresh.database.session() as session:
        assert session.scalars(select(AppRegistration.slug)).all() == ["acme-cla"]
    third = through_github(fresh, start_setup(client, name="Third CLA"))
    odd = third.replace(parse_qs(urlsplit(third).query)["code"][0], "../../user")
    assert client.get(odd).status_code == 400


def test_bad_input_and_missing_csrf_are_4xx(fresh: Live) -> None:
    client = fresh.client()
    token = field_value(client.get("/setup/").text, "csrf_token")
    assert client.post("/setup/", data={"name": "Acme"}).status_code == 400
    bad = client.post("/setup/", data={"csrf_token": token, "name": "<script>", "org": ""})
    assert bad.status_code == 400 and "app name" in bad.text and "<script>" not in bad.text
    bad_org = client.post("/setup/", data={"csrf_token": token, "name": "Acme", "org": "a/b"})
    assert bad_org.status_code == 400 and "organisation" in bad_org.text


def test_an_organisation_owns_the_app_when_named(fresh: Live) -> None:
    state = fresh.emulator.state
    state.add_org("acme", admins=["bob"])
    client = fresh.client()
    page = start_setup(client, org="acme")
    assert form_action(page.text).startswith(
        f"{fresh.emulator.url}/organizations/acme/settings/apps/new?state="
    )
    assert client.get(through_github(fresh, page, login="bob")).status_code == 302
    assert "<dd>acme</dd>" in client.get("/setup/").text


def test_once_an_app_is_registered_only_an_instance_admin_may_use_setup(
    live_factory: LiveFactory,
) -> None:
    """Development without credentials: open to anyone until an app is registered, then
    closed (404) to everyone but an instance admin, so a visitor cannot replace the app. The
    browser that registered it still sees the result page (and nothing more), for the app it
    registered only."""
    state = live_factory.emulator.state
    admin_id = int(state.user("carol")["id"])
    fresh = live_factory(UNDERSIGN_ENV="development", UNDERSIGN_ADMINS=str(admin_id))
    registrant = fresh.client()
    token = field_value(registrant.get("/setup/").text, "csrf_token")
    assert registrant.get(through_github(fresh, start_setup(registrant))).status_code == 302
    with fresh.client() as stranger:
        assert stranger.get("/setup/").status_code == 404
        assert (
            stranger.get("/setup/callback", params={"code": "x", "state": "y"}).status_code == 404
        )
    shown = registrant.get("/setup/")
    assert shown.status_code == 200 and "Registered: acme-cla" in shown.text
    assert "Register a GitHub App" not in shown.text and "Only an instance admin" in shown.text
    again = registrant.post("/setup/", data={"csrf_token": token, "name": "Evil", "org": ""})
    assert again.status_code == 404
    with fresh.client() as bob:
        sign_in(fresh, bob, "bob")
        assert bob.get("/setup/").status_code == 404
    # A visitor who started before the registration cannot finish after it.
    with fresh.database.session() as session:
        session.execute(delete(AppRegistration))
    with fresh.client() as late:
        started = start_setup(late, name="Late CLA")
        with fresh.client() as admin:
            sign_in(fresh, admin, "carol")
            done = admin.get(through_github(fresh, start_setup(admin, name="Admin CLA")))
            assert done.status_code == 302
            assert "Registered: admin-cla" in admin.get("/setup/").text
        assert late.get(through_github(fresh, started)).status_code == 404
    with fresh.database.session() as session:
        assert session.scalars(select(AppRegistration.slug)).all() == ["admin-cla"]
    # The first browser's result page is gone with the app it registered.
    assert registrant.get("/setup/").status_code == 404
    # The next start, acting as the registered app: still closed to visitors.
    restarted = live_factory(UNDERSIGN_ENV="development", oauth_secret=None)
    assert restarted.app.extensions[RUNTIME].settings.github_app_id
    with restarted.client() as stranger:
        assert stranger.get("/setup/").status_code == 404


def test_a_visitor_whose_answer_from_github_arrives_after_a_registration_stores_nothing(
    live_factory: LiveFactory,
) -> None:
    """A visitor's code is being exchanged when an admin's registration is stored: the
    visitor's answer is refused (404) and the admin's app stays registered."""
    state = live_factory.emulator.state
    fresh = live_factory(
        UNDERSIGN_ENV="development", UNDERSIGN_ADMINS=str(int(state.user("carol")["id"]))
    )
    visitor = fresh.client()
    back = through_github(fresh, start_setup(visitor, name="Late CLA"))
    state.add_fault("POST", r"/app-manifests/", status=None, delay=1.5, times=1)
    answers: list[int] = []
    exchanging = threading.Thread(target=lambda: answers.append(visitor.get(back).status_code))
    exchanging.start()
    time.sleep(0.3)  # the visitor's exchange is now held by GitHub
    with fresh.client() as admin:
        sign_in(fresh, admin, "carol")
        assert (
            admin.get(through_github(fresh, start_setup(admin, name="Admin CLA"))).status_code
            == 302
        )
    exchanging.join(10)
    visitor.close()
    assert answers == [404]
    with fresh.database.session() as session:
        assert session.scalars(select(AppRegistration.slug)).all() == ["admin-cla"]


def test_who_may_see_the_setup_page(live_factory: LiveFactory) -> None:
    state = live_factory.emulator.state
    admin_id = int(state.user("carol")["id"])
    configured = live_factory(
        UNDERSIGN_GITHUB_TOKEN=state.issue_token("alice"), UNDERSIGN_ADMINS=str(admin_id)
    )
    with configured.client() as anonymous:
        assert anonymous.get("/setup/").status_code == 404
        assert (
            anonymous.get("/setup/callback", params={"code": "x", "state": "y"}).status_code == 404
        )
    with configured.client() as bob:
        sign_in(configured, bob, "bob")
        assert bob.get("/setup/").status_code == 404
    with configured.client() as carol:
        sign_in(configured, carol, "carol")
        page = carol.get("/setup/")
        assert page.status_code == 200 and "Register a GitHub App" in page.text
    # Development counts as unconfigured only without the bot's credentials.
    developing = live_factory(
        UNDERSIGN_ENV="development", UNDERSIGN_GITHUB_TOKEN=state.issue_token("alice")
    )
    with developing.client() as anonymous:
        assert anonymous.get("/setup/").status_code == 404


def test_a_sign_in_spanning_two_processes_while_one_has_not_read_the_registration(
    live_factory: LiveFactory,
) -> None:
    """Two processes of one instance (the same base URL and database), in the seconds after
    a registration: one acts as the new app, the other has not read the registration yet. A
    sign-in started on either and coming back to the other finishes with the client GitHub
    issued its code to."""
    first = live_factory(UNDERSIGN_ENV="development")
    same = {"base_url": first.settings.base_url}
    late = live_factory(UNDERSIGN_ENV="development", replace=same)
    stale = live_factory(UNDERSIGN_ENV="development", replace=same)
    for live in (late, stale):
        watch = live.app.extensions[RUNTIME].registration
        assert watch is not None
        watch.interval = 3600  # it read the registration at start, not again for an hour
    with first.client() as client:
        assert client.get(through_github(first, start_setup(client))).status_code == 302
    app_client_id = first.app.extensions[RUNTIME].settings.github_client_id
    assert app_client_id != first.settings.github_client_id
    for started, finished, client_id in (
        (first, late, app_client_id),  # started as the app, back where it is not taken up
        (stale, first, first.settings.github_client_id),  # the reverse
    ):
        first.emulator.state.auto_approve_as = "alice"
        with started.client() as browser:
            to_github = browser.get("/login")
            assert to_github.status_code == 302, to_github.text
            query = parse_qs(urlsplit(to_github.headers["location"]).query)
            assert query["client_id"] == [client_id]
            back = browser.get(to_github.headers["location"]).headers["location"]
            elsewhere = finished.url + urlsplit(back).path + "?" + urlsplit(back).query
            landed = browser.get(elsewhere)
            assert landed.status_code == 302, landed.text
            assert "alice" in browser.get(finished.url + "/").text.lower()
    # The one that finished a sign-in as the app read the registration at once to do it.
    assert late.app.extensions[RUNTIME].settings.github_client_id == app_client_id
