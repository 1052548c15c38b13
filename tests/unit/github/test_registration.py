"""The registered GitHub App's credentials: stored encrypted, read back, applied to the
settings (at start-up, and by a running process's watch), and what happens when
UNDERSIGN_SECRET_KEY changed since."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event, select

from undersign.config import Settings, load_settings
from undersign.db import Database
from undersign.github import registration
from undersign.github.models import AppRegistration
from undersign.github.registration import RegistrationError

KEY = "a-secret-key-for-these-tests-0123456789"


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def conversion(pem: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": 901,
        "slug": "acme-cla",
        "client_id": "Iv23liRegistered01",
        "client_secret": "client-secret-from-github-0123456789",
        "webhook_secret": "webhook-secret-from-github-0123",
        "pem": pem,
        "owner": {"login": "acme"},
        "html_url": "https://github.com/apps/acme-cla",
    }
    body.update(changes)
    return body


def settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(
        {
            "UNDERSIGN_ENV": "test",
            "UNDERSIGN_INSTANCE_PATH": str(tmp_path),
            "UNDERSIGN_SECRET_KEY": KEY,
            "UNDERSIGN_WEBHOOK_SECRET": "configured-webhook-secret",
            **env,
        }
    )


def test_secrets_are_stored_encrypted_and_read_back(database: Database, pem: str) -> None:
    stored = registration.store(database, KEY, conversion(pem), registered_by=7)
    with database.session() as session:
        row = session.scalars(select(AppRegistration)).one()
        sealed = (
            row.client_secret_encrypted,
            row.webhook_secret_encrypted,
            row.private_key_encrypted,
        )
    assert row.registered_by == 7 and row.owner_login == "acme"
    for secret, cipher in zip(
        (stored.client_secret, stored.webhook_secret, pem), sealed, strict=True
    ):
        assert secret and cipher and secret not in cipher
    assert registration.load(database, KEY) == stored
    assert "secret" not in repr(stored) and "PRIVATE" not in repr(stored)
    # A second registration replaces the first.
    registration.store(database, KEY, conversion(pem, id=902, slug="acme-cla-2"), None)
    again = registration.load(database, KEY)
    assert again is not None and again.app_id == 902
    registration.forget(database)
    assert registration.load(database, KEY) is None


def test_a_changed_secret_key_is_named_and_leaves_the_settings_alone(
    database: Database, pem: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registration.store(database, KEY, conversion(pem), None)
    with pytest.raises(RegistrationError, match="UNDERSIGN_SECRET_KEY changed"):
        registration.load(database, "another-key-entirely-0123456789abcdef")
    rotated = settings(tmp_path, UNDERSIGN_SECRET_KEY="another-key-entirely-0123456789abcdef")
    assert registration.with_registered_app(rotated, database) is rotated
    assert "UNDERSIGN_SECRET_KEY changed" in caplog.text


def test_the_registered_app_is_applied_unless_the_environment_names_one(
    database: Database, pem: str, tmp_path: Path
) -> None:
    base = settings(tmp_path, UNDERSIGN_GITHUB_TOKEN="ghp_configured")
    assert registration.with_registered_app(base, database) is base  # nothing registered
    registration.store(database, KEY, conversion(pem), None)
    applied = registration.with_registered_app(base, database)
    assert applied.app_mode and applied.github_app_id == "901"
    assert applied.github_client_id == "Iv23liRegistered01"
    assert applied.webhook_secret == "webhook-secret-from-github-0123"
    assert applied.webhook_secret_previous == "configured-webhook-secret"
    named = applied.replace(github_app_id="555")
    assert registration.with_registered_app(named, database) is named
    hookless = registration.RegisteredApp(901, "acme-cla", "Iv23li", "acme", "", "s", None, pem)
    assert registration.apply(base, hookless).webhook_secret == "configured-webhook-secret"


def test_a_database_without_the_table_leaves_the_settings_alone(tmp_path: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        base = settings(tmp_path)
        assert registration.with_registered_app(base, empty) is base
    finally:
        empty.dispose()


def test_names_codes_and_the_manifest(tmp_path: Path) -> None:
    assert registration.check_name("  Acme CLA ") == "Acme CLA"
    for bad in ("", "-leading", "x" * 35, "<script>"):
        with pytest.raises(RegistrationError):
            registration.check_name(bad)
    assert registration.check_org("") is None and registration.check_org("acme-co") == "acme-co"
    with pytest.raises(RegistrationError):
        registration.check_org("acme/../x")
    config = settings(tmp_path, UNDERSIGN_BASE_URL="https://cla.example.org")
    with pytest.raises(RegistrationError):
        registration.convert(config, "../../user")  # never reaches a URL
    manifest = registration.manifest(config, "Acme CLA")
    assert manifest["hook_attributes"] == {
        "url": "https://cla.example.org/webhooks/github",
        "active": True,
    }
    assert manifest["redirect_url"] == "https://cla.example.org/setup/callback"
    assert manifest["callback_urls"] == ["https://cla.example.org/login/callback"]
    assert manifest["public"] is False and "setup_url" not in manifest
    assert registration.new_app_url(config, "acme") == (
        "https://github.com/organizations/acme/settings/apps/new"
    )
    assert registration.new_app_url(config, None) == "https://github.com/settings/apps/new"


class Reads:
    """Counts the statements that read ``app_registrations`` (a listener on the real engine)."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        event.listen(database.engine, "before_cursor_execute", self._seen)
        self._engine = database.engine

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "app_registrations" in statement:
            self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
