"""AWS IoT fleet provisioning through provisiond's AWS listener: CreateKeysAndCertificate +
RegisterThing over mutual TLS, and the TLS handshake on its own.

    python benchmarks/aws_fleet.py [--rounds 3] [--seconds 10] [--sessions 32]
                                   [--backends sqlite,postgresql] [--per-connection 64]
                                   [--phases handshake,fleet,reused,amortised]
    python benchmarks/aws_fleet.py --handshake-cpu

Per round and backend: a freshly migrated database with a signing CA, a claim CA registered
by its certificate, and one allow-create profile joining them (limits out of the way);
`provisiond serve --aws-port` (one process, SQLite synchronous=FULL), and a load generator
in its own process (uvloop) with four phases:

1. ``handshake``: for ``--seconds``, ``--sessions`` loops each open a TCP connection, do the
   TLS 1.3 handshake with the claim certificate (mutual authentication) and close: the
   handshakes the listener completes per second, and their latency.
2. ``fleet``: for ``--seconds``, each loop is one device as AWS's SDK runs it: connect (TLS
   with the claim certificate), MQTT 5 CONNECT, SUBSCRIBE to both operations' accepted and
   rejected topics (QoS 1, SUBACK awaited), CreateKeysAndCertificate, RegisterThing with the
   token and a new SerialNumber, disconnect. Reported: devices/s, the latency of a whole
   device, and of its TLS handshake inside it.
3. ``reused``: the same, eight devices one after another over each connection (a gateway
   provisioning its children; not what AWS's SDK does): the handshake's cost spread over
   eight.
4. ``amortised``: ``--sessions`` long-lived mutual-TLS connections, each provisioning
   ``--per-connection`` devices one after another (CreateKeysAndCertificate + RegisterThing,
   as above; ``aws__max_requests_per_session`` raised to allow it), then the next
   connection: the handshake's cost spread so thin that what provisioning itself costs
   shows.

Each phase also reports the CPU time the server process (all its threads: the event loop,
the provisioning writer) spent during it, from /proc/<pid>/stat, per device (or per
handshake) — robust to other work on the machine, unlike the wall-clock rate —, the cores
it kept busy, how long its threads were runnable but waiting for a CPU (the run queue, from
/proc/<pid>/task/*/schedstat: what other processes took from it), and the load
generator's own CPU per device.

Every answer must be accepted and the database must then hold one device per RegisterThing.

Prints JSON lines, then medians per backend.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common import (
    PROVISIOND,
    free_port,
    fresh_database,
    load_options,
    median,
    print_header,
    process_cpu,
    process_waiting,
    provisiond,
    query_scalar,
    wait_until_serving,
)
from provisiond.protocols import mqtt

TEMPLATE = "bench"
CREATE = "$aws/certificates/create/json"
REGISTER = f"$aws/provisioning-templates/{TEMPLATE}/provision/json"
REUSED = 8  # devices per connection in the "reused" phase (the listener allows 16 requests)
PHASES = ("handshake", "fleet", "reused", "amortised")


def _pem(obj: Any) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return bytes(
        obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    dns: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def write_pki(directory: Path) -> None:
    """server-ca.pem, server.pem/.key (localhost), claim-ca.pem, claim.pem/.key."""
    for name in ("server", "claim"):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate(f"bench {name} CA", ca_key, None, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _certificate(
            "localhost" if name == "server" else "claim",
            key,
            (ca, ca_key),
            ca=False,
            dns="localhost" if name == "server" else None,
        )
        (directory / f"{name}-ca.pem").write_bytes(_pem(ca))
        (directory / f"{name}.pem").write_bytes(_pem(leaf))
        (directory / f"{name}.key").write_bytes(_pem(key))


# ------------------------------------------------------------------ the load generator


def client_context(directory: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(directory / "server-ca.pem"))
    context.load_cert_chain(directory / "claim.pem", directory / "claim.key")
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


async def open_tls(port: int, context: ssl.SSLContext) -> tuple[Any, Any, float]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    return reader, writer, time.perf_counter() - started


class Packets:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffer = bytearray()

    async def next(self) -> tuple[int, bytes]:
        while (frame := mqtt.take_frame(self.buffer, 1 << 20)) is None:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        return frame[0] >> 4, frame[1]

    async def answer(self) -> tuple[str, dict[str, Any]]:
        while True:
            kind, body = await self.next()
            if kind == mqtt.PUBLISH:
                c = mqtt._Cursor(body)
                topic = c.text()
                c.u16()
                c.skip_properties()
                return topic, json.loads(c.take(c.left))


def _connect() -> bytes:
    body = mqtt._text("MQTT") + bytes([5, 0x02]) + (30).to_bytes(2, "big") + b"\x00"
    return mqtt._packet(mqtt.CONNECT << 4, body + mqtt._text("bench-device"))


def _subscribe(packet_id: int, *names: str) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"\x00"
    for name in names:
        body += mqtt._text(name) + b"\x01"
    return mqtt._packet((mqtt.SUBSCRIBE << 4) | 2, body)


async def device(port: int, context: ssl.SSLContext, serial: str, count: int = 1) -> float:
    """``count`` devices over one connection (1: as AWS's SDK does); the TLS handshake's
    time. Raises unless every answer is accepted."""
    reader, writer, handshake = await open_tls(port, context)
    packets = Packets(reader)
    try:
        writer.write(
            _connect()
            + _subscribe(1, CREATE + "/accepted", CREATE + "/rejected")
            + _subscribe(2, REGISTER + "/accepted", REGISTER + "/rejected")
        )
        for _ in range(3):  # CONNACK, SUBACK, SUBACK: then publish
            await packets.next()
        for n in range(count):
            writer.write(mqtt.encode_publish(5, CREATE, b"{}", 1, 3))
            topic, made = await packets.answer()
            if not topic.endswith("/accepted"):
                raise RuntimeError(made)
            request = {
                "certificateOwnershipToken": made["certificateOwnershipToken"],
                "parameters": {"SerialNumber": f"{serial}-{n}"},
            }
            writer.write(mqtt.encode_publish(5, REGISTER, json.dumps(request).encode(), 1, 4))
            topic, thing = await packets.answer()
            if not topic.endswith("/accepted"):
                raise RuntimeError(thing)
        writer.write(bytes([mqtt.DISCONNECT << 4, 0]))
        return handshake
    finally:
        writer.close()


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 2)


async def phase(
    sessions: int, seconds: float, one: Any, pid: int, per: int = 1
) -> dict[str, float]:
    latencies: list[float] = []
    inner: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop(worker: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            started = time.perf_counter()
            inner.append(await one(worker, n))
            latencies.append(time.perf_counter() - started)

    cpu, own, waited = process_cpu(pid), time.process_time(), process_waiting(pid)
    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(sessions)))
    elapsed = time.perf_counter() - started
    cpu, own = process_cpu(pid) - cpu, time.process_time() - own
    waited = process_waiting(pid) - waited
    done = len(latencies) * per
    return {
        "rps": round(done / elapsed),
        "count": len(latencies),
        "server_cpu_ms": round(cpu / done * 1000, 3),  # per device (per handshake)
        "server_cpu_share": round(cpu / elapsed, 2),  # cores the server kept busy
        "server_waiting_share": round(waited / elapsed, 2),  # runnable, not running
        "client_cpu_ms": round(own / done * 1000, 3),
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "tls_p50_ms": _pct(inner, 0.5),
        "tls_p99_ms": _pct(inner, 0.99),
    }


async def load(
    port: int, directory: Path, sessions: int, seconds: float, prefix: str, options: str
) -> Any:
    pid, per, phases = options.split(":")
    context = client_context(directory)

    async def handshake_only(_worker: int, _n: int) -> float:
        _, writer, took = await open_tls(port, context)
        writer.close()
        return took

    async def one_device(worker: int, n: int) -> float:
        return await device(port, context, f"{prefix}-{worker}-{n}")

    async def eight_devices(worker: int, n: int) -> float:
        return await device(port, context, f"{prefix}R-{worker}-{n}", REUSED)

    async def many_devices(worker: int, n: int) -> float:
        return await device(port, context, f"{prefix}M-{worker}-{n}", int(per))

    runs = {
        "handshake": (handshake_only, 1),
        "fleet": (one_device, 1),
        "reused": (eight_devices, REUSED),
        "amortised": (many_devices, int(per)),
    }
    return {
        name: await phase(sessions, seconds, runs[name][0], int(pid), runs[name][1])
        for name in phases.split(",")
    }


# ---------------------------------------------------------------------------- rounds


def run(backend: str, args: argparse.Namespace, round_no: int, directory: Path) -> dict[str, Any]:
    load_before = os.getloadavg()[0]  # the machine's, before this round's processes start
    database = fresh_database(backend, f"bench_aws_{backend}")
    provisiond("db", "upgrade", database=database)
    provisiond("ca", "create", "devices", database=database)
    provisiond(
        "ca", "import", "claims", "--cert", str(directory / "claim-ca.pem"), database=database
    )
    provisiond(
        "profiles", "create", TEMPLATE, "--credentials", "x509", "--ca", "devices",
        "--device-ca", "claims", "--rate-limit", "1000000", "--source-rate-limit", "1000000",
        database=database,
    )  # fmt: skip
    http_port, aws_port = free_port(), free_port()
    env = {
        **os.environ,
        "PROVISIOND_DATABASE_URL": database,
        "PROVISIOND_AWS__TLS_CERT": str(directory / "server.pem"),
        "PROVISIOND_AWS__TLS_KEY": str(directory / "server.key"),
        "PROVISIOND_LIMITS__MQTT_MAX_SESSIONS_PER_ADDRESS": "4096",
        "PROVISIOND_AWS__MAX_REQUESTS_PER_SESSION": str(2 * max(args.per_connection, REUSED)),
    }
    server = subprocess.Popen(
        [*PROVISIOND, "serve", "--port", str(http_port), "--log-level", "warning",
         "--aws-port", str(aws_port), "--no-mqtt"],
        env=env,
    )  # fmt: skip
    try:
        wait_until_serving(http_port, "/healthz")
        out = subprocess.run(
            [sys.executable, __file__, "--generate", str(aws_port), str(directory),
             str(args.sessions), str(args.seconds), f"A{round_no}",
             f"{server.pid}:{args.per_connection}:{args.phases}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=60)
    result: dict[str, Any] = json.loads(out)
    result["devices"] = query_scalar(database, "SELECT count(*) FROM devices")
    result["load_before"] = load_before
    per = {"fleet": 1, "reused": REUSED, "amortised": args.per_connection}
    answered = sum(result[name]["count"] * n for name, n in per.items() if name in result)
    if result["devices"] != answered:
        raise RuntimeError(f"{result['devices']} devices for {answered} answers")
    return result


def generate(argv: list[str]) -> None:
    port, directory, sessions, seconds, prefix, options = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(
        json.dumps(
            asyncio.run(
                load(int(port), Path(directory), int(sessions), float(seconds), prefix, options)
            )
        )
    )


def handshake_cpu(count: int = 300) -> dict[str, float]:
    """The CPU one mutual-TLS handshake costs each side, in OpenSSL through Python's ssl
    (memory BIOs, one thread, no sockets, no event loop): the floor under the listener's."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_pki(directory)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(directory / "server.pem", directory / "server.key")
        server.verify_mode = ssl.CERT_REQUIRED
        server.load_verify_locations(directory / "claim-ca.pem")
        client = client_context(directory)
    spent = {"server": 0.0, "client": 0.0}
    for _ in range(count):
        s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
        ends = {
            "client": (client.wrap_bio(c_in, c_out, server_hostname="localhost"), s_in, c_out),
            "server": (server.wrap_bio(s_in, s_out, server_side=True), c_in, s_out),
        }
        done = set()
        while len(done) < 2:
            for side, (end, peer_in, own_out) in ends.items():
                started = time.process_time()
                try:
                    end.do_handshake()
                    done.add(side)
                except ssl.SSLWantReadError:
                    pass
                spent[side] += time.process_time() - started
                peer_in.write(own_out.read())
    return {f"{side}_ms": round(t / count * 1000, 3) for side, t in spent.items()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generate(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--handshake-cpu":
        print(json.dumps(handshake_cpu()))
        return
    parser = argparse.ArgumentParser()
    load_options(parser, sessions=32, backends="sqlite,postgresql")
    parser.add_argument("--per-connection", type=int, default=64)
    parser.add_argument("--phases", default=",".join(PHASES))
    args = parser.parse_args()
    backends = args.backends.split(",")
    print_header(sessions=args.sessions, seconds=args.seconds, per_connection=args.per_connection)
    results: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_pki(directory)
        for round_no in range(1, args.rounds + 1):
            for backend in backends:
                r = run(backend, args, round_no, directory)
                results[backend].append(r)
                print(json.dumps({"round": round_no, "backend": backend, **r}), flush=True)
    for backend, runs in results.items():
        summary = {"backend": backend}
        for key in args.phases.split(","):
            for field in (
                "rps",
                "p50_ms",
                "p99_ms",
                "tls_p50_ms",
                "server_cpu_ms",
                "server_cpu_share",
                "server_waiting_share",
            ):
                summary[f"{key}_{field}"] = median([r[key][field] for r in runs])
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
