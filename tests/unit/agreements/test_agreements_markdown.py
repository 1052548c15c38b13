"""The agreement text renderer: Markdown in, only harmless HTML out."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from undersign.agreements.markdown import ALLOWED_TAGS, render_markdown

HOSTILE_FRAGMENTS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](vbscript:msgbox)",
    "![x](javascript:alert(1))",
    '<svg onload="alert(1)">',
    "<iframe src=//evil.example>",
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:x)">',
    "[x]: javascript:alert(1)\n\n[x]",
    "<a href='https://ok.example' onclick='steal()'>ok</a>",
    "`<script>`",
    "```\n<script>\n```",
    "<!-- comment --><script>",
    "[ok](https://example.org)",
    "[mail](mailto:legal@example.org)",
    "# Heading\n",
    "* item\n",
    "> quote\n",
    "\n\n",
    "**bold** _em_",
    "<",
    ">",
    "&",
    '"',
    "\\",
]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attributes.append((tag, name, value or ""))


def assert_harmless(output: str) -> None:
    assert "<script" not in output.lower()
    collector = _Collector()
    collector.feed(output)
    collector.close()
    assert set(collector.tags) <= ALLOWED_TAGS
    for tag, name, value in collector.attributes:
        assert not name.startswith("on"), (tag, name)
        assert name in {"href", "title", "rel", "start"}, (tag, name)
        squashed = re.sub(r"[\x00-\x20]", "", html.unescape(value)).lower()
        assert "javascript:" not in squashed
        assert "data:" not in squashed
        assert "vbscript:" not in squashed
        if name == "href":
            assert squashed.startswith(("http://", "https://", "mailto:")), value


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_arbitrary_text_renders_harmless_html(source: str) -> None:
    assert_harmless(render_markdown(source))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(HOSTILE_FRAGMENTS) | st.text(max_size=8), max_size=12))
def test_hostile_markdown_renders_harmless_html(parts: list[str]) -> None:
    assert_harmless(render_markdown("".join(parts)))


def test_script_in_the_text_is_shown_as_text() -> None:
    output = render_markdown("Terms\n\n<script>alert('x')</script>\n")
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in output
    assert "<script" not in output


def test_markdown_structure_is_kept() -> None:
    output = render_markdown("# Title\n\n1. **One**\n2. _Two_\n\n> quoted\n")
    assert "<h1>Title</h1>" in output
    assert "<strong>One</strong>" in output
    assert "<em>Two</em>" in output
    assert "<blockquote>" in output


def test_web_and_mail_links_survive_with_rel() -> None:
    output = render_markdown("[site](https://example.org/a?b=1) [mail](mailto:x@example.org)")
    assert (
        '<a href="https://example.org/a?b=1" rel="nofollow noopener noreferrer">site</a>' in output
    )
    assert 'href="mailto:x@example.org"' in output


def test_other_links_lose_their_address() -> None:
    output = render_markdown("[a](/relative) [b](//evil.example) [c](ftp://x.example) [d](#top)")
    assert "href" not in output
    assert output.count("<a ") == 4


def test_images_become_their_description() -> None:
    output = render_markdown("![tracking pixel](https://evil.example/p.gif)")
    assert "<img" not in output
    assert "[image: tracking pixel]" in output
