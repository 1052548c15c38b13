"""The log formatter and redaction filter: what reaches the output, line by line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from undersign.config import load_settings
from undersign.observability.logging import bound, configure_logging, delivery_id_of

SECRETS = {
    "UNDERSIGN_SECRET_KEY": "s3cret-key-for-the-logging-test-0123456789",
    "UNDERSIGN_WEBHOOK_SECRET": "hook-secret-xyz-98765",
    "UNDERSIGN_GITHUB_CLIENT_SECRET": "client-secret-abc-123",
}


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    settings = load_settings({"UNDERSIGN_ENV": "test", "UNDERSIGN_LOG_FORMAT": fmt, **SECRETS})
    handler = configure_logging(settings, stream)
    return logging.getLogger("undersign.test"), stream, handler


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger, stream, handler = _capture("json")
    yield logger, stream
    logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("token ghp_AbCdEf0123456789AbCdEf0123456789abcd used", "ghp_AbCdEf0123456789"),
        ("gho_16C7e42F292c6912E7710c838347Ae178B4a in reply", "16C7e42F292c6912"),
        ("ghs_abcdefghijklmnop1234 installation", "abcdefghijklmnop1234"),
        ("ghu_abcdefghijklmnop1234 and ghr_zyxwvutsrq9876543210", "zyxwvutsrq98765"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "11ABCDEFG0123456789"),
        ("Authorization: Bearer abc.def-123_xyz", "abc.def-123_xyz"),
        ("jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjEyM30.c2lnbmF0dXJl here", "eyJpc3MiOjEyM30"),
        ("GET /login/callback?code=9f8e7d6c5b4a&state=QwErTy123 302", "9f8e7d6c5b4a"),
        ("GET /login/callback?code=9f8e7d6c5b4a&state=QwErTy123 302", "QwErTy123"),
        ("redirect to https://gh.example/login/oauth/authorize?client_id=x&state=zzz9", "zzz9"),
        ("code=deadbeef1234 in a form", "deadbeef1234"),
        ("signed by alice@example.com today", "alice@example.com"),
        ("db postgresql+psycopg://user:pa55word@db.internal/undersign", "pa55word"),
        ("the webhook secret is hook-secret-xyz-98765", "hook-secret-xyz-98765"),
        ("client-secret-abc-123 leaked", "client-secret-abc-123"),
        ("token form code_verifier=Zq9-verifier_0123456789abc sent", "Zq9-verifier_0123456789abc"),
        ('body {"access_token": "opaque-value-123", "x": 1}', "opaque-value-123"),
        ('{"token":"with \\"quote\\" inside"}', "quote"),
        ('{"code_verifier": "Zq9 spaced verifier"}', "spaced verifier"),
        ("queue redis://:s3cretpass@10.0.0.5:6379/0", "s3cretpass"),
    ],
)
def test_secrets_tokens_codes_and_emails_never_reach_the_output(
    json_log: tuple[logging.Logger, io.StringIO], text: str, leak: str
) -> None:
    logger, stream = json_log
    logger.warning("%s", text)
    logger.info("extra field", extra={"detail": text})
    output = stream.getvalue()
    assert leak not in output
    assert len(lines(stream)) == 2


def test_a_traceback_is_redacted_too(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    try:
        raise RuntimeError("GitHub refused token ghp_AbCdEf0123456789AbCdEf0123456789abcd")
    except RuntimeError:
        logger.exception("crash for bob@example.org")
    [entry] = lines(stream)
    assert "RuntimeError" in str(entry["exception"])
    assert "ghp_AbCdEf" not in stream.getvalue()
    assert "bob@example.org" not in stream.getvalue()


def test_json_lines_carry_the_bound_ids_and_user_input_cannot_forge_a_line(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    hostile = 'x"\n{"level": "CRITICAL", "message": "forged"}\r\n\u2028'
    with bound(request_id="req-1", delivery_id="d-2"):
        logger.info("comment body %s", hostile, extra={"login": hostile})
    logger.info("after")
    first, second = lines(stream)
    assert first["request_id"] == "req-1" and first["delivery_id"] == "d-2"
    assert first["level"] == "INFO" and first["logger"] == "undersign.test"
    assert "forged" in str(first["message"]) and first["login"] == hostile
    assert "request_id" not in second
    assert {"time", "level", "logger", "message"} <= set(second)


def test_text_format_escapes_line_breaks() -> None:
    logger, stream, handler = _capture("text")
    try:
        logger.warning("a\nFAKE ERROR line\r\nb")
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().count("\n") == 1
    assert "a\\nFAKE ERROR line\\r\\nb" in stream.getvalue()


def test_production_defaults_to_json_and_development_to_text() -> None:
    from undersign.observability.logging import log_format

    base = {
        **SECRETS,
        "UNDERSIGN_GITHUB_CLIENT_ID": "x",
        "UNDERSIGN_GITHUB_TOKEN": "ghp_x",
        "UNDERSIGN_METRICS_PUBLIC": "1",
    }
    assert log_format(load_settings({**base, "UNDERSIGN_ENV": "production"})) == "json"
    assert log_format(load_settings({**base, "UNDERSIGN_ENV": "development"})) == "text"
    with_text = {**base, "UNDERSIGN_ENV": "production", "UNDERSIGN_LOG_FORMAT": "text"}
    assert log_format(load_settings(with_text)) == "text"


def test_loggers_that_print_credentials_at_debug_are_held_at_info() -> None:
    from undersign.observability.logging import SECRET_DEBUG_LOGGERS, configure_logging

    settings = load_settings({"UNDERSIGN_ENV": "test", "UNDERSIGN_LOG_LEVEL": "DEBUG", **SECRETS})
    handler = configure_logging(settings, io.StringIO())
    try:
        assert logging.getLogger().level == logging.DEBUG
        for name in ("httpcore", "hpack", "urllib3", "authlib"):
            assert name in SECRET_DEBUG_LOGGERS
            assert logging.getLogger(name).getEffectiveLevel() == logging.INFO
    finally:
        logging.getLogger().removeHandler(handler)


REDACTOR_TEXTS = [
    "POST /webhooks/github 202",
    "POST",
    "/webhooks/github",
    "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "plainhook-secret-xyz-98765text",
    "token ghp_AbCdEf0123456789AbCdEf0123456789abcd used",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "Authorization: Bearer abc.def-123_xyz",
    "Authorization: token abcdef0123456789",
    "jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjEyM30.c2lnbmF0dXJl here",
    "GET /login/callback?code=9f8e7d6c5b4a&state=QwErTy123 302",
    "password=hunter2222",
    'body {"access_token": "opaque-value-123", "x": 1}',
    "signed by alice@example.com today",
    "queue redis://:s3cretpass@10.0.0.5:6379/0",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
]


def test_the_redactor_fast_paths_give_the_full_passes_answer() -> None:
    """Remembered texts and the skip of texts no pattern can match change no output: each
    text redacts exactly as every secret and every pattern applied in turn would, twice."""
    from undersign.observability.logging import _PATTERNS, REDACTED, Redactor

    secrets = sorted(SECRETS.values(), key=len, reverse=True)
    redactor = Redactor(secrets)

    def full_pass(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    for text in REDACTOR_TEXTS:
        assert redactor(text) == full_pass(text) == redactor(text), text
    assert redactor("plainhook-secret-xyz-98765text") == f"plain{REDACTED}text"
    # Every pattern is exercised above, so the characters the skip relies on are checked.
    for pattern, _ in _PATTERNS:
        assert any(pattern.search(text) for text in REDACTOR_TEXTS), pattern.pattern


def test_only_a_well_formed_delivery_header_is_logged() -> None:
    """The access line takes X-GitHub-Delivery from the request as sent: anything that is
    not a GUID-like token (a forged line break, a long value) stays out of the log."""
    assert delivery_id_of("72d3162e-cc78-11e3-81ab-4c9367dc0958") == (
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    for bad in (None, "", "a\nforged line", "x" * 65, "id with spaces"):
        assert delivery_id_of(bad) is None, bad
