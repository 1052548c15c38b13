"""Structured logs: one JSON object a line, with the request id and delivery id, redacted.

* ``configure_logging(settings)`` installs one handler on the root logger (JSON when
  ``UNDERSIGN_LOG_FORMAT=json``, the production default; text otherwise); gunicorn's error and
  access logs go through the same handler (``GunicornLogger``).
* ``bind(request_id=..., delivery_id=...)`` puts fields on every line logged in this context
  (a contextvar: per thread, per request, per job).
* ``RedactionFilter`` runs on the handler, so it sees every record, whoever logged it: known
  secret values, GitHub tokens (``ghp_``/``gho_``/``ghs_``/``ghu_``/``ghr_``/``github_pat_``),
  ``Bearer`` credentials, JWTs, URL credentials (``redis://:password@host`` too), query
  strings (OAuth ``code``/``state``), ``code_verifier``, quoted JSON forms
  (``"access_token": "..."``) and email addresses never reach the output. Third-party loggers
  that print credentials at DEBUG (``SECRET_DEBUG_LOGGERS``) are held at INFO.
* Injection: JSON encoding escapes every control character; the text format escapes line
  breaks in messages, so user input cannot forge a line.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from gunicorn.glogging import Logger as _GunicornBase

from undersign.config import VARIABLES, Settings

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "undersign_log_context", default=None
)

REDACTED = "[redacted]"
#: Libraries that log request headers or bodies (tokens, OAuth codes) at DEBUG.
SECRET_DEBUG_LOGGERS = ("httpcore", "hpack", "urllib3", "authlib", "githubkit")
MIN_SECRET_LENGTH = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ in any URL (database and queue URLs included), :password@ as well
    (re.compile(r"(?<=://)[^/\s:@\"']*:[^/\s@\"']*@"), REDACTED + "@"),
    # "key": "value" in JSON (a token response, a payload), whatever the value holds
    (
        re.compile(
            r"(?i)\"(code_verifier|code|state|client_secret|access_token|refresh_token|"
            r"password|secret|token|private_key)\"(\s*:\s*)\"(?:[^\"\\]|\\.)*\""
        ),
        r'"\1"\2"' + REDACTED + '"',
    ),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{10,}"), "github_pat_" + REDACTED),
    (re.compile(r"\b(gh[opsur])_[A-Za-z0-9_]{10,}"), r"\1_" + REDACTED),
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1\2" + REDACTED),
    # "Authorization: token X" / "basic X": only what looks like a credential (has a digit)
    (
        re.compile(r"(?i)\b(token|basic)(\s+)(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{12,}"),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Query strings: OAuth codes and state travel there. Keep the path, drop the query.
    (
        re.compile(r"((?:[a-z][a-z0-9+.-]*://[^\s/?#\"'<>]*)?/[^\s?#\"'<>]*)\?[^\s#\"'<>]*"),
        r"\1?" + REDACTED,
    ),
    (
        re.compile(
            r"(?i)\b(code_verifier|code|state|client_secret|access_token|refresh_token|password|"
            r"secret|token|private_key)([=:]\s*)(?!\[redacted\])[^\s&,;\"']+"
        ),
        r"\1\2" + REDACTED,
    ),
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        REDACTED,
    ),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), "[email]"),
)

# Attributes every LogRecord has; anything else was passed as ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


#: Every pattern above needs one of these characters to match (``://``, a quote, ``_``,
#: white space, ``.``, ``?``, ``=`` or ``:``, ``-``, ``@``): text with none of them can only
#: hold a configured secret value, so the patterns are not run on it.
_PATTERN_CHARS = re.compile(r"[:\"_?=@.\s-]")
#: Short texts come back again and again (an access line's method, path and message): their
#: redacted form is remembered, up to this many, to spare a dozen regex passes per line.
_MEMO_SIZE = 2048
_MEMO_TEXT = 200


class Redactor:
    """Removes secrets from text: the configured secret values, then the patterns."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another is removed whole.
        self.secrets = sorted(values, key=len, reverse=True)
        self._memo: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        if len(text) > _MEMO_TEXT:
            return self.redact(text)
        done = self._memo.get(text)
        if done is None:
            done = self.redact(text)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()  # a plain reset: a few misses, no bookkeeping per hit
            self._memo[text] = done
        return done

    def redact(self, text: str) -> str:
        """The redacted text, computed (``__call__`` remembers short ones)."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if _PATTERN_CHARS.search(text) is None:
            return text
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value configured (the variables marked secret)."""
    values = [getattr(settings, var.attr, None) for var in VARIABLES if var.secret]
    return [str(v) for v in values if v]


