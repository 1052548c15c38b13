"""deploy/undersign.env as systemd reads it: every line a variable config.py knows, every
value valid, no comment swallowed into a value (docs/deploy.md section 4)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.support.docs import REPO_ROOT, replace_all, shell_block, systemd_environment_file

from undersign.config import VARIABLES, ConfigError, Settings, load_settings

TEMPLATE = REPO_ROOT / "deploy" / "undersign.env"
SECRETS_DIR = "/etc/undersign/secrets/"
SECRET_VALUES = {
    "secret_key": "k" * 64,
    "database_url": "postgresql+psycopg:///undersign",
    "github_client_secret": "0123456789abcdef0123456789abcdef01234567",
    "webhook_secret": "w" * 64,
    "metrics_token": "m" * 64,
    "github_token": "ghp_0123456789abcdefghijABCDEFGHIJ012345",
}


def test_the_parser_reads_like_systemd() -> None:
    """What the issue met: systemd keeps an inline comment as part of the value."""
    parsed = systemd_environment_file(
        '# comment\n; also a comment\n  A = 1       # nginx in front\nB="two  words"  \n'
        "C='single # kept'\nD=  spaced  \nE=join\\\ned\nnot an assignment\n"
    )
    assert parsed == {
        "A": "1       # nginx in front",
        "B": "two  words",
        "C": "single # kept",
        "D": "spaced",
        "E": "joined",
    }
    with pytest.raises(ConfigError, match="UNDERSIGN_TRUSTED_PROXIES: expected a whole number"):
        load_settings(
            {
                "UNDERSIGN_ENV": "test",
                "UNDERSIGN_SECRET_KEY": "k" * 40,
                "UNDERSIGN_TRUSTED_PROXIES": parsed["A"],
            }
        )


def _run_documented_edits(env_file: Path, *blocks: tuple[str, str]) -> None:
    """The doc's commands that edit the environment file, run on a copy of the template."""
    env_file.write_text(TEMPLATE.read_text(encoding="utf-8"))
    for doc, name in blocks:
        script = replace_all(
            shell_block(doc, name),
            [("sudo ", ""), ("/etc/undersign/undersign.env", str(env_file))],
        )
        subprocess.run(
            ["bash", "-euc", script.replace("HOST=cla.example.org", "HOST=cla.test.invalid")],
            check=True,
            timeout=30,
            stdout=subprocess.DEVNULL,
        )


def _load(env_file: Path, tmp_path: Path) -> Settings:
    """Settings from the file as systemd passes it, the secret files made in ``tmp_path``."""
    parsed = systemd_environment_file(env_file.read_text(encoding="utf-8"))
    known = {var.name for var in VARIABLES}
    secret = {f"{var.name}_FILE" for var in VARIABLES if var.secret}
    assert set(parsed) <= known | secret, set(parsed) - known - secret
    for name, value in parsed.items():
        assert "#" not in value, f"{name}: a comment became part of the value: {value!r}"
        assert value == value.strip() and value, name

    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    environ = {}
    for name, value in parsed.items():
        if name.endswith("_FILE"):
            assert value.startswith(SECRETS_DIR), (name, value)
            file_name = value[len(SECRETS_DIR) :]
            (secrets_dir / file_name).write_text(SECRET_VALUES[file_name] + "\n")
            value = str(secrets_dir / file_name)
        environ[name] = value
    environ["UNDERSIGN_INSTANCE_PATH"] = str(tmp_path / "instance")
    return load_settings(environ)


def test_every_template_line_is_a_known_variable_with_a_valid_value(tmp_path: Path) -> None:
    env_file = tmp_path / "undersign.env"
    _run_documented_edits(env_file, ("deploy.md", "env-host"))
    settings = _load(env_file, tmp_path)
    assert settings.is_production
    assert not settings.app_mode
    assert settings.base_url == "https://cla.test.invalid"
    assert settings.trusted_proxies == 1
    assert settings.queue_url == "redis://127.0.0.1:6379/0"
    assert settings.database_url == SECRET_VALUES["database_url"]
    assert settings.github_token == SECRET_VALUES["github_token"]
    assert settings.metrics_token == SECRET_VALUES["metrics_token"]
    assert settings.webhook_secret == SECRET_VALUES["webhook_secret"]


def test_the_documented_switch_to_github_app_mode(tmp_path: Path) -> None:
    env_file = tmp_path / "undersign.env"
    _run_documented_edits(env_file, ("deploy.md", "env-host"), ("quickstart.md", "app-env"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    SECRET_VALUES["app.pem"] = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    try:
        settings = _load(env_file, tmp_path)
    finally:
        del SECRET_VALUES["app.pem"]
    assert settings.app_mode
    assert settings.github_app_id == "123456"
    assert settings.github_token is None
    assert settings.github_client_id == "Iv23liAbCdEfGhIjKlMn"
