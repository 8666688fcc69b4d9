"""Attacks on certificate-chain attestation, over real TLS on loopback (MQTT and HTTPS):
a certificate signed by another CA, a self-signed one with the manufacturer's name, another
device's serial from an untrusted issuer, a device's certificate replayed without its key,
expired and not-yet-valid certificates — each fails the handshake; requests of unknown
issuers count against the unknown-source limit."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from provisiond.settings import Settings
from tests.integration.attestation.conftest import (
    DAY,
    Device,
    Issuer,
    Pki,
    Refused,
    attesting_settings,
    events,
    handshake,
    https_provision,
    make_ca,
    make_device,
    mqtt_provision,
)
from tests.integration.web.conftest import Server

UNKNOWN_RATE = 3


@pytest.fixture
def server_settings(database_url: str, pki: Pki) -> Settings:
    return attesting_settings(
        database_url,
        pki,
        provisioning__unknown_source_rate_per_minute=UNKNOWN_RATE,
    )


def refused_everywhere(server: Server, pki: Pki, device: Device) -> None:
    """The handshake fails on both listeners: nothing reaches provisioning."""
    assert not handshake(server.mqtt_port, pki, device)
    with pytest.raises(Refused):
        mqtt_provision(server, pki, device)
    with pytest.raises(httpx.TransportError):
        https_provision(server, pki, device)


def test_a_certificate_signed_by_another_ca_fails_the_handshake(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    refused_everywhere(server, pki, pki.device("ATK-1", pki.rogue))
    assert api.get("/api/v1/devices/ATK-1").status_code == 404


def test_a_self_signed_certificate_with_the_makers_name_fails_the_handshake(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    impostor = make_ca(pki.maker.cert.subject.rfc4514_string().removeprefix("CN="))
    assert impostor.cert.subject == pki.maker.cert.subject
    refused_everywhere(server, pki, pki.device("ATK-2", impostor))
    assert api.get("/api/v1/devices/ATK-2").status_code == 404


def test_another_devices_serial_from_an_untrusted_issuer_cannot_take_its_identity(
    server: Server, api: httpx.Client, pki: Pki
) -> None:
    victim = pki.device("VIC-1")
    assert mqtt_provision(server, pki, victim)["status"] == "SUCCESS"
    refused_everywhere(server, pki, pki.device("VIC-1", pki.rogue))
    refused_everywhere(server, pki, pki.device("VIC-1", make_ca("Maker CA")))  # its name too
    assert len(api.get("/api/v1/devices/VIC-1").json()["credentials"]) == 1
    assert events(server, "VIC-1", ["device.reprovision-refused"]) == []  # never got that far


def _der_length(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_integer(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_length(len(raw)) + raw


def key_without_the_private_half(public: rsa.RSAPublicKey, path: Path) -> None:
    """An RSA private key file whose public half is the device's (so TLS libraries take it
    with the device's certificate) and whose private half is made up: all an attacker who
    copied the certificate has."""
    numbers = public.public_numbers()
    fields = [0, numbers.n, numbers.e] + [secrets.randbits(1024) | 1 for _ in range(6)]
    body = b"".join(_der_integer(v) for v in fields)
    der = b"\x30" + _der_length(len(body)) + body
    path.write_bytes(
        b"-----BEGIN RSA PRIVATE KEY-----\n"
        + base64.encodebytes(der)
        + b"-----END RSA PRIVATE KEY-----\n"
    )


def test_a_certificate_replayed_without_its_key_fails_the_handshake(
    server: Server, api: httpx.Client, pki: Pki, tmp_path: Path
) -> None:
    """A certificate is public (a device shows it in every handshake): the handshake's
    CertificateVerify, a signature by its key, is what proves the device."""
    device_key = rsa.generate_private_key(65537, 2048)
    genuine = make_device(tmp_path, "RSA-1", pki.maker, key=device_key, name="genuine")
    stolen = Device(genuine.cert, tmp_path / "made-up.key", genuine.certificate)
    key_without_the_private_half(device_key.public_key(), stolen.key)
    refused_everywhere(server, pki, stolen)
    assert api.get("/api/v1/devices/RSA-1").status_code == 404
    assert mqtt_provision(server, pki, genuine)["status"] == "SUCCESS"  # the device itself


@pytest.mark.parametrize(
    "valid",
    [(-2 * DAY, -DAY), (DAY, 2 * DAY)],
    ids=["expired", "not-yet-valid"],
)
def test_an_expired_or_not_yet_valid_certificate_fails_the_handshake(
    server: Server, api: httpx.Client, pki: Pki, valid: tuple[dt.timedelta, dt.timedelta]
) -> None:
    refused_everywhere(server, pki, pki.device("TIME-1", valid=valid))
    assert api.get("/api/v1/devices/TIME-1").status_code == 404


def test_refusals_of_unknown_issuers_count_against_the_sources_limit(
    server: Server, pki: Pki
) -> None:
    """A chain the handshake accepts (its root is a device CA) from an intermediate nobody
    registered: refused by provisioning, counted per address as wrong secrets are."""
    stray = make_device(pki.directory, "STRAY-1", make_ca("Maker Line 9", pki.root))
    for _ in range(UNKNOWN_RATE):
        r = https_provision(server, pki, stray)
        assert (r.status_code, r.json()["status"]) == (200, "NOT_FOUND")
    r = https_provision(server, pki, stray)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "Too many provision requests" in mqtt_provision(server, pki, stray)["errorMsg"]
    # a device of a known profile is not held back by the strays' limit
    good = make_device(pki.directory, "GOOD-1", pki.maker)
    assert https_provision(server, pki, good).json()["status"] == "SUCCESS"


def test_wrong_secrets_and_unknown_issuers_share_one_budget_per_address(
    server: Server, pki: Pki
) -> None:
    """An attacker cannot double their guesses by alternating the two ways of naming no
    profile: wrong profile secrets over the plain device API spend the same budget as
    certificates of unknown issuers over mutual TLS."""
    wrong = {"provisionDeviceKey": "no-such-key", "provisionDeviceSecret": "guess"}
    for i in range(UNKNOWN_RATE):
        r = httpx.post(f"{server.url}/api/v1/provision", json={**wrong, "deviceName": f"G-{i}"})
        assert r.json()["status"] == "NOT_FOUND"
    stray = make_device(pki.directory, "STRAY-2", make_ca("Maker Line 8", pki.root))
    r = https_provision(server, pki, stray)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1


def test_an_ec_key_of_another_curve_is_still_a_device_of_its_maker(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    device = make_device(tmp_path, "P384-1", pki.maker, key=ec.generate_private_key(ec.SECP384R1()))
    assert https_provision(server, pki, device).json()["status"] == "SUCCESS"


def test_an_issuer_that_is_not_a_ca_cannot_sign_devices(server: Server, pki: Pki) -> None:
    """A device certificate (not a CA) of the maker used to sign another: refused by the
    handshake's chain check."""
    holder = pki.device("HOLDER-1")
    key = holder.key.read_bytes()
    as_issuer = Issuer(holder.certificate, load_pem_private_key(key, None), (pki.maker.cert,))  # type: ignore[arg-type]
    refused_everywhere(server, pki, pki.device("CHILD-1", as_issuer))
