"""ESP unified provisioning, sans-IO: the sessions of security 0, 1 and 2 against each other
and against Espressif's own host implementation (esp-rainmaker-cli's rmaker_tools, the
esp_prov client), deterministic replays, refusals, and the endpoint message codecs."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from rmaker_tools.common.security.security1 import Security1
from rmaker_tools.common.security.security2 import Security2
from rmaker_tools.common.security.srp6a import generate_salt_and_verifier

from provisiond.protocols.espprov import security, srp, wifi

POP = "abcd1234"


def latin(value: Any) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)


def drive(client: security.ClientSession, device: security.DeviceSession) -> list[bytes]:
    """Run a session to its end; every message, in order."""
    seen: list[bytes] = []
    request: bytes | None = client.start()
    while request is not None:
        seen.append(request)
        answer = device.respond(request)
        seen.append(answer)
        request = client.answer(answer)
    return seen


def esp_client(theirs: Any, device: security.DeviceSession) -> Any:
    """Espressif's client against our device (their code passes latin-1 text)."""
    request = theirs.security_session(None)
    while request is not None:
        request = theirs.security_session(device.respond(latin(request)).decode("latin-1"))
    return theirs


def exchange(send: Any, receive: Any, data: bytes) -> bytes:
    return latin(receive(latin(send(data))))


@pytest.mark.parametrize(
    "make",
    [
        lambda: (security.Sec0Client(), security.Sec0Device()),
        lambda: (security.Sec1Client(POP), security.Sec1Device(POP)),
        lambda: (security.Sec1Client(None), security.Sec1Device(None)),  # no_pop
        lambda: (
            security.Sec2Client("wifiprov", POP, patch_level=0),
            security.Sec2Device(
                "wifiprov",
                b"salt-16-bytes!!!",
                srp.verifier(b"salt-16-bytes!!!", "wifiprov", POP),
                patch_level=0,
            ),
        ),
        lambda: (
            security.Sec2Client("wifiprov", POP),
            security.Sec2Device(
                "wifiprov", b"salt-16-bytes!!!", srp.verifier(b"salt-16-bytes!!!", "wifiprov", POP)
            ),
        ),
    ],
    ids=["sec0", "sec1", "sec1-no-pop", "sec2-patch0", "sec2-patch1"],
)
def test_our_client_and_device_agree(make: Any) -> None:
    client, device = make()
    drive(client, device)
    assert client.cipher is not None
    assert device.cipher is not None
    for n in range(5):  # the ciphers stay in step, both ways, message after message
        assert (
            device.cipher.decrypt(client.cipher.encrypt(b"set config %d" % n))
            == b"set config %d" % n
        )
        assert client.cipher.decrypt(device.cipher.encrypt(b"status %d" % n)) == b"status %d" % n


def test_espressifs_client_talks_to_our_device_security1() -> None:
    device = security.Sec1Device(POP)
    theirs = esp_client(Security1(POP, False), device)
    assert device.cipher is not None
    assert exchange(theirs.encrypt_data, device.cipher.decrypt, b"hello") == b"hello"
    assert exchange(device.cipher.encrypt, theirs.decrypt_data, b"world") == b"world"
    with pytest.raises(security.SessionError, match="wrong proof of possession"):
        esp_client(Security1("not-the-pop", False), security.Sec1Device(POP))


@pytest.mark.parametrize("patch", [0, 1])
def test_espressifs_client_talks_to_our_device_security2(patch: int) -> None:
    salt, verifier = generate_salt_and_verifier("wifiprov", POP, len_s=16)
    assert srp.verifier(salt, "wifiprov", POP) == verifier
    device = security.Sec2Device("wifiprov", salt, verifier, patch_level=patch)
    theirs = esp_client(Security2(patch, "wifiprov", POP, False), device)
    assert device.cipher is not None
    for n in range(3):
        assert exchange(theirs.encrypt_data, device.cipher.decrypt, b"req %d" % n) == b"req %d" % n
        assert (
            exchange(device.cipher.encrypt, theirs.decrypt_data, b"resp %d" % n) == b"resp %d" % n
        )
    with pytest.raises(security.SessionError, match="wrong user name or password"):
        esp_client(
            Security2(patch, "wifiprov", "wrong", False),
            security.Sec2Device("wifiprov", salt, verifier, patch_level=patch),
        )


def test_wrong_secrets_fail_clearly_and_leave_no_cipher() -> None:
    client = security.Sec1Client("wrong-pop")
    with pytest.raises(security.SessionError, match="wrong proof of possession"):
        drive(client, security.Sec1Device(POP))
    assert client.cipher is None  # nothing can be encrypted: no credentials leave
    salt = os.urandom(16)
    client2 = security.Sec2Client("wifiprov", "wrong")
    with pytest.raises(security.SessionError, match="wrong user name or password"):
        drive(client2, security.Sec2Device("wifiprov", salt, srp.verifier(salt, "wifiprov", POP)))
    assert client2.cipher is None


