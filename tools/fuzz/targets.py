"""Fuzz targets: the four parsers that take attacker input directly.

Each target takes raw bytes and raises AssertionError when a safety property breaks (any
other exception is a crash, also a finding). ``run.py`` drives them with atheris, or, when
atheris is missing, replays the seeds below and a few thousand random inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit

from undersign.agreements.markdown import ALLOWED_TAGS, render_markdown
from undersign.auth.redirects import safe_next_path
from undersign.enforcement.contributors import parse_co_authors
from undersign.github.webhooks import verify_signature

SECRET = "fuzz-secret"  # noqa: S105 - a test key


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape").encode("utf-8", "replace").decode()


def fuzz_next(data: bytes) -> None:
    value = _text(data)
    result = safe_next_path(value)
    assert result in ("/", value)
    for location in (result, unquote(result)):
        cleaned = re.sub(r"[\t\n\r]", "", location).strip("\x00- ").replace("\\", "/")
        parts = urlsplit(urljoin("https://cla.example.org/", cleaned))
        assert (parts.scheme, parts.netloc) == ("https", "cla.example.org"), value


def fuzz_signature(data: bytes) -> None:
    split = data.find(b"\n")
    header, body = (data[:split], data[split + 1 :]) if split >= 0 else (data, b"")
    header_text = header.decode("latin-1")
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert verify_signature([SECRET], body, header_text) == (header_text == expected)
    assert verify_signature([SECRET], body, expected)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((name, value or "") for name, value in attrs)


def fuzz_markdown(data: bytes) -> None:
    output = render_markdown(_text(data))
    collector = _Collector()
    collector.feed(output)
    collector.close()
    assert set(collector.tags) <= ALLOWED_TAGS, collector.tags
    for name, value in collector.attributes:
        assert not name.startswith("on"), name
        if name in ("href", "src", "action", "formaction", "xlink:href"):
            # What a browser would run is decided by the scheme, read the way a browser reads
            # it (entities decoded, control characters and spaces dropped). The text
            # "javascript:" further inside an https URL is harmless data.
            squashed = re.sub(r"[\x00-\x20\x7f]", "", unquote(html.unescape(value))).lower()
            assert re.match(r"(https?|mailto):", squashed), value


def fuzz_co_authors(data: bytes) -> None:
    for name, email in parse_co_authors(_text(data)):
        local, at, domain = email.rpartition("@")
        assert at and local and domain, email
        assert not any(ch.isspace() or ch in "<>" for ch in email), email
        assert "\n" not in name


TARGETS: dict[str, Callable[[bytes], None]] = {
    "next": fuzz_next,
    "signature": fuzz_signature,
    "markdown": fuzz_markdown,
    "co_authors": fuzz_co_authors,
}

SEEDS: dict[str, list[bytes]] = {
    "next": [
        b"/",
        b"//evil.com",
        b"/\\evil.com",
        b"/%2F%2Fevil.com",
        b"https:evil.com",
        b"/sign/cla?repo=o/r&pr=1",
        b"/\t/evil.com",
        b"\x08//evil.com",
    ],
    "signature": [
        b"sha256=" + b"0" * 64 + b"\n{}",
        b"sha1=" + b"0" * 40 + b"\n{}",
        b"sha256=\n",
        b"\n\xff\xfe",
    ],
    "markdown": [
        b"[x](javascript:alert(1))",
        b"<script>alert(1)</script>",
        b"[x][r]\n\n[r]: &#106;avascript:x",
        b"> * [a](https://ok.example)",
        b"<a href=# onclick=x>y</a>",
        b"![x](data:text/html,x)",
    ],
    "co_authors": [
        b"S\n\nCo-authored-by: A <a@b.c>",
        b"S\n\nCo-Authored-By: <@>\r\n",
        b"S\n\nCo-authored-by:\n <x@y.z>",
        b"S\n\nSigned-off-by: x",
    ],
}
