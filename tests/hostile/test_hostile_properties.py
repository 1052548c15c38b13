"""Property tests (hypothesis) for the four parsers that take attacker input directly.

Each complements the unit tests next to the code (tests/unit/...): those hold the examples
and basic properties; these add the hostile plan's vector lists (warehouse ``is_safe_url``,
SECURITY 6.B.23's Markdown corpus) and structured generators for nested and encoded forms.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from undersign.agreements.markdown import ALLOWED_TAGS, LINK_REL, render_markdown
from undersign.auth.redirects import safe_next_path
from undersign.enforcement.contributors import parse_co_authors
from undersign.github.webhooks import verify_signature

BASE = "https://cla.example.org/"

# pypi/warehouse tests/unit/utils/test_http.py (bad list), plus SECURITY 6.A.12's additions.
WAREHOUSE_BAD = [
    "//example.com",
    "///example.com",
    "////example.com",
    "/\\example.com",
    "\\\\example.com",
    "\\/example.com",
    "/\\/example.com",
    "http:/\\/example.com",
    "http:///example.com",
    "http://example.com",
    "https://example.com",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "\x08//example.com",
    "/\t/example.com/",
    "/\n/example.com/",
    "/\r/example.com/",
    "//\texample.com/",
    "\t//example.com",
    "http:\\\\example.com",
    "http:/\\example.com",
    "example.com",
    "https:evil.com",
    "%2F%2Fevil.com",
    "/%2F%2Fevil.com",
    "/%5Cevil.com",
    "/%5C%5Cevil.com",
    "https://app@evil.com",
    "//app.example@evil.com",
    "/%0d%0aLocation:%20https://evil.com",
    "/\u2028/evil.com",
    "/\u200b/evil.com",
    "/\ufeff/evil.com",
]


def _browser_view(location: str) -> tuple[str, str]:
    """Where a browser goes for ``Location: location`` on BASE: (scheme, host).

    WHATWG URL parsing strips ASCII tab/newline anywhere and leading/trailing C0 controls
    and spaces, and treats ``\\`` like ``/`` in special schemes; urljoin does none of that,
    so apply it first.
    """
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("\x00- ").replace("\\", "/")
    parts = urlsplit(urljoin(BASE, cleaned))
    return parts.scheme, parts.netloc


@pytest.mark.parametrize("value", WAREHOUSE_BAD)
def test_next_validator_refuses_the_warehouse_vectors(value: str) -> None:
    """SECURITY 6.A.12 / O8: every bad vector falls back to /."""
    assert safe_next_path(value) == "/"


_path_chars = st.sampled_from(
    [*"/\\:@.%?#&=-_~ \t\r\n\x00\x08\u202e\u200b", "%2F", "%5C", "%2f", "%09", "%0A", "%00"]
)
_next_candidates = st.one_of(
    st.text(max_size=60),
    st.lists(_path_chars | st.sampled_from(["evil.com", "http", "https", "javascript"]))
    .map("".join)
    .map(lambda s: s[:200]),
)


@settings(max_examples=600, deadline=None)
@given(_next_candidates)
@example("/\\evil.com")
@example("/%2F/evil.com")
def test_next_validator_never_leaves_the_site(value: str) -> None:
    """SECURITY O8: whatever comes in, a browser following the result stays on this origin,
    even read the lenient WHATWG way, and also after one more percent-decoding."""
    result = safe_next_path(value)
    assert result in ("/", value)
    for location in (result, unquote(result)):
        assert _browser_view(location) == ("https", "cla.example.org"), (value, result)
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in unquote(result))


# --- webhook signature (SECURITY W1, 6.D.37-39) ----------------------------------------------

_secrets = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")


def _sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@settings(max_examples=300, deadline=None)
@given(_secrets, st.binary(max_size=300))
def test_a_valid_signature_is_always_accepted(secret: str, body: bytes) -> None:
    """SECURITY W1: the exact GitHub form over the raw bytes is accepted, whatever the bytes."""
    assert verify_signature([secret], body, _sign(secret, body))
    assert verify_signature(["other-secret-in-rotation", secret], body, _sign(secret, body))


@settings(max_examples=300, deadline=None)
@given(_secrets, st.binary(max_size=200), st.data())
def test_any_bit_flip_in_the_signature_is_refused(
    secret: str, body: bytes, data: st.DataObject
) -> None:
    """SECURITY 6.D.38: one flipped bit anywhere in the header is a 401, never an accept."""
    header = bytearray(_sign(secret, body).encode())
    index = data.draw(st.integers(0, len(header) - 1))
    header[index] ^= 1 << data.draw(st.integers(0, 7))
    try:
        flipped = header.decode("ascii")
    except UnicodeDecodeError:
        flipped = header.decode("latin-1")
    assert not verify_signature([secret], body, flipped)


@settings(max_examples=200, deadline=None)
@given(_secrets, st.binary(max_size=200), st.data())
def test_any_bit_flip_in_the_body_is_refused(secret: str, body: bytes, data: st.DataObject) -> None:
    """SECURITY 6.D.39: the HMAC covers the exact bytes; one flipped bit is refused."""
    header = _sign(secret, body)
    changed = bytearray(body + b"{}")
    index = data.draw(st.integers(0, len(changed) - 1))
    changed[index] ^= 1 << data.draw(st.integers(0, 7))
    assert not verify_signature([secret], bytes(changed), header)


_hex = "0123456789abcdef"


@settings(max_examples=300, deadline=None)
@given(_secrets, st.binary(max_size=100), st.data())
def test_malformed_signature_headers_are_refused(
    secret: str, body: bytes, data: st.DataObject
) -> None:
    """SECURITY 6.D.37-38: sha1=, wrong prefix or case, wrong length, padding, non-ASCII,
    each applied to the otherwise valid signature, are refused."""
    good = _sign(secret, body)
    digest = good.removeprefix("sha256=")
    sha1 = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    variant = data.draw(
        st.sampled_from(
            [
                sha1,
                "SHA256=" + digest,
                "sha256:" + digest,
                "sha-256=" + digest,
                "sha512=" + digest,
                digest,
                "sha256=" + digest.upper(),
                "sha256=" + digest[:-1],
                "sha256=" + digest + "0",
                " " + good,
                good + " ",
                good + "\n",
                good + "\x00",
                "sha256= " + digest,
                "sha256=" + digest[:10] + "é" + digest[11:],
                f"{good},{sha1}",
                "sha256=",
                "",
            ]
        )
    )
    if digest.upper() == digest and variant == "sha256=" + digest.upper():
        return  # an all-digit digest has no case to change
    assert not verify_signature([secret], body, variant), variant


@given(st.binary(max_size=100), st.text(max_size=80))
def test_no_secret_accepts_nothing(body: bytes, header: str) -> None:
    """SECURITY W2: with no secret configured, nothing is accepted (never "accept all")."""
    assert not verify_signature([], body, header)
    assert not verify_signature([""], body, header)


# --- Markdown sanitizer (SECURITY 6.B.23, ASVS 1.3.5) ----------------------------------------

CORPUS_23 = {
    "raw script": "<script>alert(1)</script>",
    "raw iframe": "<iframe src=https://evil.example></iframe>",
    "javascript link": "[x](javascript:alert(1))",
    "mixed-case javascript link": "[x](JaVaScRiPt:alert(1))",
    "entity-encoded javascript link": "[x](&#106;avascript:alert(1))",
    "hex-entity javascript link": "[x](&#x6A;avascript:alert(1))",
    "percent-encoded javascript link": "[x](%6Aavascript:alert(1))",
    "data image": "![x](data:text/html,<script>alert(1)</script>)",
    "data link": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "javascript autolink": "<javascript:alert(1)>",
    "onclick anchor": "<a href=# onclick=alert(1)>x</a>",
    "reference link": "[x][r]\n\n[r]: javascript:alert(1)",
    "reference link with title": '[x][r]\n\n[r]: javascript:alert(1) "t"',
    "newline in scheme": "[x](java\nscript:alert(1))",
    "NUL in scheme": "[x](java\x00script:alert(1))",
    "nested in list and quote": "> * [x](javascript:alert(1))\n>   <script>alert(1)</script>",
    "link in link text": "[[x](javascript:alert(1))](https://ok.example)",
    "svg onload": "<svg/onload=alert(1)>",
    "img onerror": "<img src=x onerror=alert(1)>",
}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((tag, name, value or "") for name, value in attrs)


def assert_harmless(output: str) -> None:
    """No script, no event handler, no URL other than http(s)/mailto, rel on every link."""
    collector = _Collector()
    collector.feed(output)
    collector.close()
    assert set(collector.tags) <= ALLOWED_TAGS, collector.tags
    links = collector.tags.count("a")
    rels = [value for tag, name, value in collector.attributes if tag == "a" and name == "rel"]
    for tag, name, value in collector.attributes:
        assert not name.lower().startswith("on"), (tag, name)
        assert name in {"href", "title", "rel", "start"}, (tag, name)
        decoded = unquote(html.unescape(value))
        squashed = re.sub(r"[\x00-\x20\x7f]", "", decoded).lower()
        for scheme in ("javascript:", "vbscript:", "data:"):
            assert scheme not in squashed, (tag, name, value)
        if name == "href":
            assert re.match(r"(?i)(https?|mailto):", value), value
    assert len(rels) == links  # every link, even one whose address was dropped
    assert all(rel == LINK_REL for rel in rels)
    assert "<script" not in output.lower()


@pytest.mark.parametrize("source", CORPUS_23.values(), ids=CORPUS_23.keys())
def test_markdown_attack_corpus_is_harmless(source: str) -> None:
    """SECURITY 6.B.23: each named vector renders with no script, handler or bad URL."""
    assert_harmless(render_markdown(source))


def test_safe_links_carry_rel() -> None:
    """SECURITY 6.B.23: surviving links carry rel="nofollow noopener noreferrer"."""
    output = render_markdown("[a](https://ok.example) <https://ok.example/b> [m](mailto:x@y.z)")
    assert output.count(f'rel="{LINK_REL}"') == 3


_vectors = st.sampled_from(list(CORPUS_23.values()))
_markdown_leaf = _vectors | st.text(max_size=12)


def _nest(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        children.map(lambda s: "> " + s.replace("\n", "\n> ")),
        children.map(lambda s: "* " + s.replace("\n", "\n  ")),
        children.map(lambda s: "1. " + s.replace("\n", "\n   ")),
        st.tuples(children, _vectors).map(lambda p: f"[{p[0]}]({p[1]})"),
        st.tuples(children, children).map(lambda p: p[0] + "\n\n" + p[1]),
        children.map(lambda s: f"**{s}**"),
        children.map(html.escape),
        children.map(lambda s: "".join(f"&#{ord(c)};" for c in s[:40])),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(_markdown_leaf, _nest, max_leaves=12))
def test_nested_and_encoded_markdown_is_harmless(source: str) -> None:
    """SECURITY 6.B.23 (Hypothesis property): vectors nested in quotes, lists, links and
    emphasis, or entity-encoded, never come out as script, handler or bad URL."""
    assert_harmless(render_markdown(source))


# --- Co-authored-by parser --------------------------------------------------------------------

_name = (
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="<>"),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)
_local = st.text(st.sampled_from("abcxyz019._+-"), min_size=1, max_size=12)
_email = st.tuples(_local, st.sampled_from(["example.org", "users.noreply.github.com"])).map(
    "@".join
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_name, _email), min_size=1, max_size=6), st.text(max_size=100))
def test_generated_trailers_are_found(pairs: list[tuple[str, str]], body: str) -> None:
    """Every well-formed trailer in the trailer block is credited, once per email."""
    body = body.replace("Co-authored-by", "").strip()
    trailers = "\n".join(f"Co-authored-by: {n} <{e}>" for n, e in pairs)
    message = f"Subject\n\n{body}\n\n{trailers}\n" if body else f"Subject\n\n{trailers}\n"
    found = parse_co_authors(message)
    expected: dict[str, tuple[str, str]] = {}
    for name, email in pairs:
        expected.setdefault(email.casefold(), (name, email))
    assert [email for _, email in found] == [e for _, e in expected.values()]


_hostile_lines = st.sampled_from(
    [
        "Co-authored-by: Eve <eve@evil.example>",
        "co-AUTHORED-by:    Eve    <eve@evil.example>",
        "Co-authored-by: <@>",
        "Co-authored-by: Eve <eve>",
        "Co-authored-by: Eve eve@evil.example",
        "Co-authored-by: Eve <<eve@evil.example>>",
        "Co-authored-by: Eve <eve@evil.example\r\n>",
        "Co-authored-by: Eve <e ve@evil.example>",
        "Co-authored-by: " + "A" * 5000 + " <a@b.c>",
        "Co-authored-by:\n <folded@example.org>",
        "Signed-off-by: Mallory <m@evil.example>",
        "\r",
        "\x00",
        "\u2028",
        "",
        ":",
        "Co-authored-by",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_hostile_lines | st.text(max_size=30), max_size=15).map("\n".join))
def test_co_author_parser_never_raises_and_returns_clean_pairs(message: str) -> None:
    """Any commit message: no exception, every email has one '@' part before and after it,
    nothing with whitespace, brackets or line breaks, no duplicate emails."""
    pairs = parse_co_authors(message)
    emails = [email.casefold() for _, email in pairs]
    assert len(emails) == len(set(emails))
    for name, email in pairs:
        local, at, domain = email.rpartition("@")
        assert at and local and domain, email
        assert not any(ch.isspace() or ch in "<>" for ch in email), email
        assert "\n" not in name and "\r" not in name
