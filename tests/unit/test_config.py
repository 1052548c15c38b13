"""Settings: every variable from the environment, clear errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from undersign.config import VARIABLES, ConfigError, env_example, load_settings

PRODUCTION = {
    "UNDERSIGN_SECRET_KEY": "x" * 40,
    "UNDERSIGN_GITHUB_CLIENT_ID": "Ov23li",
    "UNDERSIGN_GITHUB_CLIENT_SECRET": "client-secret-0123456789",
    "UNDERSIGN_WEBHOOK_SECRET": "hook-secret-0123456789",
    "UNDERSIGN_GITHUB_TOKEN": "ghp_bot",
    "UNDERSIGN_METRICS_TOKEN": "metrics-token",
}


def test_production_is_the_default_and_refuses_to_start_without_a_secret_key(tmp_path: Path):
    env = {k: v for k, v in PRODUCTION.items() if k != "UNDERSIGN_SECRET_KEY"}
    env["UNDERSIGN_INSTANCE_PATH"] = str(tmp_path)
    with pytest.raises(ConfigError, match="UNDERSIGN_SECRET_KEY"):
        load_settings(env)
    assert not (tmp_path / "secret_key").exists()


def test_production_refuses_a_short_secret_key(tmp_path: Path):
    env = {
        **PRODUCTION,
        "UNDERSIGN_SECRET_KEY": "changeme",
        "UNDERSIGN_INSTANCE_PATH": str(tmp_path),
    }
    with pytest.raises(ConfigError, match="UNDERSIGN_SECRET_KEY: too short"):
        load_settings(env)


@pytest.mark.parametrize(
    "missing",
    ["UNDERSIGN_GITHUB_CLIENT_ID", "UNDERSIGN_GITHUB_CLIENT_SECRET", "UNDERSIGN_WEBHOOK_SECRET"],
)
def test_production_requires_github_credentials(missing: str, tmp_path: Path):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    env["UNDERSIGN_INSTANCE_PATH"] = str(tmp_path)
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_development_key_is_generated_once_and_kept(tmp_path: Path):
    env = {"UNDERSIGN_ENV": "development", "UNDERSIGN_INSTANCE_PATH": str(tmp_path)}
    first = load_settings(env)
    second = load_settings(env)
    assert first.secret_key and len(first.secret_key) >= 40
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_secrets_can_come_from_files(tmp_path: Path):
    secret_file = tmp_path / "key"
    secret_file.write_text("k" * 48 + "\n")
    env = {**PRODUCTION, "UNDERSIGN_INSTANCE_PATH": str(tmp_path)}
    del env["UNDERSIGN_SECRET_KEY"]
    env["UNDERSIGN_SECRET_KEY_FILE"] = str(secret_file)
    assert load_settings(env).secret_key == "k" * 48


def test_unreadable_secret_file_names_the_variable(tmp_path: Path):
    env = {**PRODUCTION, "UNDERSIGN_WEBHOOK_SECRET_FILE": str(tmp_path / "nope")}
    del env["UNDERSIGN_WEBHOOK_SECRET"]
    with pytest.raises(ConfigError, match="UNDERSIGN_WEBHOOK_SECRET_FILE"):
        load_settings(env)


def test_both_value_and_file_is_ambiguous(tmp_path: Path):
    (tmp_path / "s").write_text("x")
    env = {**PRODUCTION, "UNDERSIGN_WEBHOOK_SECRET_FILE": str(tmp_path / "s")}
    with pytest.raises(ConfigError, match="not both"):
        load_settings(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("UNDERSIGN_BASE_URL", "ftp://example.com", "UNDERSIGN_BASE_URL"),
        ("UNDERSIGN_BASE_URL", "example.com", "UNDERSIGN_BASE_URL"),
        ("UNDERSIGN_GITHUB_API_URL", "https://ghe.example.com/api/v3?x=1", "query"),
        ("UNDERSIGN_SESSION_LIFETIME", "12h", "UNDERSIGN_SESSION_LIFETIME"),
        ("UNDERSIGN_HTTP_TIMEOUT", "-1", "UNDERSIGN_HTTP_TIMEOUT"),
        ("UNDERSIGN_ENV", "staging", "UNDERSIGN_ENV"),
        ("UNDERSIGN_LOG_LEVEL", "LOUD", "UNDERSIGN_LOG_LEVEL"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str, message: str, tmp_path: Path):
    env = {**PRODUCTION, "UNDERSIGN_INSTANCE_PATH": str(tmp_path), name: value}
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_defaults_and_derived_values(tmp_path: Path):
    settings = load_settings({**PRODUCTION, "UNDERSIGN_INSTANCE_PATH": str(tmp_path)})
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.callback_url == "http://127.0.0.1:8000/login/callback"
    assert settings.github_url == "https://github.com"
    assert settings.github_api_url == "https://api.github.com"
    assert settings.github_issuer == "https://github.com/login/oauth"
    assert settings.status_context == "license/cla"
    assert settings.session_lifetime == 12 * 3600
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'undersign.sqlite3'}"


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_sqlite_urls_with_or_without_a_driver_are_accepted(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}:///{tmp_path / 'x.sqlite3'}"
    settings = load_settings({"UNDERSIGN_ENV": "test", "UNDERSIGN_DATABASE_URL": url})
    assert settings.database_url == url


def test_enterprise_api_url_keeps_its_path(tmp_path: Path):
    env = {
        **PRODUCTION,
        "UNDERSIGN_GITHUB_URL": "https://ghe.example.com/",
        "UNDERSIGN_GITHUB_API_URL": "https://ghe.example.com/api/v3/",
    }
    settings = load_settings(env)
    assert settings.github_api_url == "https://ghe.example.com/api/v3"
    assert settings.github_issuer == "https://ghe.example.com/login/oauth"


def test_env_example_lists_every_variable_and_is_committed_in_sync():
    committed = (Path(__file__).parents[2] / ".env.example").read_text()
    assert committed == env_example()
    for var in VARIABLES:
        assert var.name in committed


def test_production_needs_a_way_for_the_bot_to_act(tmp_path: Path):
    env = {k: v for k, v in PRODUCTION.items() if k != "UNDERSIGN_GITHUB_TOKEN"}
    env["UNDERSIGN_INSTANCE_PATH"] = str(tmp_path)
    with pytest.raises(ConfigError, match="UNDERSIGN_GITHUB_TOKEN: required in production"):
        load_settings(env)


def test_production_accepts_https_or_loopback_and_long_secrets(tmp_path: Path):
    env = {**PRODUCTION, "UNDERSIGN_INSTANCE_PATH": str(tmp_path)}
    assert load_settings(env).base_url == "http://127.0.0.1:8000"
    https = load_settings({**env, "UNDERSIGN_BASE_URL": "https://cla.example.com"})
    assert https.is_https


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"UNDERSIGN_BASE_URL": "http://cla.example.com"}, "UNDERSIGN_BASE_URL: must be https"),
        ({"UNDERSIGN_WEBHOOK_SECRET": "x" * 19}, "UNDERSIGN_WEBHOOK_SECRET: too short"),
        (
            {"UNDERSIGN_WEBHOOK_SECRET_PREVIOUS": "old-and-short"},
            "UNDERSIGN_WEBHOOK_SECRET_PREVIOUS: too short",
        ),
        ({"UNDERSIGN_GITHUB_CLIENT_SECRET": "secret"}, "UNDERSIGN_GITHUB_CLIENT_SECRET: too short"),
        ({"UNDERSIGN_METRICS_TOKEN": ""}, "UNDERSIGN_METRICS_TOKEN: required in production"),
        ({"UNDERSIGN_METRICS_PUBLIC": "maybe"}, "UNDERSIGN_METRICS_PUBLIC: expected 1 or 0"),
    ],
)
def test_production_refuses_exposed_defaults(
    changes: dict[str, str], named: str, tmp_path: Path
) -> None:
    env = {**PRODUCTION, "UNDERSIGN_INSTANCE_PATH": str(tmp_path), **changes}
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_an_open_metrics_endpoint_is_an_explicit_choice(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "UNDERSIGN_METRICS_TOKEN"}
    env.update(UNDERSIGN_INSTANCE_PATH=str(tmp_path), UNDERSIGN_METRICS_PUBLIC="1")
    assert load_settings(env).metrics_public is True
    development = load_settings(
        {"UNDERSIGN_ENV": "development", "UNDERSIGN_INSTANCE_PATH": str(tmp_path)}
    )
    assert development.metrics_token is None and development.metrics_public is False


def test_admins_are_numeric_github_ids() -> None:
    env = {"UNDERSIGN_ENV": "test", "UNDERSIGN_ADMINS": " 42, 7,,42 "}
    assert load_settings(env).admins == frozenset({7, 42})
    assert load_settings({"UNDERSIGN_ENV": "test"}).admins == frozenset()
    for wrong in ("octocat", "42,octocat", "-3", "0", "4\u0662"):
        with pytest.raises(
            ConfigError, match=r"UNDERSIGN_ADMINS: .* is not a numeric GitHub user id"
        ):
            load_settings({"UNDERSIGN_ENV": "test", "UNDERSIGN_ADMINS": wrong})
