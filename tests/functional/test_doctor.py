"""``undersign doctor`` against the emulator: healthy, then each misconfiguration a
self-hoster makes, planted one at a time; the doctor must name it and exit 1.

The baseline: token mode, the bot ``cla-bot`` (admin of ``acme/widgets``, so GitHub shows it
the hooks) with a classic token (``repo``, ``read:org``), the repository and the organisation
``acme`` linked to an agreement, the repository's webhook pointing at the running app with the
right content type, events and secret, its last delivery answered 2xx, and a worker that swept
the queue a moment ago. The bot is no owner of ``acme``: its webhooks are checked with
``org_doctor``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete
from tests.conftest import CLIENT_ID, CLIENT_SECRET, Live, LiveFactory, queue_env_for_tests

from undersign.agreements.service import AgreementService
from undersign.cli import main
from undersign.config import load_settings
from undersign.db import NamedLease
from undersign.emulator import GitHubEmulator
from undersign.emulator.apps import AppHook
from undersign.jobs.runner import periodic_purge
from undersign.migrations import alembic_config, head_revision
from undersign.runtime import build_runtime

BOT = "cla-bot"
REPO = "acme/widgets"
SLUG = "individual-cla"
WEBHOOK_SECRET = "test-webhook-secret"


@dataclass
class Doctor:
    live: Live
    env: dict[str, str]
    hook_id: int

    @property
    def state(self) -> GitHubEmulator:
        return self.live.emulator.state

    def run(self, *args: str, **env: str) -> Result:
        merged = {**self.env, **env}
        return CliRunner().invoke(main, ["doctor", *args], env=merged, catch_exceptions=False)

    def worker_swept(self) -> None:
        """What a running worker does every minute (and the purge lease it leaves)."""
        runtime = build_runtime(load_settings(self.env), self.live.database)
        try:
            periodic_purge(runtime.queue)
        finally:
            runtime.close()


def lines(result: Result) -> list[str]:
    return result.output.splitlines()


def failed(result: Result) -> list[str]:
    return [line for line in lines(result) if line.startswith("✗")]


@pytest.fixture
def doctor(live_factory: LiveFactory, tmp_path: Path) -> Doctor:
    state = live_factory.emulator.state
    state.add_user(BOT, name="CLA bot", email="bot@example.com")
    state.add_org("acme", admins=["alice"], members=[BOT])
    state.add_repo(REPO)
    state.add_collaborator(REPO, BOT, "admin")
    live = live_factory()
    # The test database is built from the models: record that it is at the newest revision.
    config = alembic_config(live.database.url)
    with live.database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.stamp(config, "head")
    with live.database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update(SLUG, "Individual CLA", "You agree.")
        agreements.link_repo(REPO, SLUG)
        agreements.link_org("acme", SLUG)
    hook_id = state.add_hook(
        REPO,
        f"{live.url}/webhooks/github",
        events=["pull_request", "issue_comment"],
        content_type="json",
        secret=WEBHOOK_SECRET,
    )
    status, _ = state.deliver_to_hook(
        hook_id, "ping", {"zen": "Design for failure.", "hook_id": hook_id}
    )
    assert status == 200
    env = {
        "UNDERSIGN_ENV": "test",
        "UNDERSIGN_INSTANCE_PATH": str(tmp_path / "doctor"),
        "UNDERSIGN_BASE_URL": live.url,
        "UNDERSIGN_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "UNDERSIGN_DATABASE_URL": live.database.url,
        "UNDERSIGN_GITHUB_URL": live.emulator.url,
        "UNDERSIGN_GITHUB_API_URL": live.emulator.api_url,
        "UNDERSIGN_GITHUB_CLIENT_ID": CLIENT_ID,
        "UNDERSIGN_GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "UNDERSIGN_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "UNDERSIGN_GITHUB_TOKEN": state.issue_token(BOT, scopes=["repo", "read:org"]),
        "UNDERSIGN_HTTP_TIMEOUT": "3",
        **queue_env_for_tests(),
    }
    found = Doctor(live, env, hook_id)
    found.worker_swept()
    return found


def test_a_healthy_instance_passes_every_check(doctor: Doctor) -> None:
    result = doctor.run()
    assert result.exit_code == 0, result.output
    assert failed(result) == []
    for expected in (
        "✓ settings (test)",
        "✓ database reachable",
        f"✓ database migrated (at {head_revision()})",
        "✓ queue reachable",
        "✓ worker seen recently",
        f"✓ GitHub token (acts as {BOT}; scopes repo, read:org)",
        f"✓ {REPO}: pull requests",
        f"✓ {REPO}: statuses",
        f"✓ {REPO}: webhook",
        f"✓ {REPO}: last delivery",
        "✓ org acme: repositories (1 visible)",
    ):
        assert expected in lines(result), result.output
    as_json = doctor.run("--json")
    report = json.loads(as_json.output)
    assert as_json.exit_code == 0 and report["ok"] is True
    # Only the org webhook goes unchecked: the bot is no owner of acme (see below).
    assert [c["name"] for c in report["checks"] if c["status"] != "ok"] == ["org acme: webhook"]
    assert all(c["status"] in ("ok", "skipped") for c in report["checks"])


def _bad_token(d: Doctor) -> dict[str, str]:
    return {"UNDERSIGN_GITHUB_TOKEN": "ghp_" + "x" * 36}


def _narrow_token(d: Doctor) -> dict[str, str]:
    return {"UNDERSIGN_GITHUB_TOKEN": d.state.issue_token(BOT, scopes=["read:org"])}


def _no_credentials(d: Doctor) -> dict[str, str]:
    return {"UNDERSIGN_GITHUB_TOKEN": ""}


def _bad_settings(d: Doctor) -> dict[str, str]:
    return {"UNDERSIGN_HTTP_TIMEOUT": "soon"}


def _unmigrated(d: Doctor) -> dict[str, str]:
    folder = Path(d.env["UNDERSIGN_INSTANCE_PATH"])
    folder.mkdir(parents=True, exist_ok=True)
    return {"UNDERSIGN_DATABASE_URL": f"sqlite:///{folder / 'empty.db'}"}


def _hook(**changes: Any) -> Callable[[Doctor], dict[str, str]]:
    def plant(d: Doctor) -> dict[str, str]:
        hook = d.state.hooks[d.hook_id]
        for key, value in changes.items():
            setattr(hook, key, value)
        return {}

    return plant


def _no_hook(d: Doctor) -> dict[str, str]:
    del d.state.hooks[d.hook_id]
    return {}


def _failed_delivery(d: Doctor) -> dict[str, str]:
    d.state.hooks[d.hook_id].secret = "another-secret"  # the app answers 401
    d.state.deliver_to_hook(d.hook_id, "pull_request", {"action": "opened"})
    d.state.hooks[d.hook_id].secret = WEBHOOK_SECRET
    return {}


def _unreadable_repo(d: Doctor) -> dict[str, str]:
    d.state.add_repo("alice/secret", private=True)
    with d.live.database.session() as session:
        AgreementService(session).link_repo("alice/secret", SLUG)
    return {}


def _read_only_bot(d: Doctor) -> dict[str, str]:
    d.state.add_repo("acme/gadgets")
    d.state.add_collaborator("acme/gadgets", BOT, "read")
    with d.live.database.session() as session:
        AgreementService(session).link_repo("acme/gadgets", SLUG)
    return {}


def _unknown_org(d: Doctor) -> dict[str, str]:
    with d.live.database.session() as session:
        AgreementService(session).link_org("ghost-org", SLUG)
    return {}


def _all_bots(d: Doctor) -> dict[str, str]:
    with d.live.database.session() as session:
        AgreementService(session).set_bot_policy(SLUG, all_bots=True)
    return {}


@pytest.mark.parametrize(
    ("plant", "line"),
    [
        (_bad_settings, "✗ settings: UNDERSIGN_HTTP_TIMEOUT: expected a whole number"),
        (_unmigrated, "✗ database migrated: the schema is at nothing"),
        (_bad_token, "✗ GitHub token: GitHub refuses the token (GitHub answered 401"),
        (_narrow_token, f"✗ GitHub token: {BOT}'s token lacks the scope public_repo, repo:status"),
        (_no_credentials, "✗ GitHub credentials: neither a token nor a GitHub App is configured."),
        (_unreadable_repo, "✗ alice/secret: pull requests: the bot cannot see the repository."),
        (_read_only_bot, "✗ acme/gadgets: statuses: the bot may not write commit statuses"),
        (_no_hook, f"✗ {REPO}: webhook: the repository has no webhook."),
        (_hook(url="https://old.example.com/hook"), f"✗ {REPO}: webhook: its URL is https://old"),
        (_hook(content_type="form"), f"✗ {REPO}: webhook: its content type is form, not json"),
        (
            _hook(events=["push"]),
            f"✗ {REPO}: webhook: it does not send issue_comment, pull_request",
        ),
        (_hook(secret=None), f"✗ {REPO}: webhook: it has no secret."),
        (_failed_delivery, f"✗ {REPO}: last delivery: pull_request at "),
        (_unknown_org, "✗ org ghost-org: repositories: GitHub shows the bot no organisation"),
        (_all_bots, f"✗ agreement {SLUG}: bots: every bot is exempt (risky"),
    ],
)
def test_each_misconfiguration_is_named_with_its_fix(
    doctor: Doctor, plant: Callable[[Doctor], dict[str, str]], line: str
) -> None:
    env = plant(doctor)
    result = doctor.run(**env)
    assert result.exit_code == 1, result.output
    named = [f for f in failed(result) if f.startswith(line)]
    assert named, result.output
    assert all(" Fix: " in f for f in failed(result)), result.output
    report = json.loads(doctor.run("--json", **env).output)
    assert report["ok"] is False
    assert any(c["status"] == "fail" and c["fix"] for c in report["checks"])


def test_a_missing_worker_is_named(doctor: Doctor) -> None:
    with doctor.live.database.session() as session:
        session.execute(delete(NamedLease))
    result = doctor.run()
    assert result.exit_code == 1
    assert "✗ worker seen recently: no queue worker has ever run here." in result.output


def test_hooks_the_bot_may_not_see_are_not_checked_not_failed(doctor: Doctor) -> None:
    doctor.state.add_collaborator(REPO, BOT, "write")  # no longer an admin
    result = doctor.run()
    assert result.exit_code == 0, result.output
    assert f"- {REPO}: webhook: not checked: GitHub shows webhooks to repository admins only" in (
        result.output
    )
    # The baseline token has no admin:org_hook: GitHub shows it no organisation webhook.
    assert (
        "- org acme: webhook: not checked: the token lacks the admin:org_hook scope, without "
        "which GitHub shows no organisation webhook; check it by hand"
    ) in result.output
    # With the scope but not an owner: 404 too, said so.
    owner_scopes = doctor.state.issue_token(BOT, scopes=["repo", "read:org", "admin:org_hook"])
    result = doctor.run(UNDERSIGN_GITHUB_TOKEN=owner_scopes)
    assert result.exit_code == 0, result.output
    assert (
        f"- org acme: webhook: not checked: GitHub shows acme's webhooks to its owners only, "
        f"and {BOT} is not one"
    ) in result.output


def test_a_webhook_is_ours_whatever_the_case_of_its_host_but_not_with_a_trailing_slash(
    doctor: Doctor,
) -> None:
    """A hook saved as ``http://LocalHost:PORT/webhooks/github`` delivers here: it is the
    one checked (not the CI hook listed before it) and its URL is right. With a trailing
    slash the endpoint answers 404: that hook is named as wrong, not the CI hook listed
    first (which would send the operator to the wrong one)."""
    port = doctor.live.url.rsplit(":", 1)[1]
    base = f"http://localhost:{port}"
    del doctor.state.hooks[doctor.hook_id]
    doctor.state.add_hook(REPO, "https://ci.example.com/hook")
    ours = doctor.state.add_hook(
        REPO,
        f"http://LocalHost:{port}/webhooks/github",
        events=["pull_request", "issue_comment"],
        content_type="json",
        secret=WEBHOOK_SECRET,
    )
    result = doctor.run(UNDERSIGN_BASE_URL=base)
    assert f"✓ {REPO}: webhook" in lines(result), result.output
    assert result.exit_code == 0, result.output

    doctor.state.hooks[ours].url = f"{base}/webhooks/github/"
    slash = doctor.run(UNDERSIGN_BASE_URL=base)
    assert slash.exit_code == 1
    assert any(
        f.startswith(
            f"✗ {REPO}: webhook: its URL is {base}/webhooks/github/, not {base}/webhooks/github"
        )
        for f in failed(slash)
    ), slash.output
    assert "ci.example.com" not in slash.output


# --- organisation webhooks (token mode) -------------------------------------------------------


@pytest.fixture
def org_doctor(doctor: Doctor) -> Doctor:
    """The baseline, with the bot an owner of acme, a token that may read its webhooks
    (``admin:org_hook``) and an organisation webhook that delivered a ping."""
    state = doctor.state
    state.add_org_member("acme", BOT, admin=True)
    doctor.env["UNDERSIGN_GITHUB_TOKEN"] = state.issue_token(
        BOT, scopes=["repo", "read:org", "admin:org_hook"]
    )
    doctor.hook_id = state.add_org_hook(
        "acme",
        f"{doctor.live.url}/webhooks/github",
        events=["pull_request", "issue_comment"],
        content_type="json",
        secret=WEBHOOK_SECRET,
    )
    status, _ = state.deliver_to_hook(doctor.hook_id, "ping", {"zen": "Speak like a human."})
    assert status == 200
    return doctor


def test_an_organisations_webhook_is_checked_like_a_repositorys(org_doctor: Doctor) -> None:
    result = org_doctor.run()
    assert result.exit_code == 0, result.output
    assert "✓ org acme: webhook" in lines(result), result.output
    assert "✓ org acme: last delivery" in lines(result), result.output


def _org_hook_failed_delivery(d: Doctor) -> dict[str, str]:
    d.state.hooks[d.hook_id].secret = "another-secret"  # the app answers 401
    d.state.deliver_to_hook(d.hook_id, "pull_request", {"action": "opened"})
    d.state.hooks[d.hook_id].secret = WEBHOOK_SECRET
    return {}


def _no_org_hook_and_a_repository_without_one(d: Doctor) -> dict[str, str]:
    _no_hook(d)
    _gadgets(d)
    return {}


@pytest.mark.parametrize(
    ("plant", "line"),
    [
        (
            _no_org_hook_and_a_repository_without_one,
            "✗ org acme: webhook: the organisation has no webhook: undersign hears only",
        ),
        (_hook(url="https://old.example.com/hook"), "✗ org acme: webhook: its URL is https://old"),
        (_hook(events=["push"]), "✗ org acme: webhook: it does not send issue_comment, pull_re"),
        (_hook(secret=None), "✗ org acme: webhook: it has no secret."),
        (_org_hook_failed_delivery, "✗ org acme: last delivery: pull_request at "),
    ],
)
def test_each_organisation_webhook_fault_is_named_with_its_fix(
    org_doctor: Doctor, plant: Callable[[Doctor], dict[str, str]], line: str
) -> None:
    plant(org_doctor)
    result = org_doctor.run()
    assert result.exit_code == 1, result.output
    assert [f for f in failed(result) if f.startswith(line) and " Fix: " in f], result.output
    if plant is _no_org_hook_and_a_repository_without_one:
        assert "add one (acme's Settings → Webhooks, as an owner)" in result.output


def _gadgets(d: Doctor, **hook: Any) -> None:
    """A second repository of acme, not linked on its own; with ``hook``, a webhook of its
    own (right, but for what ``hook`` changes)."""
    d.state.add_repo("acme/gadgets")
    d.state.add_collaborator("acme/gadgets", BOT, "admin")
    if hook:
        right: dict[str, Any] = {
            "url": f"{d.live.url}/webhooks/github",
            "events": ["pull_request", "issue_comment"],
            "content_type": "json",
            "secret": WEBHOOK_SECRET,
        }
        d.state.add_hook("acme/gadgets", **{**right, **hook})


def _archived(d: Doctor, full_name: str) -> None:
    repo = d.state.find_repo(full_name)
    assert repo is not None
    repo.archived = True


def test_an_organisation_without_a_webhook_warns_when_each_repository_has_its_own(
    org_doctor: Doctor,
) -> None:
    """No organisation webhook, but every repository of acme that takes pull requests (an
    archived one takes none) has its own: only their events arrive. A warning, not a
    failure; with no such repository left, nothing would be heard: a failure again."""
    _no_hook(org_doctor)
    _gadgets(org_doctor, secret=WEBHOOK_SECRET)
    org_doctor.state.add_repo("acme/attic")  # no webhook, and archived
    _archived(org_doctor, "acme/attic")
    result = org_doctor.run()
    assert result.exit_code == 0, result.output
    assert (
        "✓ org acme: webhook (warning: no organisation webhook, but each of its 2 repositories "
        "(acme/gadgets, acme/widgets) has its own: only their events arrive; a new repository "
        "of acme is not heard until it gets a webhook or acme gets one)"
    ) in lines(result), result.output
    assert not any("org acme: last delivery" in line for line in lines(result))
    report = json.loads(org_doctor.run("--json").output)
    assert report["ok"] is True
    [check] = [c for c in report["checks"] if c["name"] == "org acme: webhook"]
    assert check["status"] == "ok" and check["problem"].startswith("warning: ")

    _archived(org_doctor, "acme/gadgets")
    assert (
        "✓ org acme: webhook (warning: no organisation webhook, but its only repository, "
        "acme/widgets, has its own: only its events arrive; a new repository of acme is not "
        "heard until it gets a webhook or acme gets one)"
    ) in lines(org_doctor.run())
    _archived(org_doctor, "acme/widgets")
    nothing = org_doctor.run()
    assert nothing.exit_code == 1
    assert (
        "✗ org acme: webhook: the organisation has no webhook: undersign hears only those of "
        "its repositories that have one of their own. Fix: add one"
    ) in nothing.output


@pytest.mark.parametrize(
    ("plant", "named"),
    [
        pytest.param(
            lambda d: _gadgets(d),
            "acme/gadgets (no webhook of its own points at this instance)",
            id="none",
        ),
        pytest.param(
            lambda d: _gadgets(d, url="https://old.example.com/hook"),
            "acme/gadgets (no webhook of its own points at this instance)",
            id="elsewhere",
        ),
        pytest.param(
            lambda d: _gadgets(d, secret=None),
            "acme/gadgets (its webhook: it has no secret)",
            id="no-secret",
        ),
        pytest.param(
            lambda d: _gadgets(d, events=["push"]),
            "acme/gadgets (its webhook: it does not send issue_comment, pull_request)",
            id="events",
        ),
    ],
)
def test_an_organisation_without_a_webhook_fails_naming_each_repository_without_one(
    org_doctor: Doctor, plant: Callable[[Doctor], None], named: str
) -> None:
    _no_hook(org_doctor)
    plant(org_doctor)
    result = org_doctor.run()
    assert result.exit_code == 1, result.output
    [line] = [f for f in failed(result) if f.startswith("✗ org acme: webhook: ")]
    assert line.startswith(
        "✗ org acme: webhook: the organisation has no webhook: undersign hears only those of "
        f"its repositories that have one of their own, and not every one does: {named}. Fix: "
    ), line
    assert "acme/widgets" not in line  # its own webhook is right
    assert line.endswith(" Or give each of those repositories its own.")


# --- App mode ------------------------------------------------------------------------------------


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def app_doctor(doctor: Doctor) -> tuple[Doctor, int, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app = doctor.state.apps.register_app("acme-cla", public, owner_login="acme")
    app_id = int(app["id"])
    doctor.state.apps.hooks[app_id] = AppHook(
        f"{doctor.live.url}/webhooks/github", WEBHOOK_SECRET, True
    )
    doctor.env.update(
        UNDERSIGN_GITHUB_TOKEN="",
        UNDERSIGN_GITHUB_APP_ID=str(app_id),
        UNDERSIGN_GITHUB_APP_PRIVATE_KEY=_pem(key),
    )
    return doctor, app_id, key


def test_app_mode_checks_the_jwt_installations_and_the_apps_webhook(
    app_doctor: tuple[Doctor, int, rsa.RSAPrivateKey],
) -> None:
    doctor, app_id, _ = app_doctor
    nowhere = doctor.run()
    assert nowhere.exit_code == 1
    assert any("✗ App installations: the app is installed nowhere." in f for f in failed(nowhere))
    assert "/apps/acme-cla/installations/new" in nowhere.output
    doctor.state.apps.install(app_id, "acme")
    result = doctor.run()
    assert result.exit_code == 0, result.output
    for expected in ("✓ GitHub App (acme-cla, id", "✓ installation on acme", "✓ App webhook"):
        assert any(line.startswith(expected) for line in lines(result)), result.output
    assert f"✓ {REPO}: pull requests" in lines(result)
    # An organisation link the app is not installed on.
    with doctor.live.database.session() as session:
        AgreementService(session).link_org("octo-org", SLUG)
    doctor.state.add_org("octo-org", admins=["bob"])
    uninstalled = doctor.run()
    assert uninstalled.exit_code == 1
    assert any(
        f.startswith("✗ org octo-org: repositories: GitHub shows the bot no organisation")
        and "install the app on octo-org" in f
        for f in failed(uninstalled)
    ), uninstalled.output
    doctor.state.apps.install(app_id, "octo-org")
    assert "✓ org octo-org: repositories (0 visible)" in lines(doctor.run())


def test_app_mode_names_a_wrong_key_and_missing_permissions_and_events(
    app_doctor: tuple[Doctor, int, rsa.RSAPrivateKey],
) -> None:
    doctor, app_id, _ = app_doctor
    doctor.state.apps.install(app_id, "acme")
    [inst] = [i for i in doctor.state.apps.installations.values() if i.app_id == app_id]
    inst.permissions["statuses"] = "read"
    inst.events.remove("merge_group")
    result = doctor.run()
    assert result.exit_code == 1
    assert any(
        f.startswith(
            "✗ installation on acme: the app lacks the permission statuses: write and is not "
            "subscribed to merge_group."
        )
        for f in failed(result)
    ), result.output
    doctor.state.apps.suspend(inst.id)
    [line] = [f for f in failed(doctor.run()) if f.startswith("✗ installation on acme")]
    assert line.startswith("✗ installation on acme: suspended by acme since 20"), line
    assert "GitHub refuses its tokens" in line and "unsuspend it where it was" in line
    doctor.state.apps.unsuspend(inst.id)
    doctor.state.apps.hooks[app_id].secret = None
    doctor.state.apps.hooks[app_id].url = "https://old.example.com/hook"
    assert any(f.startswith("✗ App webhook: its URL is https://old") for f in failed(doctor.run()))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = doctor.run(UNDERSIGN_GITHUB_APP_PRIVATE_KEY=_pem(other))
    assert wrong.exit_code == 1
    assert any(f.startswith("✗ GitHub App: GitHub refuses the app's JWT") for f in failed(wrong))
