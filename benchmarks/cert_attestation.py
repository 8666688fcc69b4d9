"""Devices provisioned per second by certificate-chain attestation over mutual-TLS MQTT, and
the TLS handshake's cost alone.

    python benchmarks/cert_attestation.py [--rounds 3] [--seconds 10] [--sessions 64]
                                          [--backends sqlite] [--modes attest,tls,mtls]

Per round, backend and mode: a freshly migrated database with the manufacturer CA
registered by its certificate and one profile whose device CA it is (x509 credentials,
limits out of the way), `provisiond serve` (one process, SQLite synchronous=FULL) with the
MQTT provisioning listener over TLS asking for client certificates, and a load generator in
its own process (uvloop) keeping `--sessions` devices going for `--seconds`:

- ``attest``: each device is new, with its own certificate of the maker CA (EC P-256, made
  before the clock starts): a new TLS connection presenting it, CONNECT (user name
  ``provision``), SUBSCRIBE and the request ``{}`` in one write, the answer, close;
- ``tls`` / ``mtls``: the TLS handshake alone (connect, handshake, close) on the same
  listener, without and with a client certificate: what each device above pays before any
  MQTT.

Every answer must be ``SUCCESS`` with the device's own certificate, and the database must
hold one device per answer. Prints JSON lines, then medians per backend and mode. The
server's and the maker's certificates are benchmarks/dps.py's (made once, in .data/dps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from common import (
    drive,
    free_port,
    fresh_database,
    generate,
    load_options,
    mode_rounds,
    print_header,
    provisiond,
    query_scalar,
    run_generator,
    serving,
)
from dps import DATA, _packet, _text, device_cert, pki


def opening() -> bytes:
    """CONNECT (MQTT 3.1.1, user name ``provision``), SUBSCRIBE and the request, at once."""
    connect = _packet(
        0x10,
        _text("MQTT") + bytes([4, 0x82]) + (60).to_bytes(2, "big") + _text("") + _text("provision"),
    )
    subscribe = _packet(0x82, (1).to_bytes(2, "big") + _text("/provision/response") + b"\x01")
    publish = _packet(0x32, _text("/provision/request") + (2).to_bytes(2, "big") + b"{}")
    return connect + subscribe + publish


async def _answer(reader: asyncio.StreamReader) -> dict:  # type: ignore[type-arg]
    """The answer's payload, skipping CONNACK, SUBACK and PUBACK."""
    while True:
        header = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            b = (await reader.readexactly(1))[0]
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        body = await reader.readexactly(length)
        if header >> 4 == 3:
            at = 2 + int.from_bytes(body[:2], "big") + (2 if (header >> 1) & 3 else 0)
            return json.loads(body[at:])  # type: ignore[no-any-return]


async def load(port: int, mode: str, sessions: int, seconds: float, prefix: str) -> dict:  # type: ignore[type-arg]
    import ssl

    base = ssl.create_default_context(cafile=str(DATA / "ca.pem"))
    contexts: list[tuple[ssl.SSLContext, str]] = []
    if mode in ("attest", "mtls"):  # one certificate per device: made before the clock starts
        for i in range(sessions * 80):
            cert, key = device_cert(f"{prefix}-{i}")
            context = ssl.create_default_context(cafile=str(DATA / "ca.pem"))
            path = DATA / f"attest-{i % 4096}.pem"
            path.write_bytes(cert + key)
            context.load_cert_chain(path)
            contexts.append((context, cert.decode()))
    next_device = 0

    async def one() -> bool:
        nonlocal next_device
        i = next_device
        next_device += 1
        context, pem = contexts[i % len(contexts)] if contexts else (base, "")
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        try:
            if mode != "attest":
                return True
            writer.write(opening())
            answer = await _answer(reader)
            return answer.get("status") == "SUCCESS" and answer.get("credentialsValue") == pem
        finally:
            writer.close()

    result = await drive(one, sessions, seconds)
    result["repeats"] = max(0, int(result["requests"]) - len(contexts)) if mode == "attest" else 0
    return result


def run(backend: str, mode: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_attest_{backend}")
    provisiond("db", "upgrade", database=database)
    provisiond("ca", "import", "maker", "--cert", str(DATA / "maker.pem"), database=database)
    provisiond(
        "profiles", "create", "bench", "--rate-limit", "1000000", "--source-rate-limit",
        "1000000", "--credentials", "x509", "--device-ca", "maker", database=database,
    )  # fmt: skip
    port = free_port()
    os.environ.update(
        PROVISIOND_PROVISIONING__MQTT_TLS_CERT=str(DATA / "server.pem"),
        PROVISIOND_PROVISIONING__MQTT_TLS_KEY=str(DATA / "server.key"),
        PROVISIOND_PROVISIONING__MQTT_CLIENT_CERTIFICATES="true",
    )
    with serving(database, "--mqtt-port", str(port)):
        result = run_generator(
            __file__, str(port), mode, str(args.sessions), str(args.seconds), f"a{round_no}"
        )
    if mode == "attest":
        result["devices"] = query_scalar(database, "SELECT count(*) FROM devices")
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(load, sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    load_options(parser, sessions=64, backends="sqlite")
    parser.add_argument("--modes", default="attest,tls,mtls")
    args = parser.parse_args()
    pki()
    print_header(sessions=args.sessions, seconds=args.seconds)
    mode_rounds(
        args.backends.split(","),
        args.modes.split(","),
        args.rounds,
        lambda backend, mode, round_no: run(backend, mode, args, round_no),
    )


if __name__ == "__main__":
    main()
