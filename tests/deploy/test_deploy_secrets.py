"""The secret files of docs/deploy.md section 4 and the webhook secret rotation of section 11,
run as documented (in a temporary /etc/undersign, as the invoking user instead of undersign):
the files are private, and the settings systemd would pass read the new secret and the
previous one during the rotation, and only the new one after it."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.support.docs import REPO_ROOT, replace_all, shell_block, systemd_environment_file

from undersign.config import Settings, load_settings

GENERATED = ("secret_key", "webhook_secret", "metrics_token")


def _run(doc_block: str, etc: Path) -> None:
    script = replace_all(
        shell_block("deploy.md", doc_block), [("sudo ", ""), ("/etc/undersign", str(etc))]
    )
    # Run as the invoking user: not every block changes user, and an owner needs root.
    script = script.replace("-u undersign ", "").replace(" -o undersign -g undersign", "")
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )


def _settings(etc: Path, tmp_path: Path) -> Settings:
    """What a unit reads: the environment file as systemd parses it, secrets from the files."""
    env_file = etc / "undersign.env"
    parsed = systemd_environment_file(env_file.read_text(encoding="utf-8"))
    environ = {name: value.replace("/etc/undersign", str(etc)) for name, value in parsed.items()}
    environ["UNDERSIGN_INSTANCE_PATH"] = str(tmp_path / "instance")
    return load_settings(environ)


def _install(tmp_path: Path) -> Path:
    etc = tmp_path / "etc-undersign"
    etc.mkdir()
    (etc / "undersign.env").write_text(
        (REPO_ROOT / "deploy" / "undersign.env").read_text(encoding="utf-8")
    )
    _run("secrets", etc)
    # The two GitHub gives, pasted as section 4 says (each followed by Enter).
    (etc / "secrets" / "github_client_secret").write_text("c" * 40 + "\n")
    (etc / "secrets" / "github_token").write_text("ghp_" + "t" * 36 + "\n")
    return etc


def test_the_generated_secrets_are_private_distinct_and_accepted(tmp_path: Path) -> None:
    etc = _install(tmp_path)
    secrets = etc / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for name in (*GENERATED, "database_url"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
    values = {name: (secrets / name).read_text().strip() for name in GENERATED}
    assert len(set(values.values())) == len(GENERATED)
    settings = _settings(etc, tmp_path)
    assert settings.is_production
    assert settings.secret_key == values["secret_key"]
    assert settings.webhook_secret == values["webhook_secret"]
    assert settings.metrics_token == values["metrics_token"]
    assert settings.database_url == "postgresql+psycopg:///undersign"


def test_the_webhook_secret_rotation_keeps_the_old_one_until_it_is_dropped(
    tmp_path: Path,
) -> None:
    etc = _install(tmp_path)
    old = _settings(etc, tmp_path).webhook_secret
    assert old and _settings(etc, tmp_path).webhook_secret_previous is None

    _run("rotate-begin", etc)
    during = _settings(etc, tmp_path)
    assert during.webhook_secret_previous == old
    assert during.webhook_secret and during.webhook_secret != old
    previous = etc / "secrets" / "webhook_secret_previous"
    assert stat.S_IMODE(previous.stat().st_mode) == 0o600

    _run("rotate-end", etc)
    after = _settings(etc, tmp_path)
    assert after.webhook_secret == during.webhook_secret
    assert after.webhook_secret_previous is None
    assert not previous.exists()
