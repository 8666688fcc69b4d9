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
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common import (
    bench_profile,
    fresh_database,
    machine,
    print_medians,
    provisiond,
    query_scalar,
    rounds,
    serving,
    wrk,
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
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .sign(device_key, hashes.SHA256())
            )
            out.write(
                json.dumps(
                    {
                        "deviceName": name,
                        "provisionDeviceKey": key,
                        "provisionDeviceSecret": secret,
                        "credentialsType": "X509_CERTIFICATE",
                        "hash": csr.public_bytes(serialization.Encoding.PEM).decode(),
                    }
                )
                + "\n"
            )
    return path


def run(backend: str, args: argparse.Namespace, round_no: int) -> dict[str, float]:
    database = fresh_database(backend, f"bench_x509_{backend}")
    provisiond("db", "upgrade", database=database)
    provisiond("ca", "create", "bench-ca", database=database)
    made = bench_profile(database, "--credentials", "x509", "--ca", "bench-ca")
    body_file = bodies(args.bodies, made["key"], made["secret"], f"X{round_no}{backend[0]}")
    with serving(database, "--no-mqtt") as port:
        result = wrk(
            port,
            HERE / "provision_x509.lua",
            [str(body_file)],
            seconds=args.seconds,
            connections=args.connections,
        )
    # bodies repeated once the file runs out are refused: count what was provisioned
    devices = query_scalar(database, "SELECT count(*) FROM devices")
    certificates = query_scalar(database, "SELECT count(*) FROM credentials WHERE type = 'x509'")
    result.update(devices=devices, certificates=certificates, rps=round(devices / args.seconds))
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
    print(
        json.dumps(
            {"machine": machine(), "connections": args.connections, "seconds": args.seconds}
        ),
        flush=True,
    )
    print_medians(
        rounds(backends, args.rounds, lambda backend, round_no: run(backend, args, round_no))
    )


if __name__ == "__main__":
    main()
