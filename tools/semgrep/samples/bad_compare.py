"""Planted bug for rule non-constant-time-signature-compare: never imported."""

import hashlib
import hmac


def verify(secret: bytes, body: bytes, header: str) -> bool:
    return header == "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_named(expected_signature: str, given: str) -> bool:
    return expected_signature == given
