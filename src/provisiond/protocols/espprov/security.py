"""Protocomm sessions (the ``prov-session`` endpoint), both sides, sans-IO.

A client makes requests and reads answers; a device reads requests and makes answers. Once
established, both encrypt and decrypt every later message with the session's cipher:

- security 0: none; one round trip;
- security 1: X25519; the shared secret XOR SHA-256(proof of possession) is the AES-256-CTR
  key, the device's 16 random bytes the counter block. One keystream runs through the whole
  session, both directions, in the order messages are processed. Each side proves the key by
  encrypting the other's public key;
- security 2: SRP-6a (srp.py), then AES-256-GCM with the first 32 bytes of K and the
  device's 12-byte nonce; at patch level 1 the nonce's last 4 bytes count up (big-endian)
  after every message either way, at patch level 0 it stays (ESP-IDF before the fix).

Keys, randoms and salts are parameters, so recorded transcripts replay byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.message import DecodeError

from provisiond.protocols.espprov import srp
from provisiond.protocols.espprov.messages import espprov_constants_pb2 as constants_pb2
from provisiond.protocols.espprov.messages import espprov_sec0_pb2 as sec0
from provisiond.protocols.espprov.messages import espprov_sec1_pb2 as sec1
from provisiond.protocols.espprov.messages import espprov_sec2_pb2 as sec2
from provisiond.protocols.espprov.messages import espprov_session_pb2 as session_pb2

SUCCESS = constants_pb2.Success
_RAW = (Encoding.Raw, PublicFormat.Raw)


class SessionError(Exception):
    """The session could not be established; the message says why, for a person."""


class Cipher_(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, data: bytes) -> bytes: ...


def parse_session(data: bytes, expected: int) -> session_pb2.SessionData:
    message = session_pb2.SessionData()
    try:
        message.ParseFromString(data)
    except DecodeError as err:
        raise SessionError(f"the session message is not protobuf: {err}") from None
    if message.sec_ver != expected:
        raise SessionError(f"the other side uses security {message.sec_ver}, not {expected}")
    return message


class _Plain:
    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data


class _Ctr:
    """One AES-256-CTR keystream for both directions (security 1)."""

    def __init__(self, key: bytes, counter_block: bytes) -> None:
        self._stream: CipherContext = Cipher(
            algorithms.AES(key), modes.CTR(counter_block)
        ).encryptor()

    def encrypt(self, data: bytes) -> bytes:
        return self._stream.update(data)

    decrypt = encrypt


class _Gcm:
    """AES-256-GCM with the session nonce (security 2)."""

    def __init__(self, key: bytes, nonce: bytes, patch_level: int) -> None:
        if len(nonce) != 12:
            raise SessionError("the device's nonce is not 12 bytes")
        self._aead = AESGCM(key)
        self._nonce = bytearray(nonce)
        self._counting = patch_level >= 1

    def _next(self) -> None:
        if self._counting:
            count = (int.from_bytes(self._nonce[8:], "big") + 1) & 0xFFFFFFFF
            self._nonce[8:] = count.to_bytes(4, "big")

    def encrypt(self, data: bytes) -> bytes:
        out = self._aead.encrypt(bytes(self._nonce), data, None)
        self._next()
        return out

    def decrypt(self, data: bytes) -> bytes:
        try:
            out = self._aead.decrypt(bytes(self._nonce), data, None)
        except InvalidTag:
            raise SessionError(
                "a message failed its integrity check (wrong session, or tampered with)"
            ) from None
        self._next()
        return out


def _pop_key(shared: bytes, pop: bytes | None) -> bytes:
    if not pop:
        return shared
    digest = hashlib.sha256(pop).digest()
    return bytes(a ^ b for a, b in zip(shared, digest, strict=True))


# ------------------------------------------------------------------------------ client


class ClientSession(Protocol):
    version: int
    cipher: Cipher_ | None

    def start(self) -> bytes: ...

    def answer(self, response: bytes) -> bytes | None:
        """Read the device's answer: the next request, or None once established."""
        ...


class Sec0Client:
    version = 0

    def __init__(self) -> None:
        self.cipher: Cipher_ | None = None

    def start(self) -> bytes:
        m = session_pb2.SessionData(sec_ver=session_pb2.SecScheme0)
        m.sec0.msg = sec0.S0_Session_Command
        m.sec0.sc.SetInParent()
        return m.SerializeToString()

    def answer(self, response: bytes) -> bytes | None:
        m = parse_session(response, 0)
        if m.sec0.sr.status != SUCCESS:
            raise SessionError(f"the device refused the session (status {m.sec0.sr.status})")
        self.cipher = _Plain()
        return None


