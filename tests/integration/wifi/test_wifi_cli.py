"""`provisiond wifi provision` and `provisiond wifi emulate`, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from typer.testing import CliRunner

from provisiond.cli.app import app
from provisiond.wifi.emulator import DeviceConfig
from tests.integration.wifi.test_wifi import FAST, running

runner = CliRunner()


def test_provision_with_a_qr_payload_and_a_piped_passphrase() -> None:
    qr = '{"ver":"v1","name":"PROV_0A1B2C","pop":"abcd1234","transport":"softap"}'
    with running(DeviceConfig(delay_scale=FAST)) as (device, port):
        result = runner.invoke(
            app,
            [
                "wifi",
                "provision",
                "--device",
                f"127.0.0.1:{port}",
                "--qr",
                qr,
                "--ssid",
                "Kanarra Ops",
                "--passphrase-stdin",
                "--json",
            ],
            input="correct horse battery\n",
        )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["ssid"], answer["state"], answer["ip4"]) == (
        "Kanarra Ops",
        "connected",
        "192.168.1.42",
    )
    assert device.ssid == "Kanarra Ops"


def test_failures_exit_with_the_reason_and_the_hint() -> None:
    with running(DeviceConfig(delay_scale=FAST)) as (_, port):
        wrong = runner.invoke(
            app,
            [
                "wifi",
                "provision",
                "abcd1234",
                "--device",
                f"127.0.0.1:{port}",
                "--ssid",
                "Kanarra Ops",
                "--passphrase-stdin",
            ],
            input="nope\n",
        )
        bad_pop = runner.invoke(
            app,
            [
                "wifi",
                "provision",
                "0000",
                "--device",
                f"127.0.0.1:{port}",
                "--ssid",
                "Kanarra Ops",
                "--passphrase-stdin",
            ],
            input="x\n",
        )
    assert wrong.exit_code == 8
    assert "wifi-provisioning-failed" in wrong.stderr
    assert "check the passphrase" in wrong.stderr
    assert bad_pop.exit_code == 8
    assert "proof of possession" in bad_pop.stderr
    # BLE where this host has none: a clear failure, nothing else breaks
    ble = runner.invoke(
        app,
        [
            "wifi",
            "provision",
            "--request-timeout",
            "2",
            "--qr",
            '{"ver":"v1","name":"PROV_1","pop":"x","transport":"ble"}',
        ],
    )
    assert ble.exit_code == 8
    assert "Bluetooth" in ble.stderr or "BLE is not available" in ble.stderr
    assert "soft access point" in ble.stderr
    junk = runner.invoke(app, ["wifi", "provision", "--qr", "not a payload"])
    assert junk.exit_code == 2


def test_the_emulator_command_serves_a_device_the_client_provisions() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisiond",
            "wifi",
            "emulate",
            "--port",
            "0",
            "--sec",
            "2",
            "--username",
            "admin",
            "--password",
            "s3cret-pass",
            "--delay-scale",
            "0.02",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert found, first
        qr = proc.stdout.readline().split("QR payload: ", 1)[1].strip()
        assert json.loads(qr)["username"] == "admin"
        result = runner.invoke(
            app,
            [
                "wifi",
                "provision",
                "--device",
                f"127.0.0.1:{found.group(1)}",
                "--qr",
                qr,
                "--ssid",
                "Kanarra Guest",
                "--passphrase-stdin",
                "--json",
            ],
            input="\n",
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["state"] == "connected"
    finally:
        proc.terminate()
        proc.wait(10)
