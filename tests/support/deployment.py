"""The deployment files (deploy/) as the tests read them: compose.yaml interpolated with the
settings deploy/make-env writes, the Containerfile's instructions, a person signing in."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from tests.support.mosquitto import Broker
from tests.support.postgres import with_database

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?([?-])([^}]*))?\}|\$(\w+)")


def make_env(path: Path) -> dict[str, str]:
    """Run deploy/make-env as a newcomer does; the settings it wrote."""
    subprocess.run([str(DEPLOY / "make-env"), str(path)], check=True, capture_output=True)
    return read_env(path)


def read_env(path: Path) -> dict[str, str]:
    """A compose .env file: KEY=VALUE lines, # comments."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation (``${VAR}``, ``${VAR:?message}``, ``${VAR:-default}``, ``$$``)
    of every string in ``value``; a missing required variable is an AssertionError."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        found = env.get(name, "")
        if m.group(2) == "?" and not found:
            raise AssertionError(f"compose needs {name}: {m.group(3)}")
        return found or (m.group(3) if m.group(2) == "-" else "")

    return VARIABLE.sub(one, value)


def compose(env: dict[str, str]) -> dict[str, Any]:
    """deploy/compose.yaml as compose runs it with ``env`` (deploy/.env)."""
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    result: dict[str, Any] = interpolate(loaded, env)
    return result


def shell_script(service: dict[str, Any]) -> str:
    """The script of a service whose command is ``sh -ec SCRIPT``."""
    command = service["command"]
    assert command[:2] == ["sh", "-ec"], command
    return str(command[2])


def containerfile_instruction(name: str) -> str:
    """The last ``name`` instruction of deploy/Containerfile (continuation lines joined)."""
    text = (DEPLOY / "Containerfile").read_text().replace("\\\n", " ")
    found = re.findall(rf"^{name} (.+)$", text, re.MULTILINE)
    assert found, f"no {name} in deploy/Containerfile"
    return str(found[-1])


def healthcheck_command() -> list[str]:
    """The Containerfile's HEALTHCHECK command (exec form)."""
    command: list[str] = json.loads(
        containerfile_instruction("HEALTHCHECK").split(" CMD ", 1)[1].strip()
    )
    return command


def host_address() -> str:
    """This machine's address on its network (not loopback): where another host connects."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        return str(s.getsockname()[0])


def sign_in(url: str, email: str, password: str) -> httpx.Response:
    """A person signs in through the pages at ``url``; the devices page they then ask for.
    httpx keeps to a browser's cookie rules: a Secure cookie is not sent to a plain-HTTP
    address (browsers make an exception for localhost only)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        page = http.get("/login")
        token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
        assert token is not None, page.text
        http.post(
            "/login",
            data={"email": email, "password": password, "login_csrf": token.group(1)},
            follow_redirects=False,
        )
        return http.get("/devices", follow_redirects=False)


@contextlib.contextmanager
def empty_database(server: str) -> Iterator[str]:
    """A new, empty database (no schema) on the PostgreSQL server ``server``."""
    name = f"provisiond_deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def wait_reconciled(broker: Broker, describe: Any, timeout: float = 60) -> None:
    """Wait until provisiond's start-up reconciliation made its group on the broker;
    ``describe()`` says what provisiond logged when it did not."""
    deadline = time.monotonic() + timeout
    while True:  # another process writes the broker's file: nothing to wait on but the file
        groups = broker.saved().get("groups", [])
        if any(g["groupname"] == "provisiond-devices" for g in groups):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the broker was not reconciled at start-up:\n{describe()}")
        time.sleep(0.1)
