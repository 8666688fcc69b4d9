"""Generating and hashing secrets.

Random tokens (API tokens, device access tokens) carry at least 128 bits from :mod:`secrets`
and are stored as SHA-256: a random token cannot be guessed, so a slow hash buys nothing and
costs every request. Passwords (people choose them) are hashed with argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified when the user does not exist, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("provisiond-dummy-password")


def new_token(prefix: str = "", nbytes: int = 16) -> tuple[str, str]:
    """A fresh random token and its SHA-256 (hex)."""
    token = prefix + _secrets.token_urlsafe(nbytes)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
