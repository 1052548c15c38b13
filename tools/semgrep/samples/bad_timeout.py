"""Planted bug for rule http-call-without-timeout: never imported."""

import httpx
import requests


def fetch(url: str) -> int:
    return requests.get(url).status_code + httpx.post(url, timeout=None).status_code
