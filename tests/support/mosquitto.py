"""A throwaway Mosquitto with the dynamic security plugin, on a free port, for the tests.

The plugin's file is written here with one administrative client (its password hashed the
way the plugin does: PBKDF2-HMAC-SHA512, 12-byte salt, 101 iterations), the broker is
started with a generated configuration, and the test waits until the port accepts
connections. Device-side helpers use paho-mqtt over MQTT 5, so refusals carry reason codes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from provisiond.integrations.mosquitto_files.protocol import hash_password

PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)


def plugin_path() -> str | None:
    return next((p for p in PLUGIN_CANDIDATES if os.path.exists(p)), None)


def available() -> bool:
    return shutil.which("mosquitto") is not None and plugin_path() is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hashed(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": 101,
    }


def dynsec_config(admin: str, password: str) -> dict[str, Any]:
    everything = "$CONTROL/dynamic-security/#"
    return {
        "clients": [
            {
                "username": admin,
                "textname": "provisiond tests",
                "roles": [{"rolename": "admin"}],
                **_hashed(password),
            }
        ],
        "roles": [
            {
                "rolename": "admin",
                "acls": [
                    {"acltype": "publishClientSend", "topic": everything, "allow": True},
                    {"acltype": "publishClientReceive", "topic": everything, "allow": True},
                    {"acltype": "subscribePattern", "topic": everything, "allow": True},
                    {"acltype": "publishClientReceive", "topic": "#", "allow": True},
                    {"acltype": "subscribePattern", "topic": "#", "allow": True},
                    {"acltype": "unsubscribePattern", "topic": "#", "allow": True},
                ],
            }
        ],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def write_tls_files(
    directory: Path, names: tuple[str, ...] = ("localhost",)
) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and ``names``: (ca, cert,
    key) PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provisiond tests CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    *(x509.DNSName(n) for n in names),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Broker:
    directory: Path
    port: int
    admin: str
    password: str
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    tls_port: int | None = None  # a second listener, with TLS (tls_ca is its CA)
    tls_ca: Path | None = None
    files: bool = False  # password_file + acl_file instead of the plugin
    # The TLS listener requires client certificates from this CA (the CN is the user name),
    # checked against this CRL file (Mosquitto's cafile, require_certificate, crlfile).
    client_ca: Path | None = None
    crl_file: Path | None = None
    verbose: bool = False  # log everything (log_type all), connections included

    @property
    def password_file(self) -> Path:
        return self.directory / "passwords"

    @property
    def acl_file(self) -> Path:
        return self.directory / "acl"

    @property
    def pid_file(self) -> Path:
        return self.directory / "mosquitto.pid"

    def __post_init__(self) -> None:
        self.log = self.directory / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{self.admin}:{self.password}@127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = self.directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            "persistence false",
            f"pid_file {self.pid_file}",
        ]
        lines += (
            ["log_type all", "connection_messages true"]
            if self.verbose
            else ["log_type error", "log_type warning", "log_type notice", "log_type information"]
        )
        if self.files:
            lines += [f"password_file {self.password_file}", f"acl_file {self.acl_file}"]
        else:
            lines += [
                f"plugin {plugin_path()}",
                f"plugin_opt_config_file {self.directory / 'dynamic-security.json'}",
            ]
        if self.tls_port is not None:
            ca, cert, key = write_tls_files(self.directory)
            self.tls_ca = ca
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.client_ca or ca}",
                f"certfile {cert}",
                f"keyfile {key}",
            ]
            if self.client_ca is not None:
                lines += ["require_certificate true", "use_identity_as_username true"]
            if self.crl_file is not None:
                lines.append(f"crlfile {self.crl_file}")
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to "mosquitto", who cannot write here
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(conf)],
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start:\n" + self.log.read_text())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def saved(self) -> dict[str, Any]:
        """The plugin's file as the broker last saved it."""
        data: dict[str, Any] = json.loads((self.directory / "dynamic-security.json").read_text())
        return data


@contextlib.contextmanager
def dynsec_broker(directory: Path, *, tls: bool = False, verbose: bool = False) -> Iterator[Broker]:
    directory.mkdir(parents=True, exist_ok=True)
    admin, password = "provisiond-admin", secrets.token_urlsafe(16)
    (directory / "dynamic-security.json").write_text(
        json.dumps(dynsec_config(admin, password), indent=1)
    )
    broker = Broker(
        directory,
        free_port(),
        admin,
        password,
        tls_port=free_port() if tls else None,
        verbose=verbose,
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def files_broker(
    directory: Path,
    *,
    client_ca: Path | None = None,
    crl_file: Path | None = None,
    verbose: bool = False,
) -> Iterator[Broker]:
    """A Mosquitto reading a password file and an ACL file, each starting with the
    operator's own part: an administrative user who may use every topic. With
    ``client_ca``, also a TLS listener for devices with a certificate from that CA (and the
    CRL in ``crl_file``)."""
    directory.mkdir(parents=True, exist_ok=True)
    admin, password = "operator-admin", secrets.token_urlsafe(16)
    broker = Broker(
        directory,
        free_port(),
        admin,
        password,
        files=True,
        tls_port=free_port() if client_ca else None,
        client_ca=client_ca,
        crl_file=crl_file,
        verbose=verbose,
    )
    broker.password_file.write_text(
        f"# the operator's accounts\n{admin}:{hash_password(password)}\n"
    )
    broker.acl_file.write_text(f"# the operator's rules\nuser {admin}\ntopic readwrite #\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# ------------------------------------------------------------------------- device side


class Device:
    """A paho MQTT 5 client; every callback's result lands on a queue the test reads."""

    def __init__(self, port: int, username: str, password: str | None, client_id: str = "") -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.events.put(
            ("connect", int(rc.value))
        )
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.events.put(
            ("subscribe", [int(rc.value) for rc in rcs])
        )
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.events.put(
            ("publish", (mid, int(rc.value)))
        )
        self.client.on_message = lambda _c, _u, msg: self.events.put(
            ("message", (msg.topic, msg.payload))
        )
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.events.put(
            ("disconnect", int(rc.value))
        )
        self.port = port

    @staticmethod
    def pause(seconds: float) -> None:
        """Wait between two tries of something the broker does asynchronously."""
        time.sleep(seconds)

    def wait(self, kind: str, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got, value = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if got == kind:
                return value

    def connect(self) -> int:
        """The CONNACK's reason code (0: accepted)."""
        self.client.connect(
            "127.0.0.1",
            self.port,
            keepalive=30,
            clean_start=True,
            properties=Properties(PacketTypes.CONNECT),
        )
        self.client.loop_start()
        return int(self.wait("connect"))

    def subscribe(self, topic: str) -> int:
        """The SUBACK's reason code (0x80 and above: refused)."""
        self.client.subscribe(topic, qos=1)
        return int(self.wait("subscribe")[0])

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        mid, rc = self.wait("publish")
        assert mid == info.mid
        return int(rc)

    def message(self, timeout: float = 10) -> tuple[str, bytes]:
        topic, payload = self.wait("message", timeout)
        return topic, payload

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
