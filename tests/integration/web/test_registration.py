"""Signed-token registration (POST /api/v1/register) over real HTTP, on both backends:
ES256 and HS256 tokens, and every way a token is refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provisiond.bootstrap import open_container
from provisiond.services import devices
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_api import problem

URL = "/api/v1/register"
NOT_SIGNED = "the token is not signed by the key of an enabled profile (its kid)"


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        provisioning__unknown_source_rate_per_minute=1000,
        device_key_passphrase="registration keys stay sealed",
    )


def es256_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def claims(serial: str, **extra: Any) -> dict[str, Any]:
    return {"serial": serial, "exp": int(time.time()) + 300, "jti": str(uuid.uuid4()), **extra}


def register(server: Server, token: str) -> httpx.Response:
    return httpx.post(server.url + URL, json={"token": token})


def device_token_works(server: Server, token: str) -> str:
    async def main() -> str:
        async with open_container(server.settings) as c:
            return (await devices.authenticate_device(c.uow(), token=token, now=c.now())).serial

    return asyncio.run(main())


def test_es256_registration_and_refusals(server: Server, api: httpx.Client) -> None:
    api.post("/api/v1/groups", json={"path": "Kanarra/Line-2"})
    api.post("/api/v1/models", json={"name": "KG-450"})
    private, public = es256_pair()
    made = api.post(
        "/api/v1/profiles",
        json={"name": "line-2", "group": "Kanarra/Line-2", "jwt_public_key": public},
    )
    assert made.status_code == 201, made.text
    assert made.json()["registration_algorithm"] == "ES256"
    kid = made.json()["key"]

    def sign(
        body: dict[str, Any],
        key: Any = private,
        alg: str = "ES256",
        headers: dict[str, Any] | None = None,
    ) -> str:
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **(headers or {})})

    ok = register(server, sign(claims("kg 0001", model="kg-450")))
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["serial"] == "KG0001"
    assert body["token"] == f"{body['key']}.{body['secret']}"
    assert device_token_works(server, body["token"]) == "KG0001"
    shown = api.get("/api/v1/devices/KG0001").json()
    assert (shown["id"], shown["model"], shown["state"], shown["group"]) == (
        body["deviceId"],
        "KG-450",
        "claimed",
        "Kanarra/Line-2",
    )

    def refused(
        token: str, detail: str, status: int = 401, code: str = "registration-refused"
    ) -> None:
        doc = problem(register(server, token), status, code)
        assert doc["detail"] == detail, doc

    once = claims("KG0002")
    assert register(server, sign(once)).status_code == 201
    refused(sign(once), "the token was already used")  # replay
    refused(sign({**claims("KG0003"), "exp": int(time.time()) - 120}), "the token has expired")
    other, _ = es256_pair()
    # a wrong signature, another algorithm and an unknown kid all get the same answer: a
    # token cannot tell which provision keys exist
    refused(sign(claims("KG0004"), key=other), NOT_SIGNED)
    # alg none, and HS256 keyed with the public key (the algorithm confusion attack)
    unsigned = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": kid}).encode())
        .rstrip(b"=")
        .decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps(claims("KG0005")).encode()).rstrip(b"=").decode()
        + "."
    )
    refused(unsigned, NOT_SIGNED)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
        + "."
        + b64(json.dumps(claims("KG0006")).encode())
    )
    forged = (
        signing_input
        + "."
        + b64(hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest())
    )
    refused(forged, NOT_SIGNED)
    refused(
        sign({"serial": "KG0007", "exp": int(time.time()) + 60}), "the token has no 'jti' claim"
    )
    refused(
        sign(claims("KG0008", exp=int(time.time()) + 3 * 86400)),
        "the token's exp is more than a day ahead: registration tokens must be short-lived",
    )
    refused(
        jwt.encode(claims("KG0009"), private, algorithm="ES256"),
        "the token's header has no kid (the profile's provision key)",
    )
    refused(
        jwt.encode(claims("KG0009"), private, algorithm="ES256", headers={"kid": "unknown-kid"}),
        NOT_SIGNED,
    )
    refused("not-a-jwt", "the token is not a JWT")
    doc = problem(register(server, sign(claims("bad/serial"))), 422, "invalid-input")
    assert doc["errors"] == [
        {
            "field": "serial",
            "message":  # type: ignore[comparison-overlap]
            "contains '/'; a serial may hold only letters A-Z, digits, '-', '_', '.' and ':'",
        }
    ]
    problem(register(server, sign(claims("KG0001"))), 409, "device-exists")
    problem(register(server, sign(claims("KG0010", model="NOPE"))), 404, "model-not-found")
    serials = [d["serial"] for d in api.get("/api/v1/devices").json()["items"]]
    assert serials == ["KG0001", "KG0002"]  # nothing else was created


def test_hs256_with_the_secrets_hash_and_switching_keys(server: Server, api: httpx.Client) -> None:
    made = api.post("/api/v1/profiles", json={"name": "hs"}).json()
    assert made["registration_algorithm"] == "HS256"
    key = hashlib.sha256(made["secret"].encode()).digest()
    token = jwt.encode(claims("HS1"), key, algorithm="HS256", headers={"kid": made["key"]})
    assert register(server, token).status_code == 201
    wrong = jwt.encode(
        claims("HS2"), made["secret"].encode() * 2, algorithm="HS256", headers={"kid": made["key"]}
    )
    problem(register(server, wrong), 401, "registration-refused")

    private, public = es256_pair()
    assert (
        api.put("/api/v1/profiles/hs/jwt-key", json={"public_key": public}).json()[
            "registration_algorithm"
        ]
        == "ES256"
    )
    problem(
        register(
            server, jwt.encode(claims("HS3"), key, algorithm="HS256", headers={"kid": made["key"]})
        ),
        401,
        "registration-refused",
    )
    assert (
        register(
            server,
            jwt.encode(claims("HS4"), private, algorithm="ES256", headers={"kid": made["key"]}),
        ).status_code
        == 201
    )
    doc = problem(
        api.put("/api/v1/profiles/hs/jwt-key", json={"public_key": "not a key"}),
        422,
        "invalid-input",
    )
    assert doc["errors"][0]["field"] == "jwt_public_key"  # type: ignore[index]
    rsa_like = api.post("/api/v1/profiles", json={"name": "x", "jwt_public_key": "-----BEGIN"})
    problem(rsa_like, 422, "invalid-input")
    api.post("/api/v1/profiles/hs/disable")
    problem(
        register(
            server,
            jwt.encode(claims("HS5"), private, algorithm="ES256", headers={"kid": made["key"]}),
        ),
        401,
        "registration-refused",
    )


def _database_copy(server: Server) -> list[bytes]:
    """Every key an attacker could try from a copy of the database: each text value the
    profiles table holds, as it is, as hex, and as base64."""
    from tests.integration.web.test_provisioning import sql

    keys: list[bytes] = []
    for row in sql(server, "SELECT * FROM provision_profiles"):
        for value in row:
            if not isinstance(value, str) or not value:
                continue
            keys.append(value.encode())
            tail = value.partition(":")[2] or value
            for decode in (bytes.fromhex, base64.b64decode):
                with contextlib.suppress(ValueError):
                    keys.append(decode(tail))
    return keys


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # tried on purpose
def test_nothing_in_a_copy_of_the_database_signs_a_registration_token(
    server: Server, api: httpx.Client
) -> None:
    """The HS256 key used to be the stored SHA-256 of the profile secret: anyone with a copy
    of the database (a backup, a replica) minted tokens for any serial."""
    made = api.post("/api/v1/profiles", json={"name": "hs"}).json()
    stolen = _database_copy(server)
    assert len(stolen) >= 4
    for n, key in enumerate(stolen):
        minted = jwt.encode(
            claims(f"STOLEN-{n}"), key, algorithm="HS256", headers={"kid": made["key"]}
        )
        assert register(server, minted).status_code == 401, key
    genuine = jwt.encode(
        claims("HS-OK"),
        hashlib.sha256(made["secret"].encode()).digest(),
        algorithm="HS256",
        headers={"kid": made["key"]},
    )
    assert register(server, genuine).status_code == 201
    serials = [d["serial"] for d in api.get("/api/v1/devices").json()["items"]]
    assert serials == ["HS-OK"]


def test_an_unknown_key_and_a_bad_signature_are_answered_alike(
    server: Server, api: httpx.Client
) -> None:
    """A token with a made-up kid used to be told "no enabled profile has this key": a way
    to find out which provision keys exist."""
    private, public = es256_pair()
    made = api.post("/api/v1/profiles", json={"name": "es", "jwt_public_key": public}).json()
    hs = api.post("/api/v1/profiles", json={"name": "hs2"}).json()
    impostor, _ = es256_pair()
    answers = []
    for kid in (made["key"], hs["key"], "no-such-kid", "another-made-up-one"):
        for alg, key in (("ES256", impostor), ("HS256", b"0" * 32)):
            r = register(
                server, jwt.encode(claims("PROBE-1"), key, algorithm=alg, headers={"kid": kid})
            )
            answers.append((r.status_code, r.json()["detail"]))
    assert len(set(answers)) == 1, answers
    api.post("/api/v1/profiles/es/disable")
    disabled = register(
        server,
        jwt.encode(claims("PROBE-2"), private, algorithm="ES256", headers={"kid": made["key"]}),
    )
    assert (disabled.status_code, disabled.json()["detail"]) == answers[0]
