"""The deployment files (deploy/): they cannot run here (no container engine, no systemd),
so their commands and settings run as plain processes: the compose file's provisiond
service, on a real PostgreSQL and a real Mosquitto, must come up ready and manage the
broker; the container file and the systemd unit must start provisiond the same way."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.web.conftest import free_port
from tests.support.mosquitto import Broker
from tests.support.processes import wait_ready

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
pytestmark = pytest.mark.postgres


def provisiond_argv(command: list[str]) -> list[str]:
    """The command with the installed entry point replaced by this interpreter's."""
    assert command[0].endswith("/.venv/bin/provisiond"), command
    return [sys.executable, "-m", "provisiond", *command[1:]]


def test_the_container_file_and_the_unit_start_provisiond_as_compose_does() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    command = compose["services"]["provisiond"]["command"]
    cmd_line = re.search(r"^CMD (.+)$", (DEPLOY / "Containerfile").read_text(), re.MULTILINE)
    assert cmd_line is not None
    assert json.loads(cmd_line.group(1)) == command
    unit = (DEPLOY / "provisiond.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE)
    assert exec_start is not None
    assert exec_start.group(1).split()[1:] == command[1:]
    assert (DEPLOY / "mosquitto.conf").read_text().count("mosquitto_dynamic_security") == 1


@pytest.mark.slow
def test_the_compose_services_provisiond_runs_and_manages_the_broker(
    postgres_url: str, broker: Broker
) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["provisiond"]
    env = {**os.environ, **{k: str(v) for k, v in service["environment"].items()}}
    assert "CHANGE-ME" in env["PROVISIOND_DATABASE_URL"]  # what a deployer must replace
    env |= {
        "PROVISIOND_DATABASE_URL": postgres_url,
        "PROVISIOND_BROKER__URL": broker.url,
        "PROVISIOND_PORT": str(free_port()),
        "PROVISIOND_PROVISIONING__MQTT_PORT": "0",
    }
    port = env["PROVISIOND_PORT"]
    proc = subprocess.Popen(
        provisiond_argv(service["command"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if not wait_ready(f"http://127.0.0.1:{port}", proc):
            raise AssertionError(
                "the compose command did not come up:\n"
                + (proc.stderr.read().decode() if proc.stderr else "")
            )
        deadline = time.monotonic() + 60
        while True:  # the start-up reconciliation made provisiond's group on the broker
            if any(
                g["groupname"] == "provisiond-devices" for g in broker.saved().get("groups", [])
            ):
                break
            if time.monotonic() > deadline:
                proc.terminate()
                raise AssertionError(
                    "the broker was not reconciled at start-up:\n"
                    + (proc.communicate(timeout=30)[1] or b"").decode()
                )
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(30)