def reads(database: Database) -> Iterator[Reads]:
    counter = Reads(database)
    yield counter
    counter.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_watch_takes_up_an_app_registered_later_reading_at_most_every_interval(
    database: Database, pem: str, tmp_path: Path, reads: Reads
) -> None:
    base = settings(tmp_path, UNDERSIGN_GITHUB_TOKEN="ghp_configured")
    clock = Clock()
    watch = registration.RegistrationWatch(base, database, interval=5.0, clock=clock)
    assert watch.settings is base and reads.count == 1  # the start-up read
    registration.store(database, KEY, conversion(pem), None)
    reads.count = 0
    clock.now += 4.9
    assert not watch.check() and watch.settings is base and reads.count == 0
    clock.now += 0.2
    assert watch.check() and watch.settings.github_app_id == "901"
    assert watch.settings.github_client_id == "Iv23liRegistered01"
    assert watch.settings.webhook_secret == "webhook-secret-from-github-0123"
    assert watch.settings.webhook_secret_previous == "configured-webhook-secret"
    # Nothing changed: the next read costs one small query, nothing decrypted or replaced.
    applied, reads.count = watch.settings, 0
    clock.now += 5.0
    assert not watch.check() and watch.settings is applied and reads.count == 1
    # Registered again (a new app), then forgotten: each taken up at the next read.
    registration.store(database, KEY, conversion(pem, id=902, slug="acme-cla-2"), None)
    assert watch.check(now=True) and watch.settings.github_app_id == "902"
    registration.forget(database)
    clock.now += 5.0
    assert watch.check() and watch.settings is base


def test_a_watch_never_reads_when_the_environment_names_an_app(
    database: Database, pem: str, tmp_path: Path, reads: Reads
) -> None:
    named = settings(tmp_path).replace(github_app_id="555", github_app_private_key=pem)
    registration.store(database, KEY, conversion(pem), None)
    reads.count = 0
    clock = Clock()
    watch = registration.RegistrationWatch(named, database, interval=5.0, clock=clock)
    clock.now += 60
    assert not watch.check() and not watch.check(now=True)
    assert watch.settings is named and reads.count == 0


def test_a_watch_names_secrets_that_do_not_decrypt_once(
    database: Database, pem: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rotated = settings(tmp_path, UNDERSIGN_SECRET_KEY="another-key-entirely-0123456789abcdef")
    clock = Clock()
    watch = registration.RegistrationWatch(rotated, database, interval=5.0, clock=clock)
    registration.store(database, KEY, conversion(pem), None)
    for _ in range(3):
        clock.now += 5.0
        assert not watch.check() and watch.settings is rotated
    assert caplog.text.count("UNDERSIGN_SECRET_KEY changed") == 1


def test_threads_checking_at_once_read_once(
    database: Database, pem: str, tmp_path: Path, reads: Reads
) -> None:
    base = settings(tmp_path)
    clock = Clock()
    watch = registration.RegistrationWatch(base, database, interval=5.0, clock=clock)
    registration.store(database, KEY, conversion(pem), None)
    clock.now += 5.0
    reads.count = 0
    changed: list[bool] = []
    threads = [threading.Thread(target=lambda: changed.append(watch.check())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(changed) == [False] * 7 + [True]
    assert watch.settings.github_app_id == "901"
    assert reads.count == 2  # the app's id, then the app itself: by one thread
