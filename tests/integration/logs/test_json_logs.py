"""With ``log_format = "json"`` every line `provisiond serve` writes is one JSON object: its
own, uvicorn's (without its ANSI-coloured copy of the message), Alembic's migration lines, the
MQTT client's (aiomqtt's), Python's warnings. The real process, as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mosquitto import free_port
from tests.support.processes import wait_ready


def wait_for_text(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    """Until ``text`` is in the log (the process writes it; nothing else to wait on)."""
    deadline = time.monotonic() + 60
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never logged:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


@pytest.mark.slow  # a server start and a broker retry
def test_every_line_is_json_libraries_included(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    port = free_port()
    env = {
        **os.environ,
        "PROVISIOND_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PROVISIOND_LOG_FORMAT": "json",
        "PROVISIOND_LOG_LEVEL": "info",
        "PROVISIOND_PROVISIONING__MQTT_ENABLED": "false",
        # a broker that is not there: aiomqtt's client logs its failed disconnect
        "PROVISIOND_BROKER__KIND": "mosquitto-dynsec",
        "PROVISIOND_BROKER__URL": f"mqtt://admin:secret@127.0.0.1:{free_port()}",
        "PYTHONWARNINGS": "always",
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "provisiond", "serve", "--migrate", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    try:
        assert wait_ready(f"http://127.0.0.1:{port}", process), log.read_text()
        wait_for_text(log, "cannot reach the broker", process)
        wait_for_text(log, "Could not gracefully disconnect", process)
    finally:
        process.terminate()
        process.wait(30)
    raw = log.read_bytes()
    assert b"\x1b" not in raw
    lines = raw.decode().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not JSON: {line!r}\n(the log:\n{raw.decode()})") from None
    assert all("\x1b" not in json.dumps(r, ensure_ascii=False) for r in records)
    assert all("color_message" not in r for r in records)
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "provisiond"} <= loggers, loggers
    assert any(name.startswith("alembic") for name in loggers), loggers  # the migration
    assert any(r["message"].startswith("Could not gracefully disconnect") for r in records)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
