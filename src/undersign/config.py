"""Settings from the environment: the one list of every variable undersign reads.

Everything an operator can set is declared in ``VARIABLES`` with its type, default and
meaning. ``load_settings`` is the only place that reads ``os.environ``; nothing reads
configuration at import time. Every secret may also be given as ``NAME_FILE`` (a path),
the Docker/Kubernetes convention.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ENVIRONMENTS = ("production", "development", "demo", "test")


class ConfigError(Exception):
    """A variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Variable:
    name: str
    attr: str
    kind: str  # "str" | "url" | "int" | "bool" | "choice" | "ids"
    default: str | None
    meaning: str
    secret: bool = False
    choices: tuple[str, ...] = ()


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "UNDERSIGN_ENV",
        "env",
        "choice",
        "production",
        "production, development, demo or test; only production refuses missing secrets",
        choices=ENVIRONMENTS,
    ),
    Variable(
        "UNDERSIGN_BASE_URL",
        "base_url",
        "url",
        "http://127.0.0.1:8000",
        "public URL of this service; the OAuth callback is BASE_URL/login/callback",
    ),
    Variable(
        "UNDERSIGN_SECRET_KEY",
        "secret_key",
        "str",
        None,
        "session and CSRF signing key; required in production, generated once into the "
        "instance folder otherwise",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_INSTANCE_PATH",
        "instance_path",
        "str",
        "instance",
        "folder for the SQLite database, the generated development key and the queue",
    ),
    Variable(
        "UNDERSIGN_DATABASE_URL",
        "database_url",
        "str",
        None,
        "SQLAlchemy URL; default: SQLite file undersign.sqlite3 in the instance folder",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_QUEUE_URL",
        "queue_url",
        "str",
        None,
        "job queue: redis://... for many machines; default: SQLite file in the instance folder",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_GITHUB_URL",
        "github_url",
        "url",
        "https://github.com",
        "GitHub web base (GitHub Enterprise Server: its host)",
    ),
    Variable(
        "UNDERSIGN_GITHUB_API_URL",
        "github_api_url",
        "url",
        "https://api.github.com",
        "GitHub REST base; may carry a path (https://ghe.example.com/api/v3)",
    ),
    Variable(
        "UNDERSIGN_GITHUB_CLIENT_ID",
        "github_client_id",
        "str",
        None,
        "OAuth app (or GitHub App) client id for sign-in",
    ),
    Variable(
        "UNDERSIGN_GITHUB_CLIENT_SECRET",
        "github_client_secret",
        "str",
        None,
        "OAuth app (or GitHub App) client secret for sign-in",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_GITHUB_TOKEN",
        "github_token",
        "str",
        None,
        "token the bot acts with (statuses, comments)",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_GITHUB_APP_ID",
        "github_app_id",
        "str",
        None,
        "GitHub App mode: the app's id (or its client id, Iv23...); the bot then acts per "
        "installation and also publishes a check run",
    ),
    Variable(
        "UNDERSIGN_GITHUB_APP_PRIVATE_KEY",
        "github_app_private_key",
        "str",
        None,
        "GitHub App mode: the app's private key (PEM); usually given as ..._FILE",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_WEBHOOK_SECRET",
        "webhook_secret",
        "str",
        None,
        "secret GitHub signs webhook deliveries with",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_WEBHOOK_SECRET_PREVIOUS",
        "webhook_secret_previous",
        "str",
        None,
        "the previous webhook secret, still accepted while you rotate to a new one; "
        "remove it once GitHub signs with the new secret",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_BOT_LOGIN",
        "bot_login",
        "str",
        None,
        "login of the account the bot token acts as; default: asked from GitHub once",
    ),
    Variable(
        "UNDERSIGN_STATUS_CONTEXT",
        "status_context",
        "str",
        "license/cla",
        "commit status context; the default matches CLA assistant's",
    ),
    Variable(
        "UNDERSIGN_SESSION_LIFETIME",
        "session_lifetime",
        "int",
        "43200",
        "seconds a sign-in lasts (absolute), default 12 hours",
    ),
    Variable(
        "UNDERSIGN_SESSION_IDLE_TIMEOUT",
        "session_idle_timeout",
        "int",
        "7200",
        "seconds of inactivity after which a sign-in ends, default 2 hours",
    ),
    Variable(
        "UNDERSIGN_TRUSTED_PROXIES",
        "trusted_proxies",
        "int",
        "0",
        "how many reverse proxies in front set X-Forwarded-*; 0 trusts none",
    ),
    Variable(
        "UNDERSIGN_HTTP_TIMEOUT",
        "http_timeout",
        "int",
        "10",
        "seconds before a call to GitHub times out",
    ),
    Variable(
        "UNDERSIGN_JOB_MAX_ATTEMPTS",
        "job_max_attempts",
        "int",
        "8",
        "attempts before a job is marked failed and the pull request gets an error status",
    ),
    Variable(
        "UNDERSIGN_JOB_RETENTION_DAYS",
        "job_retention_days",
        "int",
        "7",
        "days a finished job (one per webhook delivery) is kept before it is purged; at least 3, "
        "as GitHub lets a delivery be redelivered for 3 days (its key dedupes the redelivery)",
    ),
    Variable(
        "UNDERSIGN_JOB_RETRY_BASE_MS",
        "job_retry_base_ms",
        "int",
        "2000",
        "first retry delay in milliseconds; doubled on each attempt (with jitter)",
    ),
    Variable(
        "UNDERSIGN_JOB_LEASE",
        "job_lease",
        "int",
        "120",
        "seconds after which a queued or running job nobody finished is picked up again",
    ),
    Variable(
        "UNDERSIGN_GITHUB_WRITES_PER_MINUTE",
        "github_writes_per_minute",
        "int",
        "70",
        "statuses and comments created per minute at most (GitHub refuses over 80)",
    ),
    Variable(
        "UNDERSIGN_GITHUB_WRITES_PER_HOUR",
        "github_writes_per_hour",
        "int",
        "450",
        "statuses and comments created per hour at most (GitHub refuses over 500)",
    ),
    Variable(
        "UNDERSIGN_GITHUB_SECONDARY_WAIT",
        "github_secondary_wait",
        "int",
        "60",
        "seconds without any call to GitHub after a secondary rate limit that gave no "
        "retry-after (GitHub asks for at least 60; only tests shorten it)",
    ),
    Variable(
        "UNDERSIGN_LOG_LEVEL",
        "log_level",
        "choice",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    Variable(
        "UNDERSIGN_LOG_FORMAT",
        "log_format",
        "choice",
        None,
        "json (one JSON object a line) or text; default: json in production, text otherwise",
        choices=("json", "text"),
    ),
    Variable(
        "UNDERSIGN_METRICS_TOKEN",
        "metrics_token",
        "str",
        None,
        "when set, GET /metrics requires Authorization: Bearer <this token>",
        secret=True,
    ),
    Variable(
        "UNDERSIGN_METRICS_PUBLIC",
        "metrics_public",
        "bool",
        "0",
        "1: serve /metrics without a token in production, on purpose (production refuses to "
        "start with an open /metrics otherwise)",
    ),
    Variable(
        "UNDERSIGN_RECONCILE_INTERVAL",
        "reconcile_interval",
        "int",
        "15",
        "minutes between runs of the reconciler (open pull requests with a missing or stale "
        "status are re-evaluated); 0 turns it off",
    ),
    Variable(
        "UNDERSIGN_ADMINS",
        "admins",
        "ids",
        "",
        "instance admins of the maintainers' console: comma-separated numeric GitHub user ids "
        "(ids, not logins: a login can be renamed and taken by someone else)",
    ),
    Variable(
        "UNDERSIGN_QUEUE_NAME",
        "queue_name",
        "str",
        "undersign",
        "name of the job queue (Redis keys); distinct installations sharing one Redis need "
        "distinct names",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Typed, validated configuration. Build it with ``load_settings``."""

    env: str = "production"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    instance_path: str = "instance"
    database_url: str | None = None
    queue_url: str | None = None
    github_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"
    github_client_id: str | None = None
    github_client_secret: str | None = None
    github_token: str | None = None
    github_app_id: str | None = None
    github_app_private_key: str | None = None
    webhook_secret: str | None = None
    webhook_secret_previous: str | None = None
    bot_login: str | None = None
    status_context: str = "license/cla"
    session_lifetime: int = 43200
    session_idle_timeout: int = 7200
    trusted_proxies: int = 0
    http_timeout: int = 10
    job_max_attempts: int = 8
    job_retention_days: int = 7
    job_retry_base_ms: int = 2000
    job_lease: int = 120
    github_writes_per_minute: int = 70
    github_writes_per_hour: int = 450
    github_secondary_wait: int = 60
    log_level: str = "INFO"
    log_format: str | None = None
    metrics_token: str | None = None
    metrics_public: bool = False
    reconcile_interval: int = 15
    queue_name: str = "undersign"
    admins: frozenset[int] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def app_mode(self) -> bool:
        """GitHub App mode: installation tokens, and check runs beside the status."""
        return bool(self.github_app_id and self.github_app_private_key)

    @property
    def is_https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/login/callback"

    @property
    def github_issuer(self) -> str:
        """The ``iss`` value GitHub appends to OAuth callbacks (RFC 9207)."""
        return f"{self.github_url}/login/oauth"

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def _read_raw(var: Variable, environ: Mapping[str, str]) -> str | None:
    file_name = f"{var.name}_FILE"
    if var.secret and environ.get(file_name):
        if environ.get(var.name):
            raise ConfigError(f"{var.name}: set either {var.name} or {file_name}, not both")
        path = Path(environ[file_name])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{file_name}: cannot read {path}: {exc.strerror}") from None
    value = environ.get(var.name)
    if value is None or value.strip() == "":
        return var.default
    return value.strip()


def _parse_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: expected an http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name}: must not carry a query or fragment")
    return value.rstrip("/")


def _parse_ids(name: str, raw: str) -> frozenset[int]:
    """``"1, 42"`` -> ``{1, 42}``: numeric GitHub user ids only, so a login is refused."""
    ids: set[int] = set()
    for item in raw.split(","):
        entry = item.strip()
        if not entry:
            continue
        if not entry.isascii() or not entry.isdigit() or int(entry) <= 0:
            raise ConfigError(
                f"{name}: {entry!r} is not a numeric GitHub user id (use ids, not logins: "
                "https://api.github.com/users/LOGIN shows a login's id)"
            )
        ids.add(int(entry))
    return frozenset(ids)


def _parse(var: Variable, raw: str) -> Any:
    if var.kind == "ids":
        return _parse_ids(var.name, raw)
    if var.kind == "url":
        return _parse_url(var.name, raw)
    if var.kind == "int":
        try:
            number = int(raw)
        except ValueError:
            raise ConfigError(f"{var.name}: expected a whole number, got {raw!r}") from None
        if number < 0:
            raise ConfigError(f"{var.name}: must not be negative")
        return number
    if var.kind == "bool":
        flag = raw.strip().lower()
        if flag not in ("0", "1", "true", "false", "yes", "no", ""):
            raise ConfigError(f"{var.name}: expected 1 or 0, got {raw!r}")
        return flag in ("1", "true", "yes")
    if var.kind == "choice":
        value = raw.upper() if var.attr == "log_level" else raw.lower()
        if value not in var.choices:
            raise ConfigError(f"{var.name}: expected one of {', '.join(var.choices)}, got {raw!r}")
        return value
    return raw


def _development_secret(instance_path: Path) -> str:
    """Generate the development key once and keep it, so restarts keep sessions."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key


MIN_SECRET_KEY_LENGTH = 32
#: Finished jobs dedupe redeliveries: GitHub allows them for 3 days (Enterprise Server 7).
MIN_JOB_RETENTION_DAYS = 3


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    on_generated_secret: Callable[[Path], None] | None = None,
) -> Settings:
    """Read, check and type every variable; raise ``ConfigError`` naming the culprit."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw = _read_raw(var, env)
        values[var.attr] = None if raw is None else _parse(var, raw)
    instance_path = Path(values["instance_path"]).resolve()
    values["instance_path"] = str(instance_path)
    production = values["env"] == "production"

    if values["secret_key"] is None:
        if production:
            raise ConfigError(
                "UNDERSIGN_SECRET_KEY: required in production (or UNDERSIGN_SECRET_KEY_FILE); "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        values["secret_key"] = _development_secret(instance_path)
        if on_generated_secret:
            on_generated_secret(instance_path / "secret_key")
    elif production and len(values["secret_key"]) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"UNDERSIGN_SECRET_KEY: too short for production "
            f"(at least {MIN_SECRET_KEY_LENGTH} characters)"
        )
    if production:
        for name, attr in (
            ("UNDERSIGN_GITHUB_CLIENT_ID", "github_client_id"),
            ("UNDERSIGN_GITHUB_CLIENT_SECRET", "github_client_secret"),
            ("UNDERSIGN_WEBHOOK_SECRET", "webhook_secret"),
        ):
            if not values[attr]:
                raise ConfigError(f"{name}: required in production")
    _check_github_app(values)
    if production and not (values["github_token"] or values["github_app_id"]):
        raise ConfigError(
            "UNDERSIGN_GITHUB_TOKEN: required in production unless the bot acts as a GitHub "
            "App (UNDERSIGN_GITHUB_APP_ID and UNDERSIGN_GITHUB_APP_PRIVATE_KEY)"
        )
    if production:
        check_production_exposure(values)
    if values["database_url"] is None:
        values["database_url"] = f"sqlite:///{instance_path / 'undersign.sqlite3'}"
    _check_database_url(values["database_url"])
    if values["session_lifetime"] == 0:
        raise ConfigError("UNDERSIGN_SESSION_LIFETIME: must be at least 1 second")
    if values["job_retention_days"] < MIN_JOB_RETENTION_DAYS:
        raise ConfigError(
            f"UNDERSIGN_JOB_RETENTION_DAYS: must be at least {MIN_JOB_RETENTION_DAYS} (GitHub "
            "redelivers a delivery for 3 days; a purged job would be processed again)"
        )
    return Settings(**values)


MIN_SHARED_SECRET_LENGTH = 20
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_production_exposure(values: Mapping[str, Any]) -> None:
    """What production refuses besides missing secrets: a public URL without TLS (loopback
    excepted: a proxy on the same machine), guessable shared secrets, an open /metrics."""
    base = urlsplit(str(values.get("base_url") or ""))
    if base.scheme != "https" and (base.hostname or "") not in _LOOPBACK_HOSTS:
        raise ConfigError(
            "UNDERSIGN_BASE_URL: must be https:// in production (sessions and the OAuth "
            "callback travel over it); only a loopback address may use http://"
        )
    for name, attr in (
        ("UNDERSIGN_WEBHOOK_SECRET", "webhook_secret"),
        ("UNDERSIGN_WEBHOOK_SECRET_PREVIOUS", "webhook_secret_previous"),
        ("UNDERSIGN_GITHUB_CLIENT_SECRET", "github_client_secret"),
    ):
        value = values.get(attr)
        if value and len(str(value)) < MIN_SHARED_SECRET_LENGTH:
            raise ConfigError(
                f"{name}: too short for production (at least {MIN_SHARED_SECRET_LENGTH} characters)"
            )
    if not values.get("metrics_token") and not values.get("metrics_public"):
        raise ConfigError(
            "UNDERSIGN_METRICS_TOKEN: required in production, or set "
            "UNDERSIGN_METRICS_PUBLIC=1 to serve /metrics to anyone on purpose"
        )


def load_private_key(pem: str) -> RSAPrivateKey:
    """The GitHub App's RSA key from PEM text; ValueError with a short reason otherwise.
    Here, not in github/, because validating the settings must load it before anything runs."""
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise ValueError(
            "not a PEM private key (paste the whole .pem GitHub gave you, BEGIN/END lines "
            "included, or point ..._FILE at it)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("GitHub App keys are RSA keys")
    return key


def _check_github_app(values: dict[str, Any]) -> None:
    """Both app variables or neither; the key must load now, not at the first webhook."""
    app_id, key = values["github_app_id"], values["github_app_private_key"]
    if app_id and not key:
        raise ConfigError(
            "UNDERSIGN_GITHUB_APP_PRIVATE_KEY: required with UNDERSIGN_GITHUB_APP_ID "
            "(or UNDERSIGN_GITHUB_APP_PRIVATE_KEY_FILE)"
        )
    if key and not app_id:
        raise ConfigError("UNDERSIGN_GITHUB_APP_ID: required with the app's private key")
    if not key:
        return
    if "\\n" in key and "\n" not in key:
        key = key.replace("\\n", "\n")  # a PEM squeezed onto one line of an .env file
    try:
        load_private_key(key)
    except ValueError as exc:
        raise ConfigError(f"UNDERSIGN_GITHUB_APP_PRIVATE_KEY: {exc}") from None
    values["github_app_private_key"] = key


DATABASE_URL_FORMS = (
    "sqlite:////path/to/file.sqlite3 or postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME"
)


def _check_database_url(url: str) -> None:
    """Refuse, with the form that works, the URLs operators copy from elsewhere: Heroku's
    ``postgres://``, ``postgresql://`` and ``+psycopg2`` (SQLAlchemy would look for psycopg2,
    which undersign does not ship; its driver is psycopg 3). Only the scheme is quoted."""
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    if not separator:
        raise ConfigError(f"UNDERSIGN_DATABASE_URL: expected a URL: {DATABASE_URL_FORMS}")
    if scheme.split("+")[0] == "sqlite" or scheme == "postgresql+psycopg":  # sqlite+pysqlite too
        return
    if scheme.split("+")[0] in ("postgres", "postgresql"):
        raise ConfigError(
            f"UNDERSIGN_DATABASE_URL: {scheme}:// is not supported; write "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME (the psycopg 3 driver)"
        )
    raise ConfigError(
        f"UNDERSIGN_DATABASE_URL: {scheme}:// is not supported; use {DATABASE_URL_FORMS}"
    )


def env_example() -> str:
    """The text of ``.env.example``, generated from ``VARIABLES`` so the two never drift."""
    lines = [
        "# undersign configuration. Every variable undersign reads, with its default.",
        "# Secrets may instead be given as NAME_FILE=/path/to/file.",
        "# Values marked INSECURE are for development only.",
        "",
    ]
    for var in VARIABLES:
        lines.append(f"# {var.meaning}")
        if var.secret:
            lines.append(f"# {var.name}=  (secret; INSECURE to commit a real value)")
        else:
            lines.append(f"# {var.name}={var.default or ''}")
        lines.append("")
    return "\n".join(lines)
