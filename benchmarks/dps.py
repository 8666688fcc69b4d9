"""Azure DPS registrations per second over MQTT and TLS, and the TLS handshake's cost alone.

    python benchmarks/dps.py [--rounds 3] [--seconds 10] [--sessions 64]
                             [--backends sqlite,postgresql] [--modes key,x509,tls,mtls,https]
                             [--per-connection 64]

Per round, backend and mode: a freshly migrated database with one profile (limits out of
the way) and its enrollment group, `provisiond serve --dps-port` (one process, SQLite
synchronous=FULL), and a load generator in its own process (uvloop) keeping `--sessions`
devices going for `--seconds`. Each device is new: it opens a TLS 1.2+ connection, sends
CONNECT (client id = registration id, a SAS token as password), SUBSCRIBE and the register
request in one write, reads the 202 `assigning`, polls the operation (a single-space body,
as the SDK) and reads the 200 `assigned`, then disconnects — the SDK's flow without its
2-second wait between the two.

- ``key``: a symmetric-key group (each device signs with its derived key);
- ``x509``: an X.509 group; each device presents a certificate of the group's CA (made
  beforehand, EC P-256) — mutual TLS;
- ``tls`` / ``mtls``: the TLS handshake alone (connect, handshake, close), without and with
  a client certificate: what the registrations above pay per device before any MQTT;
- ``https``: DPS's HTTPS REST API (``serve --dps-https-port``) with keep-alive, symmetric
  keys: each of ``--sessions`` TLS connections carries ``--per-connection`` registrations
  one after another (``PUT …/register`` with its SAS in ``Authorization``, then the status
  ``GET …/operations/{id}``, authenticated again, as the SDK's HTTP transport), then the
  next connection (``dps__https_requests_per_connection`` raised to allow it). Over MQTT a
  connection is one registration (the client id and the user name name it), so this is how
  one TLS connection carries many: the handshake spread thin, what a registration itself
  costs shows.

Each run also reports the CPU time the server process (all its threads) spent, per
registration (per handshake), from /proc/<pid>/stat: robust to other work on the machine,
unlike the wall-clock rate; the cores it kept busy, and how long its threads were runnable
but waiting for a CPU (/proc/<pid>/task/*/schedstat).

Every answer must be ``assigned`` and the database must hold one device per registration.
Prints JSON lines, then medians per backend and mode.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from common import (
    free_port,
    fresh_database,
    load_options,
    mode_rounds,
    print_header,
    process_cpu,
    process_waiting,
    provisiond,
    query_scalar,
    served,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "dps"
SCOPE = "0ne00BENCH"
GROUP_KEY = base64.b64encode(
    b"provisiond benchmark group key, 64 bytes long....-------------"
).decode()


def pki() -> None:
    """The server's CA and certificate, and a maker CA for the x509 mode (made once)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if (DATA / "maker.key").exists():
        return
    DATA.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def make(name: str, issuer: tuple[object, object] | None, *, ca: bool, san: bool = False):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer[0].subject if issuer else subject)  # type: ignore[attr-defined]
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())  # type: ignore[arg-type]
        return cert, key

    def write(name: str, cert, key) -> None:  # type: ignore[no-untyped-def]
        (DATA / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (DATA / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca = make("bench server CA", None, ca=True)
    write("ca", *ca)
    write("server", *make("127.0.0.1", ca, ca=False, san=True))
    write("maker", *make("bench maker CA", None, ca=True))


def device_cert(registration_id: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    maker = x509.load_pem_x509_certificate((DATA / "maker.pem").read_bytes())
    maker_key = serialization.load_pem_private_key((DATA / "maker.key").read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, registration_id)]))
        .issuer_name(maker.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(maker_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# the load generator ---------------------------------------------------------------------


def _text(s: str) -> bytes:
    raw = s.encode()
    return len(raw).to_bytes(2, "big") + raw


def _packet(header: int, body: bytes) -> bytes:
    out, n = bytearray([header]), len(body)
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out) + body


def _sas(registration_id: str) -> str:
    key = hmac.new(base64.b64decode(GROUP_KEY), registration_id.encode(), hashlib.sha256).digest()
    resource = quote(f"{SCOPE}/registrations/{registration_id}", safe="")
    expiry = int(time.time()) + 3600
    sig = base64.b64encode(
        hmac.new(key, f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    ).decode()
    return f"SharedAccessSignature sr={resource}&sig={quote(sig, safe='')}&se={expiry}"


def opening(registration_id: str, password: str | None) -> bytes:
    user = f"{SCOPE}/registrations/{registration_id}/api-version=2019-03-31"
    flags = 0x02 | 0x80 | (0x40 if password is not None else 0)
    body = _text("MQTT") + bytes([4, flags]) + (60).to_bytes(2, "big") + _text(registration_id)
    body += _text(user) + (_text(password) if password is not None else b"")
    connect = _packet(0x10, body)
    subscribe = _packet(0x82, (1).to_bytes(2, "big") + _text("$dps/registrations/res/#") + b"\x01")
    register = _packet(
        0x32,
        _text("$dps/registrations/PUT/iotdps-register/?$rid=1")
        + (2).to_bytes(2, "big")
        + json.dumps({"registrationId": registration_id}).encode(),
    )
    return connect + subscribe + register


async def _publication(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict:  # type: ignore[type-arg]
    """The next PUBLISH's payload (acknowledged), skipping CONNACK, SUBACK and PUBACK."""
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
        if header >> 4 != 3:
            continue
        n = int.from_bytes(body[:2], "big")
        at = 2 + n
        if (header >> 1) & 3:
            writer.write(_packet(0x40, body[at : at + 2]))
            at += 2
        return json.loads(body[at:])  # type: ignore[no-any-return]


def http_request(method: str, target: str, rid: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {target}?api-version=2019-03-31 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {_sas(rid)}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def http_answer(reader: asyncio.StreamReader) -> tuple[int, dict]:  # type: ignore[type-arg]
    """An HTTP/1.1 response's status and JSON body (Content-Length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return int(lines[0].split()[1]), json.loads(await reader.readexactly(length))


async def https_registrations(
    port: int, context: ssl.SSLContext, rids: list[str], latencies: list[float]
) -> int:
    """Register ``rids`` one after another over one keep-alive TLS connection (each one's
    time added to ``latencies``, the first's with the handshake); how many were assigned."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    assigned = 0
    try:
        for rid in rids:
            started = time.perf_counter()
            path = f"/{SCOPE}/registrations/{rid}"
            body = json.dumps({"registrationId": rid}).encode()
            writer.write(http_request("PUT", f"{path}/register", rid, body))
            status, begun = await http_answer(reader)
            if status != 202:
                continue
            writer.write(http_request("GET", f"{path}/operations/{begun['operationId']}", rid))
            status, done = await http_answer(reader)
            assigned += status == 200 and done.get("status") == "assigned"
            latencies.append(time.perf_counter() - started)
        return assigned
    finally:
        writer.close()


async def load(
    port: int, mode: str, sessions: int, seconds: float, prefix: str, pid: int, per: int
) -> dict:  # type: ignore[type-arg]
    latencies: list[float] = []
    failures = 0
    registrations = 0
    base = ssl.create_default_context(cafile=str(DATA / "ca.pem"))
    contexts: list[ssl.SSLContext] = []
    if mode in ("x509", "mtls"):  # one certificate per device: made before the clock starts
        count = sessions * 160
        for i in range(count):
            cert, key = device_cert(f"{prefix}-{i}")
            c = ssl.create_default_context(cafile=str(DATA / "ca.pem"))
            path = DATA / f"dev-{i % 4096}.pem"
            path.write_bytes(cert + key)
            c.load_cert_chain(path)
            contexts.append(c)
    next_device = 0
    deadline = time.perf_counter() + seconds  # once the certificates are made

    async def one() -> bool:
        nonlocal next_device
        i = next_device
        next_device += 1
        rid = f"{prefix}-{i}"
        context = contexts[i] if contexts else base
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        try:
            if mode in ("tls", "mtls"):
                return True
            writer.write(opening(rid, _sas(rid) if mode == "key" else None))
            begun = await _publication(reader, writer)
            topic = (
                "$dps/registrations/GET/iotdps-get-operationstatus/"
                f"?$rid=2&operationId={begun.get('operationId')}"
            )
            writer.write(_packet(0x32, _text(topic) + (3).to_bytes(2, "big") + b" "))
            done = await _publication(reader, writer)
            return done.get("status") == "assigned"
        finally:
            writer.close()

    async def many() -> None:
        nonlocal next_device, registrations, failures
        first = next_device
        next_device += per
        rids = [f"{prefix}-{i}" for i in range(first, first + per)]
        assigned = await https_registrations(port, base, rids, latencies)
        registrations += per
        failures += per - assigned

    async def session_loop() -> None:
        nonlocal failures, registrations
        # with one certificate per device the run also ends when they are all used
        while time.perf_counter() < deadline and not (contexts and next_device >= len(contexts)):
            if mode == "https":
                await many()
                continue
            started = time.perf_counter()
            ok = await one()
            latencies.append(time.perf_counter() - started)
            registrations += 1
            failures += not ok

    cpu, own, waited = process_cpu(pid), time.process_time(), process_waiting(pid)
    started = time.perf_counter()
    await asyncio.gather(*(session_loop() for _ in range(sessions)))
    elapsed = time.perf_counter() - started
    cpu, own = process_cpu(pid) - cpu, time.process_time() - own
    waited = process_waiting(pid) - waited
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2)

    return {
        "rps": round(registrations / elapsed),
        "requests": registrations,
        "failures": failures,
        "server_cpu_ms": round(cpu / registrations * 1000, 3),  # per registration
        "server_cpu_share": round(cpu / elapsed, 2),  # cores the server kept busy
        "server_waiting_share": round(waited / elapsed, 2),  # runnable, not running
        "client_cpu_ms": round(own / registrations * 1000, 3),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


# the rounds ------------------------------------------------------------------------------


def run(backend: str, mode: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_dps_{backend}")
    provisiond("db", "upgrade", database=database)
    limits = ("--rate-limit", "1000000", "--source-rate-limit", "1000000")
    if mode in ("x509", "mtls"):
        provisiond("ca", "import", "maker", "--cert", str(DATA / "maker.pem"), database=database)
        provisiond(
            "profiles", "create", "bench", *limits, "--credentials", "x509", "--device-ca",
            "maker", database=database,
        )  # fmt: skip
        provisiond("dps", "group", "bench", "--x509", "--hub", "hub.bench", database=database)
    else:
        provisiond("profiles", "create", "bench", *limits, database=database)
        provisiond(
            "dps", "group", "bench", "--hub", "hub.bench", "--key", GROUP_KEY, database=database
        )
    port = free_port()
    per = str(args.per_connection)
    os.environ.update(
        PROVISIOND_DPS__HTTPS_REQUESTS_PER_CONNECTION=str(2 * args.per_connection),
        PROVISIOND_DPS__ID_SCOPE=SCOPE,
        PROVISIOND_DPS__TLS_CERT=str(DATA / "server.pem"),
        PROVISIOND_DPS__TLS_KEY=str(DATA / "server.key"),
        PROVISIOND_PROVISIONING__UNKNOWN_SOURCE_RATE_PER_MINUTE="1000000",
    )
    listener = "--dps-https-port" if mode == "https" else "--dps-port"
    load_before = os.getloadavg()[0]
    with served(database, listener, str(port), "--no-mqtt") as (_, pid):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate",
                str(port),
                mode,
                str(args.sessions),
                str(args.seconds),
                f"d{round_no}",
                str(pid),
                per,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode:
        raise SystemExit(f"the load generator failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout)
    result["load_before"] = load_before
    if mode in ("key", "x509", "https"):
        result["devices"] = query_scalar(database, "SELECT count(*) FROM devices")
        if result["devices"] != result["requests"] or result["failures"]:
            raise SystemExit(f"{result['devices']} devices for {result['requests']}: {result}")
    return result


def generate(argv: list[str]) -> None:
    port, mode, sessions, seconds, prefix, pid, per = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    run = load(int(port), mode, int(sessions), float(seconds), prefix, int(pid), int(per))
    print(json.dumps(asyncio.run(run)))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    load_options(parser, sessions=64, backends="sqlite,postgresql")
    parser.add_argument("--modes", default="key,x509,tls,mtls,https")
    parser.add_argument("--per-connection", type=int, default=64)
    args = parser.parse_args()
    pki()
    print_header(sessions=args.sessions, seconds=args.seconds, per_connection=args.per_connection)
    mode_rounds(
        args.backends.split(","),
        args.modes.split(","),
        args.rounds,
        lambda backend, mode, round_no: run(backend, mode, args, round_no),
    )


if __name__ == "__main__":
    main()
