"""Retry keys: how a device that lost its provisioning answer gets it again, and nobody else.

A device may send ``retryKey`` with its first provisioning request: a random string it
generated and kept before asking (at least 22 characters, e.g. 16 random bytes in base64url).
provisiond stores a hash of it, and the answer's credential encrypted with a key derived
from it (HKDF-SHA256 → AES-256-GCM, bound to the device's id). A repeat that carries the
same key is answered with that same credential: the device that lost the answer gets it
back, the credential it may already be using stays the only one, and a copy of the database
holds neither the key nor the credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import uuid
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_HASH_CONTEXT = b"provisiond retry key\0"
_KEY_CONTEXT = b"provisiond retry answer\0"
_PREFIX = "rk1:"


def hash_retry_key(retry_key: str) -> str:
    """What is stored to recognise the key (SHA-256 with a context, hex)."""
    return hashlib.sha256(_HASH_CONTEXT + retry_key.encode()).hexdigest()


def _aead(retry_key: str, device_id: uuid.UUID) -> AESGCM:
    key = HKDF(hashes.SHA256(), 32, salt=None, info=_KEY_CONTEXT + device_id.bytes).derive(
        retry_key.encode()
    )
    return AESGCM(key)


def seal_answer(retry_key: str, device_id: uuid.UUID, value: Any) -> str:
    """The answer's credential value (a token, MQTT credentials, a PEM) encrypted so that
    only this retry key opens it, for this device only."""
    nonce = os.urandom(12)
    sealed = _aead(retry_key, device_id).encrypt(nonce, orjson.dumps(value), device_id.bytes)
    return _PREFIX + base64.b64encode(nonce + sealed).decode()


def open_answer(retry_key: str, device_id: uuid.UUID, sealed: str) -> Any | None:
    """The value :func:`seal_answer` sealed, or None when this key does not open it."""
    if not sealed.startswith(_PREFIX):
        return None
    try:
        raw = base64.b64decode(sealed[len(_PREFIX) :], validate=True)
        plain = _aead(retry_key, device_id).decrypt(raw[:12], raw[12:], device_id.bytes)
    except (InvalidTag, ValueError, binascii.Error):
        return None
    return orjson.loads(plain)