class Sec1Client:
    version = 1

    def __init__(
        self, pop: str | bytes | None, private_key: X25519PrivateKey | None = None
    ) -> None:
        self._pop = pop.encode() if isinstance(pop, str) else pop
        self._key = private_key or X25519PrivateKey.generate()
        self._public = self._key.public_key().public_bytes(*_RAW)
        self._device_public = b""
        self.cipher: Cipher_ | None = None
        self._pending: _Ctr | None = None

    def start(self) -> bytes:
        m = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
        m.sec1.msg = sec1.Session_Command0
        m.sec1.sc0.client_pubkey = self._public
        return m.SerializeToString()

    def answer(self, response: bytes) -> bytes | None:
        m = parse_session(response, 1)
        if m.sec1.msg == sec1.Session_Response0:
            r = m.sec1.sr0
            if r.status != SUCCESS:
                raise SessionError(f"the device refused the session (status {r.status})")
            if len(r.device_pubkey) != 32 or len(r.device_random) != 16:
                raise SessionError("the device's public key or random has the wrong length")
            self._device_public = r.device_pubkey
            try:
                shared = self._key.exchange(X25519PublicKey.from_public_bytes(r.device_pubkey))
            except ValueError as err:
                raise SessionError(f"the device's public key is unusable: {err}") from None
            self._pending = _Ctr(_pop_key(shared, self._pop), r.device_random)
            out = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
            out.sec1.msg = sec1.Session_Command1
            out.sec1.sc1.client_verify_data = self._pending.encrypt(self._device_public)
            return out.SerializeToString()
        if m.sec1.msg == sec1.Session_Response1 and self._pending is not None:
            r1 = m.sec1.sr1
            if r1.status != SUCCESS:
                raise SessionError(
                    "the device refused the proof of possession: check the "
                    "PoP (on the device's label or QR code)"
                )
            if not hmac.compare_digest(self._pending.decrypt(r1.device_verify_data), self._public):
                raise SessionError(
                    "the device could not prove the session key: a wrong "
                    "proof of possession, or not the device you meant"
                )
            self.cipher = self._pending
            return None
        raise SessionError(f"unexpected security 1 message {m.sec1.msg}")


class Sec2Client:
    version = 2

    def __init__(
        self, username: str, password: str, a: int | None = None, patch_level: int = 1
    ) -> None:
        if a is None:
            import secrets

            a = secrets.randbits(256) | (1 << 255)
        self._srp = srp.SrpClient(username, password, a)
        self._username = username
        self._patch = patch_level
        self.cipher: Cipher_ | None = None

    def start(self) -> bytes:
        m = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
        m.sec2.msg = sec2.S2Session_Command0
        m.sec2.sc0.client_username = self._username.encode()
        m.sec2.sc0.client_pubkey = self._srp.public
        return m.SerializeToString()

    def answer(self, response: bytes) -> bytes | None:
        m = parse_session(response, 2)
        if m.sec2.msg == sec2.S2Session_Response0:
            r = m.sec2.sr0
            if r.status != SUCCESS:
                raise SessionError(f"the device refused the session (status {r.status})")
            try:
                proof = self._srp.proof(r.device_salt, r.device_pubkey)
            except srp.SrpError as err:
                raise SessionError(str(err)) from None
            out = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
            out.sec2.msg = sec2.S2Session_Command1
            out.sec2.sc1.client_proof = proof
            return out.SerializeToString()
        if m.sec2.msg == sec2.S2Session_Response1:
            r1 = m.sec2.sr1
            if r1.status != SUCCESS:
                raise SessionError(
                    "the device refused the user name or password (security "
                    "2): check them on the device's label"
                )
            try:
                key = self._srp.check(r1.device_proof)
            except srp.SrpError as err:
                raise SessionError(str(err)) from None
            self.cipher = _Gcm(key[:32], r1.device_nonce, self._patch)
            return None
        raise SessionError(f"unexpected security 2 message {m.sec2.msg}")


# ------------------------------------------------------------------------------ device


class DeviceSession(Protocol):
    version: int
    cipher: Cipher_ | None

    def respond(self, request: bytes) -> bytes:
        """Answer one session request (SessionError: the session must be dropped)."""
        ...


