"""Bearer tokens: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "scim_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # The token carries 256 random bits, so a plain SHA-256 cannot be reversed.
    return hashlib.sha256(token.encode()).hexdigest()
