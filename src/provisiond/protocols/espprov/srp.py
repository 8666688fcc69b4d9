"""SRP-6a as ESP-IDF's security 2 uses it: SHA-512 and the 3072-bit group of RFC 5054.

The byte encodings are ESP-IDF's (components/protocomm/src/crypto/srp6a/esp_srp.c), which
is what an ESP32 checks:

    x  = H(s | H(I ":" p))
    k  = H(N | PAD(g)),  u = H(PAD(A) | PAD(B))
    K  = H(S)
    M1 = H(H(N) xor H(PAD(g)) | H(I) | s | A | B | K),   M2 = H(A | M1 | K)

where s, A and B are hashed exactly as they were sent (the device hashes the bytes it holds
and received), and the numbers the device computes (B, S, v) are big-endian without leading
zero bytes. A is sent at the modulus' width, 384 bytes: security2.c refuses any other
length. Espressif's host tool (esp_prov) instead sends A and reads the salt as numbers,
without leading zeros; the device here takes that too, hashing what it received, so both
sides agree with either client. No Espressif tool makes a salt with a leading zero byte
(esp_prov would drop it when it hashes x), and new_salt() does not either.

Secrets and randoms are parameters, so a recorded exchange replays byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

# RFC 5054, appendix A: the 3072-bit group, generator 5.
N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E"
    "3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF"
    "5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D3"
    "9A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08"
    "CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF69558171839"
    "95497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBE"
    "F0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA0"
    "6D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB314"
    "3DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
G = 5
WIDTH = (N.bit_length() + 7) // 8  # 384 bytes
SALT_LENGTH = 16  # security2.c's


class SrpError(ValueError):
    """The other side's numbers or proof are not acceptable."""


def to_bytes(n: int) -> bytes:
    """Big-endian without leading zero bytes (mbedTLS's write_binary at mpi_size)."""
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def _pad(data: bytes) -> bytes:
    return bytes(WIDTH - len(data)) + data


def new_salt(length: int = SALT_LENGTH) -> bytes:
    """A random salt whose first byte is not zero, like every salt Espressif's tools make:
    esp_prov reads the salt as a number, so a leading zero byte would be missing from its x
    and it could never log in (1 salt in 256)."""
    while True:
        salt = secrets.token_bytes(length)
        if salt[0]:
            return salt


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha512()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _hi(*parts: bytes) -> int:
    return int.from_bytes(_h(*parts), "big")


K_MULTIPLIER = _hi(to_bytes(N), _pad(to_bytes(G)))


def private_x(salt: bytes, username: str, password: str) -> int:
    # The salt as it is stored and sent (esp_srp.c). H(I:p) goes in as a number, as esp_prov,
    # whose generator makes the verifiers devices carry, hashes it: without leading zero
    # bytes (esp_srp.c's own generator keeps all 64 bytes; the two differ for 1 password in
    # 256, and esp_prov is the client those devices are made for).
    inner = _hi(f"{username}:{password}".encode())
    return _hi(salt, to_bytes(inner))


def verifier(salt: bytes, username: str, password: str) -> bytes:
    """What a device stores instead of the password."""
    return to_bytes(pow(G, private_x(salt, username, password), N))


def _scramble(a_pub: int, b_pub: int) -> int:
    return _hi(_pad(to_bytes(a_pub)), _pad(to_bytes(b_pub)))


def _m1(username: str, salt: bytes, a_sent: bytes, b_sent: bytes, key: bytes) -> bytes:
    """The client's proof; s, A and B exactly as they went over the wire (esp_srp.c)."""
    hn, hg = _h(to_bytes(N)), _h(_pad(to_bytes(G)))
    xored = bytes(x ^ y for x, y in zip(hn, hg, strict=True))
    return _h(xored, _h(username.encode()), salt, a_sent, b_sent, key)


def _m2(a_sent: bytes, m1: bytes, key: bytes) -> bytes:
    return _h(a_sent, m1, key)


@dataclass
class SrpClient:
    """The host's side: A, then M1 from the device's salt and B, then check M2."""

    username: str
    password: str
    a: int  # 32 random bytes with the top bit set, in esp_prov

    def __post_init__(self) -> None:
        self.A = pow(G, self.a, N)
        self.key: bytes | None = None
        self._m2: bytes | None = None

    @property
    def public(self) -> bytes:
        """A at the modulus' width: ESP-IDF refuses a public key that is not 384 bytes."""
        return self.A.to_bytes(WIDTH, "big")

    def proof(self, salt: bytes, device_public: bytes) -> bytes:
        """M1, given the device's salt and B (SrpError if B is unusable)."""
        b_pub = int.from_bytes(device_public, "big")
        if b_pub % N == 0:
            raise SrpError("the device's public key is not usable (B mod N is 0)")
        u = _scramble(self.A, b_pub)
        if u == 0:
            raise SrpError("the device's public key is not usable (u is 0)")
        x = private_x(salt, self.username, self.password)
        s = pow((b_pub - K_MULTIPLIER * pow(G, x, N)) % N, self.a + u * x, N)
        self.key = _h(to_bytes(s))
        m1 = _m1(self.username, salt, self.public, device_public, self.key)
        self._m2 = _m2(self.public, m1, self.key)
        return m1

    def check(self, device_proof: bytes) -> bytes:
        """The session key K, once the device's M2 is right (SrpError otherwise)."""
        if self.key is None or self._m2 is None:
            raise SrpError("no proof was sent yet")
        if not hmac.compare_digest(self._m2, device_proof):
            raise SrpError("the device's proof is wrong (it does not know the password)")
        return self.key


@dataclass
class SrpDevice:
    """The device's side: B from its verifier, then check M1 and answer M2."""

    username: str
    salt: bytes
    verifier: bytes
    b: int  # 32 random bytes

    def __post_init__(self) -> None:
        v = int.from_bytes(self.verifier, "big")
        self._v = v
        self.B = (K_MULTIPLIER * v + pow(G, self.b, N)) % N
        self.key: bytes | None = None
        self._a_sent: bytes | None = None

    @property
    def public(self) -> bytes:
        return to_bytes(self.B)

    def start(self, client_public: bytes) -> None:
        """Take A. ESP-IDF takes only 384 bytes; shorter is taken too (esp_prov sends A
        without its leading zero bytes) and hashed as received, so either client agrees."""
        if len(client_public) > WIDTH:
            raise SrpError(f"the client's public key is longer than {WIDTH} bytes")
        a_pub = int.from_bytes(client_public, "big")
        if a_pub % N == 0:
            raise SrpError("the client's public key is not usable (A mod N is 0)")
        u = _scramble(a_pub, self.B)
        s = pow(a_pub * pow(self._v, u, N) % N, self.b, N)
        self.key = _h(to_bytes(s))
        self._a_sent = bytes(client_public)

    def verify(self, client_proof: bytes) -> bytes:
        """M2, once the client's M1 is right (SrpError: a wrong password)."""
        if self.key is None or self._a_sent is None:
            raise SrpError("no public key from the client yet")
        expected = _m1(self.username, self.salt, self._a_sent, self.public, self.key)
        if not hmac.compare_digest(expected, client_proof):
            raise SrpError("the client's proof is wrong (wrong user name or password)")
        return _m2(self._a_sent, client_proof, self.key)