def _redact_value(redact: Redactor, value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _redact_value(redact, v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(redact, v) for v in value]
    return redact(str(value))


class RedactionFilter(logging.Filter):
    """On the handler: rewrites each record's message, traceback and extra fields."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, _redact_value(self.redact, value))
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(_context.get() or {})
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class JSONFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", "delivery_id", ...extra}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=True, default=str, separators=(",", ":"))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    """Human-readable, one line a record (tracebacks indented below it)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self.formatTime(record)} {record.levelname} {record.name}: "
            f"{_escape(record.getMessage())}"
        )
        fields = _fields(record)
        if fields:
            line += " " + " ".join(
                f"{key}={_escape(json.dumps(value, default=str))}" for key, value in fields.items()
            )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + "\n".join("    " + part for part in record.exc_text.splitlines())
        return line


def log_format(settings: Settings) -> str:
    return settings.log_format or ("json" if settings.is_production else "text")


_HANDLER_MARK = "_undersign_handler"
_active_handler: logging.Handler | None = None


def make_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format(settings) == "json" else TextFormatter())
    handler.addFilter(RedactionFilter(Redactor(settings_secrets(settings))))
    setattr(handler, _HANDLER_MARK, True)
    return handler


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """The root logger writes through one redacting handler (idempotent: a handler this
    function installed before is replaced; handlers others installed are left alone)."""
    global _active_handler
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
    handler = make_handler(settings, stream)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # httpx logs every request URL at INFO; our own GitHub call metrics say as much.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    for name in SECRET_DEBUG_LOGGERS:  # even with UNDERSIGN_LOG_LEVEL=DEBUG
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    _active_handler = handler
    return handler


# GitHub's X-GitHub-Delivery is a GUID; anything else in that header is not logged.
DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def delivery_id_of(header: str | None) -> str | None:
    """A request's ``X-GitHub-Delivery`` when it is well formed, for its log lines."""
    return header if header and DELIVERY_ID.fullmatch(header) else None


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any] | None]:
    """Add fields to every line logged in this context; undo with ``unbind``."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    return _context.set(current)


def unbind(token: contextvars.Token[Mapping[str, Any] | None]) -> None:
    try:
        _context.reset(token)
    except ValueError:  # created in another context (a thread hand-off): clear instead
        _context.set(None)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current(name: str) -> Any:
    return (_context.get() or {}).get(name)


# -- gunicorn ----------------------------------------------------------------------------------


class GunicornLogger(_GunicornBase):
    """gunicorn's error and access logs through undersign's handler (same format, same
    redaction). The access line has the method, the path without its query string, the
    status, the size, the duration, the request id and, for a webhook, GitHub's delivery id
    (so following a delivery finds the web process that answered it); not the client address
    (the reverse proxy's log has it, and it is personal data)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        handler = _active_handler
        if handler is None:
            return
        for logger in (self.error_log, self.access_log):
            for existing in list(logger.handlers):
                logger.removeHandler(existing)
            logger.addHandler(handler)
            logger.propagate = False
        if not cfg.accesslog:
            self.access_log.disabled = True

    def access(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: Any) -> None:
        if not self.cfg.accesslog or self.access_log.disabled:
            return
        headers = {str(k).lower(): str(v) for k, v in (getattr(resp, "headers", None) or [])}
        status = str(getattr(resp, "status", "") or "").split(" ", 1)[0]
        method = str(environ.get("REQUEST_METHOD", "-"))
        path = str(environ.get("PATH_INFO", "-"))
        seconds = request_time.total_seconds() if hasattr(request_time, "total_seconds") else 0
        delivery = delivery_id_of(environ.get("HTTP_X_GITHUB_DELIVERY"))
        try:
            self.access_log.info(
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "method": method,
                    "path": path,
                    "status": int(status) if status.isdigit() else status,
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": round(seconds * 1000, 1),
                    "request_id": headers.get("x-request-id"),
                    **({"delivery_id": delivery} if delivery else {}),
                },
            )
        except Exception:  # an access line must never break a response
            self.error_log.exception("could not write the access log line")
