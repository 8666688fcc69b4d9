"""X.509 self-provisioning from a CSR over HTTP: the CA signs a certificate per request.

    python benchmarks/provision_x509.py [--rounds 3] [--seconds 10] [--connections 64]
                                        [--backends sqlite,postgresql]

Needs wrk. Per round and backend: a freshly migrated database, a CA (`provisiond ca
create`) and an allow-create profile handing out x509 from it (limits out of the way),
`provisiond serve` (one process, SQLite synchronous=FULL); wrk (1 thread, 64 connections)
posts pre-made requests, each with a CSR (EC P-256, CN = the new device's name) in
ThingsBoard's `hash` field; provisiond checks the CSR and answers a signed certificate after
the commit. A request repeated once the pre-made bodies run out is refused (its device
exists): the round counts only SUCCESS answers, which the database must match one to one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common import (
    PROVISIOND,
    free_port,
    fresh_database,
    machine,
    median,
    provisiond,
    query_scalar,
    wait_until_serving,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"


def bodies(count: int, key: str, secret: str, prefix: str) -> Path:
    """One provision request per line, each with its own CSR (made before the clock)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"x509-{prefix}.jsonl"
    device_key = ec.generate_private_key(ec.SECP256R1())  # one key: CSRs differ by name
    with path.open("w") as out:
        for n in range(count):
            name = f"{prefix}-{n:06d}"
            csr = (x509.CertificateSigningRequestBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .sign(device_key, hashes.SHA256()))
            out.write(json.dumps({
                "deviceName": name, "provisionDeviceKey": key, "provisionDeviceSecret": secret,
                "credentialsType": "X509_CERTIFICATE",
                "hash": csr.public_bytes(serialization.Encoding.PEM).decode()}) + "\n")
    return path


def wrk(port: int, seconds: int, connections: int, body_file: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         str(HERE / "provision_x509.lua"), f"http://127.0.0.1:{port}", "--", str(body_file)],
        capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in ([\d.]+)(s|m)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        value, unit = float(m.group(1)), m.group(2)  # type: ignore[union-attr]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"requests": total, "p50_ms": pct("50"), "p99_ms": pct("99")}


def run(backend: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_x509_{backend}")
    provisiond("db", "upgrade", database=database)
    provisiond("ca", "create", "bench-ca", database=database)
    made = json.loads(provisiond("profiles", "create", "bench", "--credentials", "x509",
                                 "--ca", "bench-ca", "--rate-limit", "1000000",
                                 "--source-rate-limit", "1000000", "--json",
                                 database=database).stdout)
    body_file = bodies(args.bodies, made["key"], made["secret"], f"X{round_no}{backend[0]}")
    port = free_port()
    env = {**os.environ, "PROVISIOND_DATABASE_URL": database}
    server = subprocess.Popen([*PROVISIOND, "serve", "--port", str(port), "--log-level",
                               "warning", "--no-mqtt"], env=env)
    try:
        wait_until_serving(port, "/healthz")
        result = wrk(port, args.seconds, args.connections, body_file)
    finally:
        server.terminate()
        server.wait(timeout=60)
    devices = query_scalar(database, "SELECT count(*) FROM devices")
    certificates = query_scalar(database, "SELECT count(*) FROM credentials WHERE type = 'x509'")
    result.update(devices=devices, certificates=certificates,
                  rps=round(devices / args.seconds))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bodies", type=int, default=60_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = args.backends.split(",")
    print(json.dumps({"machine": machine(), "connections": args.connections,
                      "seconds": args.seconds}), flush=True)
    results: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for round_no in range(1, args.rounds + 1):
        for backend in backends:
            r = run(backend, args, round_no)
            results[backend].append(r)
            print(json.dumps({"round": round_no, "backend": backend, **r}), flush=True)
    for backend in backends:
        print(json.dumps({"backend": backend,
                          "median_rps": median([r["rps"] for r in results[backend]]),
                          "median_p50_ms": median([r["p50_ms"] for r in results[backend]]),
                          "median_p99_ms": median([r["p99_ms"] for r in results[backend]])}),
              flush=True)


if __name__ == "__main__":
    main()
