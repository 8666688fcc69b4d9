"""Record ESP provisioning transcripts from Espressif's own host code (esp-rainmaker-cli's
rmaker_tools, a dev dependency) with fixed keys, for tests/vectors/espprov_transcripts.json.

    .venv/bin/python scripts/espprov_transcripts.py > tests/vectors/espprov_transcripts.json

Espressif's client (security 1 and 2) runs against provisiond's device side with every key,
random, salt and nonce fixed; each request it made, each answer, and a set-config message it
encrypted afterwards are written out. The test suite then drives provisiond's client with
the same secrets and must produce the same bytes.
"""

from __future__ import annotations

import json
import sys
from unittest import mock

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rmaker_tools.common.prov import wifi_prov
from rmaker_tools.common.security import security1, srp6a
from rmaker_tools.common.security.security2 import Security2

from provisiond.protocols.espprov import security, srp

POP, USER, SSID, PASSPHRASE = "abcd1234", "wifiprov", "Kanarra Ops", "correct horse battery"
CLIENT_KEY = bytes(range(1, 33))
DEVICE_KEY = bytes(range(33, 65))
DEVICE_RANDOM = bytes(range(100, 116))
SALT = bytes(range(200, 216))
A = int.from_bytes(bytes(range(50, 82)), "big") | (1 << 255)
B = int.from_bytes(bytes(range(90, 122)), "big")
NONCE = bytes(range(7, 19))


def latin(value: object) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]


def record(client: object, device: security.DeviceSession) -> dict[str, list[str]]:
    requests, answers = [], []
    request = client.security_session(None)  # type: ignore[attr-defined]
    while request is not None:
        requests.append(latin(request).hex())
        answer = device.respond(latin(request))
        answers.append(answer.hex())
        request = client.security_session(answer.decode("latin-1"))  # type: ignore[attr-defined]
    config = latin(wifi_prov.config_set_config_request(client, SSID, PASSPHRASE)).hex()
    return {"requests": requests, "answers": answers, "set_config": config}


def main() -> None:
    fixed = X25519PrivateKey.from_private_bytes(CLIENT_KEY)
    with mock.patch.object(security1.X25519PrivateKey, "generate", return_value=fixed):
        sec1 = record(security1.Security1(POP, False), security.Sec1Device(
            POP, X25519PrivateKey.from_private_bytes(DEVICE_KEY), DEVICE_RANDOM))
    out: dict[str, object] = {
        "source": "recorded from esp-rainmaker-cli 1.14.1 (rmaker_tools: Espressif's esp_prov "
                  "client code) by scripts/espprov_transcripts.py",
        "pop": POP, "username": USER, "ssid": SSID, "passphrase": PASSPHRASE,
        "client_key": CLIENT_KEY.hex(), "device_key": DEVICE_KEY.hex(),
        "device_random": DEVICE_RANDOM.hex(), "salt": SALT.hex(), "a": f"{A:x}",
        "b": f"{B:x}", "nonce": NONCE.hex(), "sec1": sec1}
    for patch in (0, 1):
        with mock.patch.object(srp6a, "get_random_of_length", return_value=A):
            out[f"sec2_patch{patch}"] = record(
                Security2(patch, USER, POP, False),
                security.Sec2Device(USER, SALT, srp.verifier(SALT, USER, POP), B, NONCE,
                                    patch))
    sys.stdout.write(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