def test_fixed_keys_replay_byte_for_byte() -> None:
    def run() -> list[bytes]:
        client = security.Sec1Client(POP, X25519PrivateKey.from_private_bytes(bytes(range(32))))
        device = security.Sec1Device(
            POP, X25519PrivateKey.from_private_bytes(bytes(range(32, 64))), device_random=bytes(16)
        )
        transcript = drive(client, device)
        assert client.cipher is not None
        return [*transcript, client.cipher.encrypt(wifi.set_config("Kanarra", "s3cret!!"))]

    first, second = run(), run()
    assert first == second
    salt = bytes(range(16))

    def run2() -> list[bytes]:
        client = security.Sec2Client("wifiprov", POP, a=(1 << 255) | 12345)
        device = security.Sec2Device(
            "wifiprov", salt, srp.verifier(salt, "wifiprov", POP), b=67890, nonce=bytes(12)
        )
        transcript = drive(client, device)
        assert client.cipher is not None
        return [*transcript, client.cipher.encrypt(b"x"), client.cipher.encrypt(b"x")]

    a, b = run2(), run2()
    assert a == b
    assert a[-1] != a[-2]  # patch level 1: the nonce counts, equal plaintexts differ


def test_hostile_device_answers_are_refused() -> None:
    client = security.Sec1Client(POP)
    client.start()
    for bad in (b"\xff\xff", b"", bytes(range(40))):
        with pytest.raises(security.SessionError):
            client.answer(bad)
    sec0 = security.Sec1Client(POP)
    sec0.start()
    with pytest.raises(security.SessionError, match="uses security 0"):
        sec0.answer(security.Sec0Device().respond(security.Sec0Client().start()))


def test_config_scan_and_status_messages_round_trip() -> None:
    request = wifi.parse_config_request(wifi.set_config("Kanarra Ops", "correct horse"))
    assert request.cmd_set_config.ssid == b"Kanarra Ops"
    wifi.check_set_config(wifi.config_answer(3))
    with pytest.raises(wifi.ProtocolError, match="refused the network settings"):
        wifi.check_set_config(wifi.config_answer(3, status=4))
    for status in (
        wifi.StationStatus(wifi.StationState.CONNECTED, ip4="192.168.1.7", ssid="Kanarra Ops"),
        wifi.StationStatus(wifi.StationState.CONNECTING, attempts_remaining=2),
        wifi.StationStatus(wifi.StationState.FAILED, reason=wifi.FailReason.AUTH_ERROR),
        wifi.StationStatus(wifi.StationState.FAILED, reason=wifi.FailReason.NOT_FOUND),
    ):
        assert wifi.parse_status(wifi.status_answer(status)) == status
    nets = [
        wifi.Network("Kanarra Ops", 6, -48, bytes(6), 3),
        wifi.Network("Guest", 11, -80, b"\x01" * 6, 0),
    ]
    assert wifi.parse_scan_results(wifi.scan_answer(5, networks=nets)) == nets
    assert wifi.parse_scan_status(wifi.scan_answer(3, finished=True, count=2)) == (True, 2)
    assert wifi.parse_user_mapping_request(wifi.set_user_mapping("u1", "k1")) == ("u1", "k1")
    assert wifi.parse_user_mapping_answer(wifi.user_mapping_answer("node-7")) == "node-7"
    with pytest.raises(wifi.ProtocolError):
        wifi.set_config("x" * 33, "")
    version = wifi.Version("v1.1", 2, 1, ("wifi_scan",), {"rmaker": {"ver": "v1.1"}})
    assert wifi.parse_version(wifi.render_version(version)) == version
    assert wifi.parse_version(b"v1.0").version == "v1.0"


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_every_parser_is_total(data: bytes) -> None:
    for parse in (
        wifi.parse_status,
        wifi.parse_scan_results,
        wifi.parse_scan_status,
        wifi.parse_user_mapping_answer,
        wifi.parse_ctrl_answer,
        wifi.parse_config_request,
        wifi.parse_scan_request,
        wifi.parse_version,
        wifi.check_apply_config,
    ):
        with contextlib.suppress(wifi.ProtocolError):
            parse(data)
    for side in (security.Sec1Device(POP), security.Sec0Device()):
        with contextlib.suppress(security.SessionError):
            side.respond(data)


def test_our_client_replays_espressifs_recorded_transcripts_byte_for_byte() -> None:
    """tests/vectors/espprov_transcripts.json was recorded from Espressif's client with fixed
    keys (scripts/espprov_transcripts.py); ours, given the same secrets and the recorded
    answers, must send exactly the same bytes."""
    import json
    from pathlib import Path

    vectors = json.loads(
        (Path(__file__).parents[1] / "vectors" / "espprov_transcripts.json").read_text()
    )
    cases: list[tuple[str, security.ClientSession]] = [
        (
            "sec1",
            security.Sec1Client(
                vectors["pop"],
                X25519PrivateKey.from_private_bytes(bytes.fromhex(vectors["client_key"])),
            ),
        ),
        (
            "sec2_patch0",
            security.Sec2Client(
                vectors["username"], vectors["pop"], int(vectors["a"], 16), patch_level=0
            ),
        ),
        (
            "sec2_patch1",
            security.Sec2Client(
                vectors["username"], vectors["pop"], int(vectors["a"], 16), patch_level=1
            ),
        ),
    ]
    for name, client in cases:
        recorded = vectors[name]
        sent = [client.start()]
        for answer in recorded["answers"]:
            following = client.answer(bytes.fromhex(answer))
            if following is not None:
                sent.append(following)
        assert [s.hex() for s in sent] == recorded["requests"], name
        assert client.cipher is not None
        assert (
            client.cipher.encrypt(wifi.set_config(vectors["ssid"], vectors["passphrase"])).hex()
            == recorded["set_config"]
        ), name