class Sec0Device:
    version = 0

    def __init__(self) -> None:
        self.cipher: Cipher_ | None = None

    def respond(self, request: bytes) -> bytes:
        parse_session(request, 0)
        out = session_pb2.SessionData(sec_ver=session_pb2.SecScheme0)
        out.sec0.msg = sec0.S0_Session_Response
        out.sec0.sr.status = SUCCESS
        self.cipher = _Plain()
        return out.SerializeToString()


class Sec1Device:
    version = 1

    def __init__(
        self,
        pop: str | bytes | None,
        private_key: X25519PrivateKey | None = None,
        device_random: bytes | None = None,
    ) -> None:
        import os

        self._pop = pop.encode() if isinstance(pop, str) else pop
        self._key = private_key or X25519PrivateKey.generate()
        self._public = self._key.public_key().public_bytes(*_RAW)
        self._random = device_random or os.urandom(16)
        self._client_public = b""
        self._pending: _Ctr | None = None
        self.cipher: Cipher_ | None = None

    def respond(self, request: bytes) -> bytes:
        m = parse_session(request, 1)
        out = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
        if m.sec1.msg == sec1.Session_Command0 and self._pending is None:
            client = m.sec1.sc0.client_pubkey
            if len(client) != 32:
                raise SessionError("the client's public key is not 32 bytes")
            try:
                shared = self._key.exchange(X25519PublicKey.from_public_bytes(client))
            except ValueError as err:
                raise SessionError(f"the client's public key is unusable: {err}") from None
            self._client_public = client
            self._pending = _Ctr(_pop_key(shared, self._pop), self._random)
            out.sec1.msg = sec1.Session_Response0
            out.sec1.sr0.status = SUCCESS
            out.sec1.sr0.device_pubkey = self._public
            out.sec1.sr0.device_random = self._random
            return out.SerializeToString()
        if m.sec1.msg == sec1.Session_Command1 and self._pending is not None:
            seen = self._pending.decrypt(m.sec1.sc1.client_verify_data)
            if not hmac.compare_digest(seen, self._public):
                raise SessionError("wrong proof of possession")
            out.sec1.msg = sec1.Session_Response1
            out.sec1.sr1.status = SUCCESS
            out.sec1.sr1.device_verify_data = self._pending.encrypt(self._client_public)
            self.cipher = self._pending
            return out.SerializeToString()
        raise SessionError(f"unexpected security 1 message {m.sec1.msg}")


class Sec2Device:
    version = 2

    def __init__(
        self,
        username: str,
        salt: bytes,
        verifier: bytes,
        b: int | None = None,
        nonce: bytes | None = None,
        patch_level: int = 1,
    ) -> None:
        import os
        import secrets

        self._username = username
        self._srp = srp.SrpDevice(username, salt, verifier, b or secrets.randbits(256))
        self._salt = salt
        self._nonce = nonce or os.urandom(12)
        self._patch = patch_level
        self._started = False
        self.cipher: Cipher_ | None = None

    def respond(self, request: bytes) -> bytes:
        m = parse_session(request, 2)
        out = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
        if m.sec2.msg == sec2.S2Session_Command0 and not self._started:
            if m.sec2.sc0.client_username.decode(errors="replace") != self._username:
                raise SessionError("unknown user name")
            try:
                self._srp.start(m.sec2.sc0.client_pubkey)
            except srp.SrpError as err:
                raise SessionError(str(err)) from None
            self._started = True
            out.sec2.msg = sec2.S2Session_Response0
            out.sec2.sr0.status = SUCCESS
            out.sec2.sr0.device_pubkey = self._srp.public
            out.sec2.sr0.device_salt = self._salt
            return out.SerializeToString()
        if m.sec2.msg == sec2.S2Session_Command1 and self._started:
            try:
                proof = self._srp.verify(m.sec2.sc1.client_proof)
            except srp.SrpError as err:
                raise SessionError(str(err)) from None
            key = self._srp.key or b""
            out.sec2.msg = sec2.S2Session_Response1
            out.sec2.sr1.status = SUCCESS
            out.sec2.sr1.device_proof = proof
            out.sec2.sr1.device_nonce = self._nonce
            self.cipher = _Gcm(key[:32], self._nonce, self._patch)
            return out.SerializeToString()
        raise SessionError(f"unexpected security 2 message {m.sec2.msg}")
