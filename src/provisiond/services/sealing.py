"""Sealing secrets provisiond must keep in clear somewhere (LoRaWAN AppKeys, handed to a
network server later): AES-256-GCM, with a key derived from the ``device_key_passphrase``
setting by scrypt (a salt per sealer, stored with each value).

    aesgcm1:<base64 of salt (16) | nonce (12) | ciphertext and tag>

Without a passphrase (development only; production refuses) values are stored as
``plain:<value>`` and a warning says so.
"""

from __future__ import annotations

import base64
import logging
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from provisiond.errors import ConfigurationError

log = logging.getLogger(__name__)
SEALED = "aesgcm1:"
PLAIN = "plain:"
_AAD = b"provisiond sealed secret"


def in_clear(value: str) -> str:
    """A value that is not secret (a broker user name that is no token), stored in the form
    :meth:`Sealer.unseal` reads without a passphrase."""
    return PLAIN + value


def read_in_clear(value: str) -> str:
    """A value :func:`in_clear` stored (ConfigurationError for a sealed one)."""
    if not value.startswith(PLAIN):
        raise ConfigurationError(
            "this secret is sealed: set device_key_passphrase to the passphrase it was sealed with"
        )
    return value[len(PLAIN) :]


@lru_cache(maxsize=256)
def _key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


class Sealer:
    def __init__(self, passphrase: str | None, *, production: bool) -> None:
        if passphrase is None and production:
            raise ConfigurationError(
                "set device_key_passphrase (PROVISIOND_DEVICE_KEY_PASSPHRASE): in production "
                "device keys are stored encrypted"
            )
        self._passphrase = passphrase
        self._salt = os.urandom(16)
        self._warned = False

    @property
    def encrypts(self) -> bool:
        """Whether sealed values are encrypted (a passphrase is set)."""
        return self._passphrase is not None

    def seal(self, secret: str) -> str:
        if self._passphrase is None:
            if not self._warned:
                log.warning("device_key_passphrase is not set: device keys are stored unencrypted")
                self._warned = True
            return PLAIN + secret
        nonce = os.urandom(12)
        sealed = AESGCM(_key(self._passphrase, self._salt)).encrypt(nonce, secret.encode(), _AAD)
        return SEALED + base64.b64encode(self._salt + nonce + sealed).decode()

    def unseal(self, value: str) -> str:
        if value.startswith(PLAIN):
            return value[len(PLAIN) :]
        if not value.startswith(SEALED) or self._passphrase is None:
            raise ConfigurationError(
                "this secret is sealed: set device_key_passphrase to the "
                "passphrase it was sealed with"
            )
        raw = base64.b64decode(value[len(SEALED) :])
        salt, nonce, sealed = raw[:16], raw[16:28], raw[28:]
        try:
            return AESGCM(_key(self._passphrase, salt)).decrypt(nonce, sealed, _AAD).decode()
        except InvalidTag:
            raise ConfigurationError(
                "device_key_passphrase does not open this secret (it was sealed with another)"
            ) from None


def how_secrets_are_kept(sealer: Sealer | None, *, one: bool = False, hashed: bool = True) -> str:
    """What an operator is told about the secrets just shown, true in each configuration:
    ``sealer`` None: they are stored only as hashes; else (a broker integration that must be
    given them, or LoRaWAN keys, ``hashed`` False) also sealed with device_key_passphrase —
    or, without one (development), kept unencrypted."""
    it, are = ("it", "is") if one else ("the secrets", "are")
    hashes = "a hash" if one else "hashes"
    if sealer is None:
        return f"{it} {are} stored only as {hashes}"
    kept = f"stored as {hashes} and also" if hashed else "stored"
    if sealer.encrypts:
        return f"{it} {are} {kept} sealed (encrypted with device_key_passphrase)"
    return f"{it} {are} {kept} unencrypted (set device_key_passphrase to seal them)"
