"""Generating and hashing secrets.

Random tokens (API tokens, device access tokens) carry at least 128 bits from :mod:`secrets`
and are stored as SHA-256: a random token cannot be guessed, so a slow hash buys nothing and
costs every request. Passwords (people choose them) are hashed with argon2id, with the first
of the equivalent parameter sets OWASP's Password Storage Cheat Sheet recommends: 19 MiB of
memory, 2 iterations, 1 lane (about 18 ms here; argon2-cffi's defaults, 64 MiB x 3 x 4
lanes, took 147 ms). A hash made with other parameters is made again at the next sign-in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import os
import secrets as _secrets
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from provisiond.domain.credentials import selector_credential

# OWASP: m=19456 (19 MiB), t=2, p=1; the sheet's equivalents trade memory for iterations
# (46 MiB x 1, 12 MiB x 3, 9 MiB x 4, 7 MiB x 5). Type argon2id, 16-byte salt, 32-byte hash.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so a miss costs the same time as a wrong
    password. Made on first use (every CLI command would pay its 70 ms at start-up); the
    web app makes it before its first request (:func:`warm_up`)."""
    return _hasher.hash("provisiond-dummy-password")


def warm_up() -> None:
    """Make what password checks need before the first one, so that the first login for
    an unknown user takes no longer than any other."""
    _dummy_hash()


def new_token(prefix: str = "", nbytes: int = 16) -> tuple[str, str]:
    """A fresh random token and its SHA-256 (hex)."""
    token = prefix + _secrets.token_urlsafe(nbytes)
    return token, hash_token(token)


def new_split_token(credential_id: uuid.UUID) -> tuple[str, str]:
    """A device access token ``<selector>.<verifier>`` and the SHA-256 of its verifier.

    The selector is the credential's id (base64url): it finds the row by primary key, so no
    index on a random hash is needed and the lookup takes the same time whatever the secret.
    The verifier carries 144 random bits and is compared as a hash, in constant time.
    """
    return new_split_tokens([credential_id.hex])[0]


def new_split_tokens(credential_id_hexes: list[str]) -> list[tuple[str, str]]:
    """:func:`new_split_token` for many credentials (ids as ``UUID.hex``), encoded in bulk.

    Both parts are base64url of a whole number of 3-byte groups, so one encoding of all the
    bytes cuts into the parts: 24 characters per 18 bytes. A selector is its id's 16 bytes
    and two zero bytes, cut to the 22 characters that the id alone encodes to.
    """
    n = len(credential_id_hexes)
    selectors = base64.urlsafe_b64encode(
        bytes.fromhex("0000".join(credential_id_hexes) + "0000")
    ).decode()
    verifiers = base64.urlsafe_b64encode(_secrets.token_bytes(18 * n)).decode()
    sha256 = hashlib.sha256
    out = []
    for i in range(n):
        verifier = verifiers[24 * i : 24 * i + 24]
        out.append(
            (f"{selectors[24 * i : 24 * i + 22]}.{verifier}", sha256(verifier.encode()).hexdigest())
        )
    return out


def split_token(token: str) -> tuple[uuid.UUID, str] | None:
    """The credential id and verifier of a split token, or None when it is not one."""
    selector, dot, verifier = token.partition(".")
    if not dot or not verifier:
        return None
    credential_id = selector_credential(selector)
    return (credential_id, verifier) if credential_id is not None else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


_PROFILE_SECRET = b"provisiond profile secret\0"


def hs256_key(secret: str) -> bytes:
    """The HS256 key of a profile's registration tokens: the 32-byte SHA-256 of its secret
    (docs/provisioning.md). Kept sealed, never stored as the secret's hash."""
    return hashlib.sha256(secret.encode()).digest()


def hash_profile_secret(secret: str) -> str:
    """The stored form of a profile secret. Not its SHA-256 (that is the HS256 key): a hash
    of that, with a context, so a copy of the database cannot sign registration tokens.
    (Migration 0011 computed it from the SHA-256 stored before.)"""
    return hashlib.sha256(_PROFILE_SECRET + hs256_key(secret)).hexdigest()


def hash_claim_code(code: str) -> str:
    """The stored form of a claim code (canonical, see domain.claims.normalise_claim_code).

    A code has 54 random bits and every guess is rate-limited and counted against the claim,
    so a fast hash is enough; salted with a fixed context so the table is not a generic
    SHA-256 lookup."""
    return hashlib.sha256(b"provisiond claim code\0" + code.encode()).hexdigest()


# argon2 is meant to be slow (~18 ms of CPU here). Passwords are hashed and verified off the
# event loop, on one thread per core whose threads run at a lower priority (Linux keeps a
# nice value per thread): a burst of sign-ins (a shift starting, or someone guessing) uses
# every idle core, and yields them to provisioning, the pages and the database, which run at
# the process's own priority. (Before: at most half the cores, at full priority; a burst of
# 100 sign-ins then waited on one core: docs/performance.md.)
_ARGON2_THREADS = os.cpu_count() or 2
_ARGON2_NICE = 10


def _lower_priority() -> None:
    if sys.platform == "linux":  # elsewhere a thread id is no process id: leave it
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _ARGON2_NICE)


_argon2_pool = ThreadPoolExecutor(
    max_workers=_ARGON2_THREADS, thread_name_prefix="argon2", initializer=_lower_priority
)


async def hash_password_off_loop(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_argon2_pool, hash_password, password)


async def verify_password_off_loop(password_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _argon2_pool, verify_password, password_hash, password
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash was made with other parameters (or another argon2 type)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False  # not argon2 at all: it never verifies, nothing to rehash


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False
