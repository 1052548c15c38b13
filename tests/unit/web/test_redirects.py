"""The ``next`` validator: only same-site paths survive."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from undersign.auth.redirects import safe_next_path

MALICIOUS = [
    "https://evil.example/",
    "http://evil.example",
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "/ok\r\nLocation: https://evil.example",
    "/\tevil",
    "/%09/evil.example",
    "/\x08/evil.example",
    "/\u202e/evil",
    "",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("value", MALICIOUS)
def test_malicious_next_values_fall_back_to_root(value: str):
    assert safe_next_path(value) == "/"


@pytest.mark.parametrize(
    "value", ["/", "/me/signatures", "/sign/cla?repo=acme/widgets&pr=12", "/a/b#frag"]
)
def test_same_site_paths_are_kept(value: str):
    assert safe_next_path(value) == value


@given(st.text(max_size=200))
def test_result_is_always_a_local_path(value: str):
    result = safe_next_path(value)
    assert result == "/" or result == value
    assert result.startswith("/")
    assert not result.startswith("//")
    assert "\\" not in result
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in result)
