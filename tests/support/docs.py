"""Commands taken from the documentation, so the docs and the tests that run them cannot drift.

A fenced ``sh`` block preceded by ``<!-- tested: NAME -->`` is what ``shell_block`` returns.
The tests run it with the few replacements a test machine needs (paths in a temporary
folder, throwaway database names), and ``replace_all`` fails when a replacement no longer
matches, so an edited doc is noticed instead of silently testing something else.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = REPO_ROOT / "docs"


def shell_block(doc: str, name: str) -> str:
    text = (DOCS / doc).read_text(encoding="utf-8")
    # A block inside a list item is indented, its marker with it.
    found = re.search(
        rf"^( *)<!-- tested: {re.escape(name)} -->\n\1```sh\n(.*?)\n\1```", text, re.S | re.M
    )
    if found is None:
        raise AssertionError(f"docs/{doc} has no block marked <!-- tested: {name} -->")
    return textwrap.dedent(found.group(2))


def replace_all(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        if old not in text:
            raise AssertionError(f"the documented commands no longer contain {old!r}:\n{text}")
        text = text.replace(old, new)
    return text


def systemd_environment_file(text: str) -> dict[str, str]:
    """Parse an ``EnvironmentFile=`` the way systemd does (``load_env_file``): lines starting
    with ``#`` or ``;`` are comments, but only at the start of a line (a ``#`` after a value
    is part of the value); whitespace around the key and the value is dropped; single or
    double quotes keep what is inside; a backslash escapes the next character, and at the end
    of a line joins the next one. Lines without ``=`` are ignored."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        stripped = line.lstrip()
        if not stripped or stripped[0] in "#;":
            continue
        while line.endswith("\\") and not line.endswith("\\\\") and index < len(lines):
            line = line[:-1] + lines[index]
            index += 1
        key, equals, raw = line.partition("=")
        if not equals:
            continue
        result[key.strip()] = _value(raw)
    return result


def _value(raw: str) -> str:
    raw = raw.lstrip()
    out: list[str] = []
    quote: str | None = None
    trailing_ok = 0  # length of ``out`` that trailing-whitespace stripping must keep
    i = 0
    while i < len(raw):
        char = raw[i]
        if quote:
            if char == quote:
                quote = None
                trailing_ok = len(out)
            elif char == "\\" and quote == '"' and i + 1 < len(raw):
                i += 1
                out.append(raw[i])
            else:
                out.append(char)
        elif char in "'\"":
            quote = char
        elif char == "\\" and i + 1 < len(raw):
            i += 1
            out.append(raw[i])
            trailing_ok = len(out)
        else:
            out.append(char)
        i += 1
    value = "".join(out)
    return value[:trailing_ok] + value[trailing_ok:].rstrip()
